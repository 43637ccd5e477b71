"""Evaluation metrics: accuracy, precision, recall, F1 (from one confusion matrix), MAE, RMSE, R², MAPE (torchmetrics).

    compute_metrics(["accuracy", "f1"], logits, labels, "classification")   # {"accuracy": tensor, "f1": tensor}

Metrics are what you report; the loss is what you optimize. Classification metrics are macro
averages by default (every class counts the same, which is honest on imbalanced data). The registry
itself is light (names and help only) so that config checks and `trainlab list` never import torch.

Single-label classification metrics are read off one (K, K) confusion matrix (a torch.bincount), with
torchmetrics' conventions: macro averages skip classes that appear in neither the targets nor the
predictions, and 0/0 counts as 0. Importing torchmetrics costs about 1 s per process (measured: a third of
the 3 s the MNIST MLP example trains), so it is imported only for regression and multilabel metrics;
tests/test_metrics.py checks every value against torchmetrics.
"""
from __future__ import annotations

from trainlab.core.registry import Registry

METRICS = Registry("metric")
LOWER_IS_BETTER = {"loss", "mae", "rmse", "mse", "mape"}
REGRESSION = {"mae", "mse", "rmse", "r2", "mape"}


def confusion_counts(pred, target, num_classes: int):
    """(N,) predicted and true class indices -> (K, K) int64 counts, rows = true class, columns = predicted."""
    import torch  # start-up time: the registry above stays importable without torch

    k = num_classes
    return torch.bincount(target.long() * k + pred.long(), minlength=k * k).reshape(k, k)


class ConfusionMetric:
    """A single-label classification metric computed from the confusion matrix: metric(pred, target) -> tensor."""

    def __init__(self, name: str, num_classes: int):
        self.name, self.num_classes = name, num_classes

    def to(self, device):  # the counts are made on the inputs' device
        return self

    def __call__(self, pred, target):
        cm = confusion_counts(pred, target, self.num_classes).double()
        tp = cm.diagonal()
        if self.name == "accuracy":
            return tp.sum() / cm.sum().clamp_min(1)
        fp, fn = cm.sum(0) - tp, cm.sum(1) - tp
        precision, recall = _safe_div(tp, tp + fp), _safe_div(tp, tp + fn)
        score = {"balanced_accuracy": recall, "recall": recall, "precision": precision,
                 "f1": _safe_div(2 * tp, 2 * tp + fp + fn)}[self.name]
        present = (tp + fp + fn) > 0  # a class in neither targets nor predictions does not count
        return (score * present).sum() / present.sum().clamp_min(1)


def _safe_div(a, b):
    return a / b.clamp_min(1) * (b > 0)


def _classification(name: str, cls_name: str, average: str):
    def build(num_classes, multilabel: bool = False):
        if not multilabel:
            return ConfusionMetric(name, num_classes)
        from torchmetrics import classification  # optional heavy dependency: about 1 s to import

        # per label at threshold 0.5, averaged over labels (accuracy: over every label decision)
        return getattr(classification, cls_name.replace("Multiclass", "Multilabel"))(
            num_labels=num_classes, validate_args=False, average=average)
    return build


def _regression(cls_name: str, **kw):
    def build(num_classes=None, multilabel=False):
        from torchmetrics import regression  # optional heavy dependency: about 1 s to import

        return getattr(regression, cls_name)(**kw)
    return build


def _mape(num_classes=None, multilabel=False):
    from trainlab.core.nonzero_mape import NonZeroMAPE  # a torchmetrics.Metric subclass (start-up time)

    return NonZeroMAPE()


METRICS.add("accuracy", _classification("accuracy", "MulticlassAccuracy", "micro"), help="share of correct predictions")
METRICS.add("balanced_accuracy", _classification("balanced_accuracy", "MulticlassAccuracy", "macro"),
            help="mean per-class recall")
METRICS.add("precision", _classification("precision", "MulticlassPrecision", "macro"),
            help="macro precision: TP / (TP + FP)")
METRICS.add("recall", _classification("recall", "MulticlassRecall", "macro"), help="macro recall: TP / (TP + FN)")
METRICS.add("f1", _classification("f1", "MulticlassF1Score", "macro"),
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
    """Logits (N, K) and true classes (N,) -> (K, K) counts, rows = true class, columns = predicted class."""
    return confusion_counts(outputs.argmax(-1), targets, outputs.shape[-1])


def per_class_scores(cm) -> dict[str, list]:
    """(K, K) counts (rows = true class) -> per-class precision, recall, F1 and support, each a list of K values;
    a class never predicted has precision 0 (scikit-learn's zero_division=0)."""
    cm = cm.double()
    tp = cm.diagonal()
    fp, fn = cm.sum(0) - tp, cm.sum(1) - tp
    return {"precision": _safe_div(tp, tp + fp).tolist(), "recall": _safe_div(tp, tp + fn).tolist(),
            "f1": _safe_div(2 * tp, 2 * tp + fp + fn).tolist(), "support": [int(v) for v in cm.sum(1).tolist()]}
