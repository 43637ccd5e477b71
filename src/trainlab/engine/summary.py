"""`trainlab summary CONFIG`: layers, output shapes, parameters and mult-adds (torchinfo)."""
from __future__ import annotations

import re

from torch import nn
from torchinfo import summary


def model_summary(model: nn.Module, input_shape: tuple, batch_size: int = 1) -> str:
    """torchinfo's table for one batch of `input_shape` on the CPU."""
    stats = summary(model, input_size=(batch_size, *input_shape), device="cpu", verbose=0,
                    col_names=("output_size", "num_params", "mult_adds"), row_settings=("var_names",))
    # torchinfo 1.8 prints its unit enum ("Total mult-adds (Units.MEGABYTES): 0.00"): write the exact count
    total = f"Total mult-adds: {stats.total_mult_adds:,} ({stats.total_mult_adds / 1e6:.2f} million)"
    return re.sub(r"^Total mult-adds \(.*$", total, str(stats), flags=re.MULTILINE)
