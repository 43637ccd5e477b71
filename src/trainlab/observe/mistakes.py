"""Which samples a classifier gets most wrong, and which classes it confuses: pure functions over one split's
predictions, shared by `trainlab inspect` (use/inspect.py) and the "Mistakes" section of every run's report.

    p = SplitPredictions(data, "pool", indices, labels, probs, losses)
    rank_losses(p, classes, k=8)       # -> [{"index", "path"?, "image"?|"text"?, "true", "predicted", ...}]
    confused_pairs(p, classes, k=5)    # -> [{"true", "predicted", "count", "examples": [...]}]

Loss is the plain per-sample cross-entropy (no label smoothing or class weights), so it ranks samples by how
surely the model contradicts their label.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from trainlab.core.files import write_bytes
from trainlab.data.describe import describe_sample
from trainlab.data.prepare import LoadedData
from trainlab.observe.gallery import json_safe

THUMB = 56  # px per thumbnail in mistakes.png
CAPTION_H = 26  # px under each thumbnail: "7 -> 1" and the probability


@dataclass
class SplitPredictions:
    """Every sample of one split with the model's view of it; row i of each array is the same sample."""

    data: LoadedData
    where: str  # "pool" or "test": which dataset `indices` point into
    indices: np.ndarray  # (N,) dataset positions
    labels: np.ndarray  # (N,) given class
    probs: np.ndarray  # (N, C) softmax of the model's outputs
    losses: np.ndarray  # (N,) cross-entropy

    @property
    def predicted(self) -> np.ndarray:
        return self.probs.argmax(1)


def describe(p: SplitPredictions, row: int, classes: list[str]) -> dict:
    """Sample `row` of the split with its given and predicted class, probability and loss."""
    sample = describe_sample(p.data.bundle, p.where, int(p.indices[row]))
    pred = int(p.predicted[row])
    sample.update(true=classes[int(p.labels[row])], predicted=classes[pred], probability=float(p.probs[row, pred]),
                  true_probability=float(p.probs[row, int(p.labels[row])]), loss=float(p.losses[row]))
    return sample


def rank_losses(p: SplitPredictions, classes: list[str], k: int) -> list[dict]:
    """The k samples with the highest cross-entropy, highest first."""
    order = np.argsort(-p.losses, kind="stable")[:k]
    return [describe(p, int(r), classes) for r in order]


def confused_pairs(p: SplitPredictions, classes: list[str], k: int = 5, examples: int = 4) -> list[dict]:
    """The k (true, predicted) class pairs with the most mistakes, each with its highest-loss examples."""
    n = len(classes)
    cm = np.bincount(p.labels * n + p.predicted, minlength=n * n).reshape(n, n)  # (true, predicted) counts
    np.fill_diagonal(cm, 0)
    pairs = [(int(cm[t, q]), t, q) for t in range(len(classes)) for q in range(len(classes)) if cm[t, q] > 0]
    pairs.sort(key=lambda c: (-c[0], c[1], c[2]))
    out = []
    for count, t, q in pairs[:k]:
        rows = np.flatnonzero((p.labels == t) & (p.predicted == q))
        rows = rows[np.argsort(-p.losses[rows], kind="stable")][:examples]
        out.append({"true": classes[t], "predicted": classes[q], "count": count,
                    "examples": [describe(p, int(r), classes) for r in rows]})
    return out


def mistakes_by_class(p: SplitPredictions, classes: list[str], per_class: int = 8) -> dict[str, list[dict]]:
    """Per true class, its misclassified samples (highest loss first, at most `per_class`)."""
    out = {}
    for c, name in enumerate(classes):
        rows = np.flatnonzero((p.labels == c) & (p.predicted != c))
        rows = rows[np.argsort(-p.losses[rows], kind="stable")][:per_class]
        if len(rows):
            out[name] = [describe(p, int(r), classes) for r in rows]
    return out


def summary(p: SplitPredictions, classes: list[str], k: int = 8) -> tuple[dict, list[dict]]:
    """The report's view of a split: (JSON-safe summary, the top-k samples with pixels for mistakes_png)."""
    top = rank_losses(p, classes, k)
    pairs = confused_pairs(p, classes, k=5, examples=0)
    return ({"samples": len(p.labels), "errors": int((p.predicted != p.labels).sum()),
             "top_losses": [json_safe(s) for s in top],
             "confused_pairs": [{k: v for k, v in c.items() if k != "examples"} for c in pairs]}, top)


def mistakes_png(samples: list[dict], path: Path, gap: int = 4) -> Path | None:
    """The top-loss images in a row, each captioned "true -> predicted" and the predicted probability (PIL:
    cheap enough to draw after every training). Only the misclassified ones: a strip called mistakes must not
    show correct predictions. None when none is misclassified or the samples are not images."""
    samples = [s for s in samples if "image" in s and s["true"] != s["predicted"]]
    images = [s["image"] for s in samples]
    if not images:
        return None
    sheet = Image.new("RGB", (len(images) * (THUMB + gap), THUMB + CAPTION_H), "white")
    pen = ImageDraw.Draw(sheet)
    for i, (s, arr) in enumerate(zip(samples, images, strict=False)):
        img = Image.fromarray(arr[0] if arr.shape[0] == 1 else arr.transpose(1, 2, 0)).convert("RGB")
        scale = THUMB / max(img.size)
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.NEAREST)
        x = i * (THUMB + gap)
        sheet.paste(img, (x, 0))
        pen.text((x + 1, THUMB + 1), f"{s['true']}->{s['predicted']}"[:10], fill="black")
        pen.text((x + 1, THUMB + 13), f"p={s['probability']:.2f}", fill="firebrick")
    png = io.BytesIO()
    sheet.save(png, format="PNG")
    write_bytes(path, png.getvalue())
    return path
