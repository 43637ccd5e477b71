"""What a run shows while and after it trains: TensorBoard, plots, diagnosis, report (issue 5).

train.py calls exactly these three functions; everything else about observation lives behind them.
"""
from __future__ import annotations

from pathlib import Path


def epoch_hooks(cfg, out: Path, view) -> list:
    """Hooks `fn(trainer, record)` run after every epoch (TensorBoard logging, live diagnostics)."""
    return []


def finalize(out: Path, trainer, view, result: dict) -> None:
    """After the test evaluation: write plots/report; may add keys (e.g. `diagnosis`) to `result`."""


def on_failure(out: Path, trainer, error: Exception) -> None:
    """Training stopped with an error (e.g. a non-finite loss): record what can be diagnosed."""
