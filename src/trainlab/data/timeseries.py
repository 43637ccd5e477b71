"""Time series -> sliding windows for forecasting: `lookback` past steps in, the next `horizon` steps out.

    data: {name: timeseries, series: sunspots, lookback: 22, horizon: 3}          # bundled, no download
    data: {name: timeseries, path: load.csv, target: [load], features: [temp], time_column: date}

A window whose first target step is t has inputs x = values[t - lookback : t] (lookback, F) and targets
y = values[t : t + horizon, targets] flattened step-major to (horizon * k,); windows start every `stride`
steps, the last one ending at the last step of the series.

Splits are in time order and leak no target: the test windows are the last `test_fraction` of the windows,
validation the last `val_fraction` of the rest, and windows whose targets would overlap the next part's
targets are dropped (a gap of (horizon - 1) // stride windows). A window's inputs may reach back into the
previous part: those values are known at forecast time. Inputs are normalized by the `normalize`
transform (fitted on training windows); target mean/std, also from training windows only, go to the
model (`model_info`), which predicts in the data's units.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:  # annotations only: pandas is imported where a table is read
    import pandas as pd

from trainlab.core.errors import UserError
from trainlab.data.base import ArrayDataset, DataBundle
from trainlab.data.forecast import baseline_scores
from trainlab.data.options import TimeSeriesParams
from trainlab.data.tabular import read_table


@dataclass
class Series:
    """values (T, F) with the target columns first; times labels each step (or None)."""
    name: str
    frame: pd.DataFrame
    targets: list[str]
    times: list | None
    season: int


# ----------------------------------------------------------------------------- sources

def _sunspots() -> Series:
    import statsmodels.api as sm  # optional heavy dependency: imported on use

    df = sm.datasets.sunspots.load_pandas().data
    return Series("sunspots", df[["SUNACTIVITY"]], ["SUNACTIVITY"], df["YEAR"].astype(int).tolist(), 11)


def _co2() -> Series:
    import statsmodels.api as sm  # optional heavy dependency: imported on use

    weekly = sm.datasets.co2.load_pandas().data  # weekly, with gaps
    monthly = weekly.resample("MS").mean().interpolate()
    return Series("co2", monthly, ["co2"], [d.strftime("%Y-%m") for d in monthly.index], 12)


def _elnino() -> Series:
    import pandas as pd  # start-up time: pandas (0.4 s) only where a table is read
    import statsmodels.api as sm  # optional heavy dependency: imported on use

    wide = sm.datasets.elnino.load_pandas().data  # one row per year, one column per month
    months = wide.columns[1:]
    values = wide[months].to_numpy().reshape(-1)
    times = [f"{int(y)}-{m + 1:02d}" for y in wide["YEAR"] for m in range(12)]
    return Series("elnino", pd.DataFrame({"temperature": values}), ["temperature"], times, 12)


BUNDLED = {"sunspots": _sunspots, "co2": _co2, "elnino": _elnino}


def _read_csv(params: TimeSeriesParams) -> Series:

    import pandas as pd  # start-up time: pandas (0.4 s) only where a table is read

    df = read_table(params.path)
    targets = params.target or [str(df.columns[-1])]
    for col in [*targets, *params.features, *([params.time_column] if params.time_column else [])]:
        if col not in df.columns:
            raise UserError(f"column {col!r} not in {params.path}; columns: {', '.join(map(str, df.columns))}")
    cols = [*targets, *params.features]
    bad = [c for c in cols if not pd.api.types.is_numeric_dtype(df[c])]
    if bad:
        raise UserError(f"column {bad[0]!r} of {params.path} is not numeric; a time series needs numbers")
    frame = df[cols]
    if frame.isna().values.any():
        if params.missing == "interpolate":
            frame = frame.interpolate(limit_direction="both")
        else:
            row, col = np.argwhere(frame.isna().values)[0]
            raise UserError(f"missing value in {params.path} row {int(row) + 2} column {cols[col]!r}; "
                            f"fill it, or set data.missing=interpolate")
    times = None
    if params.time_column:
        t = df[params.time_column]
        order = pd.to_datetime(t, errors="coerce") if not pd.api.types.is_numeric_dtype(t) else t
        if order.isna().any() or not order.is_monotonic_increasing:
            raise UserError(f"time column {params.time_column!r} of {params.path} must increase row by row")
        times = t.tolist()
    return Series(str(params.path), frame, targets, times, 12)


def load_series(params: TimeSeriesParams) -> Series:
    if params.path:
        return _read_csv(params)
    if params.series not in BUNDLED:
        raise UserError(f"unknown data.series {params.series!r}; choose from: {', '.join(BUNDLED)} (or set data.path)")
    if params.target or params.features:
        raise UserError("data.target and data.features choose CSV columns; they need data.path")
    return BUNDLED[params.series]()


# ----------------------------------------------------------------------------- windows and splits

def window_starts(n_steps: int, lookback: int, horizon: int, stride: int) -> np.ndarray:
    """(W,) ascending first-target indices; the last window's targets end at the last step."""
    if n_steps < lookback + horizon:
        raise UserError(f"the series has {n_steps} steps, fewer than lookback + horizon = {lookback + horizon}; "
                        f"lower data.lookback or data.horizon")
    return np.arange(n_steps - horizon, lookback - 1, -stride)[::-1].copy()


@dataclass
class WindowSplit:
    train: np.ndarray  # first-target indices of the windows in each part
    val: np.ndarray
    test: np.ndarray


def _tail(n: int, fraction: float, what: str) -> int:
    # the same rounding as trainlab.data.splits.holdout, which later splits the pool into train | val
    k = int(round(n * fraction))
    if fraction > 0 and not 1 <= k < n:
        raise UserError(f"too few windows ({n}) to hold out {fraction:g} for {what}: use a longer series or a "
                        f"smaller lookback, horizon or stride")
    return k


def split_windows(starts: np.ndarray, horizon: int, stride: int, val_fraction: float,
                  test_fraction: float) -> WindowSplit:
    """Time-ordered train | val | test; windows whose targets overlap a later part's targets are dropped."""
    n_test = _tail(len(starts), test_fraction, "test")
    test = starts[len(starts) - n_test:]
    pool = starts[starts + horizon <= test[0]]  # targets end before the first test target
    gap = (horizon - 1) // stride  # windows between train and val whose targets would reach into val
    if val_fraction == 0:
        return WindowSplit(pool, pool[:0], test)
    n_val = _tail(max(len(pool) - gap, 0), val_fraction, "validation")
    val = pool[len(pool) - n_val:]
    train = pool[pool + horizon <= val[0]]
    return WindowSplit(train, val, test)


def make_windows(values: np.ndarray, starts: np.ndarray, lookback: int, horizon: int,
                 target_idx: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """-> x (N, lookback, F) float32, y (N, horizon * k) float32, or (N,) when horizon * k == 1."""
    x = values[starts[:, None] - lookback + np.arange(lookback)]  # (N, L, F)
    y = values[starts[:, None] + np.arange(horizon)][:, :, target_idx].reshape(len(starts), -1)  # (N, H*k)
    y = y[:, 0] if y.shape[1] == 1 else y
    return torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y.astype(np.float32))


def future_labels(times: list | None, horizon: int) -> list[str]:
    """Labels of the `horizon` steps after `times` ends: next years/dates when the step is regular, else t+h."""
    import pandas as pd  # start-up time: pandas (0.4 s) only where a table is read

    steps = [f"t+{h}" for h in range(1, horizon + 1)]
    if not times or len(times) < 2:
        return steps
    try:
        if all(isinstance(t, (int, float, np.integer, np.floating)) for t in times[-2:]):
            step = times[-1] - times[-2]
            return [f"{times[-1] + step * h:g}" for h in range(1, horizon + 1)]
        a, b = pd.to_datetime(pd.Series(times[-2:]))
        months = (b.year - a.year) * 12 + b.month - a.month
        if a.day == b.day and months > 0 and a + pd.DateOffset(months=months) == b:  # monthly, quarterly, yearly
            step, fmt = pd.DateOffset(months=months), "%Y-%m" if b.day == 1 else "%Y-%m-%d"
        else:
            step, fmt = b - a, "%Y-%m-%d" if (b - a) % pd.Timedelta(days=1) == pd.Timedelta(0) else "%Y-%m-%d %H:%M"
        return [(b + step * h).strftime(fmt) for h in range(1, horizon + 1)]
    except (ValueError, TypeError):
        pass
    return steps


# ----------------------------------------------------------------------------- the dataset

def _fit_target_scale(bundle: DataBundle, train_idx: np.ndarray) -> DataBundle:
    """Target mean/std of the training windows (never val/test) for the model's output scale."""
    y = bundle.pool.y[torch.as_tensor(train_idx, dtype=torch.long)].double().reshape(len(train_idx), -1)
    std = y.std(0, unbiased=False)
    std = torch.where(std > 1e-8, std, torch.ones_like(std))
    info = {"target_mean": y.mean(0).tolist(), "target_std": std.tolist()}
    return dataclasses.replace(bundle, model_info=info, fit=None)


def build_timeseries(cfg, params: TimeSeriesParams) -> DataBundle:
    """Sliding windows over a bundled series (sunspots, co2, elnino) or CSV columns, for forecasting."""
    s = load_series(params)
    values = s.frame.to_numpy(dtype=np.float64)  # (T, F): targets first, then extra features
    if not np.isfinite(values).all():
        raise UserError(f"series {s.name} has non-finite values")
    k, (lb, h) = len(s.targets), (params.lookback, params.horizon)
    season = params.season or s.season
    starts = window_starts(len(values), lb, h, params.stride)
    split = split_windows(starts, h, params.stride, cfg.val_fraction, cfg.test_fraction)
    pool_starts = np.concatenate([split.train, split.val])
    x_test, y_test = make_windows(values, split.test, lb, h, list(range(k)))
    target = y_test.numpy().reshape(len(split.test), h, k)
    meta = {"series": s.name, "columns": list(map(str, s.frame.columns)), "targets": s.targets,
            "features": list(map(str, s.frame.columns[k:])), "lookback": lb, "horizon": h, "stride": params.stride,
            "season": season, "steps": len(values), "time_column": params.time_column,
            # first-target step index of each part's windows (audit: train targets end before val's start)
            "target_steps": {p: [int(v[0]), int(v[-1]) + h - 1] if len(v) else None
                             for p, v in (("train", split.train), ("val", split.val), ("test", split.test))},
            "tail": values[-lb:].tolist(), "future": future_labels(s.times, h),
            "baselines": baseline_scores(values, split.test, h, season, list(range(k)), target)}
    bundle = DataBundle(ArrayDataset(*make_windows(values, pool_starts, lb, h, list(range(k)))),
                        ArrayDataset(x_test, y_test), "regression", "sequence", None, ordered=True, meta=meta)
    bundle.fit = lambda train_idx: _fit_target_scale(bundle, train_idx)
    return bundle


# ----------------------------------------------------------------------------- predict

def predict_windows(meta: dict, files: list[str]) -> list[tuple[str, np.ndarray, list[str]]]:
    """(name, raw inputs (lookback, F), labels of the next horizon steps) per forecast to make.

    No files: forecast after the end of the training data (its last `lookback` steps are saved in data.json).
    A CSV: forecast after its last row; it needs the training columns and at least `lookback` rows.
    """
    if not files:
        return [(meta["series"], np.asarray(meta["tail"], dtype=np.float64), meta["future"])]

    out = []
    for f in files:
        df = read_table(f)
        missing = [c for c in meta["columns"] if c not in df.columns]
        if missing:
            raise UserError(f"{f} lacks column {missing[0]!r}; a forecast needs columns: {', '.join(meta['columns'])}")
        values = df[meta["columns"]].to_numpy(dtype=np.float64)
        if len(values) < meta["lookback"] or not np.isfinite(values[-meta["lookback"]:]).all():
            raise UserError(f"{f} needs at least lookback={meta['lookback']} complete rows at its end to forecast")
        tc = meta.get("time_column")
        times = df[tc].tolist() if tc and tc in df.columns else None
        out.append((f, values[-meta["lookback"]:], future_labels(times, meta["horizon"])))
    return out
