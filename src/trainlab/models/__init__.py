"""Model registry and builders. `build_model(cfg.model, input_shape, num_outputs)` is the only entry point."""
from __future__ import annotations

from torch import nn

from trainlab.models import cnn, mlp, rnn, transformer  # noqa: F401  (register the builders)
from trainlab.models.activations import ACTIVATIONS
from trainlab.models.registry import MODELS


def build_model(model_cfg, input_shape: tuple, num_outputs: int, **info) -> nn.Module:
    """Build the registered model `model_cfg.name` with its options `model_cfg.params`.

    `info` carries what some models need from the data (vocab_size, pad_index for text); builders take **info.
    """
    return MODELS.get(model_cfg.name)(model_cfg.params, tuple(input_shape), num_outputs, **info)


__all__ = ["ACTIVATIONS", "MODELS", "build_model"]
