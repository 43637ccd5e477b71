"""PNG charts of `trainlab show`: class counts per split, text lengths against max_len, series windows.

    counts_chart(preview.split_counts(view), out / "class_counts.png")
    lengths_chart(preview.text_preview(view)["splits"], 64, out / "lengths.png")
    windows_chart(preview.window_preview(view), out / "windows.png")

Each function writes one PNG (matplotlib, Agg backend) and returns its path; the input is what
trainlab.data.preview computed.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from trainlab.observe.plots import pyplot, save

MAX_BAR_CLASSES = 40  # more classes than this: the table says it better than unreadable bars


def counts_chart(counts: dict[str, dict[str, int]], path: Path) -> Path | None:
    """Grouped bars: samples per class, one bar per split (None when there are too many classes to read)."""
    classes = list(next(iter(counts.values())))
    if len(classes) > MAX_BAR_CLASSES:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(5.0, 0.45 * len(classes) * len(counts)), 3.6))
    width = 0.8 / len(counts)
    pos = np.arange(len(classes))
    for i, (split, per_class) in enumerate(counts.items()):
        ax.bar(pos + (i - (len(counts) - 1) / 2) * width, [per_class[c] for c in classes], width, label=split)
    ax.set_xticks(pos, classes, rotation=45 if max(map(len, classes)) > 3 else 0, ha="right" if
                  max(map(len, classes)) > 3 else "center")
    ax.set_ylabel("samples")
    ax.set_title("samples per class and split")
    ax.legend()
    return save(fig, path)


def lengths_chart(splits: dict[str, dict], max_len: int, path: Path) -> Path:
    """Token counts per text, one histogram per split, with max_len marked (longer texts are cut there)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.6))
    longest = max([max(s["lengths"], default=0) for s in splits.values()] + [max_len])
    bins = np.linspace(0, longest + 1, min(longest + 2, 50))
    for split, s in splits.items():
        if s["lengths"]:
            ax.hist(s["lengths"], bins=bins, histtype="step", linewidth=1.5, label=f"{split} ({s['texts']})")
    ax.axvline(max_len, color="black", linestyle="--", label=f"max_len {max_len}")
    ax.set_xlabel("tokens per text")
    ax.set_ylabel("texts")
    ax.legend()
    return save(fig, path)


def windows_chart(preview: dict, path: Path) -> Path:
    """One panel per window: the target columns' past `lookback` values (t < 0) and the values to predict
    (t = 0 .. horizon-1, or the class in the title)."""
    plt = pyplot()
    windows, lookback = preview["windows"], preview["lookback"]
    fig, axes = plt.subplots(len(windows), 1, figsize=(8, 1.9 * len(windows)), squeeze=False)
    past = np.arange(-lookback, 0)
    names = preview["targets"] or preview["columns"][:1]
    for ax, w in zip(axes[:, 0], windows, strict=True):
        inputs = np.asarray(w["inputs"])  # (lookback, F): the target columns come first
        for j, name in enumerate(names):
            line, = ax.plot(past, inputs[:, j], marker=".", markersize=3, label=f"{name} (input)")
            if isinstance(w["target"], list):
                future = np.asarray(w["target"])[:, j]  # (horizon,)
                ax.plot(np.arange(len(future)), future, "o", color=line.get_color(), label=f"{name} (target)")
        ax.axvline(-0.5, color="gray", linewidth=0.8)
        title = f"window {w['index']}" + ("" if isinstance(w["target"], list) else f": class {w['target']}")
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8, loc="upper left")
    axes[-1, 0].set_xlabel("time step (0 = first step to predict)")
    return save(fig, path)
