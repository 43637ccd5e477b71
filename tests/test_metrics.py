"""Classification metrics from one confusion matrix agree with torchmetrics (and scikit-learn) to 1e-6."""
from __future__ import annotations

import pytest
import torch
from sklearn.metrics import f1_score, precision_score, recall_score
from torchmetrics import classification as tmc

from trainlab.core.metrics import compute_metrics, confusion_matrix

TORCHMETRICS = {"accuracy": (tmc.MulticlassAccuracy, "micro"), "balanced_accuracy": (tmc.MulticlassAccuracy, "macro"),
                "precision": (tmc.MulticlassPrecision, "macro"), "recall": (tmc.MulticlassRecall, "macro"),
                "f1": (tmc.MulticlassF1Score, "macro")}


@pytest.mark.parametrize("case", ["random", "absent_class", "never_predicted", "one_sample", "perfect"])
def test_classification_metrics_match_torchmetrics(case):
    g = torch.Generator().manual_seed(0)
    k, n = 5, 300
    logits = torch.randn(n, k, generator=g)
    target = torch.randint(0, k, (n,), generator=g)
    if case == "absent_class":  # class 4 in neither targets nor predictions
        target[target == 4] = 0
        logits[:, 4] = -100
    elif case == "never_predicted":  # class 3 in the targets, never predicted
        logits[:, 3] = -100
    elif case == "one_sample":
        logits, target = logits[:1], target[:1]
    elif case == "perfect":
        logits = torch.nn.functional.one_hot(target, k).float()
    ours = compute_metrics(list(TORCHMETRICS), logits, target, "classification")
    for name, (cls, average) in TORCHMETRICS.items():
        expected = cls(num_classes=k, average=average)(logits.argmax(-1), target)
        assert float(ours[name]) == pytest.approx(float(expected), abs=1e-6), (case, name)


def test_macro_scores_match_scikit_learn_on_present_classes():
    g = torch.Generator().manual_seed(1)
    logits, target = torch.randn(500, 4, generator=g), torch.randint(0, 4, (500,), generator=g)
    pred = logits.argmax(-1)
    ours = compute_metrics(["precision", "recall", "f1"], logits, target, "classification")
    for name, fn in (("precision", precision_score), ("recall", recall_score), ("f1", f1_score)):
        assert float(ours[name]) == pytest.approx(fn(target, pred, average="macro", zero_division=0), abs=1e-6)


def test_confusion_matrix_counts():
    logits = torch.tensor([[2.0, 0, 0], [0, 2.0, 0], [0, 2.0, 0], [0, 0, 2.0]])
    target = torch.tensor([0, 1, 0, 2])
    assert confusion_matrix(logits, target).tolist() == [[1, 1, 0], [0, 1, 0], [0, 0, 1]]


def test_per_class_scores_match_scikit_learn():
    from sklearn.metrics import precision_recall_fscore_support

    from trainlab.core.metrics import confusion_counts, per_class_scores

    g = torch.Generator().manual_seed(0)
    target = torch.randint(0, 5, (400,), generator=g)
    pred = torch.where(torch.rand(400, generator=g) < 0.6, target, torch.randint(0, 4, (400,), generator=g))
    pred[pred == 4] = 0  # class 4: true for some samples, never predicted
    s = per_class_scores(confusion_counts(pred, target, 6))  # class 5: never true, never predicted
    p, r, f, n = precision_recall_fscore_support(target.numpy(), pred.numpy(), labels=list(range(6)), zero_division=0)
    for key, ref in (("precision", p), ("recall", r), ("f1", f)):
        assert s[key] == pytest.approx(ref.tolist(), abs=1e-12), key
    assert s["support"] == n.tolist() and s["support"][5] == 0 and s["precision"][4] == 0.0  # 4: never predicted
