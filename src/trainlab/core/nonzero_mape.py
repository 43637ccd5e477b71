"""MAPE that skips zero targets, as a torchmetrics Metric (registered as `mape` in trainlab.core.metrics)."""
from __future__ import annotations

import torch
import torchmetrics


class NonZeroMAPE(torchmetrics.Metric):
    """Mean of |target - prediction| / |target| over targets that are not zero (a fraction: 0.1 = 10 %).

    torchmetrics' MAPE divides by max(|target|, 1.2e-6), so one zero target (a year without sunspots)
    adds ~1e6 to the mean; such targets are left out instead. NaN when every target is zero.
    """

    full_state_update = False

    def __init__(self, eps: float = 1e-8):
        super().__init__()
        self.eps = eps
        self.add_state("total", torch.zeros(()), dist_reduce_fx="sum")  # float32: MPS has no float64
        self.add_state("count", torch.zeros(()), dist_reduce_fx="sum")

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        keep = target.abs() > self.eps
        self.total += ((pred - target).abs() / target.abs())[keep].float().sum()
        self.count += keep.sum()

    def compute(self) -> torch.Tensor:
        return self.total / self.count  # 0 / 0 = nan: no non-zero target
