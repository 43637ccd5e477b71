"""Evaluation metrics (torchmetrics): accuracy, precision, recall, F1, MAE, RMSE, R², MAPE.

    compute_metrics(["accuracy", "f1"], logits, labels, "classification")   # {"accuracy": tensor, "f1": tensor}

Metrics are what you report; the loss is what you optimize. Classification metrics are macro
averages by default (every class counts the same, which is honest on imbalanced data). The registry
itself is light (names and help only) so that config checks and `trainlab list` never import torch.
"""
from __future__ import annotations

from trainlab.core.registry import Registry

METRICS = Registry("metric")
LOWER_IS_BETTER = {"loss", "mae", "rmse", "mse", "mape"}
REGRESSION = {"mae", "mse", "rmse", "r2", "mape"}


def _classification(cls_name: str, average: str):
    def build(num_classes, multilabel: bool = False):
        from torchmetrics import classification  # torchmetrics imports torch: at first use (start-up time)

        if multilabel:  # per label at threshold 0.5, averaged over labels (accuracy: over every label decision)
            return getattr(classification, cls_name.replace("Multiclass", "Multilabel"))(
                num_labels=num_classes, validate_args=False, average=average)
        return getattr(classification, cls_name)(num_classes=num_classes, validate_args=False, average=average)
    return build


def _regression(cls_name: str, **kw):
    def build(num_classes=None, multilabel=False):
        from torchmetrics import regression  # start-up time, as above

        return getattr(regression, cls_name)(**kw)
    return build


def _mape(num_classes=None, multilabel=False):
    from trainlab.core.nonzero_mape import NonZeroMAPE  # a torchmetrics.Metric subclass (start-up time)

    return NonZeroMAPE()


METRICS.add("accuracy", _classification("MulticlassAccuracy", "micro"), help="share of correct predictions")
METRICS.add("balanced_accuracy", _classification("MulticlassAccuracy", "macro"), help="mean per-class recall")
METRICS.add("precision", _classification("MulticlassPrecision", "macro"), help="macro precision: TP / (TP + FP)")
METRICS.add("recall", _classification("MulticlassRecall", "macro"), help="macro recall: TP / (TP + FN)")
METRICS.add("f1", _classification("MulticlassF1Score", "macro"),
            help="macro F1: harmonic mean of precision and recall")
METRICS.add("mae", _regression("MeanAbsoluteError"), help="mean absolute error")
METRICS.add("mse", _regression("MeanSquaredError"), help="mean squared error")
METRICS.add("rmse", _regression("MeanSquaredError", squared=False), help="root mean squared error")
METRICS.add("r2", _regression("R2Score"), help="coefficient of determination")
METRICS.add("mape", _mape, help="mean absolute percentage error (a fraction; zero targets skipped)")


def default_metrics(task: str) -> list[str]:
    return ["accuracy", "f1"] if task in ("classification", "multilabel") else ["mae", "rmse", "r2"]


def higher_is_better(key: str) -> bool:
    name = key.split("_", 1)[1] if key.startswith(("val_", "train_", "test_")) else key
    return name not in LOWER_IS_BETTER


def compute_metrics(names: list[str], outputs, targets, task: str) -> dict:
    """outputs: logits (N, K) for classification, predictions (N,) / (N, k) for regression. Values stay tensors.

    multilabel: logits (N, K) against 0/1 targets (N, K); a label is predicted when its sigmoid is >= 0.5.
    """
    out = {}
    for name in names:
        if task == "multilabel" and name not in REGRESSION:
            metric = METRICS.get(name)(num_classes=outputs.shape[-1], multilabel=True).to(outputs.device)
            out[name] = metric(outputs.sigmoid(), targets.int())
            continue
        metric = METRICS.get(name)(num_classes=outputs.shape[-1] if task == "classification" else None)
        metric = metric.to(outputs.device)
        if task == "classification":
            out[name] = metric(outputs.argmax(-1), targets)
        else:
            pred = outputs.squeeze(-1) if outputs.ndim == targets.ndim + 1 else outputs
            out[name] = metric(pred.float().reshape(-1), targets.float().reshape(-1))
    return out


def confusion_matrix(outputs, targets):
    """(K, K) counts, rows = true class, columns = predicted class."""
    from torchmetrics.classification import MulticlassConfusionMatrix  # start-up time, as above

    k = outputs.shape[-1]
    return MulticlassConfusionMatrix(num_classes=k, validate_args=False).to(outputs.device)(outputs.argmax(-1), targets)
