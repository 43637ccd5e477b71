"""Multi-layer perceptrons, including the course's 784 -> 196 -> 49 -> 10 network."""
from __future__ import annotations

import math

from torch import nn

from trainlab.models.activations import ACTIVATIONS, activation
from trainlab.models.options import CourseMLPConfig, MLPConfig
from trainlab.models.seqlayers import output_scale


def mlp_layers(n_in: int, hidden: list[int], n_out: int, act: str, dropout: float, batch_norm: bool) -> list[nn.Module]:
    ACTIVATIONS.entry(act)  # fail early with the list of names
    layers: list[nn.Module] = [nn.Flatten()]
    for width in hidden:
        layers.append(nn.Linear(n_in, width))
        if batch_norm:
            layers.append(nn.BatchNorm1d(width))
        layers.append(activation(act))
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        n_in = width
    layers.append(nn.Linear(n_in, n_out))
    return layers


def build_mlp(cfg: MLPConfig, input_shape: tuple, num_outputs: int, **info) -> nn.Module:
    """Fully connected network on flattened inputs; returns logits (B, num_outputs)."""
    layers = mlp_layers(math.prod(input_shape), cfg.hidden, num_outputs, cfg.activation, cfg.dropout, cfg.batch_norm)
    if cfg.output_activation:
        layers.append(activation(cfg.output_activation))
    if "target_mean" in info:  # standardized regression targets (data.scale_target): back to the data's units
        layers.append(output_scale(info, num_outputs))
    return nn.Sequential(*layers)


def build_course_mlp(cfg: CourseMLPConfig, input_shape: tuple, num_outputs: int, **info) -> nn.Module:
    """The course's network: 784 -> 196 -> 49 -> 10 on 28x28 images (inputs/outputs follow the data)."""
    return build_mlp(MLPConfig([196, 49], cfg.activation, cfg.dropout, False, cfg.output_activation),
                     input_shape, num_outputs)
