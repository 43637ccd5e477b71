"""The model registry: every model by name with its own options, plus the activation functions.

    model = build_model(cfg.model, input_shape=(1, 28, 28), num_outputs=10)   # the module is imported here

Option dataclasses live here, so config validation, `trainlab list`, the docs and the tuner read them
without importing torch; each builder imports its module (mlp.py, cnn.py, rnn.py, transformer.py) when
it builds, so a model file can use torch freely. `timm:*` and `torchvision:*` are families: any model of
those libraries by name (`timm:convnext_atto`, `torchvision:resnet18`), built in library.py.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from trainlab.core.errors import UserError
from trainlab.core.registry import Registry
from trainlab.core.schema import opt

MODELS = Registry("model")
ACTIVATIONS = Registry("activation")
WIDTH = {"ge": 1, "le": 65_536}  # any layer size; a typo like 10000000000 is refused before torch allocates
LAYERS = {**WIDTH, "max_items": 256}  # a list of layer sizes: as many layers as DEPTH allows
DEPTH = {"ge": 1, "le": 256}  # stacked layers or blocks
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


# ----------------------------------------------------------------------------- options

@dataclass
class MLPConfig:
    hidden: list[int] = opt(lambda: [256, 128], help="hidden layer sizes", **LAYERS)
    activation: str = opt("relu", help="activation (trainlab list activations)")
    dropout: float = opt(0.0, help="dropout after each hidden layer", ge=0.0, lt=1.0)
    batch_norm: bool = opt(False, help="BatchNorm1d after each hidden linear layer")
    output_activation: str | None = opt(None,
                                        help="applied to the logits; leave null (see README: the course's Sigmoid)")


@dataclass
class CourseMLPConfig:
    activation: str = opt("relu", help="activation between the layers")
    dropout: float = opt(0.0, help="dropout after each hidden layer", ge=0.0, lt=1.0)
    output_activation: str | None = opt(None, help="the course ends with sigmoid; null (default) returns logits")


@dataclass
class CNNConfig:
    channels: list[int] = opt(lambda: [32, 64], help="output channels of each conv block", **LAYERS)
    kernel_size: int = opt(3, help="conv kernel size (padding keeps the size; at most the image side)", ge=1, le=31)
    pool: Literal["max", "avg", "none"] = opt("max", help="pooling after each block: max, avg or none")
    batch_norm: bool = opt(True, help="BatchNorm2d after each conv")
    activation: str = opt("relu", help="activation (trainlab list activations)")
    dropout: float = opt(0.0, help="dropout before each head layer", ge=0.0, lt=1.0)
    hidden: list[int] = opt(lambda: [128], help="hidden sizes of the classifier head", **LAYERS)


@dataclass
class LeNetConfig:
    activation: str = opt("relu", help="LeCun used tanh; relu trains faster")


@dataclass
class ResNetConfig:
    width: int = opt(16, help="channels of the first stage (doubled at each later stage)", ge=1, le=4096)
    blocks: list[int] = opt(lambda: [1, 1, 1], help="residual blocks per stage", ge=0, le=64)


@dataclass
class RNNConfig:
    cell: Literal["rnn", "lstm", "gru"] = opt("lstm", help="recurrent cell: rnn (Elman, tanh), lstm or gru")
    hidden: int = opt(64, help="hidden state size per direction", **WIDTH)
    layers: int = opt(1, help="stacked recurrent layers", **DEPTH)
    bidirectional: bool = opt(False, help="also read the sequence backwards (not for forecasting the future)")
    dropout: float = opt(0.0, help="dropout between recurrent layers and before the head", ge=0.0, lt=1.0)
    pooling: Literal["last", "mean", "max"] = opt("last", help="head input: final hidden state, or mean/max over steps")
    embed_dim: int = opt(64, help="token embedding size (text inputs only)", **WIDTH)


@dataclass
class TransformerConfig:
    d_model: int = opt(64, help="width of every token representation", **WIDTH)
    heads: int = opt(4, help="attention heads (must divide d_model)", **WIDTH)
    layers: int = opt(2, help="encoder blocks", **DEPTH)
    ff_dim: int = opt(128, help="hidden size of each block's feed-forward network", **WIDTH)
    dropout: float = opt(0.1, help="dropout on attention weights and residual branches", ge=0.0, lt=1.0)
    positional: Literal["sinusoidal", "learned", "none"] = opt(
        "sinusoidal", help="positional encoding; none makes the model blind to order (a bag of tokens)")
    pooling: Literal["cls", "mean", "last"] = opt(
        "cls", help="head input: a learned CLS token, the mean, or the last step")
    causal: bool = opt(False, help="causal mask: each position attends only to itself and earlier positions")


@dataclass
class LibraryModelConfig:
    pretrained: bool = opt(False, help="start from the library's pretrained weights (downloaded on first use, "
                                       "needs internet); offline, download the file elsewhere and use weights")
    weights: str | None = opt(None, help="local weights file to start from (.pt/.pth state_dict, a trainlab "
                                         "best.pt/last.pt or .safetensors); a head of another class count is "
                                         "replaced")
    preprocess: Literal["auto", "model", "data"] = opt(
        "auto", help="input size and normalization: model = the library's (timm data config, torchvision weight "
                     "transforms), data = data.transforms, auto = model with pretrained or weights; an explicit "
                     "data.transforms always wins")
    image_size: int | None = opt(None, help="side of the model's input when its preprocessing is used (default: "
                                            "the model's own, e.g. 224); smaller is faster", ge=8, le=4096)


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


# ----------------------------------------------------------------------------- activations

def _activation(attr: str, *args):
    def build():
        from torch import nn  # start-up time

        return getattr(nn, attr)(*args)
    return build


for _name, _attr, _args, _help in (
    ("relu", "ReLU", (), "max(0, x): cheap, no saturation for x > 0, dead for x < 0"),
    ("leaky_relu", "LeakyReLU", (0.01,), "x for x > 0, 0.01x otherwise: no dead units"),
    ("elu", "ELU", (), "x for x > 0, exp(x) - 1 otherwise: smooth, negative outputs"),
    ("gelu", "GELU", (), "x * Phi(x): smooth ReLU used by Transformers"),
    ("silu", "SiLU", (), "x * sigmoid(x) (swish)"),
    ("tanh", "Tanh", (), "(-1, 1), zero-centred, saturates for |x| > 3"),
    ("sigmoid", "Sigmoid", (), "(0, 1), saturates: gradients vanish in deep stacks"),
    ("softplus", "Softplus", (), "log(1 + exp(x)): smooth ReLU"),
    ("mish", "Mish", (), "x * tanh(softplus(x))"),
    ("identity", "Identity", (), "no non-linearity (a stack of linear layers stays linear)"),
):
    ACTIVATIONS.add(_name, _activation(_attr, *_args), help=_help)


def activation(name: str):
    """A new activation module by name (nn.Module)."""
    return ACTIVATIONS.get(name)()
