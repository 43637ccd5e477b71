"""Sliding windows, time-ordered splits without target leakage, training-only statistics, baselines."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from trainlab.core.errors import UserError
from trainlab.data.forecast import naive_forecast, score, seasonal_naive_forecast
from trainlab.data.prepare import load_data
from trainlab.data.timeseries import future_labels, make_windows, split_windows, window_starts
from trainlab.run.config import build_config


def series_csv(tmp_path, n: int = 100, extra: bool = False):
    """value[t] = t: every target *is* its time index, so leaks show up as numbers."""
    t = np.arange(n)
    lines = ["step,value" + (",other" if extra else "")]
    lines += [f"{i},{i}" + (f",{-i}" if extra else "") for i in t]
    path = tmp_path / "series.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def ts_config(path, **data):
    return build_config({"data": {"name": "timeseries", "path": str(path), "target": ["value"],
                                  "time_column": "step", **data}, "model": {"name": "rnn"}})


def test_window_starts_end_at_the_last_step():
    assert window_starts(10, 3, 2, 1).tolist() == [3, 4, 5, 6, 7, 8]  # last targets: steps 8, 9
    assert window_starts(10, 3, 2, 3).tolist() == [5, 8]  # anchored at the end, not at the start
    assert window_starts(5, 3, 2, 1).tolist() == [3]  # exactly lookback + horizon steps: one window
    with pytest.raises(UserError, match="fewer than lookback \\+ horizon = 6"):
        window_starts(5, 4, 2, 1)


def test_windows_hold_the_right_steps():
    values = np.stack([np.arange(20.0), 100 + np.arange(20.0)], axis=1)  # (T, 2): target, feature
    x, y = make_windows(values, np.array([5, 9]), lookback=3, horizon=2, target_idx=[0])
    assert x.shape == (2, 3, 2) and y.shape == (2, 2)
    assert x[0, :, 0].tolist() == [2.0, 3.0, 4.0] and x[0, :, 1].tolist() == [102.0, 103.0, 104.0]
    assert y.tolist() == [[5.0, 6.0], [9.0, 10.0]]  # the steps right after the inputs
    _, y1 = make_windows(values, np.array([5]), 3, 1, [0])
    assert y1.shape == (1,)  # one target value per window: (N,) like any regression target
    _, y2 = make_windows(values, np.array([5]), 3, 2, [0, 1])
    assert y2.tolist() == [[5.0, 105.0, 6.0, 106.0]]  # step-major: (step 1: both targets), (step 2: ...)


@pytest.mark.parametrize("n, lookback, horizon, stride", [(100, 5, 1, 1), (100, 5, 4, 1), (97, 7, 5, 2),
                                                           (200, 3, 10, 3), (60, 12, 12, 1)])
@pytest.mark.parametrize("val_fraction", [0.0, 0.15])
def test_split_never_shares_a_target_across_boundaries(n, lookback, horizon, stride, val_fraction):
    s = split_windows(window_starts(n, lookback, horizon, stride), horizon, stride, val_fraction, 0.2)
    assert len(s.train) and len(s.test)
    assert s.train.max() + horizon <= (s.val.min() if len(s.val) else s.test.min())
    if len(s.val):
        assert s.val.max() + horizon <= s.test.min()
        # trainlab.data.splits.holdout later carves exactly these val windows off the pool's tail
        assert len(s.val) == int(round((len(s.train) + len(s.val)) * val_fraction))
    assert np.all(np.diff(np.concatenate([s.train, s.val, s.test])) > 0)  # time order


def test_loaded_splits_leak_no_target_and_fit_statistics_on_train_only(tmp_path):
    cfg = ts_config(series_csv(tmp_path, 100, extra=True), features=["other"], lookback=5, horizon=3,
                    val_fraction=0.2, test_fraction=0.2)
    data = load_data(cfg)
    pool_y, test_y = data.bundle.pool.y, data.bundle.test.y  # (N, 3): the time indices of the targets
    train_y, val_y = pool_y[data.splits.train], pool_y[data.splits.val]
    assert train_y.max() < val_y.min() and val_y.max() < test_y.min()  # no target index crosses a boundary
    assert test_y.max() == 99 and data.bundle.ordered
    view = data.view(data.splits.train, data.splits.val)
    assert view.model_info["target_mean"] == pytest.approx(train_y.double().mean(0).tolist())
    train_x = data.bundle.pool.x[data.splits.train]
    assert view.eval_pipe.state()[0]["mean"] == pytest.approx(train_x.double().mean((0, 1)).tolist(), rel=1e-6)
    assert view.input_shape == (5, 2)  # lookback steps of (value, other)


def test_baselines_on_known_series():
    t = np.arange(40.0)
    trend = t[:, None]  # value = t: the naive forecast misses by exactly h at step h
    starts = np.array([20, 25, 30])
    naive = naive_forecast(trend, starts, 3, [0])
    assert naive[:, :, 0].tolist() == [[19.0] * 3, [24.0] * 3, [29.0] * 3]
    target = trend[starts[:, None] + np.arange(3)]
    assert score(naive, target)["mae"] == pytest.approx(2.0)  # (1 + 2 + 3) / 3
    seasonal = np.sin(2 * np.pi * t / 4)[:, None] + 10  # period 4: the seasonal-naive forecast is exact
    pred = seasonal_naive_forecast(seasonal, starts, 6, 4, [0])
    assert score(pred, seasonal[starts[:, None] + np.arange(6)])["mae"] == pytest.approx(0.0, abs=1e-6)
    assert seasonal_naive_forecast(seasonal, np.array([2]), 1, 4, [0]) is None  # a season before step 0


def test_result_baselines_come_from_the_test_windows(tmp_path):
    data = load_data(ts_config(series_csv(tmp_path, 60), lookback=4, horizon=2, season=5))
    b = data.bundle.meta["baselines"]
    assert b["naive"]["mae"] == pytest.approx(1.5)  # value = t: steps 1 and 2 miss by 1 and 2
    assert b["seasonal_naive"]["mae"] == pytest.approx(5.0) and b["seasonal_naive"]["season"] == 5


def test_mape_skips_zero_targets():
    pred, target = np.array([[[1.0], [5.0], [3.0]]]), np.array([[[0.0], [4.0], [2.0]]])
    assert score(pred, target)["mape"] == pytest.approx((0.25 + 0.5) / 2)
    # torchmetrics' MAPE would divide by 1.2e-6 here and report ~8e5; an all-zero target has no MAPE at all
    assert np.isnan(score(np.ones((2, 1, 1)), np.zeros((2, 1, 1)))["mape"])


def test_bundled_sunspots_and_labels():
    data = load_data(build_config({"data": {"name": "timeseries", "lookback": 22, "horizon": 3},
                                   "model": {"name": "rnn"}}))
    meta = data.bundle.meta
    assert meta["steps"] == 309 and meta["season"] == 11 and meta["future"] == ["2009", "2010", "2011"]
    assert len(meta["tail"]) == 22 and meta["tail"][-1] == [2.9]  # 2008, the last year of the series
    assert future_labels(["2001-11", "2001-12", "2002-01"], 2) == ["2002-02", "2002-03"]
    assert future_labels(["2001-01-30", "2001-01-31"], 2) == ["2001-02-01", "2001-02-02"]
    assert future_labels(None, 2) == ["t+1", "t+2"]


@pytest.mark.parametrize("data, message", [
    ({"lookback": 95, "horizon": 10}, "fewer than lookback \\+ horizon"),
    ({"target": ["nope"]}, "column 'nope' not in"),
    ({"lookback": 80, "horizon": 5}, "too few windows"),
])
def test_bad_series_input_is_one_line_user_error(tmp_path, data, message):
    with pytest.raises(UserError, match=message) as e:
        load_data(ts_config(series_csv(tmp_path, 100), **data))
    assert "\n" not in str(e.value)


def test_csv_time_column_must_increase_and_missing_values(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("step,value\n" + "".join(f"{i},{i}\n" for i in [0, 1, 3, 2, 4, 5, 6, 7, 8, 9]))
    with pytest.raises(UserError, match="must increase"):
        load_data(ts_config(path, lookback=2))
    path.write_text("step,value\n" + "".join(f"{i},{'' if i == 4 else i}\n" for i in range(30)))
    with pytest.raises(UserError, match="row 6 column 'value'"):
        load_data(ts_config(path, lookback=2))
    data = load_data(ts_config(path, lookback=2, missing="interpolate"))
    assert torch.isfinite(data.bundle.pool.x).all()
