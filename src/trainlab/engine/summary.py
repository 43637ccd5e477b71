"""`trainlab summary CONFIG`: layers, output shapes, parameters and mult-adds (torchinfo)."""
from __future__ import annotations

from torch import nn
from torchinfo import summary


def model_summary(model: nn.Module, input_shape: tuple, batch_size: int = 1) -> str:
    """torchinfo's table for one batch of `input_shape` on the CPU."""
    stats = summary(model, input_size=(batch_size, *input_shape), device="cpu", verbose=0,
                    col_names=("output_size", "num_params", "mult_adds"), row_settings=("var_names",))
    return str(stats)
