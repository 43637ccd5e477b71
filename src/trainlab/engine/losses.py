"""Loss modules (registered by name in trainlab.engine.catalog). A loss trains the model; metrics judge it."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from trainlab.core.errors import UserError


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
    """BCE on logits (B, K) against class indices (B,) (one-hot) or multi-hot float targets (B, K);
    `weight` (K,) weighs each output's term (class weights)."""

    def __init__(self, weight: torch.Tensor | None = None):
        super().__init__()
        self.register_buffer("weight", weight)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if target.ndim == 1 and logits.ndim == 2 and not target.is_floating_point():
            target = F.one_hot(target, logits.shape[1])
        return F.binary_cross_entropy_with_logits(logits, target.to(logits.dtype), weight=self.weight)


def build(name: str, label_smoothing: float = 0.0, weight: torch.Tensor | None = None) -> nn.Module:
    """The loss module `name`; `weight` (K,): per-class weights (classification losses only)."""
    if name == "cross_entropy":
        return nn.CrossEntropyLoss(weight=weight, label_smoothing=label_smoothing)
    if name == "bce_with_logits":
        return _BCEOneHot(weight)
    return _Regression({"mse": F.mse_loss, "l1": F.l1_loss, "huber": F.huber_loss}[name])


def class_weights(spec: str | list[float], labels: torch.Tensor | None, num_classes: int) -> torch.Tensor:
    """train.class_weights -> (K,) float weights: `auto` = N / (K * count_c) from the training labels
    (scikit-learn's "balanced"; a class absent from training gets weight 0), or the list as given."""
    if spec == "auto":
        if labels is None:
            raise UserError("train.class_weights: auto needs the training labels; give a list of weights instead")
        counts = torch.bincount(labels.long().reshape(-1).cpu(), minlength=num_classes).double()
        w = torch.where(counts > 0, counts.sum() / (num_classes * counts.clamp_min(1)), torch.zeros(()))
        return w.float()
    if len(spec) != num_classes:
        raise UserError(f"train.class_weights has {len(spec)} values but the model has {num_classes} outputs "
                        f"(one weight per class)")
    return torch.tensor(spec, dtype=torch.float32)
