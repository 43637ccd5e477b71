"""Every `train` setting the Trainer accepts takes effect: each TrainConfig key is passed as a keyword
argument to `Trainer(...)` and its effect is checked on a short fit (a setting taken and ignored is a bug:
`Trainer(model, epochs=3).fit(ds)` once trained 10 epochs)."""
from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from trainlab import Trainer
from trainlab.engine.settings import TrainConfig

N, D, K = 96, 8, 3


def data(nan_at: int | None = None) -> torch.utils.data.TensorDataset:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N, D, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 1).long()  # 3 classes, learnable
    if nan_at is not None:
        x[nan_at] = float("nan")
    return torch.utils.data.TensorDataset(x, y)


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(D, 16), nn.ReLU(), nn.Linear(16, K))


def fit(epochs: int = 2, model: nn.Module | None = None, train=None, hooks=(), **settings) -> Trainer:
    trainer = Trainer(model or mlp(), progress=False, verbose=settings.pop("verbose", False), hooks=hooks, **settings)
    trainer.fit(train or data(), data(), epochs=epochs, batch_size=16)
    return trainer


def first_weight(trainer: Trainer) -> torch.Tensor:
    return next(trainer.model.parameters()).detach().clone()


def check_epochs():
    trainer = Trainer(mlp(), epochs=3, progress=False, verbose=False)
    assert len(trainer.fit(data(), data())) == 3  # fit's epochs default is the Trainer's setting


def check_optimizer():
    assert isinstance(fit(1, optimizer="sgd").optimizer, torch.optim.SGD)


def check_lr():
    assert fit(1, lr=0.037).history[-1]["lr"] == pytest.approx(0.037)


def check_weight_decay():
    assert fit(1, weight_decay=0.01).optimizer.param_groups[0]["weight_decay"] == 0.01


def check_loss():
    # a regression loss on class labels as float targets: the Trainer builds what it is told
    x, y = data().tensors
    ds = torch.utils.data.TensorDataset(x, y.float().unsqueeze(1))
    model = nn.Sequential(nn.Linear(D, 1))
    trainer = Trainer(model, loss="l1", progress=False, verbose=False, baselines=False)
    trainer.fit(ds, ds, epochs=1)
    assert trainer.loss_name == "l1" and trainer.loss_fn.fn is torch.nn.functional.l1_loss
    assert "val_mae" in trainer.history[-1]


def check_label_smoothing():
    assert fit(1, label_smoothing=0.2).loss_fn.label_smoothing == 0.2


def check_scheduler():
    assert isinstance(fit(1, scheduler="cosine").scheduler, torch.optim.lr_scheduler.CosineAnnealingLR)


def check_grad_clip():
    def moved(**kw):
        t = Trainer(mlp(), optimizer="sgd", lr=1.0, progress=False, verbose=False, baselines=False, **kw)
        before = first_weight(t)
        t.fit(data(), epochs=1, batch_size=16)
        return float((first_weight(t) - before).abs().max())
    assert moved(grad_clip=1e-6) < 1e-4 < moved()  # six steps of at most 1e-6 each


def check_metrics():
    record = fit(1, metrics=["accuracy"]).history[-1]
    assert "val_accuracy" in record and "val_f1" not in record


def check_monitor():
    assert fit(1, monitor="val_accuracy").monitor == "val_accuracy"


def check_early_stopping():
    # no epoch after the first improves by 1e9: the run stops after 1 + early_stopping epochs
    trainer = fit(10, early_stopping=2, min_delta=1e9)
    assert len(trainer.history) == 3 and trainer.stopped_early


def check_min_delta():
    assert fit(3, min_delta=1e9).best_epoch == 1


def check_device():
    assert fit(1, device="cpu").device == torch.device("cpu")


def check_precision():
    trainer = fit(1, precision="bf16")
    assert trainer.choice.precision.name == "bf16"
    x = data().tensors[0][:4]
    with trainer.choice.precision.autocast():
        assert trainer.model(x).dtype == torch.bfloat16


def check_compile():
    trainer = Trainer(mlp(), compile=True, progress=False, verbose=False)
    assert isinstance(trainer.eval_forward, torch._dynamo.eval_frame.OptimizedModule)


def check_channels_last():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, K))
    x, y = torch.randn(32, 1, 6, 6), torch.randint(0, K, (32,))
    trainer = Trainer(model, channels_last=True, progress=False, verbose=False, baselines=False)
    trainer.fit(torch.utils.data.TensorDataset(x, y), epochs=1, batch_size=16)
    assert trainer.model[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert not Trainer(model, channels_last=False).prepare().channels_last


def check_checkpoint_every(tmp_path):
    saves = []
    trainer = Trainer(mlp(), checkpoint_every=2, run_dir=tmp_path, progress=False, verbose=False)
    trainer._save_mid_epoch = lambda *a: saves.append(trainer.step)
    trainer.fit(data(), epochs=1, batch_size=16)
    assert saves == [2, 4, 6]  # 6 steps an epoch


def check_on_nan():
    trainer = fit(1, on_nan="skip", train=data(nan_at=5), baselines=False)  # "stop" would raise NonFiniteLoss
    assert len(trainer.history) == 1


def check_deterministic():
    seen = []
    fit(1, deterministic=True, hooks=[lambda t, r: seen.append(torch.are_deterministic_algorithms_enabled())])
    assert seen == [True] and not torch.are_deterministic_algorithms_enabled()  # restored after fit


def check_num_threads():
    seen, before = [], torch.get_num_threads()
    fit(1, num_threads=1, hooks=[lambda t, r: seen.append(torch.get_num_threads())])
    assert seen == [1] and torch.get_num_threads() == before  # restored after fit


def check_log_interval(monkeypatch):
    updates = []
    real = Trainer._train_step

    def step(self, xb, yb, i, n):
        loss, out = real(self, xb, yb, i, n)
        updates.append(i) if (i + 1) % self.settings.log_interval == 0 or i + 1 == n else None
        return loss, out
    monkeypatch.setattr(Trainer, "_train_step", step)
    trainer = fit(1, log_interval=4)
    assert trainer.settings.log_interval == 4 and updates == [3, 5]  # steps 4 and 6 (the last) refresh


def check_freeze():
    t = Trainer(mlp(), freeze="backbone", freeze_epochs=1, progress=False, verbose=False, baselines=False)
    before, head = first_weight(t), t.model[2].weight.detach().clone()
    t.fit(data(), epochs=1, batch_size=16)
    assert torch.equal(first_weight(t), before) and not torch.equal(t.model[2].weight, head)


def check_freeze_epochs():
    t = Trainer(mlp(), freeze="backbone", freeze_epochs=0, progress=False, verbose=False, baselines=False)
    before = first_weight(t)
    t.fit(data(), epochs=1, batch_size=16)
    assert not torch.equal(first_weight(t), before)  # no frozen epoch


def check_lr_mult():
    lrs = sorted(g["lr"] for g in fit(1, lr=0.01, lr_mult=0.1).optimizer.param_groups)
    assert lrs == pytest.approx([0.001, 0.01])


def check_accumulate():
    assert fit(1, accumulate=2).step == 3  # 6 micro-batches, 2 per optimizer step


def check_warmup():
    # after 6 of 100 warmup steps the learning rate is lr x 7/101
    assert fit(1, lr=0.01, warmup=100).optimizer.param_groups[0]["lr"] == pytest.approx(0.01 * 7 / 101)


def check_ema():
    assert fit(1, ema=0.9).tricks.ema is not None


def check_class_weights():
    assert fit(1, class_weights="auto").loss_fn.weight is not None


def check_verbose(capsys):
    fit(1, verbose=True)
    assert "epoch   1/1" in capsys.readouterr().out


def check_baselines():
    assert fit(1, baselines=True).diagnosis.baselines and not fit(1, baselines=False).diagnosis.baselines


def check_optimizer_params():
    assert fit(1, optimizer="sgd", momentum=0.9).optimizer.param_groups[0]["momentum"] == 0.9


def check_scheduler_params():
    assert fit(1, scheduler="step", step_size=7).scheduler.step_size == 7


CHECKS = {name[len("check_"):]: f for name, f in globals().items() if name.startswith("check_")}


def test_every_setting_has_a_check():
    keys = {f.name for f in dataclasses.fields(TrainConfig)}
    assert keys == set(CHECKS), f"missing: {keys - set(CHECKS)}, unknown: {set(CHECKS) - keys}"


@pytest.mark.parametrize("key", sorted(CHECKS))
def test_setting_takes_effect(key, request):
    f = CHECKS[key]
    kwargs = {name: request.getfixturevalue(name) for name in f.__code__.co_varnames[:f.__code__.co_argcount]}
    f(**kwargs)
