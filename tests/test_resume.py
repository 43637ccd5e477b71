"""Checkpoints and resume: atomic writes, weights_only loading, and bit-exact continuation after a kill."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from conftest import assert_one_line_error, tiny_config
from trainlab.core.checkpoint import atomic_save, safe_load
from trainlab.core.errors import UserError
from trainlab.run.config import build_config
from trainlab.workflows.train import train_run

# dropout (global torch RNG), augmentation and shuffling (trainlab's generator), a per-step scheduler and
# Adam's moments: everything a resume must restore
RESUME_CFG = tiny_config(
    data={"batch_size": 32, "transforms": {"train": [{"name": "random_affine", "degrees": 10, "translate": [0.1, 0.1]},
                                                      {"name": "normalize"}], "eval": [{"name": "normalize"}]}},
    model={"hidden": [64], "dropout": 0.2},
    train={"epochs": 4, "lr": 0.003, "scheduler": "cosine", "checkpoint_every": 7, "num_threads": 1})


def final_state(run: Path) -> tuple[dict, list]:
    ckpt = torch.load(run / "last.pt", weights_only=True)
    return ckpt["model"], [(r["train_loss"], r["val_loss"], r.get("train_accuracy")) for r in ckpt["history"]]


def assert_same_run(a: Path, b: Path) -> None:
    wa, ha = final_state(a)
    wb, hb = final_state(b)
    assert ha == hb
    for name in wa:
        assert torch.equal(wa[name], wb[name]), name
    ba, bb = torch.load(a / "best.pt", weights_only=True), torch.load(b / "best.pt", weights_only=True)
    assert all(torch.equal(ba["model"][k], bb["model"][k]) for k in ba["model"])


def _diagnosis(run: Path) -> dict:
    """result.json's diagnosis without the input-pipeline check's wall-clock numbers (its status stays)."""
    diag = json.loads((run / "result.json").read_text())["diagnosis"]
    checks = {**diag["checks"], "input_pipeline": diag["checks"]["input_pipeline"]["status"]}
    return {**diag, "checks": checks, "findings": [f for f in diag["findings"] if f["code"] != "input_pipeline"]}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    train_run(build_config(RESUME_CFG), out, quiet=True)
    return out


def test_resume_from_every_mid_epoch_checkpoint_is_bit_exact(reference, tmp_path, monkeypatch):
    """Snapshot last.pt at several mid-epoch points of one run, resume each snapshot, compare with the reference."""
    from trainlab.engine.trainer import Trainer

    snapshots, original = [], Trainer._save_mid_epoch

    def spy(self, *args):
        original(self, *args)
        if self.step in (7, 21, 49, 98):  # inside epochs 1, 1, 2, 3 (41 steps per epoch)
            snapshots.append(tmp_path / f"snap{self.step}")
            shutil.copytree(self.run_dir, snapshots[-1])

    monkeypatch.setattr(Trainer, "_save_mid_epoch", spy)
    train_run(build_config(RESUME_CFG), tmp_path / "full", quiet=True)
    monkeypatch.setattr(Trainer, "_save_mid_epoch", original)
    assert len(snapshots) == 4
    for snap in snapshots:
        assert torch.load(snap / "last.pt", weights_only=True)["resume_point"] is not None
        train_run(build_config(RESUME_CFG), resume=snap, quiet=True)
        assert_same_run(reference, snap)
        assert _diagnosis(snap) == _diagnosis(reference)  # the guide's history came back from last.pt
    assert_same_run(reference, tmp_path / "full")


def _start(args, cwd) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "trainlab", *map(str, args)], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONHASHSEED": "0"})


def _wait_for_checkpoints(run: Path, proc: subprocess.Popen, count: int, timeout: float = 120) -> None:
    """Block until last.pt has been (re)written `count` times."""
    seen, last, deadline = 0, None, time.time() + timeout
    while seen < count:
        assert time.time() < deadline and proc.poll() is None, "training ended before the kill point"
        try:
            stamp = (run / "last.pt").stat().st_mtime_ns
        except FileNotFoundError:
            stamp = None
        if stamp is not None and stamp != last:
            seen, last = seen + 1, stamp
        time.sleep(0.002)


@pytest.mark.slow
@pytest.mark.parametrize("checkpoints, delay", [(1, 0.0), (3, 0.013), (9, 0.05)])
def test_sigkill_then_resume_is_bit_exact(reference, tmp_path, checkpoints, delay):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(RESUME_CFG))
    run = tmp_path / "run"
    proc = _start(["train", cfg, "--out", run], tmp_path)
    _wait_for_checkpoints(run, proc, checkpoints)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    state = safe_load(run / "last.pt")  # the kill never leaves a torn checkpoint
    assert state["step"] < 4 * 41
    done = _start(["train", "--resume", run], tmp_path)
    out, err = done.communicate(timeout=300)
    assert done.returncode == 0, err
    assert_same_run(reference, run)


@pytest.mark.slow
def test_sigterm_saves_and_says_how_to_resume(reference, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(RESUME_CFG))
    run = tmp_path / "run"
    proc = _start(["train", cfg, "--out", run], tmp_path)
    _wait_for_checkpoints(run, proc, 2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert f"trainlab train --resume {run}" in err
    assert safe_load(run / "last.pt")["step"] < 4 * 41
    assert subprocess.run([sys.executable, "-m", "trainlab", "train", "--resume", str(run)],
                          capture_output=True, cwd=tmp_path).returncode == 0
    assert_same_run(reference, run)


def test_atomic_save_keeps_the_old_file_when_a_write_fails(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    atomic_save({"model": {"w": torch.ones(3)}}, path)

    def broken_save(obj, f):
        f.write(b"partial garbage")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError):
        atomic_save({"model": {"w": torch.zeros(3)}}, path)
    monkeypatch.undo()
    assert torch.equal(safe_load(path)["model"]["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left behind


def test_malicious_checkpoint_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    bad = tmp_path / "best.pt"
    torch.save({"model": Evil()}, bad)
    with pytest.raises(UserError, match="refusing to load"):
        safe_load(bad)
    assert not marker.exists()


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupted_checkpoint_one_line(tmp_path, damage, cli):
    run = tmp_path / "run"
    train_run(build_config(tiny_config(train={"epochs": 1})), run, quiet=True)
    blob = (run / "best.pt").read_bytes()
    data = {"truncate": blob[: len(blob) // 2], "garbage": os.urandom(2000), "empty": b""}[damage]
    (run / "best.pt").write_bytes(data)
    (run / "last.pt").write_bytes(data)
    code, _, err = cli("eval", run)
    assert_one_line_error(code, err, "best.pt")


def test_shape_mismatch_names_the_tensor(tmp_path):
    from trainlab.core.checkpoint import load_weights

    model = torch.nn.Sequential(torch.nn.Linear(4, 3))
    with pytest.raises(UserError, match=r"'0.weight' has shape \(3, 5\) but the model expects \(3, 4\)"):
        load_weights(model, {"0.weight": torch.zeros(3, 5), "0.bias": torch.zeros(3)})


def test_resume_refuses_config_changes(tmp_path, cli, reference):
    code, _, err = cli("train", "--resume", reference, "model.hidden=[8]")
    assert_one_line_error(code, err, "only train.epochs")


# ----------------------------------------------------------------------------- resume of a run whose epochs are done

KILL_POINTS = ("after the last epoch", "after the test evaluation", "before the report", "before result.json")


def _manifest(run: Path) -> dict:
    return json.loads((run / "manifest.json").read_text())


def _result(run: Path) -> dict:
    return json.loads((run / "result.json").read_text())


@pytest.fixture(scope="module")
def finish_snapshots(tmp_path_factory):
    """One uninterrupted run of RESUME_CFG, copied at each point of its finalisation where a kill can land."""
    import trainlab.workflows.train as wt
    from trainlab.observe import report

    root = tmp_path_factory.mktemp("finish")
    run, snaps = root / "full", {}

    def snapshot(point):
        snaps[point] = root / point.replace(" ", "-")
        shutil.copytree(run, snaps[point])

    def spy(module, name, point, when=lambda *a: True):
        real = getattr(module, name)

        def wrapper(*args, **kwargs):
            if when(*args):
                snapshot(point)
            return real(*args, **kwargs)
        return real, wrapper

    patches = [(wt, "evaluate_test", *spy(wt, "evaluate_test", KILL_POINTS[0])),
               (wt, "write_history", *spy(wt, "write_history", KILL_POINTS[1])),
               (report, "write_report", *spy(report, "write_report", KILL_POINTS[2])),
               (wt, "write_json", *spy(wt, "write_json", KILL_POINTS[3], lambda p, *_: p.name == "result.json"))]
    for module, name, _, wrapper in patches:
        setattr(module, name, wrapper)
    try:
        train_run(build_config(RESUME_CFG), run, quiet=True)
    finally:
        for module, name, real, _ in patches:
            setattr(module, name, real)
    assert list(snaps) == list(KILL_POINTS)
    return run, snaps


@pytest.mark.parametrize("point", KILL_POINTS)
def test_kill_during_finalisation_then_resume_completes_without_a_second_test_look(
        finish_snapshots, reference, point, tmp_path, cli):
    full, snaps = finish_snapshots
    run = tmp_path / "run"
    shutil.copytree(snaps[point], run)
    assert not (run / "result.json").exists() and safe_load(run / "last.pt")["epoch"] == 4
    assert _manifest(run)["test_evaluations"] == (0 if point == KILL_POINTS[0] else 1)
    (run / ".last.pt.k1ll3d.tmp").write_bytes(b"half a checkpoint")  # what a kill in atomic_save leaves
    (run / "manifest.json.tmp").write_text("{")
    code, out, err = cli("train", "--resume", run)
    assert code == 0, err
    assert not list(run.glob("*.tmp")) and not list(run.glob(".*.tmp"))
    assert ("not evaluated again" in out) == (point != KILL_POINTS[0])
    result, expected = _result(run), _result(full)
    assert result["test"] == expected["test"] and result["epochs_run"] == 4  # the same numbers, bit for bit
    assert result["confusion_matrix"] == expected["confusion_matrix"]
    assert _manifest(run)["test_evaluations"] == 1  # the test split was looked at exactly once
    assert (run / "history.csv").read_text() == (full / "history.csv").read_text()
    assert (run / "report.html").stat().st_size > 1000 and (run / "curves.png").is_file()
    assert_same_run(reference, run)

    before = (run / "manifest.json").read_bytes(), (run / "result.json").read_bytes()
    code, out, err = cli("train", "--resume", run)  # and now there is nothing left
    assert code == 0 and err == "" and out.count("\n") == 1 and out.startswith("nothing left to do")
    assert "train.epochs=N" in out
    assert ((run / "manifest.json").read_bytes(), (run / "result.json").read_bytes()) == before


def test_resume_with_more_epochs_continues_bit_exactly(tmp_path, cli):
    """A finished 2-epoch run resumed with train.epochs=3 equals a 3-epoch run; config.yaml records 3 epochs."""
    cfg = tiny_config(model={"dropout": 0.1}, train={"epochs": 2, "num_threads": 1})
    short, straight = tmp_path / "short", tmp_path / "straight"
    train_run(build_config(cfg), short, quiet=True)
    code, out, err = cli("train", "--resume", short, "train.epochs=3")
    assert code == 0, err
    assert "epoch   3/3" in out and "epoch   2/3" not in out
    assert yaml.safe_load((short / "config.yaml").read_text())["train"]["epochs"] == 3
    train_run(build_config({**cfg, "train": {**cfg["train"], "epochs": 3}}), straight, quiet=True)
    assert_same_run(straight, short)
    assert _result(short)["test"] == _result(straight)["test"] and _result(short)["epochs_run"] == 3
    assert _manifest(short)["test_evaluations"] == 2  # the 2-epoch weights were tested too: counted, and warned
    assert "evaluated 2 times" in err


def test_resume_of_an_early_stopped_run(tmp_path, cli):
    """Early stopping ended the run: resume completes it without training on, then says nothing is left."""
    cfg = tiny_config(train={"epochs": 6, "early_stopping": 1, "min_delta": 100.0})  # no epoch can improve
    run = tmp_path / "run"
    result = train_run(build_config(cfg), run, quiet=True)
    assert result["stopped_early"] and result["epochs_run"] == 2
    code, out, err = cli("train", "--resume", run)
    assert code == 0 and "stopped early after epoch 2" in out and "train.early_stopping" in out, (out, err)
    (run / "result.json").unlink()  # as if killed before it was written
    code, out, err = cli("train", "--resume", run)
    assert code == 0, err
    assert "train_loss" not in out  # no epoch trained
    assert _result(run)["test"] == result["test"] and _result(run)["epochs_run"] == 2
    assert _manifest(run)["test_evaluations"] == 1


@pytest.mark.slow
def test_sigkill_after_the_last_epoch_line_is_recoverable(tmp_path):
    """A real SIGKILL as soon as the last epoch line is printed (during the test evaluation or the report)."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(tiny_config(train={"epochs": 2, "num_threads": 1})))
    run, straight = tmp_path / "run", tmp_path / "straight"
    proc = _start(["train", cfg, "--out", run], tmp_path)
    for line in proc.stdout:
        if line.startswith("epoch   2/2"):
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    done = _start(["train", "--resume", run], tmp_path)
    out, err = done.communicate(timeout=300)
    assert done.returncode == 0, err
    assert _manifest(run)["test_evaluations"] == 1 and not list(run.glob(".*.tmp"))
    train_run(build_config(yaml.safe_load(cfg.read_text())), straight, quiet=True)
    assert _result(run)["test"] == _result(straight)["test"]
    assert_same_run(straight, run)
