"""Fine-tuning and the tricks around the optimizer step, each checked against its definition: frozen
backbones (parameters and BatchNorm statistics bit for bit), per-group learning rates, gradient
accumulation, LR warmup, an EMA of the weights (with bit-exact resume), and multi-label classification."""
from __future__ import annotations

import copy
import json
import shutil

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from conftest import assert_one_line_error, tiny_config
from trainlab.core.errors import UserError
from trainlab.core.metrics import compute_metrics
from trainlab.core.multilabel import best_thresholds
from trainlab.engine import finetune
from trainlab.engine.trainer import Trainer
from trainlab.run.config import build_config
from trainlab.workflows.train import train_run


def small_net(outputs: int = 3, batch_norm: bool = True) -> nn.Module:
    torch.manual_seed(0)
    norm = [nn.BatchNorm1d(16)] if batch_norm else []
    return nn.Sequential(nn.Linear(6, 16), *norm, nn.ReLU(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, outputs))


def data(n: int = 70, outputs: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g)
    return TensorDataset(x, (x[:, :outputs] > 0).long().sum(1) % outputs)


# ----------------------------------------------------------------------------- freezing

def test_frozen_backbone_and_its_batchnorm_statistics_do_not_change_bit_for_bit():
    snapshots = []
    trainer = Trainer(small_net(), optimizer="adamw", weight_decay=0.1, lr=0.05, freeze="backbone", freeze_epochs=2,
                      progress=False, hooks=[lambda tr, rec: snapshots.append(copy.deepcopy(tr.model.state_dict()))])
    start = copy.deepcopy(trainer.model.state_dict())
    trainer.fit(data(), epochs=3, batch_size=16)
    backbone = [k for k in start if not k.startswith("5.")]  # the head is the last Linear, "5"
    assert "1.running_mean" in backbone and "1.num_batches_tracked" in backbone
    for epoch in (0, 1):  # frozen: weights, AdamW's decay and BatchNorm's running statistics leave them alone
        assert all(torch.equal(snapshots[epoch][k], start[k]) for k in backbone)
        assert not torch.equal(snapshots[epoch]["5.weight"], start["5.weight"])
    changed = [k for k in backbone if not torch.equal(snapshots[2][k], start[k])]
    assert "0.weight" in changed and "1.running_mean" in changed  # epoch 3 trains the whole network
    assert all(p.requires_grad for p in trainer.model.parameters())


def test_lr_mult_gives_the_backbone_its_own_learning_rate_also_under_onecycle():
    trainer = Trainer(small_net(), lr=0.01, lr_mult=0.1, progress=False)
    trainer.fit(data(), epochs=1, batch_size=16)
    head, backbone = trainer.optimizer.param_groups
    assert head["lr"] == 0.01 and backbone["lr"] == pytest.approx(0.001)
    assert {id(p) for p in head["params"]} == {id(p) for p in trainer.model[5].parameters()}
    cycle = Trainer(small_net(), lr=0.01, lr_mult=0.1, scheduler="onecycle", progress=False)
    cycle.fit(data(), epochs=1, batch_size=16)
    assert [g["max_lr"] for g in cycle.optimizer.param_groups] == pytest.approx([0.01, 0.001])


def test_freeze_is_refused_under_torchrun(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(UserError, match="train.freeze is not supported under torchrun"):
        train_run(build_config(tiny_config(train={"freeze": "backbone"})), quiet=True)


# ----------------------------------------------------------------------------- accumulation

def one_epoch_sgd(loss: str, batch_size: int, accumulate: int, ds, outputs: int) -> tuple[Trainer, dict]:
    trainer = Trainer(small_net(outputs, batch_norm=False), optimizer="sgd", momentum=0.0, lr=0.5, loss=loss,
                      accumulate=accumulate, progress=False, metrics=[] if loss == "mse" else None,
                      task="regression" if loss == "mse" else None, monitor="train_loss")
    trainer.fit(ds, epochs=1, batch_size=batch_size)
    return trainer, trainer.model.state_dict()


@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
def test_k_micro_batches_step_like_one_batch_of_k_times_b(loss):
    """59 samples: micro-batches of 8 in windows of 3 = batches of 24, the last window short (2 micro-batches,
    8 + 3 samples); the mean loss over samples (mse: over every output of every sample) must come out the same."""
    outputs = 3
    g = torch.Generator().manual_seed(1)
    x = torch.randn(59, 6, generator=g)
    y = torch.randn(59, outputs, generator=g) if loss == "mse" else torch.randint(0, outputs, (59,), generator=g)
    ds = TensorDataset(x, y)
    accumulated, state = one_epoch_sgd(loss, 8, 3, ds, outputs)
    reference, expected = one_epoch_sgd(loss, 24, 1, ds, outputs)
    assert accumulated.step == reference.step == 3  # optimizer steps, not micro-batches
    for k in expected:
        torch.testing.assert_close(state[k], expected[k], rtol=1e-5, atol=1e-6)
    start = small_net(outputs, batch_norm=False).state_dict()
    assert any((state[k] - start[k]).abs().max() > 1e-2 for k in start)  # it did move


def test_one_over_k_scaling_would_fail_this_test():
    """The same check on gradients directly: a short last micro-batch weighted 1/K (the transformers bug) differs."""
    model, loss_fn = small_net(batch_norm=False), nn.CrossEntropyLoss()
    ds = data(11)
    x, y = ds.tensors
    full = torch.autograd.grad(loss_fn(model(x), y), list(model.parameters()))
    parts = [(x[:8], y[:8]), (x[8:], y[8:])]
    weighted = [torch.autograd.grad(loss_fn(model(a), b) * len(b), list(model.parameters())) for a, b in parts]
    ours = [(g1 + g2) / 11 for g1, g2 in zip(*weighted, strict=True)]
    naive = [torch.autograd.grad(loss_fn(model(a), b) / 2, list(model.parameters())) for a, b in parts]
    naive = [g1 + g2 for g1, g2 in zip(*naive, strict=True)]
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(ours, full, strict=True))
    assert max(float((a - b).abs().max()) for a, b in zip(naive, full, strict=True)) > 1e-3


# ----------------------------------------------------------------------------- warmup

@pytest.mark.parametrize("scheduler", [None, "step"])
def test_warmup_rises_linearly_then_hands_over_to_the_scheduler(scheduler):
    """One step per epoch: after k steps the LR is lr * min(1, (k+1)/(warmup+1)), times StepLR's 0.5 every 2 epochs
    (the history's lr is read before the epoch's scheduler step: StepLR has stepped k - 1 times)."""
    extra = {"scheduler": "step", "step_size": 2, "gamma": 0.5} if scheduler else {}
    trainer = Trainer(small_net(), lr=0.1, warmup=4, progress=False, **extra)
    history = trainer.fit(data(16), epochs=7, batch_size=16)
    step_factor = [0.5 ** ((k - 1) // 2) if scheduler else 1.0 for k in range(1, 8)]
    expected = [0.1 * min(1.0, (k + 1) / 5) * f for k, f in zip(range(1, 8), step_factor, strict=True)]
    assert [r["lr"] for r in history] == pytest.approx(expected)


def test_warmup_with_onecycle_is_refused():
    with pytest.raises(UserError, match="onecycle warms up by itself"):
        Trainer(small_net(), warmup=5, scheduler="onecycle")


# ----------------------------------------------------------------------------- EMA

def test_ema_is_updated_once_per_optimizer_step_and_validates():
    decay, trajectory = 0.8, []
    trainer = Trainer(small_net(), lr=0.05, ema=decay, accumulate=2, progress=False)
    original = trainer.tricks.after_step

    def spy(model):
        original(model)
        trajectory.append({k: v.detach().clone() for k, v in model.state_dict().items()})

    trainer.tricks.after_step = spy
    raw = []  # the trained (not averaged) weights at the end of the epoch
    trainer.hooks.append(lambda tr, rec: raw.append(copy.deepcopy(tr.model.state_dict())))
    trainer.fit(data(), data(30, seed=1), epochs=1, batch_size=16)
    assert len(trajectory) == 3 and int(trainer.tricks.ema.n_averaged) == 3  # 5 micro-batches, windows of 2
    expected = trajectory[0]["0.weight"]
    for w in trajectory[1:]:
        expected = decay * expected + (1 - decay) * w["0.weight"]
    ema = trainer.tricks.ema.module.state_dict()
    torch.testing.assert_close(ema["0.weight"], expected)
    torch.testing.assert_close(ema["1.running_mean"], decay ** 2 * trajectory[0]["1.running_mean"]
                               + decay * (1 - decay) * trajectory[1]["1.running_mean"]
                               + (1 - decay) * trajectory[2]["1.running_mean"])
    assert not torch.equal(raw[0]["0.weight"], ema["0.weight"])
    assert torch.equal(trainer.model.state_dict()["0.weight"], ema["0.weight"])  # best weights = the EMA's
    val = trainer.history[0]["val_loss"]
    plain = copy.deepcopy(trainer.model)
    plain.load_state_dict(raw[0])
    x, y = data(30, seed=1).tensors
    with torch.no_grad():
        assert val == pytest.approx(float(nn.functional.cross_entropy(trainer.tricks.ema.module.eval()(x), y)),
                                    rel=1e-5)
        assert val != pytest.approx(float(nn.functional.cross_entropy(plain.eval()(x), y)), rel=1e-3)


RESUME_CFG = tiny_config(data={"batch_size": 32}, model={"hidden": [32], "batch_norm": True},
                         train={"epochs": 3, "lr": 0.003, "ema": 0.9, "accumulate": 2, "warmup": 6,
                                "scheduler": "cosine", "checkpoint_every": 5, "num_threads": 1})


@pytest.mark.slow  # two resumed runs: ~15 s on a loaded machine
def test_resume_with_ema_accumulation_and_warmup_is_bit_exact(tmp_path, monkeypatch):
    snapshots, original = [], Trainer._save_mid_epoch

    def spy(self, *args):
        original(self, *args)
        if self.step in (5, 25):  # inside epochs 1 and 2 (21 optimizer steps per epoch)
            snapshots.append(tmp_path / f"snap{self.step}")
            shutil.copytree(self.run_dir, snapshots[-1])

    monkeypatch.setattr(Trainer, "_save_mid_epoch", spy)
    train_run(build_config(RESUME_CFG), tmp_path / "full", quiet=True)
    monkeypatch.setattr(Trainer, "_save_mid_epoch", original)
    full = torch.load(tmp_path / "full" / "last.pt", weights_only=True)
    assert len(snapshots) == 2 and full["step"] == 3 * 21
    for snap in snapshots:
        train_run(build_config(RESUME_CFG), resume=snap, quiet=True)
        resumed = torch.load(snap / "last.pt", weights_only=True)
        assert all(torch.equal(resumed["model"][k], full["model"][k]) for k in full["model"])
        ema, ema_full = resumed["tricks"]["ema"], full["tricks"]["ema"]
        assert all(torch.equal(ema[k], ema_full[k]) for k in ema_full)
        assert [r["val_loss"] for r in resumed["history"]] == [r["val_loss"] for r in full["history"]]


# ----------------------------------------------------------------------------- multi-label

def test_best_thresholds_maximize_each_labels_f1():
    probs = np.array([[0.9, 0.35], [0.8, 0.3], [0.2, 0.32], [0.1, 0.1], [0.6, 0.05]])
    targets = np.array([[1, 1], [1, 1], [0, 1], [0, 0], [1, 0]])
    assert best_thresholds(probs, targets).tolist() == pytest.approx([0.6, 0.3])


def test_multilabel_metrics_count_label_decisions():
    logits = torch.tensor([[2.0, -1.0, 0.5], [-2.0, 1.0, -0.5]])
    targets = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
    m = compute_metrics(["accuracy", "f1"], logits, targets, "multilabel")
    assert float(m["accuracy"]) == pytest.approx(4 / 6)  # two of six label decisions wrong
    assert float(m["f1"]) == pytest.approx((1 + 1 + 0) / 3)  # per label, then averaged


def test_multilabel_csv_trains_with_bce_and_reports_per_label_thresholds(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 3))
    labels = np.stack([x[:, 0] > 0, x[:, 1] > 0.8, (x[:, 2] > 0) & (x[:, 0] < 0)], axis=1).astype(int)
    rows = ["f0,f1,f2,a,b,c"] + [",".join([*(f"{v:.4f}" for v in r), *map(str, t)]) for r, t in zip(x, labels,
                                                                                                    strict=True)]
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    cfg = tiny_config(data={"name": "csv", "path": str(tmp_path / "t.csv"), "target": ["a", "b", "c"],
                            "batch_size": 32}, train={"epochs": 20, "lr": 0.01})
    result = train_run(build_config(cfg), tmp_path / "run", quiet=True)
    assert result["test"]["accuracy"] > 0.85 and set(result["test"]) == {"loss", "accuracy", "f1"}
    per_label = result["per_class"]
    assert list(per_label) == ["a", "b", "c"] and result["thresholds"] == "chosen on the validation split"
    assert all(0 < m["threshold"] < 1 and m["support"] > 0 for m in per_label.values())
    data = json.loads((tmp_path / "run" / "data.json").read_text())
    assert data["task"] == "multilabel" and data["num_outputs"] == 3 and data["classes"] == ["a", "b", "c"]


def test_multilabel_targets_must_be_zero_or_one(tmp_path, write_config, cli):
    (tmp_path / "t.csv").write_text("f,a,b\n0.1,1,0\n0.2,2,1\n")
    code, _, err = cli("train", write_config(data={"name": "csv", "path": str(tmp_path / "t.csv"),
                                                   "target": ["a", "b"]}))
    assert_one_line_error(code, err, "multi-label target column 'a'", "must be 0 or 1")


def test_multilabel_refuses_a_single_label_loss():
    with pytest.raises(UserError, match="use bce_with_logits"):
        Trainer(small_net(), loss="cross_entropy", task="multilabel")
    assert finetune.steps_per_epoch(5, 2) == 3 and finetune.window_ends(4, 5, 2) and not finetune.window_ends(2, 5, 2)
