"""The models' own options: one dataclass per model (or family), read by config validation, `trainlab list`,
the docs, the tuner and the model modules themselves (mlp.py, cnn.py, ...) without importing torch.

    from trainlab.models.options import CNNConfig
    CNNConfig(channels=[16, 32], pool="avg")
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from trainlab.core.schema import opt

WIDTH = {"ge": 1, "le": 65_536}  # any layer size; a typo like 10000000000 is refused before torch allocates
LAYERS = {**WIDTH, "max_items": 256}  # a list of layer sizes: as many layers as DEPTH allows
DEPTH = {"ge": 1, "le": 256}  # stacked layers or blocks


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
