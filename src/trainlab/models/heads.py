"""Where a network's head and stem are: what fine-tuning replaces, freezes around, or adapts.

    head_names(model)        # ("fc",) for a ResNet, ("head.fc",) for timm's ConvNeXt, ("3",) for an MLP
    first_conv_name(model)   # "conv1", "stem.0", "features.0.0"
    expected_input(model)    # "; its first layer Linear expects 784 input features" (for shape errors)

timm names both in `model.pretrained_cfg` ("classifier", "first_conv"); any other model's head is its
last Linear or Conv layer in registration order (torchvision: fc, classifier.3, heads.head; trainlab's
own models: the last Linear), and its stem the first Conv layer.
"""
from __future__ import annotations

from torch import nn

LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def head_names(model: nn.Module) -> tuple[str, ...]:
    """Module paths of the output layer(s) (timm's distilled models have two heads)."""
    cfg = getattr(model, "pretrained_cfg", None)
    named = dict(model.named_modules())
    if isinstance(cfg, dict) and cfg.get("classifier"):
        names = (cfg["classifier"],) if isinstance(cfg["classifier"], str) else tuple(cfg["classifier"])
        if all(n in named for n in names):
            return names
    layers = [name for name, m in named.items() if isinstance(m, LAYERS)]
    return (layers[-1],) if layers else ()


def first_conv_name(model: nn.Module) -> str | None:
    """Module path of the first Conv2d (the stem that reads the input channels), or None."""
    cfg = getattr(model, "pretrained_cfg", None)
    named = dict(model.named_modules())
    if isinstance(cfg, dict) and isinstance(cfg.get("first_conv"), str) and isinstance(
            named.get(cfg["first_conv"]), nn.Conv2d):
        return cfg["first_conv"]
    return next((name for name, m in named.items() if isinstance(m, nn.Conv2d)), None)


def expected_input(model: nn.Module) -> str:
    """'; its first layer Linear expects 784 input features' - what the model wanted, for shape errors."""
    for m in model.modules():
        if isinstance(m, nn.Linear):
            return f"; its first layer {type(m).__name__} expects {m.in_features} input features"
        if isinstance(m, nn.modules.conv._ConvNd):
            return f"; its first layer {type(m).__name__} expects {m.in_channels} input channels"
    return ""
