"""Forecast baselines: what a forecaster must beat to be worth anything.

- naive: the last observed value, repeated for every step of the horizon;
- seasonal naive: the value one season earlier (for steps beyond one season: the latest full season).

Both are scored on exactly the test windows the model is scored on, with the same metric code, and
`trainlab train` reports them next to the model's test metrics (result.json: `baselines`).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from trainlab.core.metrics import compute_metrics

BASELINE_METRICS = ("mae", "rmse", "mape")


def naive_forecast(values: np.ndarray, starts: np.ndarray, horizon: int, target_idx: list[int]) -> np.ndarray:
    """values (T, F), starts (N,) first target index of each window -> (N, horizon, k): values[t - 1] repeated."""
    last = values[starts - 1][:, target_idx]  # (N, k)
    return np.repeat(last[:, None, :], horizon, axis=1)


def seasonal_naive_forecast(values: np.ndarray, starts: np.ndarray, horizon: int, season: int,
                            target_idx: list[int]) -> np.ndarray | None:
    """-> (N, horizon, k): step h of a window starting at t gets values[t + h - season * ceil((h + 1) / season)].

    That is the same season position in the latest season before t. None if some window starts too early.
    """
    h = np.arange(horizon)
    src = starts[:, None] + h - season * np.ceil((h + 1) / season).astype(int)  # (N, H), always < t
    if src.min() < 0:
        return None
    return values[src][:, :, target_idx]


def score(pred: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """MAE, RMSE, MAPE of forecasts (N, H, k) against targets of the same size, as the trainer computes them."""
    p = torch.as_tensor(pred, dtype=torch.float32).reshape(len(pred), -1)
    t = torch.as_tensor(target, dtype=torch.float32).reshape(len(target), -1)
    values = compute_metrics(list(BASELINE_METRICS), p, t, "regression")
    return {k: float(v) for k, v in values.items()}


def baseline_scores(values: np.ndarray, starts: np.ndarray, horizon: int, season: int,
                    target_idx: list[int], target: np.ndarray) -> dict[str, dict]:
    """{"naive": {mae, rmse, mape}, "seasonal_naive": {..., season}} on the windows `starts`."""
    out = {"naive": score(naive_forecast(values, starts, horizon, target_idx), target)}
    seasonal = seasonal_naive_forecast(values, starts, horizon, season, target_idx)
    if seasonal is not None:
        out["seasonal_naive"] = {**score(seasonal, target), "season": season}
    return out


def comparison(test: dict, baselines: dict, metric: str = "mae") -> str:
    """One line: the model's test metric next to each baseline's, and whether the model beats them."""
    if metric not in test:
        metric = next((m for m in BASELINE_METRICS if m in test), None)
    if metric is None:
        return "baselines: " + ", ".join(f"{n} mae {b['mae']:.4g}" for n, b in baselines.items())
    ours = test[metric]
    parts = [f"{name} {b[metric]:.4g}" for name, b in baselines.items()]
    worse = [name for name, b in baselines.items() if not (math.isfinite(ours) and ours < b[metric])]
    verdict = "beats all baselines" if not worse else f"does NOT beat {', '.join(worse)}"
    return f"test {metric}: model {ours:.4g} vs " + ", ".join(parts) + f" -> {verdict}"


def bundle_extras(view, result: dict) -> dict:
    """Keys for result.json from the dataset: forecast baselines (and a one-line verdict) when it has them."""
    baselines = view.bundle.meta.get("baselines")
    if not baselines:
        return {}
    return {"baselines": baselines, "baseline_comparison": comparison(result.get("test", {}), baselines)}
