"""Loss registry. A loss trains the model (differentiable); metrics (metrics.py) judge it."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from trainlab.registry import Registry

LOSSES = Registry("loss")
CLASSIFICATION_LOSSES = {"cross_entropy", "bce_with_logits"}


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


LOSSES.add("cross_entropy", lambda label_smoothing=0.0: nn.CrossEntropyLoss(label_smoothing=label_smoothing),
           help="softmax + negative log likelihood on logits (classification)")
LOSSES.add("bce_with_logits", lambda label_smoothing=0.0: _BCEOneHot(),
           help="sigmoid + binary cross entropy per output (binary / multi-label)")
LOSSES.add("mse", lambda label_smoothing=0.0: _Regression(F.mse_loss), help="mean squared error (regression)")
LOSSES.add("l1", lambda label_smoothing=0.0: _Regression(F.l1_loss), help="mean absolute error (regression)")
LOSSES.add("huber", lambda label_smoothing=0.0: _Regression(F.huber_loss), help="squared near 0, absolute far away")


def build_loss(name: str, task: str, label_smoothing: float = 0.0) -> nn.Module:
    if name == "auto":
        name = "cross_entropy" if task == "classification" else "mse"
    return LOSSES.get(name)(label_smoothing=label_smoothing)


def task_of_loss(name: str) -> str:
    return "classification" if name in CLASSIFICATION_LOSSES else "regression"
