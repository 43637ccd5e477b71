"""Evaluation metrics from torchmetrics (accuracy, precision, recall, F1, ...), computed once per evaluation.

Metrics are what you report; the loss is what you optimize. Classification metrics are macro
averages by default (every class counts the same, which is honest on imbalanced data).
"""
from __future__ import annotations

import torch
import torchmetrics
from torchmetrics import classification as C
from torchmetrics import regression as R

from trainlab.registry import Registry

METRICS = Registry("metric")
LOWER_IS_BETTER = {"loss", "mae", "rmse", "mse", "mape"}


def _cls(cls, **kw):
    return lambda num_classes: cls(num_classes=num_classes, validate_args=False, **kw)


METRICS.add("accuracy", _cls(C.MulticlassAccuracy, average="micro"), help="share of correct predictions")
METRICS.add("balanced_accuracy", _cls(C.MulticlassAccuracy, average="macro"), help="mean per-class recall")
METRICS.add("precision", _cls(C.MulticlassPrecision, average="macro"), help="macro precision: TP / (TP + FP)")
METRICS.add("recall", _cls(C.MulticlassRecall, average="macro"), help="macro recall: TP / (TP + FN)")
METRICS.add("f1", _cls(C.MulticlassF1Score, average="macro"), help="macro F1: harmonic mean of precision and recall")
METRICS.add("mae", lambda num_classes=None: R.MeanAbsoluteError(), help="mean absolute error")
METRICS.add("mse", lambda num_classes=None: R.MeanSquaredError(), help="mean squared error")
METRICS.add("rmse", lambda num_classes=None: R.MeanSquaredError(squared=False), help="root mean squared error")
METRICS.add("r2", lambda num_classes=None: R.R2Score(), help="coefficient of determination")


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


METRICS.add("mape", lambda num_classes=None: NonZeroMAPE(),
            help="mean absolute percentage error (a fraction; zero targets skipped)")
REGRESSION = {"mae", "mse", "rmse", "r2", "mape"}


def default_metrics(task: str) -> list[str]:
    return ["accuracy", "f1"] if task == "classification" else ["mae", "rmse", "r2"]


def higher_is_better(key: str) -> bool:
    name = key.split("_", 1)[1] if key.startswith(("val_", "train_", "test_")) else key
    return name not in LOWER_IS_BETTER


def compute_metrics(names: list[str], outputs: torch.Tensor, targets: torch.Tensor,
                    task: str) -> dict[str, torch.Tensor]:
    """outputs: logits (N, K) for classification, predictions (N,) / (N, k) for regression. Values stay tensors."""
    out = {}
    for name in names:
        metric: torchmetrics.Metric = METRICS.get(name)(
            num_classes=outputs.shape[-1] if task == "classification" else None)
        metric = metric.to(outputs.device)
        if task == "classification":
            out[name] = metric(outputs.argmax(-1), targets)
        else:
            pred = outputs.squeeze(-1) if outputs.ndim == targets.ndim + 1 else outputs
            out[name] = metric(pred.float().reshape(-1), targets.float().reshape(-1))
    return out


def confusion_matrix(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """(K, K) counts, rows = true class, columns = predicted class."""
    k = outputs.shape[-1]
    return C.MulticlassConfusionMatrix(num_classes=k, validate_args=False).to(outputs.device)(
        outputs.argmax(-1), targets)
