"""`trainlab runs` tables real run directories (sortable, with the config keys that differ); `trainlab compare`
shows config differences and overlaid curves."""
from __future__ import annotations

import json

import pytest
from PIL import Image

from conftest import assert_one_line_error
from trainlab.observe import compare as runs
from trainlab.run.config import build_config
from trainlab.workflows.train import train_run


def tiny(lr: float, hidden: list[int]) -> dict:
    return {"seed": 0, "data": {"name": "digits", "batch_size": 128}, "model": {"name": "mlp", "hidden": hidden},
            "train": {"epochs": 2, "lr": lr, "num_threads": 1}}


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    for name, lr, hidden in (("a", 0.01, [32]), ("b", 0.001, [16]), ("c", 0.03, [32])):
        train_run(build_config(tiny(lr, hidden)), out=root / name, quiet=True)
    (root / "c" / "result.json").unlink()  # as if still running: listed, marked incomplete
    (root / "notes").mkdir()  # not a run
    return root


def test_runs_table_and_result(cli, root, tmp_path):
    code, out, err = cli("runs", root, "--sort", "lr", "--out", tmp_path, "--wide")  # every column
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split()[:7] == ["run", "dataset", "model", "optimizer", "lr", "batch", "model.hidden"]
    assert [line.split()[0] for line in lines[1:]] == ["b", "a", "c"]  # lr 0.001 < 0.01 < 0.03
    res = json.loads((tmp_path / "result.json").read_text())
    a = next(r for r in res["runs"] if r["run"] == "a")
    result_a = json.loads((root / "a" / "result.json").read_text())
    assert a["test"] == pytest.approx(result_a["test"]["accuracy"]) and a["test_metric"] == "accuracy"
    assert a["best_val"] == pytest.approx(result_a["best_value"]) and a["epochs"] == 2 and a["status"] == "done"
    assert a["model.hidden"] == [32] and a["time_s"] > 0
    c = next(r for r in res["runs"] if r["run"] == "c")
    assert c["status"] == "incomplete" and c["test"] is None and c["epochs"] == 2


def test_sort_numbers_text_and_missing_values():
    rows = [{"x": 2.0, "y": "b"}, {"x": None, "y": "a"}, {"x": 10.0, "y": "c"}, {"x": 1.0, "y": None}]
    assert [r["x"] for r in runs.sort_rows(rows, ["x", "y"], "x", False)] == [1.0, 2.0, 10.0, None]
    assert [r["x"] for r in runs.sort_rows(rows, ["x", "y"], "x", True)] == [10.0, 2.0, 1.0, None]
    assert [r["y"] for r in runs.sort_rows(rows, ["x", "y"], "y", False)] == ["a", "b", "c", None]


def test_table_is_aligned():
    text = runs.format_table(["run", "test"], [{"run": "long-name", "test": 0.912345}, {"run": "x", "test": None}])
    lines = text.splitlines()
    assert lines == ["run        test", "long-name  0.9123", "x          -"]


def test_runs_errors(cli, root, tmp_path):
    assert_one_line_error(*cli("runs", root, "--sort", "accuracy")[::2], "cannot sort by 'accuracy'", "best_val")
    assert_one_line_error(*cli("runs", tmp_path)[::2], "no trainlab runs under")
    assert_one_line_error(*cli("runs", tmp_path / "nope")[::2], "is not a directory")


def test_compare_config_diff_and_curves(cli, root, tmp_path):
    code, out, err = cli("compare", root / "a", root / "b", "--out", tmp_path)
    assert code == 0, err
    res = json.loads((tmp_path / "result.json").read_text())
    assert res["config_diff"] == {"model.hidden": [[32], [16]], "train.lr": [0.01, 0.001]}
    assert res["labels"] == ["a", "b"] and res["results"][0]["test_metric"] == "accuracy"
    with Image.open(tmp_path / "compare.png") as im:
        assert im.format == "PNG" and im.size[0] > 900  # loss panel + accuracy panel
    assert "config differences:" in out and "train.lr" in out and "model.hidden" in out


def test_compare_errors(cli, root, tmp_path):
    assert_one_line_error(*cli("compare", root / "a")[::2], "at least two run directories")
    assert_one_line_error(*cli("compare", root / "a", root / "notes")[::2], "not a trainlab run directory")
