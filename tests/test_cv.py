"""K-fold CV: scikit-learn splitters (stratified, groups, time order), fold isolation, parallel = sequential."""
from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml

from conftest import assert_one_line_error
from trainlab.core.errors import UserError
from trainlab.core.report import silent
from trainlab.data.prepare import DataView, load_data
from trainlab.data.splits import FOLD_SPLITTERS, fold_splits
from trainlab.run.config import load_config
from trainlab.workflows.cv import choose_method, cross_validate, run_cv

TINY = {"data": {"batch_size": 128}, "model": {"hidden": [16]}}  # on top of conftest's tiny digits MLP


def assert_partition(folds, idx) -> None:
    """Validation folds are pairwise disjoint, cover idx, and never overlap their own training part."""
    vals = np.concatenate([va for _, va in folds])
    assert len(vals) == len(np.unique(vals)) == len(idx)
    assert set(vals) == set(idx)
    for tr, va in folds:
        assert not set(tr) & set(va)
        assert len(tr) + len(va) == len(idx)


# ----------------------------------------------------------------------------- splitters

@pytest.mark.parametrize("method", FOLD_SPLITTERS)
def test_splitters_are_seeded_and_valid(method):
    rng = np.random.default_rng(0)
    idx = np.arange(100, 220)  # pool indices need not start at 0
    labels, groups = rng.integers(0, 3, 120), np.repeat(np.arange(24), 5)
    folds = fold_splits(idx, 4, method, seed=0, labels=labels, groups=groups)
    again = fold_splits(idx, 4, method, seed=0, labels=labels, groups=groups)
    assert len(folds) == 4
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, again, strict=True))
    if method == "time":  # validation always lies after training; the first chunk is never validated
        for tr, va in folds:
            assert tr.max() < va.min() and np.array_equal(tr, idx[: len(tr)])
        return
    assert_partition(folds, idx)
    other = fold_splits(idx, 4, method, seed=1, labels=labels, groups=groups)
    assert any(not np.array_equal(a[1], b[1]) for a, b in zip(folds, other, strict=True))


def test_stratified_folds_keep_class_shares():
    labels = np.array([0] * 60 + [1] * 30 + [2] * 10)
    folds = fold_splits(np.arange(100), 5, "stratified", seed=3, labels=labels)
    for _, va in folds:
        assert np.bincount(labels[va], minlength=3).tolist() == [12, 6, 2]


def test_group_folds_never_split_a_group():
    groups = np.repeat(np.arange(10), np.arange(1, 11))  # groups of 1..10 rows
    idx = np.arange(len(groups))
    for tr, va in fold_splits(idx, 3, "group", seed=0, groups=groups):
        assert not set(groups[tr]) & set(groups[va])


@pytest.mark.parametrize("k, method, msg", [(1, "kfold", "must be >= 2"), (11, "kfold", "cannot make 11 folds"),
                                            (4, "stratified", "rarest class has 3")])
def test_bad_fold_requests_are_user_errors(k, method, msg):
    labels = np.array([0] * 7 + [1] * 3)
    with pytest.raises(UserError, match=msg):
        fold_splits(np.arange(10), k, method, seed=0, labels=labels)


def test_auto_method_follows_the_data():
    cfg = SimpleNamespace(data=SimpleNamespace(stratify=True))
    series = SimpleNamespace(ordered=True, task="regression")
    assert choose_method(series, cfg, "auto", None) == "time"
    assert choose_method(SimpleNamespace(ordered=False, task="classification"), cfg, "auto", None) == "stratified"
    assert choose_method(SimpleNamespace(ordered=False, task="regression"), cfg, "auto", None) == "kfold"
    with pytest.raises(UserError, match="time series"):
        choose_method(series, cfg, "kfold", None)


# ----------------------------------------------------------------------------- folds on real data

def test_folds_cover_the_pool_and_never_touch_test(write_config, monkeypatch):
    real = DataView.dataset

    def guarded(self, split):
        assert split != "test", "cross-validation evaluated the test split"
        return real(self, split)

    monkeypatch.setattr(DataView, "dataset", guarded)
    cfg = load_config(write_config(**TINY), ["train.epochs=1"])
    result = cross_validate(cfg, 3, report=silent)
    data = load_data(cfg)
    vals = [np.array(f["val_indices"]) for f in result["folds"]]
    assert sorted(np.concatenate(vals).tolist()) == data.pool_indices().tolist()
    assert not set(np.concatenate(vals)) & set(data.splits.test.tolist())
    assert result["method"] == "stratified" and result["pool_size"] == 1438
    # normalization of each fold is fitted on exactly its training part (digits: 1 channel, uint8 / 255)
    x = data.bundle.pool.x.double() / 255
    pool = data.pool_indices()
    means = []
    for fold, val in zip(result["folds"], vals, strict=True):
        train = np.setdiff1d(pool, val)
        mean = fold["eval_transforms"][-1]["mean"][0]
        assert mean == pytest.approx(x[train].mean().item(), abs=1e-6)
        assert mean != pytest.approx(x[pool].mean().item(), abs=1e-6)  # the validation fold was not included
        means.append(mean)
    assert len(set(means)) == 3


def test_cli_writes_table_and_mean_std(tmp_path, write_config, cli):
    out, cfg = tmp_path / "cv", write_config(**TINY)
    code, printed, err = cli("cv", cfg, "--folds", "3", "--out", out)
    assert code == 0, err
    result = json.loads((out / "result.json").read_text())
    acc = np.array([f["metrics"]["val_accuracy"] for f in result["folds"]])
    assert result["mean"]["val_accuracy"] == pytest.approx(acc.mean())
    assert result["std"]["val_accuracy"] == pytest.approx(acc.std(ddof=1))
    assert 0.5 < acc.mean() <= 1.0  # 2 epochs of a 16-unit MLP already learn digits
    assert json.loads((out / "manifest.json").read_text())["test_evaluations"] == 0
    assert (out / "fold-3" / "history.csv").read_text().count("\n") == 3  # header + 2 epochs
    assert "mean ± std" in printed and f"{acc.mean():.4f} ± {acc.std(ddof=1):.4f}" in printed
    assert_one_line_error(*cli("cv", cfg, "--folds", "3", "--out", out)[::2], "--overwrite")  # not empty


def test_run_cv_takes_typed_arguments_returns_the_result_and_prints_only_through_its_reporter(tmp_path, write_config,
                                                                                             capsys):
    """The shape of every command: the workflow gets no argparse namespace, prints nothing itself, and leaves
    result.json to the CLI; its progress lines go to the reporter it is given."""
    lines = []
    cfg = load_config(write_config(**TINY), ["train.epochs=1"])
    result = run_cv(cfg, tmp_path / "cv", 2, report=lambda line, warning=False: lines.append(line))
    assert capsys.readouterr().out == ""
    assert [line.split()[:4] for line in lines if "  epoch " in line] == [["fold", "1/2", "epoch", "1/1"],
                                                                             ["fold", "2/2", "epoch", "1/1"]]
    lines = [line for line in lines if "  epoch " not in line]  # not a terminal: each epoch's line, then the fold's
    assert [line.split("  ")[0] for line in lines] == ["fold 1/2", "fold 2/2"]
    acc = [f["metrics"]["val_accuracy"] for f in result["folds"]]
    assert len(acc) == 2 and result["mean"]["val_accuracy"] == pytest.approx(np.mean(acc))
    assert f"val_accuracy {acc[0]:.4f}" in lines[0]  # the fold line reports the fold's own score
    assert (tmp_path / "cv" / "manifest.json").is_file() and not (tmp_path / "cv" / "result.json").exists()


def test_folds_repeat_exactly(write_config):
    cfg = load_config(write_config(**TINY), ["train.epochs=1"])
    a = cross_validate(cfg, 2, report=silent)
    b = cross_validate(cfg, 2, report=silent)
    assert [f["metrics"] for f in a["folds"]] == [f["metrics"] for f in b["folds"]]


@pytest.mark.slow
def test_parallel_folds_equal_sequential(write_config):
    cfg = load_config(write_config(**TINY), ["train.epochs=1"])
    threads = torch.get_num_threads()
    sequential = cross_validate(cfg, 2, report=silent)
    parallel = cross_validate(cfg, 2, jobs=2, report=silent)
    assert torch.get_num_threads() == threads  # workers set their own threads, not ours
    assert [f["metrics"] for f in parallel["folds"]] == [f["metrics"] for f in sequential["folds"]]
    assert [f["val_indices"] for f in parallel["folds"]] == [f["val_indices"] for f in sequential["folds"]]


# ----------------------------------------------------------------------------- groups (csv)

def grouped_csv(tmp_path) -> str:
    rng = np.random.default_rng(0)
    n = 120
    patient = np.repeat(np.arange(20), 6)
    x = rng.normal(size=(n, 3)) + patient[:, None] * 0.1
    label = (x[:, 0] > 0.5).astype(int)
    rows = ["patient,a,b,c,label"] + [f"p{p},{a:.4f},{b:.4f},{c:.4f},{y}"
                                      for p, (a, b, c), y in zip(patient, x, label, strict=True)]
    path = tmp_path / "table.csv"
    path.write_text("\n".join(rows) + "\n")
    return str(path)


def test_group_column_is_kept_out_of_features_and_folds(tmp_path, write_config, cli):
    csv = grouped_csv(tmp_path)
    cfg_path = write_config(data={"name": "csv", "path": csv, "batch_size": 32}, model={"hidden": [8]})
    out = tmp_path / "cv"
    code, _, err = cli("cv", cfg_path, "--folds", "4", "--group", "patient", "--out", out)
    assert code == 0, err
    result = json.loads((out / "result.json").read_text())
    assert result["method"] == "group"
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["data"]["features"] == ["a", "b", "c"]  # the id is not an input
    patient = np.array([line.split(",")[0] for line in open(csv).read().splitlines()[1:]])
    cfg = load_config(str(out / "config.yaml"))
    pool = load_data(cfg).pool_indices()
    for fold in result["folds"]:
        val = np.array(fold["val_indices"])
        assert not set(patient[val]) & set(patient[np.setdiff1d(pool, val)])


@pytest.mark.parametrize("args, msg", [(["--folds", "1"], "--folds: must be a whole number from 2 to 1000"),
                                       (["--group", "patient"], "--group needs csv data"),
                                       (["--jobs", "0"], "--jobs: must be a whole number from 1 to 256")])
def test_bad_cli_input_is_one_line_error(tmp_path, write_config, cli, args, msg):
    code, _, err = cli("cv", write_config(**TINY), "--out", tmp_path / "o", *args)
    assert_one_line_error(code, err, msg)
    assert not (tmp_path / "o").exists()  # rejected before anything is written


def test_series_folds_run_forward_in_time_with_a_target_gap(write_config):
    horizon = 3
    cfg = load_config(write_config({"seed": 0, "data": {"name": "timeseries", "series": "sunspots", "lookback": 12,
                                                        "horizon": horizon, "val_fraction": 0.0, "batch_size": 64},
                                    "model": {"name": "rnn", "cell": "gru", "hidden": 8}, "train": {"epochs": 1}}))
    result = cross_validate(cfg, 3, report=silent)
    pool = load_data(cfg).pool_indices()
    assert result["method"] == "time" and "val_rmse" in result["mean"]
    for fold in result["folds"]:
        val = np.array(fold["val_indices"])
        train = pool[pool < val.min() - (horizon - 1)]  # consecutive windows: index distance = time distance
        assert fold["train_size"] == len(train)  # the horizon - 1 windows before the fold are dropped
        assert val.min() - train.max() == horizon  # last training target ends right before the first val target
