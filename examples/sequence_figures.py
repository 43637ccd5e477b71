"""README figures for the sequence examples, drawn from finished runs.

    python examples/sequence_figures.py --forecast runs/sunspots-lstm --attention runs/text-transformer

writes docs/figures/sunspots-forecast.png and docs/figures/order-attention.png (--out picks the folder).

forecast: the test years of the series with the LSTM's and the two baselines' one-step-ahead forecasts.
attention: where the CLS token of the Transformer's last block looks, for a few texts of the order task.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from trainlab.data.prepare import load_data  # noqa: E402
from trainlab.data.text import encode  # noqa: E402
from trainlab.use.loaded import load_run  # noqa: E402


def forecast_figure(run_dir: Path, path: Path) -> None:
    run = load_run(run_dir)
    meta, data = run.data["meta"], load_data(run.cfg)
    test = data.bundle.test
    k, h = len(meta["targets"]), meta["horizon"]
    pred = run.predict_outputs(test.x).reshape(len(test.x), h, k)[:, 0, 0]  # first forecast step, first target
    actual = test.y.reshape(len(test.x), h, k)[:, 0, 0]
    naive = test.x[:, -1, 0]  # the last observed value
    season = meta["season"]
    seasonal = test.x[:, -season, 0] if season <= meta["lookback"] else None
    first = meta["target_steps"]["test"][0]
    steps = np.arange(first, first + len(actual) * meta["stride"], meta["stride"])
    fig, ax = plt.subplots(figsize=(9, 3.5))
    ax.plot(steps, actual, "k-", lw=2, label="actual")
    ax.plot(steps, pred.numpy(), "C0-o", ms=3, label=f"{run.cfg.model.params.cell.upper()} (t+1)")
    ax.plot(steps, naive.numpy(), "C1--", label="naive (last value)")
    if seasonal is not None:
        ax.plot(steps, seasonal.numpy(), "C2:", label=f"seasonal naive ({season} steps earlier)")
    base = " | ".join(f"{n} {b['mae']:.1f}" for n, b in meta["baselines"].items())
    mae = (pred - actual).abs().mean()
    ax.set_title(f"{meta['series']}: test windows, MAE at t+1 {mae:.1f}; all {h} steps: baselines {base}", fontsize=9)
    ax.set_xlabel(f"time step (0 = first step of the series; horizon {h})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def attention_figure(run_dir: Path, path: Path, texts: list[str]) -> None:
    run = load_run(run_dir)
    meta = run.data["meta"]
    ids = encode(texts, meta)
    probs = run.predict_proba(ids)
    weights = run.model.blocks[-1].attn.last_weights[:, :, 0, 1:].mean(1)  # CLS row, mean over heads: (B, L)
    fig, axes = plt.subplots(len(texts), 1, figsize=(9, 0.9 * len(texts) + 0.6))
    for ax, text, w, p in zip(axes, texts, weights, probs, strict=True):
        n = len(text)
        ax.imshow(w[:n].unsqueeze(0).numpy(), cmap="Blues", aspect="auto")
        ax.set_xticks(range(n), list(text), fontsize=8)
        ax.set_yticks([])
        ax.set_ylabel(f"-> {run.classes[int(p.argmax())]}", rotation=0, labelpad=22, fontsize=9)
    axes[0].set_title("CLS attention in the last block (mean over heads)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--forecast", type=Path, help="run directory of a forecasting run")
    p.add_argument("--attention", type=Path, help="run directory of a transformer run on first_marker")
    p.add_argument("--out", type=Path, default=Path("docs/figures"))
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    if args.forecast:
        forecast_figure(args.forecast, args.out / "sunspots-forecast.png")
    if args.attention:
        texts = ["qzxbwerctyauio", "kcmnpqazbvwxyhjdlrs", "bxxxxxxxxxxxxxxxxxaxxc", "uvwxyzcab"]
        attention_figure(args.attention, args.out / "order-attention.png", texts)


if __name__ == "__main__":
    main()
