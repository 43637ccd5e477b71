"""The `model` section of a config: `name` here, each model's own options in its catalog entry.

    model_settings({"name": "mlp", "hidden": [256, 64]})   # -> ModelConfig(name="mlp", params=MLPConfig(...))
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from trainlab.core.errors import UserError
from trainlab.core.schema import opt, section_with_params
from trainlab.models.activations import ACTIVATIONS
from trainlab.models.catalog import MODELS, is_library_model


@dataclass
class ModelConfig:
    name: str = opt("mlp", help="model (trainlab list models)")
    params: Any = None  # the model's own options (its registry dataclass)


def model_settings(values: dict) -> ModelConfig:
    cfg = section_with_params(ModelConfig, values, "model", {"params": (MODELS, "name")})
    for key in ("activation", "output_activation"):  # known before any data is loaded
        name = getattr(cfg.params, key, None)
        if name is not None:
            ACTIVATIONS.entry(name)
    if is_library_model(cfg.name):
        if cfg.params.pretrained and cfg.params.weights:
            raise UserError("model.pretrained and model.weights both choose the starting weights; set one of them")
        from trainlab.models.library import check_model_name  # start-up time: timm and torchvision import torch

        check_model_name(cfg.name)
    return cfg
