"""`trainlab summary CONFIG`: layers, output shapes, parameters and mult-adds (torchinfo)."""
from __future__ import annotations

import re

from torch import nn
from torchinfo import summary

from trainlab.core.errors import UserError
from trainlab.models.heads import expected_input


def model_summary(model: nn.Module, input_shape: tuple, batch_size: int = 1) -> str:
    """torchinfo's table for one batch of `input_shape` on the CPU; a model that cannot take it is a UserError."""
    try:
        stats = summary(model, input_size=(batch_size, *input_shape), device="cpu", verbose=0,
                        col_names=("output_size", "num_params", "mult_adds"), row_settings=("var_names",))
    except RuntimeError as e:  # torchinfo wraps the forward's own error (e.g. an image too small to downsample)
        cause = str(e.__cause__ or e).strip().splitlines()
        raise UserError(f"the model does not fit the data: input shape {tuple(input_shape)}{expected_input(model)} "
                        f"({(cause[0] if cause else type(e).__name__)[:150]}); larger images (a resize "
                        f"transform) may help") from None
    # torchinfo 1.8 prints its unit enum ("Total mult-adds (Units.MEGABYTES): 0.00"): write the exact count
    total = f"Total mult-adds: {stats.total_mult_adds:,} ({stats.total_mult_adds / 1e6:.2f} million)"
    return re.sub(r"^Total mult-adds \(.*$", total, str(stats), flags=re.MULTILINE)
