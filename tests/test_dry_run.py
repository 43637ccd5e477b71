"""`trainlab train --dry-run`: two batches check the pipeline and say only what they can know - shapes, the pitfalls
found before training, a finite loss, the time per batch - without looking at the test split (it is looked at once,
by the real run) or judging curves, baselines and after-training checks that need a real run."""
from __future__ import annotations

import json

import pytest

from trainlab.data.prepare import DataView


@pytest.fixture
def test_split_spy(monkeypatch):
    """Every split whose batches were asked for, and every split whose batches were iterated."""
    asked, iterated = [], []
    real = DataView.batches

    def batches(self, split, device):
        asked.append(split)
        b = real(self, split, device)
        if b is not None:
            inner = b.iterate
            b.iterate = lambda *a, **k: (iterated.append(split), inner(*a, **k))[1]
        return b

    monkeypatch.setattr(DataView, "batches", batches)
    return asked, iterated


def read(path):
    return json.loads(path.read_text())


def test_dry_run_never_touches_the_test_split(cli, write_config, tmp_path, test_split_spy):
    # lr far too low and a sigmoid output before the logits loss: a real run's curves and baselines would raise
    # alarms on two batches (the network does not beat the baselines); the sigmoid is known before training
    cfg = write_config(model={"output_activation": "sigmoid"}, train={"lr": 1e-6, "epochs": 30})
    code, out, err = cli("train", cfg, "--dry-run", "--out", tmp_path / "d")
    assert code == 0, err
    asked, iterated = test_split_spy
    assert "train" in iterated and "val" in iterated
    assert "test" not in asked and "test" not in iterated
    result = read(tmp_path / "d" / "result.json")
    assert result["test"] == {} and read(tmp_path / "d" / "manifest.json")["test_evaluations"] == 0
    diag = result["diagnosis"]
    assert diag["dry_run"] is True and list(diag["checks"]) == ["divergence"] and diag["baselines"] == {}
    assert {f["stage"] for f in diag["findings"]} == {"before"}  # no curve or after-training finding
    assert diag["problems"] == ["output_activation"]  # the pitfall is still said, before training
    lines = out.splitlines()
    assert not [x for x in lines if x.startswith(("test", "baselines:", "diagnosis (epoch", "note:"))], out
    assert "majority class" not in out and "logistic regression" not in out
    facts = result["dry_run"]
    assert facts["input_shape"] == [1, 8, 8] and facts["outputs"] == 10 and facts["train_batches"] == 2
    assert facts["train_samples"] == 128 and facts["loss_finite"] is True
    assert facts["planned_epochs"] == 30 and facts["batches_per_epoch"] == 21  # digits: 1,293 training samples
    assert facts["estimated_run_seconds"] == pytest.approx(30 * facts["estimated_epoch_seconds"])
    assert 0 < facts["seconds_per_batch"] < 5


def test_healthy_dry_run_is_quiet_and_a_real_run_still_evaluates_the_test_split(cli, write_config, tmp_path,
                                                                                  test_split_spy):
    cfg = write_config()
    code, out, err = cli("train", cfg, "--dry-run", "--out", tmp_path / "d")
    assert code == 0, err
    result = read(tmp_path / "d" / "result.json")
    assert result["diagnosis"]["healthy"] and result["diagnosis"]["findings"] == []
    assert "warning" not in out + err and "dry run: no problem found before training" in out
    assert "dry run passed" in out
    page = (tmp_path / "d" / "report.html").read_text()
    assert "dry run: no problem found before training" in page and "a dry run leaves the test split" in page
    code, out, err = cli("train", cfg, "--out", tmp_path / "real")
    assert code == 0, err
    real = read(tmp_path / "real" / "result.json")
    assert "test" in test_split_spy[1] and 0.5 < real["test"]["accuracy"] <= 1
    assert read(tmp_path / "real" / "manifest.json")["test_evaluations"] == 1
    assert "dry_run" not in real and "dry_run" not in real["diagnosis"]
    assert {"overfitting", "underfitting", "divergence"} <= set(real["diagnosis"]["checks"])
