"""Diagnoses of the curves: each check on made-up histories (clear cases flagged, healthy ones not), then real
tiny trainings that provoke each problem on purpose - and a healthy demo run that must not be flagged.
(Pitfalls found before training: test_pitfalls.py; the Trainer speaking: test_guide.py.)"""
from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest
from PIL import Image

from conftest import assert_one_line_error
from trainlab.diagnose import checks
from trainlab.diagnose import curves as dg
from trainlab.diagnose import guide as guide_module
from trainlab.diagnose.diagnosis import Finding, Signals, diagnose
from trainlab.observe import monitor as observe
from trainlab.run.config import build_config, load_config
from trainlab.workflows.train import train_run

LN10 = math.log(10)


def hist(train, val, **extra) -> list[dict]:
    return [{"epoch": i + 1, "train_loss": t, "val_loss": v, "time": 1.0, "train_data_time": 0.01, **extra}
            for i, (t, v) in enumerate(zip(train, val, strict=True))]


def noisy_healthy(seed: int, sigma: float, n: int = 30) -> list[dict]:
    """Val loss falls to a plateau with multiplicative noise (like digits' 144-sample validation split)."""
    r = random.Random(seed)
    val = [(0.05 + 0.6 * math.exp(-e / 3)) * math.exp(r.gauss(0, sigma)) for e in range(n)]
    train = [(0.01 + 1.5 * math.exp(-e / 3)) * 0.98 ** e for e in range(n)]
    return hist(train, val)


# ----------------------------------------------------------------------------- overfitting

def test_overfitting_rise_names_the_epoch_and_remedies():
    train = [1.0 / (e + 1) ** 2 for e in range(20)]
    val = [max(0.6 - 0.1 * e, 0.2 + 0.015 * (e - 4)) for e in range(20)]  # bottom 0.2 at epoch 5, then +0.015/epoch
    c = dg.overfitting(hist(train, val), {"early_stopping": None, "dropout": 0.0, "weight_decay": 0.0,
                                          "kind": "image", "augment": False})
    assert c["status"] == "warning" and c["since_epoch"] == 5
    assert c["message"].startswith("overfitting since epoch 5: validation loss bottomed at epoch 5 (0.2)")
    assert "is 0.395 now (+98%)" in c["message"]  # mean of the last 5 epochs (0.365 .. 0.425) vs 0.2
    assert any("early_stopping" in r for r in c["remedies"]) and any("dropout" in r for r in c["remedies"])
    assert any("weight_decay" in r for r in c["remedies"]) and any("augmentation" in r for r in c["remedies"])
    c = dg.overfitting(hist(train, val), {"early_stopping": 5, "dropout": 0.3, "weight_decay": 1e-4})
    assert not any("early_stopping" in r or "dropout" in r or "weight_decay" in r for r in c["remedies"])


def test_overfitting_plateau_with_memorized_training_set():
    train = [1.0 * 0.6 ** e for e in range(20)]  # -> 6e-5: memorized
    val = [max(0.9 - 0.2 * e, 0.24) for e in range(20)]  # flat at 0.24 from epoch 5
    assert dg.overfitting(hist(train, val), baseline_loss=LN10)["status"] == "warning"
    # the same curves with a gap too small to matter (both near 0) are not overfitting
    small = [v / 20 for v in val]
    assert dg.overfitting(hist(train, small), baseline_loss=LN10)["status"] == "ok"


def test_overfitting_caught_by_early_stopping_is_ok_and_one_sentence_everywhere():
    train = [1.0 / (e + 1) ** 2 for e in range(12)]
    val = [max(0.6 - 0.1 * e, 0.2 + 0.03 * (e - 4)) for e in range(12)]
    c = dg.overfitting(hist(train, val), stopped_early=True, restored_epoch=5)
    assert c["status"] == "ok" and c["caught"]
    assert c["message"].startswith("early stopping caught overfitting at epoch 5 (the epoch-5 weights were restored)")
    # the console, result.json and the report all render this one finding: a note, not "healthy - no overfitting"
    d = diagnose(Signals(hist(train, val), stopped_early=True, best_epoch=5), before=[])
    assert d.healthy and [f.code for f in d.findings] == ["overfitting"] and d.findings[0].severity == "note"
    assert d.lines()[1] == "note: " + c["message"] and d.to_dict()["lines"] == d.lines()
    # early stopping on, but the epoch limit ended the run first: the restored weights handle it too (a note)
    c = dg.overfitting(hist(train, val), {"early_stopping": 30}, stopped_early=False, restored_epoch=5)
    assert c["status"] == "ok" and c["caught"]
    assert "handled: early stopping is on and the epoch-5 weights" in c["message"]


@pytest.mark.parametrize("sigma", [0.1, 0.25, 0.4])
def test_noisy_healthy_runs_are_not_flagged(sigma):
    """The false-positive guard: 200 noisy but healthy histories. At the end of training none is flagged; judged
    after every epoch (as the live diagnosis does) at most 1% are, at some epoch."""
    final, live = 0, 0
    for seed in range(200):
        h = noisy_healthy(seed, sigma)
        final += dg.overfitting(h, baseline_loss=LN10)["status"] != "ok"
        live += any(dg.overfitting(h[:n], baseline_loss=LN10)["status"] != "ok" for n in range(7, len(h)))
    assert final == 0 and live <= 2, (final, live)


def test_overfitting_needs_enough_validation_epochs():
    assert dg.overfitting(hist([1, 0.5, 0.2], [1, 0.9, 1.2]))["status"] == "skipped"
    assert dg.overfitting([{"epoch": 1, "train_loss": 1.0}] * 10)["status"] == "skipped"


# ----------------------------------------------------------------------------- underfitting, divergence

def test_underfitting_flat_vs_falling_vs_healthy():
    flat = dg.underfitting(hist([2.25, 2.2, 2.19, 2.19, 2.185, 2.185], [2.2] * 6), LN10)
    assert flat["status"] == "warning" and flat["flat"] and "high and flat" in flat["message"]
    assert any("bigger model" in r for r in flat["remedies"])
    falling = dg.underfitting(hist([2.2, 2.0, 1.8, 1.6, 1.45, 1.3], [2.1, 1.9, 1.7, 1.5, 1.4, 1.3]), LN10)
    assert falling["status"] == "warning" and not falling["flat"] and "more epochs" in falling["remedies"][0]
    assert dg.underfitting(hist([1.5, 0.4, 0.1], [0.6, 0.2, 0.1]), LN10)["status"] == "ok"
    assert dg.underfitting(hist([1.5], [0.6]), None)["status"] == "skipped"


def test_divergence_blowup_nan_rise_and_failure():
    steps = [[2.3, 2.0, 1.8, 1.7], [1.6, 1.9, 40.0, 1e4]]  # blows up at global step 7, climbing from step 5
    c = dg.divergence(hist([1.9, 2.5e3], [1.7, 3e3]), steps, LN10)
    assert c["status"] == "warning" and (c["step"], c["start_step"], c["epoch"]) == (7, 6, 2)
    c = dg.divergence(hist([1.0, 0.8], [1.0, 0.9]), [[1.0, 0.9], [0.8, float("nan")]], LN10)
    assert c["step"] == 4 and "non-finite" in c["message"]
    train = [0.5, 0.3, 0.6, 0.9]  # rising for two epochs, validation loss with it
    c = dg.divergence(hist(train, [0.5, 0.4, 0.6, 0.9]), [[t] * 3 for t in train], LN10)
    assert c["status"] == "warning" and "rose from 0.3 at epoch 2 to 0.9" in c["message"] and c["start_step"] == 7
    c = dg.divergence([], failure={"step": 25, "epoch": 1, "layer": "1.weight"})
    assert c["status"] == "warning" and c["step"] == 25 and "step 25" in c["message"]
    # near-zero training losses jitter by 50% without diverging
    assert dg.divergence(hist([0.01, 0.004, 0.006], [0.1] * 3), [], LN10)["status"] == "ok"


# ----------------------------------------------------------------------------- gradients, units, pipeline

def test_gradients_vanishing_exploding_healthy():
    vanish = [{"0.weight": 1e-8, "2.weight": 1e-5, "4.weight": 1e-2}] * 3
    c = dg.gradients(vanish)
    assert c["status"] == "warning" and c["problem"] == "vanishing" and c["first_to_last"] == pytest.approx(1e-6)
    assert dg.gradients([{"0.weight": 10.0, "4.weight": 1e-3}] * 3)["problem"] == "exploding"
    growth = [{"0.weight": 0.01 * 10 ** e, "4.weight": 0.01 * 10 ** e} for e in range(4)]  # 1000x growth
    assert dg.gradients(growth)["problem"] == "exploding"
    ok = dg.gradients([{"0.weight": 0.002, "4.weight": 0.015}] * 5)
    assert ok["status"] == "ok" and ok["first_to_last"] == pytest.approx(0.002 / 0.015)
    assert dg.gradients([{"0.weight": 0.0, "4.weight": 0.0}])["status"] == "skipped"  # loss exactly 0


def test_dead_units_thresholds():
    assert dg.dead_units([{"2": 0.6, "4": 0.0}])["status"] == "warning"  # one layer over half dead
    assert dg.dead_units([{"2": 0.3, "4": 0.3}])["status"] == "warning"  # 30% overall
    c = dg.dead_units([{"2": 0.1, "4": 0.05}])
    assert c["status"] == "ok" and c["dead_fraction"] == pytest.approx(0.075)
    assert dg.dead_units([])["status"] == "skipped"


def test_input_pipeline_share_skips_warmup_and_names_the_setting():
    rows = [{"epoch": 1, "time": 10.0, "train_data_time": 9.0}] + [{"epoch": e, "time": 1.0, "train_data_time": 0.6}
                                                                   for e in (2, 3)]
    c = dg.input_pipeline(rows, {"data_path": "streaming", "num_workers": 0, "cpu_count": 8})
    assert c["status"] == "warning" and c["share"] == pytest.approx(0.6)
    assert c["remedies"][0].startswith("data.num_workers: 4")
    c = dg.input_pipeline(rows, {"data_path": "streaming", "num_workers": 4, "device": "cuda", "pin_memory": False})
    assert any("persistent_workers" in r for r in c["remedies"]) and any("pin_memory" in r for r in c["remedies"])
    assert dg.input_pipeline([{"time": 1.0, "train_data_time": 0.05, "train_time": 0.2}] * 2)["share"] == 0.25
    tiny = dg.input_pipeline([{"time": 0.1, "train_data_time": 0.04, "train_time": 0.05}] * 3)  # 80% of 0.05 s
    assert tiny["status"] == "ok" and "0.04 s per epoch" in tiny["message"], tiny


def test_one_noisy_last_epoch_is_not_divergence():
    """The false alarm of an image-folder run: train loss 0.048 -> 0.129 in the last epoch (a few bad batches of a
    small dataset) while validation loss reached its best. Judged on median step losses and the val curve: ok."""
    train, val = [0.9, 0.3, 0.1, 0.048, 0.129], [0.8, 0.4, 0.3, 0.25, 0.21]
    steps = [[0.9] * 4, [0.3] * 4, [0.1] * 4, [0.05, 0.04, 0.05, 0.05], [0.05, 0.06, 0.05, 0.36]]  # one bad batch
    assert dg.divergence(hist(train, val), steps, LN10)["status"] == "ok"
    assert dg.divergence(hist(train, val), [], LN10)["status"] == "ok"  # val at its best: not divergence either
    # the same rise that lasts, with validation loss rising too, is divergence
    train2, val2 = [0.9, 0.3, 0.1, 0.3, 0.6], [0.8, 0.4, 0.3, 0.5, 0.9]
    c = dg.divergence(hist(train2, val2), [[t] * 4 for t in train2], LN10)
    assert c["status"] == "warning" and "rose from 0.1 at epoch 3 to 0.6" in c["message"]


def test_learning_rate_far_too_low_vs_moving():
    flat = [[2.303, 2.302, 2.303, 2.302, 2.302, 2.301, 2.302, 2.301, 2.301, 2.300]]
    c = dg.learning_rate(flat, update_ratio=2e-4, lr=1e-6)
    assert c["status"] == "warning" and "far too low at lr=1e-06" in c["message"] and "lr-find" in c["remedies"][0]
    assert dg.learning_rate(flat, update_ratio=0.05, lr=1e-3)["status"] == "ok"  # a plateau, but weights move
    falling = [[2.3, 2.1, 1.9, 1.6, 1.4, 1.2, 1.0, 0.9, 0.8, 0.7]]
    assert dg.learning_rate(falling, update_ratio=2e-4, lr=1e-3)["status"] == "ok"
    assert dg.learning_rate(flat, None, 1e-6)["status"] == "skipped"


def test_a_pitfall_found_before_training_is_named_as_the_cause_of_a_stall():
    flat = hist([2.25, 2.2, 2.19, 2.19, 2.185, 2.185], [2.2] * 6)
    sigmoid = Finding("output_activation", "warning", "the model ends in Sigmoid ...",
                      ["model.output_activation: null"], stage="before")
    d = diagnose(Signals(flat, baseline_loss=LN10), before=[sigmoid])
    under = next(f for f in d.findings if f.code == "underfitting")
    assert under.fix[0] == "first: model.output_activation: null" and "output activation found before" in under.cause
    assert d.problems == ["output_activation", "underfitting"]  # the cause first, then the symptom
    leak = Finding("duplicates", "warning", "leakage ...", ["deduplicate"], stage="before")
    under = next(f for f in diagnose(Signals(flat, baseline_loss=LN10), before=[leak]).findings
                 if f.code == "underfitting")
    assert under.fix[0].startswith("a bigger model")  # leakage does not stall training: no false link


def test_vanishing_gradients_and_dead_units_name_a_cause_found_before_training_first():
    """A random backbone frozen under the head (or a Sigmoid before the loss) explains the gradient and dead-unit
    readings too: fix the setting, then judge them again."""
    curve = hist([1.0, 0.6, 0.4], [1.0, 0.7, 0.5])
    frozen = Finding("frozen_backbone", "warning", "frozen random backbone", ["train.freeze: none"], stage="before")
    sig = Signals(curve, grad_rms=[{"a": 1e-8, "b": 1.0}] * 3, dead=[{"1": 0.9}] * 3, baseline_loss=LN10)
    d = diagnose(sig, before=[frozen])
    for code in ("gradients", "dead_units"):
        f = next(f for f in d.findings if f.code == code)
        assert f.fix[0] == "first: train.freeze: none" and f.evidence["likely_cause"] == "frozen_backbone"
    plain = next(f for f in diagnose(sig).findings if f.code == "gradients")
    assert not plain.fix[0].startswith("first:") and "likely_cause" not in plain.evidence


def test_diagnosis_lines_and_dict():
    healthy = diagnose(Signals(hist([1.0, 0.3], [0.8, 0.3]), baseline_loss=LN10))
    assert healthy.healthy and healthy.lines()[0].startswith("diagnosis: healthy")
    sick = diagnose(Signals(hist([1.0, 0.3], [0.8, 0.3]), failure={"step": 3, "epoch": 1}))
    assert sick.problems == ["divergence"]
    lines = sick.lines()
    assert lines[0].startswith("diagnosis: divergence") and lines[1].startswith("  try: lower the learning rate")
    d = sick.to_dict()
    assert d["problems"] == ["divergence"] and d["findings"][0]["fix"][0].startswith("lower the learning rate")
    assert str(type(sick).from_dict(json.loads(json.dumps(d)))) == str(sick)  # result.json renders the same


# ----------------------------------------------------------------------------- real trainings

def digits_cfg(**sections) -> dict:
    cfg = {"seed": 0, "data": {"name": "digits", "batch_size": 32}, "model": {"name": "mlp", "hidden": [64]},
           "train": {"epochs": 3, "lr": 1e-3, "num_threads": 1}}  # 1 thread: far faster on a busy 2-core CI box
    for name, values in sections.items():
        cfg[name].update(values)
    return cfg


def train(cfg: dict, out):
    return train_run(build_config(cfg), out=out, quiet=True)


def test_large_mlp_on_200_samples_overfits(tmp_path):
    # 216 training samples (80% of digits held out for test), two 512-unit layers, no dropout/decay/early stop
    cfg = digits_cfg(data={"test_fraction": 0.8, "val_fraction": 0.4},
                     model={"hidden": [512, 512], "dropout": 0.0}, train={"epochs": 16, "lr": 3e-3})
    check = train(cfg, tmp_path)["diagnosis"]["checks"]["overfitting"]
    assert check["status"] == "warning" and 3 <= check["since_epoch"] <= 8, check
    assert check["train_accuracy"] == 1.0 and check["val_accuracy"] < 0.97
    assert any("early_stopping" in r for r in check["remedies"])


def test_lr_10_diverges_and_is_announced_live(tmp_path, write_config, cli):
    code, out, err = cli("train", write_config(digits_cfg(train={"lr": 10.0, "epochs": 2})), "--out", tmp_path / "r")
    assert code == 0, err
    d = json.loads((tmp_path / "r" / "result.json").read_text())["diagnosis"]
    assert d["checks"]["divergence"]["status"] == "warning" and d["checks"]["divergence"]["step"] == 2
    assert "diagnosis (epoch 1): divergence: the loss jumped to" in out  # printed live, after the first epoch
    assert "  try: lower the learning rate" in out


def test_nan_loss_records_the_divergence_step(tmp_path, write_config, cli):
    cfg = digits_cfg(train={"lr": 10.0, "optimizer": "sgd", "epochs": 2}, model={"hidden": [256, 128]})
    code, out, err = cli("train", write_config(cfg), "--out", tmp_path / "r")
    assert_one_line_error(code, err, "non-finite")
    step = int(err.split("at step ")[1].split()[0])
    res = json.loads((tmp_path / "r" / "result.json").read_text())
    div = res["diagnosis"]["checks"]["divergence"]
    assert div["status"] == "warning" and div["step"] == step and res["error"].startswith("loss became non-finite")
    assert (tmp_path / "r" / "report.html").is_file() and "diagnosis: divergence" in out


def test_deep_sigmoid_mlp_vanishes_and_underfits(tmp_path):
    cfg = digits_cfg(model={"hidden": [32] * 8, "activation": "sigmoid"}, train={"epochs": 3})
    checks = train(cfg, tmp_path)["diagnosis"]["checks"]
    assert checks["gradients"]["problem"] == "vanishing" and checks["gradients"]["first_to_last"] < 1e-4
    assert checks["underfitting"]["status"] == "warning" and checks["underfitting"]["loss_ratio"] > 0.9
    assert checks["dead_units"]["status"] == "skipped"  # no ReLU in the model


def test_high_lr_relu_mlp_has_dead_units(tmp_path):
    cfg = digits_cfg(model={"hidden": [256, 128], "dropout": 0.0}, train={"lr": 0.05, "epochs": 3})
    check = train(cfg, tmp_path)["diagnosis"]["checks"]["dead_units"]
    assert check["status"] == "warning" and check["worst_fraction"] >= 0.5


def test_streaming_decoded_images_are_a_pipeline_bottleneck(tmp_path):
    rng = np.random.default_rng(0)
    for c in range(2):  # 64 large PNGs decoded and resized per sample, for a 4-unit MLP: data loading dominates
        (tmp_path / "img" / f"c{c}").mkdir(parents=True)  # 640x640 noise: >= 0.1 s of decoding per epoch even on
        for i in range(32):                                 # a fast idle machine (the check ignores shorter waits)
            Image.fromarray((rng.random((640, 640, 3)) * 80 + 60 * c).astype(np.uint8)).save(
                tmp_path / "img" / f"c{c}" / f"{i}.png")
    cfg = {"seed": 0, "data": {"name": "image_folder", "path": str(tmp_path / "img"), "image_size": [32, 32],
                               "in_memory": False, "batch_size": 16, "val_fraction": 0.1},
           "model": {"name": "mlp", "hidden": [4]}, "train": {"epochs": 2, "lr": 0.01, "num_threads": 1}}
    check = train(cfg, tmp_path / "stream")["diagnosis"]["checks"]["input_pipeline"]
    assert check["status"] == "warning" and check["remedies"][0].startswith("data.num_workers:"), check
    assert check["share"] > 0.4  # measured ~0.5-0.6; the threshold is 0.3
    cfg["data"]["in_memory"] = True  # decoded once up front: the same run keeps up
    assert train(cfg, tmp_path / "mem")["diagnosis"]["checks"]["input_pipeline"]["status"] == "ok"


def test_demo_config_is_healthy(tmp_path):
    res = train_run(load_config("examples/digits-mlp.yaml", ["train.epochs=12", "train.num_threads=1"]), out=tmp_path,
                    quiet=True)
    assert res["diagnosis"]["healthy"], res["diagnosis"]["problems"]
    assert res["test"]["accuracy"] > 0.93
    assert res["diagnosis"]["checks"]["dead_units"]["dead_fraction"] < 0.1


def test_observing_does_not_change_training(tmp_path, monkeypatch):
    """The guide and hooks run eval-mode probes and log; with dropout in the model, the losses must match a run
    without hooks, pitfall checks, dead-unit probes or baselines."""
    cfg = digits_cfg(model={"hidden": [64], "dropout": 0.3}, train={"epochs": 2})
    with_hooks = train(cfg, tmp_path / "a")
    monkeypatch.setattr(observe, "epoch_hooks", lambda *a: [])
    monkeypatch.setattr(checks, "CHECKS", {k: c for k, c in checks.CHECKS.items() if c.stage != "before"})
    monkeypatch.setattr(guide_module, "activation_stats", lambda *a: {})
    monkeypatch.setattr(guide_module.Guide, "finish", lambda *a: None)
    without = train(cfg, tmp_path / "b")
    assert with_hooks["final"]["train_loss"] == without["final"]["train_loss"]
    assert with_hooks["test"] == without["test"]


def test_resumed_run_keeps_the_signals_of_earlier_epochs(tmp_path, write_config, cli):
    cfg = write_config(digits_cfg(train={"epochs": 2}))
    assert cli("train", cfg, "--out", tmp_path / "r")[0] == 0
    code, out, err = cli("train", "--resume", tmp_path / "r", "train.epochs=4")
    assert code == 0, err
    lines = [json.loads(t) for t in (tmp_path / "r" / observe.SIGNALS_FILE).read_text().splitlines()]
    assert [row["epoch"] for row in lines] == [1, 2, 3, 4]
    res = json.loads((tmp_path / "r" / "result.json").read_text())
    assert res["diagnosis"]["checks"]["gradients"]["epochs"] == 4  # epochs 1-2 read back from last.pt
    assert len(list((tmp_path / "r" / "tb").glob("events.out.tfevents.*"))) == 2
