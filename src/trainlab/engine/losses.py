"""Loss modules (registered by name in trainlab.engine.catalog). A loss trains the model; metrics judge it."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class _Regression(nn.Module):
    """Wraps an elementwise regression loss so targets (B,) meet predictions (B, 1)."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if pred.ndim == target.ndim + 1 and pred.shape[-1] == 1:
            pred = pred.squeeze(-1)
        return self.fn(pred, target.to(pred.dtype))


class _BCEOneHot(nn.Module):
    """BCE on logits (B, K) against class indices (B,) (one-hot) or multi-hot float targets (B, K)."""

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if target.ndim == 1 and logits.ndim == 2 and not target.is_floating_point():
            target = F.one_hot(target, logits.shape[1])
        return F.binary_cross_entropy_with_logits(logits, target.to(logits.dtype))


def build(name: str, label_smoothing: float = 0.0) -> nn.Module:
    if name == "cross_entropy":
        return nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    if name == "bce_with_logits":
        return _BCEOneHot()
    return _Regression({"mse": F.mse_loss, "l1": F.l1_loss, "huber": F.huber_loss}[name])
