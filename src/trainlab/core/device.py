"""The one place that decides which device training uses: cuda > mps > cpu, unless told otherwise."""
from __future__ import annotations

import torch

from trainlab.core.errors import UserError


def select_device(preference: str = "auto") -> torch.device:
    """`auto` picks cuda, then Apple mps, then cpu; anything else must name an available device."""
    if preference == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(preference)
    except (RuntimeError, ValueError):
        raise UserError(f"bad value for train.device: {preference!r}; "
                        f"expected auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"train.device={preference} but CUDA is not available here; use train.device=auto or cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise UserError(f"train.device={preference} but only {torch.cuda.device_count()} CUDA device(s) exist")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UserError(f"train.device={preference} but Apple MPS is not available here; use train.device=auto or cpu")
    return device
