"""`trainlab runs` fits its table to the terminal (100 columns when not a terminal): the key columns first, cut or
dropped as the width demands, the rest while they fit; `--wide` shows every column."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sklearn.datasets import load_diabetes

from conftest import tiny_config
from trainlab.core.files import write_json
from trainlab.core.report import silent
from trainlab.observe import compare as runs
from trainlab.run.config import build_config
from trainlab.workflows.cv import run_cv
from trainlab.workflows.train import train_run

GROUP = "experiments-december-learning-rate-sweep"  # long names, as people make them


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """A classification run, a regression run on a CSV (a long data.path that differs) and a 2-fold cv."""
    root = tmp_path_factory.mktemp("runs")
    table = root / "tables" / "diabetes-with-a-long-descriptive-file-name.csv"
    table.parent.mkdir()
    load_diabetes(as_frame=True).frame.to_csv(table, index=False)
    digits = tiny_config(train={"epochs": 2, "lr": 0.01, "num_threads": 1})
    train_run(build_config(digits), out=root / GROUP / "digits-mlp-lr0.01-hidden32-seed0", quiet=True)
    data = {"name": "csv", "path": str(table), "target": "target", "task": "regression", "val_fraction": 0.15,
            "transforms": {"train": [{"name": "normalize"}], "eval": [{"name": "normalize"}]}}
    regression = tiny_config(data=data, train={"epochs": 2, "lr": 0.003, "num_threads": 1})
    train_run(build_config(regression), out=root / GROUP / "diabetes-regression-mlp", quiet=True)
    cv = run_cv(build_config(tiny_config(train={"epochs": 1, "num_threads": 1})), root / "digits-cv", 2, report=silent)
    write_json(root / "digits-cv" / "result.json", cv)  # as `trainlab cv` does
    return root


def results(root: Path) -> tuple[dict, dict, dict]:
    read = lambda p: json.loads((root / p / "result.json").read_text())  # noqa: E731
    return (read(f"{GROUP}/digits-mlp-lr0.01-hidden32-seed0"), read(f"{GROUP}/diabetes-regression-mlp"),
            read("digits-cv"))


def test_wide_table_is_wider_than_a_terminal(cli, root):
    """What the issue saw: every column of these three runs does not fit 100 columns; --wide still shows it."""
    code, out, err = cli("runs", root, "--wide")
    assert code == 0, err
    assert max(map(len, out.splitlines())) > 150
    assert {"optimizer", "batch", "data.path", "problems", "monitor"} <= set(out.splitlines()[0].split())


@pytest.mark.parametrize("width", [100, 72, 48])
def test_fitted_table_holds_the_key_values(cli, root, monkeypatch, width):
    monkeypatch.setenv("COLUMNS", str(width))  # what shutil.get_terminal_size reads first
    code, out, err = cli("runs", root)
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 4 and max(map(len, lines)) <= width
    digits, regression, cv = results(root)
    cv_line, regression_line, digits_line = lines[1:]  # sorted by path: digits-cv, GROUP/diabetes..., GROUP/digits...
    assert f"{digits['test']['accuracy']:.4g}" in digits_line and f"{digits['best_value']:.4g}" in digits_line
    assert f"{regression['test']['r2']:.4g}" in regression_line
    assert f"{regression['best_value']:.4g}" in regression_line
    assert f"{cv['mean']['val_loss']:.4g}" in cv_line and cv_line.startswith("digits-cv")
    assert digits_line.split()[0].endswith("seed0") and regression_line.split()[0].endswith("mlp")
    if width == 100:  # room for every key column (the long run names cut in the middle, metric names shortened)
        assert lines[0].split() == ["run", "data/model", "epochs", "best", "test", "time", "when"]
        assert " acc" in digits_line and "r2" in regression_line and "csv/mlp" in regression_line
        assert "2-fold cv" in cv_line or " cv 2 " in cv_line
        assert digits_line.split()[2] == "2"  # epochs
        assert digits_line.split()[-1] == digits_when(root)  # when it started, as the manifest says


def digits_when(root: Path) -> str:
    started = json.loads((root / GROUP / "digits-mlp-lr0.01-hidden32-seed0" / "manifest.json").read_text())
    return started["started"][11:16]  # the date may be shortened to month-day: compare the time


def test_not_a_terminal_means_100_columns(root):
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(runs.__file__).parents[2]), env.get("PYTHONPATH", "")])
    out = subprocess.run([sys.executable, "-m", "trainlab", "runs", str(root)], capture_output=True, text=True,
                         env=env, check=True, timeout=120).stdout
    lines = out.splitlines()
    assert 80 < max(map(len, lines)) <= 100 and len(lines) == 4


def test_a_table_that_fits_is_not_cut():
    """Healthy: one short run at 100 columns keeps every value whole (no '…') and adds nothing that says nothing."""
    row = {"run": "a", "dataset": "digits", "model": "mlp", "optimizer": "adam", "lr": 0.01, "batch": 64,
           "monitor": "val_loss", "best_val": 0.1234, "test_metric": "accuracy", "test": 0.9805, "epochs": 12,
           "time_s": 65.2, "started": "2026-12-07T06:37:32", "status": "done", "problems": "-", "mlflow": None}
    text = runs.fit_table(["run", "lr"], [row], 100)
    assert "…" not in text
    assert text.splitlines() == ["run  data/model  epochs  best             test             time   when",
                                 "a    digits/mlp  12      val_loss 0.1234  accuracy 0.9805  1m05s  2026-12-07 06:37"]


@pytest.mark.parametrize("width, column", [(200, True), (60, False)])
def test_the_mlflow_uri_is_a_column_or_a_line_below_the_table(width, column):
    """`trainlab runs` shows where MLflow has a run: its own column when there is room, else one line below."""
    uri = "http://127.0.0.1:5000"
    row = {"run": "a", "dataset": "digits", "model": "mlp", "optimizer": "adam", "lr": 0.01, "batch": 64,
           "monitor": "val_loss", "best_val": 0.1234, "test_metric": "accuracy", "test": 0.9805, "epochs": 12,
           "time_s": 65.2, "started": "2026-12-07T06:37:32", "status": "done", "problems": "-", "mlflow": uri}
    other = {**row, "run": "b", "mlflow": None}
    lines = runs.fit_table(["run", "lr"], [row, other], width).splitlines()
    assert ("mlflow" in lines[0]) is column and len(lines) == 3 + (not column)
    if not column:
        assert lines[-1] == f"mlflow: {uri} (1 of 2 runs; --wide shows which)"
