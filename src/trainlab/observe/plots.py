"""PNG plots with matplotlib: learning curves, confusion matrix, per-class metrics, predictions vs actual,
gradient norms per layer, and activation functions next to their derivatives (the LR-finder curve is drawn
by lr_find.plot, next to the range test it shows).

    trainlab plot activations                      # every registered activation -> ./activations.png
    trainlab plot activations relu sigmoid --out plots
    trainlab plot curves runs/demo                 # redraw runs/demo/curves.png from history.csv

Every function writes one PNG and returns its path; matplotlib is imported inside (Agg backend, no display).
"""
from __future__ import annotations

import csv
import io
import math
import sys
from pathlib import Path

import torch

from trainlab.core.errors import DamagedRun, UserError
from trainlab.core.files import COUNT, Check, a, is_count, is_number, make_dir, read_run_json, write_bytes
from trainlab.models.activations import ACTIVATIONS, activation

DPI = 100


def pyplot():
    """matplotlib.pyplot on the Agg backend (files only; works without a display), unless pyplot is already in
    use: then the caller chose a backend (a notebook's inline one) and switching it would hide their figures."""

    import matplotlib  # optional heavy dependency: imported on use

    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # optional heavy dependency: imported on use

    return plt


def warm_up() -> None:
    """Import pyplot and render one text, so that a process's first plot does not pay for loading fonts."""
    plt = pyplot()
    fig = plt.figure(figsize=(1, 1))
    fig.text(0.5, 0.5, "0.9\n10")
    fig.canvas.draw()
    plt.close(fig)


def save(fig, path: Path) -> Path:
    """Lay out, write (PNG at DPI) and close a figure; other plotting modules (data_plots) save through this."""
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    path = Path(path)
    make_dir(path.parent)
    fig.tight_layout()
    png = io.BytesIO()  # rendered in memory, then written atomically: a full disk leaves no half image
    fig.savefig(png, format="png", dpi=DPI)
    pyplot().close(fig)
    write_bytes(path, png.getvalue())
    return path


# ----------------------------------------------------------------------------- training curves

def metric_to_show(history: list[dict], monitor: str) -> str | None:
    """The second panel's key: the monitored metric, or the first validation metric when monitoring a loss."""
    keys = history[-1].keys() if history else ()
    if monitor in keys and not monitor.endswith("loss"):
        return monitor
    return next((k for k in keys if k.startswith("val_") and k != "val_loss"), None)


def learning_curves(history: list[dict], path: Path, monitor: str = "val_loss", best_epoch: int | None = None,
                    stopped_early: bool = False, overfit_since: int | None = None, title: str = "") -> Path:
    """Train vs val loss and the monitored metric per epoch; best epoch, early stop and overfitting marked."""
    plt = pyplot()
    metric = metric_to_show(history, monitor)
    fig, axes = plt.subplots(1, 2 if metric else 1, figsize=(11 if metric else 6, 4), squeeze=False)
    epochs = [r["epoch"] for r in history]
    panels = [("loss", "train_loss", "val_loss")]
    if metric:
        name = metric.split("_", 1)[1]
        panels.append((name, f"train_{name}", metric))
    for ax, (label, train_key, val_key) in zip(axes[0], panels, strict=True):
        for key, style in ((train_key, "-"), (val_key, "-")):
            ys = [r.get(key, math.nan) for r in history]
            if any(isinstance(y, (int, float)) and math.isfinite(y) for y in ys):
                ax.plot(epochs, ys, style, marker="o", markersize=3, label=key.split("_", 1)[0])
        _mark_epochs(ax, history, val_key, best_epoch, stopped_early, overfit_since)
        if label == "loss" and spans_decades([r.get(k) for r in history for k in (train_key, val_key)]):
            ax.set_yscale("log")  # e.g. a regression loss falling from 40,000 to 300: linear hides the end
            label = "loss (log scale)"
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def spans_decades(values: list, ratio: float = 100.0) -> bool:
    """True when the finite positive values range over more than `ratio` (two decades): plot them on log y."""
    vals = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    return bool(vals) and min(vals) > 0 and max(vals) / min(vals) > ratio


def _mark_epochs(ax, history: list[dict], val_key: str, best: int | None, stopped: bool, since: int | None) -> None:
    if since:
        ax.axvspan(since, history[-1]["epoch"], color="tab:red", alpha=0.08, label=f"overfitting (from {since})")
    if best:
        ax.axvline(best, color="tab:green", linestyle="--", linewidth=1, label=f"best epoch {best}")
        row = next((r for r in history if r["epoch"] == best), None)
        if row and val_key in row:
            ax.plot([best], [row[val_key]], marker="*", markersize=12, color="tab:green")
    if stopped:
        ax.axvline(history[-1]["epoch"], color="tab:gray", linestyle=":", linewidth=1.5, label="early stop")


def _is_diagnosis(v) -> bool:
    checks = v.get("checks", {}) if isinstance(v, dict) else None
    return isinstance(checks, dict) and all(isinstance(c, dict) for c in checks.values()) \
        and isinstance(v.get("problems", []), list)


RESULT_FIELDS: dict[str, Check] = {  # what readers of result.json use; all optional (a failed run lacks some)
    "test": a(dict), "epochs_run": COUNT, "monitor": a(str), "stopped_early": a(bool),
    "best_value": ("a number or null", lambda v: v is None or is_number(v)),
    "best_epoch": ("an epoch number or null", lambda v: v is None or is_count(v)),
    "diagnosis": ("a diagnosis (checks, problems)", _is_diagnosis)}


def read_result(run_dir: Path) -> dict:
    """RUN_DIR/result.json checked ({} when the run has not finished)."""
    path = Path(run_dir) / "result.json"
    return read_run_json(path, RESULT_FIELDS, tuple(RESULT_FIELDS)) if path.is_file() else {}


def read_history(path: Path) -> list[dict]:
    """history.csv -> rows of floats (epoch as int); a damaged file -> DamagedRun."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    try:
        return [{k: int(float(v)) if k == "epoch" else float(v) if v not in ("", None) else math.nan
                 for k, v in row.items()} for row in rows if row["epoch"] is not None]
    except (ValueError, TypeError, KeyError, OverflowError) as e:
        raise DamagedRun(f"{path} is not a table of numbers with an epoch column ({type(e).__name__}: "
                         f"{str(e)[:80]})") from None


def compare_curves(histories: dict[str, list[dict]], path: Path, metric: str | None = None) -> Path:
    """Overlaid curves of several runs: val loss (solid) and train loss (dashed); `metric` in a second panel."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2 if metric else 1, figsize=(11 if metric else 6, 4), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (label, hist) in enumerate(histories.items()):
        c, epochs = colors[i % len(colors)], [r["epoch"] for r in hist]
        axes[0][0].plot(epochs, [r.get("val_loss", math.nan) for r in hist], "-", color=c, label=f"{label} val")
        axes[0][0].plot(epochs, [r.get("train_loss", math.nan) for r in hist], "--", color=c, alpha=0.6,
                        label=f"{label} train")
        if metric:
            axes[0][1].plot(epochs, [r.get(metric, math.nan) for r in hist], "-", color=c, label=label)
    for ax, ylabel in zip(axes[0], ("loss", metric), strict=False):  # one panel without metric
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return _save(fig, path)


def gradient_norms(grad_rms: list[dict[str, float]], path: Path, labels: dict[str, str] | None = None) -> Path:
    """Per-layer gradient RMS over epochs on a log scale: vanishing gradients show as a fan of lines.
    `labels`: parameter name -> legend text ("1 Linear 64->256"), else the parameter names."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    layers = list(grad_rms[-1]) if grad_rms else []
    cmap = plt.get_cmap("viridis")
    for i, name in enumerate(layers):
        ys = [g.get(name, 0.0) for g in grad_rms]
        ys = [y if y > 0 else math.nan for y in ys]  # a zero gradient has no place on a log axis
        ax.plot(range(1, len(ys) + 1), ys, color=cmap(i / max(len(layers) - 1, 1)),
                label=(labels or {}).get(name, name))
    if any(v > 0 for g in grad_rms for v in g.values()):
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("gradient RMS (last step of the epoch)")
    ax.set_title("gradients per layer (input side dark, output side light)", fontsize=9)
    ax.grid(alpha=0.3)
    if layers:
        ax.legend(fontsize=7, ncol=2)
    return _save(fig, path)


ACTIVITY_PANELS = 8  # layers drawn; a ResNet's dozens of ReLUs would make unreadable thumbnails


def activation_distributions(activity: list[dict[str, dict]], path: Path) -> Path:
    """Per activation layer over epochs: its output's 5-95% and 25-75% bands and median (probe batch), with
    the share of dead units (ReLU) or saturated outputs (sigmoid/tanh) on a red right-hand axis."""
    plt = pyplot()
    layers = list(activity[-1])[:ACTIVITY_PANELS]
    cols = min(4, len(layers)) or 1
    rows = -(-len(layers) // cols) or 1
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
    for ax, name in zip(axes.flat, layers, strict=False):
        epochs = [e for e, a in enumerate(activity, 1) if name in a]
        q = [activity[e - 1][name]["q"] for e in epochs]  # (E, 5): 5, 25, 50, 75, 95%
        ax.fill_between(epochs, [r[0] for r in q], [r[4] for r in q], color="tab:blue", alpha=0.15, lw=0)
        ax.fill_between(epochs, [r[1] for r in q], [r[3] for r in q], color="tab:blue", alpha=0.35, lw=0)
        ax.plot(epochs, [r[2] for r in q], color="tab:blue", lw=1.2)
        last = activity[-1][name]
        share = "dead" if "dead" in last else "saturated" if "saturated" in last else None
        if share:
            twin = ax.twinx()
            twin.plot(epochs, [100 * activity[e - 1][name][share] for e in epochs], color="tab:red", lw=1)
            twin.set_ylim(0, 100)
            twin.tick_params(axis="y", colors="tab:red", labelsize=7)
        title = f"{name} ({last['kind']})" + (f": {last[share]:.0%} {share}" if share else "")
        ax.set_title(title, fontsize=8)
        ax.set_xlabel("epoch", fontsize=7)
        ax.locator_params(axis="x", integer=True)  # epochs are whole: no 1.5 ticks on a 3-epoch run
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(layers):]:
        ax.axis("off")
    fig.suptitle("activation outputs per layer (blue: 5-95% / 25-75% / median; red: % dead or saturated)",
                 fontsize=9)
    return _save(fig, path)


# ----------------------------------------------------------------------------- evaluation

def confusion_matrix(cm, classes: list[str], path: Path) -> Path:
    """Row-normalized confusion matrix (K, K): rows = true class (each sums to 1), columns = predicted; each
    cell shows its share and, below, its count of test samples."""
    plt = pyplot()
    cm = torch.as_tensor(cm, dtype=torch.float64)
    norm = cm / cm.sum(1, keepdim=True).clamp_min(1)
    k = len(classes)
    size = min(max(4.0, 0.5 * k + 2), 14)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(norm.numpy(), cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(im, ax=ax, fraction=0.046, label="share of the true class")
    long_names = max(map(len, classes)) > 2
    ax.set_xticks(range(k), classes, rotation=45 if long_names else 0, ha="right" if long_names else "center")
    ax.set_yticks(range(k), classes)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if k <= 20:
        for i in range(k):
            for j in range(k):
                v, count = float(norm[i, j]), int(cm[i, j])
                if count:
                    ax.text(j, i, f"{v:.2f}\n{count}" if k <= 12 else f"{count}", ha="center", va="center",
                            fontsize=7 if k <= 12 else 6, color="white" if v > 0.5 else "black",
                            in_layout=False)  # inside the axes: tight_layout need not measure 100 texts
    ax.set_title(f"confusion matrix: share of the true class{' and count' if k <= 12 else ' (cells: counts)'} "
                 f"({int(cm.sum())} test samples)", fontsize=10)
    return _save(fig, path)


def per_class(metrics: dict[str, dict[str, float]], path: Path) -> Path:
    """Grouped bars: precision, recall and F1 of every class."""
    plt = pyplot()
    classes = list(metrics)
    fig, ax = plt.subplots(figsize=(min(max(6.0, 0.6 * len(classes) + 2), 16), 4))
    width = 0.27
    for i, key in enumerate(("precision", "recall", "f1")):
        ax.bar([c + (i - 1) * width for c in range(len(classes))], [metrics[c][key] for c in classes], width,
               label=key)
    ax.set_xticks(range(len(classes)), classes, rotation=45 if max(map(len, classes)) > 2 else 0)
    ax.set_ylim(0, 1.18)  # headroom above 1.0 for the legend, so it never covers a bar
    ax.set_yticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    ax.set_ylabel("test score")
    ax.legend(fontsize=8, loc="upper center", ncol=3)
    ax.grid(axis="y", alpha=0.3)
    ax.set_title("per-class precision, recall and F1 (test split)")
    return _save(fig, path)


def predictions_vs_actual(pred, target, path: Path, ordered: bool) -> Path:
    """Regression on the test split. Time series (`ordered`): forecast and actual along the test windows
    (first output / first forecast step); otherwise predicted vs actual scatter with the y = x line."""
    plt = pyplot()
    p = torch.as_tensor(pred, dtype=torch.float64).reshape(len(pred), -1)[:, 0]  # (N,) first output
    t = torch.as_tensor(target, dtype=torch.float64).reshape(len(target), -1)[:, 0]
    fig, ax = plt.subplots(figsize=(9 if ordered else 5.5, 4 if ordered else 5))
    if ordered:
        ax.plot(t.numpy(), label="actual", color="black", linewidth=1.2)
        ax.plot(p.numpy(), label="forecast", color="tab:orange", linewidth=1.2)
        ax.set_xlabel("test window (time order)")
        ax.set_ylabel("value (first forecast step)")
        ax.set_title("forecast vs actual (test split)")
        ax.legend()
    else:
        ax.scatter(t.numpy(), p.numpy(), s=8, alpha=0.6)
        lo, hi = float(min(t.min(), p.min())), float(max(t.max(), p.max()))
        ax.plot([lo, hi], [lo, hi], color="black", linewidth=1, label="perfect")
        ax.set_xlabel("actual")
        ax.set_ylabel("predicted")
        ax.set_title("predicted vs actual (test split)")
        ax.legend()
    ax.grid(alpha=0.3)
    return _save(fig, path)


# ----------------------------------------------------------------------------- activations

def activation_curves(name: str, lo: float = -6.0, hi: float = 6.0, n: int = 1201) -> dict:
    """f(x) and f'(x) (by autograd) of a registered activation on [lo, hi], plus its flat zones."""
    x = torch.linspace(lo, hi, n, requires_grad=True)
    y = activation(name)(x)
    (dy,) = torch.autograd.grad(y.sum(), x)
    x, y, dy = x.detach(), y.detach(), dy.detach()
    return {"x": x, "y": y, "dy": dy, "zones": flat_zones(x, dy)}


def flat_zones(x: torch.Tensor, dy: torch.Tensor, rel: float = 0.05) -> list[dict]:
    """Intervals where |f'| < 5% of its maximum: 'dead' where it is exactly 0, else 'saturated'."""
    peak = float(dy.abs().max())
    flat = (dy.abs() < rel * peak).tolist() if peak > 0 else [False] * len(x)
    zones, start = [], None
    for i, f in enumerate(flat + [False]):
        if f and start is None:
            start = i
        elif not f and start is not None:
            kind = "dead" if bool((dy[start:i] == 0).all()) else "saturated"
            zones.append({"from": round(float(x[start]), 3), "to": round(float(x[i - 1]), 3), "kind": kind})
            start = None
    return zones


def activations(names: list[str], path: Path) -> tuple[Path, dict]:
    """One row per activation: f(x) left, f'(x) right; dead zones shaded red, saturated zones grey."""
    plt = pyplot()
    fig, axes = plt.subplots(len(names), 2, figsize=(9, 2.1 * len(names) + 0.4), squeeze=False)
    info = {}
    for row, name in zip(axes, names, strict=True):
        c = activation_curves(name)
        info[name] = {"zones": c["zones"], "max_derivative": round(float(c["dy"].abs().max()), 4)}
        for ax, ys, label in ((row[0], c["y"], name), (row[1], c["dy"], f"{name}'")):
            ax.plot(c["x"].numpy(), ys.numpy(), color="tab:blue" if ax is row[0] else "tab:orange")
            for z in c["zones"]:
                ax.axvspan(z["from"], z["to"], color="tab:red" if z["kind"] == "dead" else "gray", alpha=0.15)
            ax.axhline(0, color="black", linewidth=0.5)
            ax.axvline(0, color="black", linewidth=0.5)
            ax.set_title(label, fontsize=9, loc="left")
            ax.grid(alpha=0.3)
    fig.suptitle("activation functions (left) and their derivatives (right); "
                 "red: dead (gradient 0), grey: saturated or nearly flat (gradient < 5% of its peak)", fontsize=9)
    return _save(fig, path), info


# ----------------------------------------------------------------------------- the command's work

def plot_activations(names: list[str], out: Path | None) -> dict:

    for name in names:
        ACTIVATIONS.entry(name)  # unknown name -> one-line error listing the choices
    names = names or ACTIVATIONS.names()
    path, info = activations(names, (out or Path(".")) / "activations.png")
    return {"plots": [str(path)], "activations": info}


def plot_curves(names: list[str], out: Path | None) -> dict:

    if len(names) != 1:
        raise UserError("plot curves takes exactly one RUN_DIR")
    run_dir = Path(names[0])
    if not (run_dir / "history.csv").is_file():
        raise UserError(f"{run_dir} has no history.csv; is it a finished trainlab run?")
    history = read_history(run_dir / "history.csv")
    res = read_result(run_dir)
    since = res.get("diagnosis", {}).get("checks", {}).get("overfitting", {}).get("since_epoch")
    path = learning_curves(history, (out or run_dir) / "curves.png", res.get("monitor", "val_loss"),
                           res.get("best_epoch"), bool(res.get("stopped_early")), since, title=run_dir.name)
    return {"plots": [str(path)]}
