"""The model registry: every model by name with its own options (options.py).

    model = build_model(cfg.model, input_shape=(1, 28, 28), num_outputs=10)   # the module is imported here

The option dataclasses live in options.py (and the activations in activations.py), below the model modules that
use them, so config validation, `trainlab list`, the docs and the tuner read them without importing torch and
no model module imports this catalog; each builder imports its module (mlp.py, cnn.py, rnn.py, transformer.py) when
it builds, so a model file can use torch freely. `timm:*` and `torchvision:*` are families: any model of
those libraries by name (`timm:convnext_atto`, `torchvision:resnet18`), built in library.py.
"""
from __future__ import annotations

from dataclasses import replace

from trainlab.core.errors import UserError
from trainlab.core.registry import Registry
from trainlab.models.options import (
    CNNConfig,
    CourseMLPConfig,
    LeNetConfig,
    LibraryModelConfig,
    MLPConfig,
    ResNetConfig,
    RNNConfig,
    TransformerConfig,
)

MODELS = Registry("model")
MAX_PARAMETERS = 1_000_000_000  # 4 GiB of weights, 16 GiB with gradients and Adam's state: far past a course model


def build_model(model_cfg, input_shape: tuple, num_outputs: int, device=None, **info):
    """Build the registered model `model_cfg.name` with its options `model_cfg.params` -> nn.Module.

    `info` carries what some models need from the data (vocab_size, pad_index for text); builders take **info.
    The model is first built on the meta device (shapes only, no memory) and refused with a one-line error
    when it has more than MAX_PARAMETERS; `device="meta"` returns that structure itself.
    """
    import torch  # start-up time: the catalog stays light for `trainlab --help`

    entry = MODELS.entry(model_cfg.name)
    if entry.family:  # timm:* / torchvision:*: the library's own model name; its sizes are the library's
        if device == "meta":  # the structure only: no starting weights to load onto meta tensors
            with torch.device("meta"):
                return entry.builder(architecture_only(model_cfg).params, tuple(input_shape), num_outputs, **info,
                                     model_name=model_cfg.name)
        return entry.builder(model_cfg.params, tuple(input_shape), num_outputs, **info, model_name=model_cfg.name)
    builder = entry.builder
    try:
        with torch.device("meta"):  # draws no random numbers: a seeded build below gives the same weights
            skeleton = builder(model_cfg.params, tuple(input_shape), num_outputs, **info)
    except (RuntimeError, ValueError) as e:  # layer sizes that cannot meet (shapes only: no data involved yet)
        first = (str(e).splitlines() or [type(e).__name__])[0][:200]
        raise UserError(f"model {model_cfg.name!r} cannot be built for inputs of shape {tuple(input_shape)} "
                        f"with {num_outputs} outputs: {first}") from None
    count = sum(p.numel() for p in skeleton.parameters())
    if count > MAX_PARAMETERS:
        raise UserError(f"model {model_cfg.name!r} would have {count:,} parameters ({count * 4 / 2**30:.0f} GiB of "
                        f"float32 weights), more than trainlab's limit of {MAX_PARAMETERS:,}; use smaller layer sizes")
    if device == "meta":
        return skeleton
    return builder(model_cfg.params, tuple(input_shape), num_outputs, **info)


def is_library_model(name: str) -> bool:
    """Whether `name` is a timm or torchvision model (`timm:...`, `torchvision:...`): no import needed."""
    return name in MODELS and MODELS.entry(name).family


def architecture_only(model_cfg):
    """The same model config without starting weights (pretrained, weights): for loading a run's own checkpoint,
    which replaces them anyway, without a download or a weights file that may have moved since."""
    if not isinstance(model_cfg.params, LibraryModelConfig):
        return model_cfg
    return replace(model_cfg, params=replace(model_cfg.params, pretrained=False, weights=None))


# ----------------------------------------------------------------------------- models
# Each builder imports its module on first use (start-up time: torch stays out of `trainlab --help`).

@MODELS.register("mlp", inputs=("image", "tabular"), config=MLPConfig)
def _mlp(cfg: MLPConfig, input_shape: tuple, num_outputs: int, **info):
    """Fully connected network on flattened inputs; returns logits (B, num_outputs)."""
    from trainlab.models import mlp  # start-up time

    return mlp.build_mlp(cfg, input_shape, num_outputs, **info)


@MODELS.register("course_mlp", inputs=("image", "tabular"), config=CourseMLPConfig)
def _course_mlp(cfg: CourseMLPConfig, input_shape: tuple, num_outputs: int, **info):
    """The course's network: 784 -> 196 -> 49 -> 10 on 28x28 images (inputs/outputs follow the data)."""
    from trainlab.models import mlp  # start-up time

    return mlp.build_course_mlp(cfg, input_shape, num_outputs, **info)


@MODELS.register("cnn", inputs=("image",), config=CNNConfig)
def _cnn(cfg: CNNConfig, input_shape: tuple, num_outputs: int, **info):
    """Conv blocks (conv -> BN -> activation -> pool) and an MLP head; returns logits (B, num_outputs)."""
    from trainlab.models import cnn  # start-up time

    return cnn.build_cnn(cfg, input_shape, num_outputs, **info)


@MODELS.register("lenet5", inputs=("image",), config=LeNetConfig)
def _lenet5(cfg: LeNetConfig, input_shape: tuple, num_outputs: int, **info):
    """LeNet-5: conv 6@5x5 -> pool -> conv 16@5x5 -> pool -> 120 -> 84 -> outputs."""
    from trainlab.models import cnn  # start-up time

    return cnn.build_lenet5(cfg, input_shape, num_outputs, **info)


@MODELS.register("resnet_small", inputs=("image",), config=ResNetConfig)
def _resnet_small(cfg: ResNetConfig, input_shape: tuple, num_outputs: int, **info):
    """A small CIFAR-style ResNet: 3x3 stem, stages of BasicBlocks (stride 2 between), global average pool."""
    from trainlab.models import cnn  # start-up time

    return cnn.build_resnet_small(cfg, input_shape, num_outputs, **info)


@MODELS.register("rnn", inputs=("sequence", "text", "image"), config=RNNConfig)
def _rnn(cfg: RNNConfig, input_shape: tuple, num_outputs: int, **info):
    """RNN/LSTM/GRU over time steps (series windows, image rows, tokens); forecasts or class logits."""
    from trainlab.models import rnn  # start-up time

    return rnn.build_rnn(cfg, input_shape, num_outputs, **info)


@MODELS.register("transformer", inputs=("sequence", "text", "image"), config=TransformerConfig)
def _transformer(cfg: TransformerConfig, input_shape: tuple, num_outputs: int, **info):
    """Transformer encoder (multi-head self-attention + feed-forward blocks); class logits or forecasts."""
    from trainlab.models import transformer  # start-up time

    return transformer.build_transformer(cfg, input_shape, num_outputs, **info)


@MODELS.register("timm:*", inputs=("image",), config=LibraryModelConfig, example="timm:test_convnext")
def _timm(cfg: LibraryModelConfig, input_shape: tuple, num_outputs: int, model_name: str, **info):
    """Any timm model by name (timm:convnext_atto, ...; trainlab list models --filter NAME): new head, in_chans."""
    from trainlab.models import library  # start-up time: timm imports torch

    return library.build_library_model(model_name, cfg, input_shape, num_outputs)


@MODELS.register("torchvision:*", inputs=("image",), config=LibraryModelConfig, example="torchvision:resnet18")
def _torchvision(cfg: LibraryModelConfig, input_shape: tuple, num_outputs: int, model_name: str, **info):
    """Any torchvision classification model by name (torchvision:resnet18, ...): new head, adapted stem."""
    from trainlab.models import library  # start-up time

    return library.build_library_model(model_name, cfg, input_shape, num_outputs)
