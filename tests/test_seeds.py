"""`trainlab train CONFIG --seeds N`: N ordinary run directories and their mean ± std; `compare` and `runs`
on the new layout."""
from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest
import yaml

from conftest import assert_one_line_error, tiny_config
from trainlab.cli.main import main
from trainlab.core.errors import UserError
from trainlab.observe.seeds import noise_notes, within_noise
from trainlab.run.config import build_config
from trainlab.workflows import seeds as seeds_workflow
from trainlab.workflows.train import train_run


def config(**train) -> dict:
    return tiny_config(train={"num_threads": 1, **train})


def run_cli(*args) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main([str(a) for a in args])
    return code, out.getvalue()


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """a: lr 0.01 with 3 seeds (via the CLI); b: lr 0.001 with 2 seeds; single: one ordinary run (seed 0)."""
    root = tmp_path_factory.mktemp("seeds")
    (root / "a.yaml").write_text(yaml.safe_dump(config()))
    code, out = run_cli("train", root / "a.yaml", "--seeds", 3, "--out", root / "a")
    assert code == 0
    (root / "a.stdout").write_text(out)
    seeds_workflow.train_seeds(build_config(config(lr=0.001)), root / "b", 2)
    train_run(build_config(config()), out=root / "single", quiet=True)
    return root


def read(path) -> dict:
    return json.loads(path.read_text())


def test_three_complete_runs_and_their_mean_and_sample_std(root):
    agg = read(root / "a" / "result.json")
    assert agg["kind"] == "seeds" and agg["n"] == 3 and agg["seeds"] == [0, 1, 2]
    assert sorted(p.name for p in (root / "a").iterdir()) == ["report.html", "result.json", "seed-0", "seed-1",
                                                             "seed-2"]
    per_seed = []
    for s in (0, 1, 2):
        run = root / "a" / f"seed-{s}"
        assert yaml.safe_load((run / "config.yaml").read_text())["seed"] == s
        assert all((run / f).is_file() for f in ("manifest.json", "history.csv", "best.pt", "report.html"))
        per_seed.append(read(run / "result.json"))
    assert len({r["test"]["accuracy"] for r in per_seed}) > 1  # the seeds really differ
    for metric in per_seed[0]["test"]:
        values = np.array([r["test"][metric] for r in per_seed])
        stat = agg["metrics"][f"test_{metric}"]
        assert stat["values"] == pytest.approx(values.tolist(), abs=0)
        assert stat["mean"] == pytest.approx(values.mean(), rel=1e-12)
        assert stat["std"] == pytest.approx(values.std(ddof=1), rel=1e-12)
        assert stat["std"] != pytest.approx(values.std(ddof=0), rel=1e-6)  # sample std, not population
        assert (stat["min"], stat["max"], stat["n"]) == (values.min(), values.max(), 3)
    best = np.array([r["best_value"] for r in per_seed])
    assert agg["metrics"]["best_val_loss"]["mean"] == pytest.approx(best.mean(), rel=1e-12)
    assert agg["metrics"]["train_time_s"]["n"] == 3 and agg["metrics"]["train_time_s"]["min"] > 0
    assert "ddof=1" in agg["std_is"]


def test_progress_per_seed_and_final_table(root):
    out = (root / "a.stdout").read_text()
    agg = read(root / "a" / "result.json")
    for s in (0, 1, 2):
        assert f"seed {s} ({s + 1}/3): test loss" in out
    acc = agg["metrics"]["test_accuracy"]
    row = next(line for line in out.splitlines() if line.startswith("test_accuracy "))
    assert f"{acc['mean']:.4f} ± {acc['std']:.4f} (3)" in row
    assert "mean ± std (n)" in out
    page = (root / "a" / "report.html").read_text()
    assert f"{acc['mean']:.4f} ± {acc['std']:.4f} (3 seeds)" in page and 'href="seed-2/report.html"' in page


def test_a_seed_dir_reproduces_the_single_run_with_that_seed(root, tmp_path):
    alone = train_run(build_config({**config(), "seed": 1}), out=tmp_path / "alone", quiet=True)
    in_seeds = read(root / "a" / "seed-1" / "result.json")
    assert alone["test"]["accuracy"] == in_seeds["test"]["accuracy"]
    assert alone["test"]["loss"] == in_seeds["test"]["loss"]
    assert read(root / "single" / "result.json")["test"] == read(root / "a" / "seed-0" / "result.json")["test"]


def test_seeds_1_is_one_ordinary_run(cli, write_config, tmp_path):
    code, out, err = cli("train", write_config(config()), "--seeds", 1, "--out", tmp_path / "one")
    assert code == 0, err
    result = read(tmp_path / "one" / "result.json")
    assert "kind" not in result and "accuracy" in result["test"] and not (tmp_path / "one" / "seed-0").exists()
    assert "best epoch 2 of 2" in out


@pytest.mark.parametrize("value", ["0", "-1", "1.5", "abc", ""])
def test_bad_seeds_value_is_a_one_line_error(cli, write_config, tmp_path, value):
    code, _, err = cli("train", write_config(config()), "--seeds", value, "--out", tmp_path / "x")
    assert_one_line_error(code, err, "--seeds", "whole number from 1 to 1000")
    assert not (tmp_path / "x").exists()


def test_seeds_refuses_resume_a_full_directory_and_too_large_seeds(cli, write_config, root, tmp_path):
    cfg = write_config(config())
    assert_one_line_error(*cli("train", "--resume", root / "single", "--seeds", 2)[::2], "--seeds", "--resume")
    assert_one_line_error(*cli("train", cfg, "--seeds", 2, "--out", root / "a")[::2], "not empty", "--overwrite")
    assert_one_line_error(*cli("train", cfg, "--seeds", 2, "--out", root / "single", "--overwrite")[::2],
                          "did not write")
    assert_one_line_error(*cli("train", cfg, "seed=4294967295", "--seeds", 2, "--out", tmp_path / "big")[::2],
                          "largest seed")
    assert (root / "single" / "best.pt").is_file() and not (tmp_path / "big").exists()


def test_a_failing_seed_stops_without_an_aggregate_and_overwrite_restarts(cli, write_config, tmp_path, monkeypatch):
    calls = []

    def second_fails(cfg, out, **kw):
        calls.append(cfg.seed)
        if len(calls) == 2:
            raise UserError("data.path: no such file")
        return train_run(cfg, out, **kw)

    monkeypatch.setattr(seeds_workflow, "train_run", second_fails)
    out_dir, cfg = tmp_path / "s", write_config(config())
    code, _, err = cli("train", cfg, "--seeds", 3, "--out", out_dir)
    assert_one_line_error(code, err, "seed 1:", "data.path: no such file", "no aggregate")
    assert calls == [0, 1] and (out_dir / "seed-0" / "result.json").is_file()
    assert not (out_dir / "result.json").exists() and not (out_dir / "report.html").exists()
    monkeypatch.setattr(seeds_workflow, "train_run", train_run)
    code, _, err = cli("train", cfg, "--seeds", 2, "--out", out_dir, "--overwrite", "--dry-run")
    assert code == 0, err
    assert read(out_dir / "result.json")["seeds"] == [0, 1]


def test_compare_shows_mean_std_and_seed_noise(cli, root, tmp_path):
    code, out, err = cli("compare", root / "a", root / "b", root / "single", "--out", tmp_path)
    assert code == 0, err
    a, b = read(root / "a" / "result.json"), read(root / "b" / "result.json")
    res = read(tmp_path / "result.json")
    assert [r["seeds"] for r in res["results"]] == [3, 2, 1]
    assert res["results"][1]["stats"]["test_accuracy"]["std"] == b["metrics"]["test_accuracy"]["std"]
    assert res["config_diff"]["seed"] == ["0..2", "0..1", 0] and res["config_diff"]["train.lr"] == [0.01, 0.001, 0.01]
    acc = a["metrics"]["test_accuracy"]
    row = next(line for line in out.splitlines() if line.startswith("test_accuracy "))
    assert f"{acc['mean']:.4f} ± {acc['std']:.4f} (3 seeds)" in row and "(2 seeds)" in row
    single = read(root / "single" / "result.json")["test"]["accuracy"]
    assert row.split()[-1] == f"{single:.4f}"  # a single run: its number alone
    note = next(line for line in out.splitlines() if line.startswith("single vs a: test_accuracy"))
    inside = acc["mean"] - acc["std"] <= single <= acc["mean"] + acc["std"]
    assert ("within seed noise" if inside else "larger than the seed spread") in note
    assert (tmp_path / "compare.png").is_file()


def test_noise_verdict():
    a, b = {"mean": 0.90, "std": 0.01, "n": 5}, {"mean": 0.915, "std": 0.01, "n": 5}
    assert within_noise(a, b) and not within_noise(a, {"mean": 0.93, "std": 0.01, "n": 5})
    assert within_noise(a, {"mean": 0.905, "std": None, "n": 1}) and not within_noise(a, {"mean": 0.92, "n": 1})
    notes = noise_notes(["a", "b"], [{"test_accuracy": a}, {"test_accuracy": {"mean": 0.93, "std": 0.01, "n": 5}}])
    assert notes == ["b vs a: test_accuracy 0.9300 ± 0.0100 (5 seeds) vs 0.9000 ± 0.0100 (5 seeds): difference "
                     "+0.03, larger than the seed spread (the mean ± std intervals do not overlap)"]
    assert noise_notes(["a", "b"], [{"x": {"mean": 1.0, "n": 1}}, {"x": {"mean": 2.0, "n": 1}}]) == []


def test_runs_lists_the_seed_runs_one_level_down(cli, root, tmp_path):
    code, out, err = cli("runs", root, "--out", tmp_path)
    assert code == 0, err
    rows = {r["run"]: r for r in read(tmp_path / "result.json")["runs"]}
    assert set(rows) == {"a/seed-0", "a/seed-1", "a/seed-2", "b/seed-0", "b/seed-1", "single"}
    assert all(r["status"] == "done" for r in rows.values())
    assert rows["a/seed-1"]["test"] == pytest.approx(read(root / "a" / "seed-1" / "result.json")["test"]["accuracy"])
