"""The command line end to end on tiny data: train -> eval -> predict, summary, list, and one-line errors."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import assert_one_line_error, tiny_config


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny digits run shared by the tests below."""
    import yaml

    from trainlab.cli.main import main

    tmp = tmp_path_factory.mktemp("run")
    cfg = tmp / "c.yaml"
    cfg.write_text(yaml.safe_dump(tiny_config(train={"epochs": 4, "lr": 0.01})))
    assert main(["train", str(cfg), "--out", str(tmp / "run")]) == 0
    return tmp / "run"


def test_train_writes_the_run_directory(trained):
    names = {p.name for p in trained.iterdir()}
    assert {"config.yaml", "history.csv", "best.pt", "last.pt", "summary.txt", "splits.json", "manifest.json",
            "result.json", "data.json"} <= names
    result = json.loads((trained / "result.json").read_text())
    assert result["epochs_run"] == 4 and 1 <= result["best_epoch"] <= 4
    assert set(result["test"]) == {"loss", "accuracy", "f1"} and result["test"]["accuracy"] > 0.85
    manifest = json.loads((trained / "manifest.json").read_text())
    assert manifest["seed"] == 0 and manifest["test_evaluations"] == 1 and manifest["torch"] == torch.__version__
    splits = json.loads((trained / "splits.json").read_text())
    assert len(splits["train"]) + len(splits["val"]) + len(splits["test"]) == 1797
    assert "Total params" in (trained / "summary.txt").read_text()
    assert len((trained / "history.csv").read_text().strip().splitlines()) == 5


def test_eval_matches_training_result_and_counts(trained, cli, tmp_path):
    result = json.loads((trained / "result.json").read_text())
    code, out, err = cli("eval", trained, "--split", "test", "--out", tmp_path)
    assert code == 0 and "warning" in err  # the test split was already used once by train
    again = json.loads((tmp_path / "result.json").read_text())
    assert again["metrics"]["accuracy"] == pytest.approx(result["test"]["accuracy"], abs=1e-6)
    code, out, err = cli("eval", trained, "--split", "val")
    assert code == 0 and "val: loss" in out and not err


def test_predict_image_files(trained, cli, tmp_path):
    from sklearn.datasets import load_digits

    d = load_digits()
    files = []
    for i in range(20):
        img = Image.fromarray(np.round(d.images[i] * 255 / 16).astype(np.uint8)).resize((32, 32), Image.NEAREST)
        files.append(tmp_path / f"{i}.png")
        img.save(files[-1])
    code, out, _ = cli("predict", trained, *files, "--out", tmp_path / "p")
    assert code == 0
    rows = json.loads((tmp_path / "p" / "result.json").read_text())["predictions"]
    correct = sum(int(r["prediction"]) == d.target[i] for i, r in enumerate(rows))
    assert correct >= 16, rows
    assert abs(sum(t["probability"] for t in rows[0]["top"]) - 1) < 0.5


def test_summary_and_list(cli, write_config):
    code, out, _ = cli("summary", write_config(), "model.hidden=[16]")
    assert code == 0 and "Total params: 1,210" in out  # 64*16+16 + 16*10+10
    code, out, _ = cli("list", "models")
    assert code == 0 and "course_mlp" in out and "resnet_small" in out


def test_dry_run(cli, write_config, tmp_path):
    code, out, _ = cli("train", write_config(), "--dry-run", "--out", tmp_path / "d")
    assert code == 0
    assert json.loads((tmp_path / "d" / "result.json").read_text())["epochs_run"] == 1


def test_out_dir_holding_another_run_is_refused(cli, write_config, trained):
    before = (trained / "best.pt").read_bytes()
    code, _, err = cli("train", write_config(), "--out", trained)
    assert_one_line_error(code, err, "--overwrite", "--resume")
    assert (trained / "best.pt").read_bytes() == before


@pytest.mark.parametrize("args, needles", [
    (["eval", "/nonexistent/run"], ["not a trainlab run"]),
    (["predict", "/nonexistent/run", "x.png"], ["not a trainlab run"]),
    (["train"], ["CONFIG"]),
    (["train", "/nonexistent.yaml"], ["not found"]),
    (["list", "nosuch"], ["invalid choice"]),
    (["nosuch"], ["invalid choice"]),
])
def test_bad_invocations(cli, args, needles):
    code, _, err = cli(*args)
    assert_one_line_error(code, err, *needles)


def test_predict_non_image(trained, cli, tmp_path):
    bad = tmp_path / "x.png"
    bad.write_text("not an image")
    code, _, err = cli("predict", trained, bad)
    assert_one_line_error(code, err, "x.png")


def test_console_script_and_module_entry_points():
    out = subprocess.run([sys.executable, "-m", "trainlab", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("trainlab ")
    bad = subprocess.run([sys.executable, "-m", "trainlab", "train", "/nope.yaml"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == ["error: config file not found: /nope.yaml"]


def test_deterministic_flag_reaches_the_resolved_config(tmp_path, cli, write_config):
    import yaml

    cfg = write_config(tiny_config(train={"epochs": 1}))
    code, _, err = cli("train", cfg, "--deterministic", "--out", tmp_path / "run")
    assert code == 0, err
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["train"]["deterministic"] is True


def test_the_quick_exit_keeps_every_status_and_all_output(tmp_path):
    """The console script skips the interpreter's tear-down: statuses and piped output must survive it."""
    def run(*args, **kw):
        return subprocess.run([sys.executable, "-m", "trainlab", *args], capture_output=True, text=True, **kw)
    helped = run("--help")  # argparse exits with SystemExit(0) from inside main()
    assert helped.returncode == 0 and "train" in helped.stdout and helped.stdout.endswith("\n")
    listed = run("list")
    assert listed.returncode == 0 and len(listed.stdout.splitlines()) > 20  # all of it, flushed before the exit
    assert run("nosuchcommand").returncode == 2
    head = subprocess.run(f"{sys.executable} -m trainlab list | head -2", shell=True, capture_output=True, text=True)
    assert head.stdout.count("\n") == 2 and head.stderr == ""  # a reader that stops early is no internal error
    # a handler registered before the CLI starts (as coverage's is) runs only under a tracer: the normal exit
    for traced in (False, True):
        site = tmp_path / str(traced)
        site.mkdir()
        (site / "sitecustomize.py").write_text(
            "import atexit, pathlib, sys\n"
            + ("sys.settrace(lambda *a: None)\n" if traced else "")
            + f"atexit.register(lambda: pathlib.Path({str(site / 'exited')!r}).write_text('normally'))\n")
        assert run("--version", env={**os.environ, "PYTHONPATH": str(site)}).returncode == 0
        assert (site / "exited").exists() == traced
