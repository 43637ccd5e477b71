"""Multi-label classification: one decision threshold per label, chosen on validation data, and per-label metrics.

    thresholds = best_thresholds(val_probs, val_targets)           # (K,): each label's F1-maximizing threshold
    per_label(test_probs, test_targets, thresholds, names)         # {name: {threshold, precision, recall, f1, ...}}

A fixed 0.5 suits balanced labels; a rare label's probabilities rarely reach it, so its best threshold is
lower. Thresholds come from the validation split only: chosen on the test split they would flatter it.
"""
from __future__ import annotations

import numpy as np
from sklearn.metrics import precision_recall_curve, precision_recall_fscore_support


def best_thresholds(probs: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """(K,) thresholds maximizing each label's F1 on (probs, targets), both (N, K); 0.5 where a label has one class."""
    out = np.full(probs.shape[1], 0.5)
    for k in range(probs.shape[1]):
        if targets[:, k].min() == targets[:, k].max():
            continue
        precision, recall, thresholds = precision_recall_curve(targets[:, k], probs[:, k])
        f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
        out[k] = thresholds[int(np.argmax(f1[:-1]))]  # the last (precision 1, recall 0) point has no threshold
    return out


def per_label(probs: np.ndarray, targets: np.ndarray, thresholds: np.ndarray, names: list[str]) -> dict:
    """Precision, recall, F1 and support of each label at its threshold."""
    p, r, f, n = precision_recall_fscore_support(targets.astype(int), (probs >= thresholds).astype(int),
                                                 average=None, labels=list(range(len(names))), zero_division=0)
    return {name: {"threshold": float(thresholds[i]), "precision": float(p[i]), "recall": float(r[i]),
                   "f1": float(f[i]), "support": int(n[i])} for i, name in enumerate(names)}
