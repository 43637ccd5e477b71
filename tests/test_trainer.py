"""The Trainer learns, restores the best weights, stops early, is deterministic, and takes plain PyTorch data."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from trainlab import Trainer
from trainlab.core.errors import UserError


def digits_tensors():
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.data, dtype=torch.float32) / 16.0
    y = torch.tensor(d.target)
    g = torch.Generator().manual_seed(0)
    idx = torch.randperm(len(x), generator=g)
    tr, va, te = idx[:1200], idx[1200:1450], idx[1450:]
    return (TensorDataset(x[tr], y[tr]), TensorDataset(x[va], y[va]), TensorDataset(x[te], y[te]))


def mlp(seed=0, out_act=None):
    torch.manual_seed(seed)
    layers = [nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10)]
    return nn.Sequential(*layers, *([out_act] if out_act else []))


@pytest.fixture(scope="module")
def data():
    return digits_tensors()


def test_learns_digits(data):
    train, val, test = data
    t = Trainer(mlp(), lr=3e-3, metrics=("accuracy", "f1", "precision", "recall"), progress=False)
    hist = t.fit(train, val, epochs=8, batch_size=32)
    assert len(hist) == 8 and hist[-1]["train_loss"] < hist[0]["train_loss"] / 3
    res = t.evaluate(test)
    assert set(res) == {"loss", "accuracy", "f1", "precision", "recall"}
    assert res["accuracy"] >= 0.93 and res["f1"] >= 0.92
    pred = t.predict(test)
    assert (pred == test.tensors[1]).float().mean().item() == pytest.approx(res["accuracy"], abs=1e-6)
    proba = t.predict_proba(test)
    assert torch.allclose(proba.sum(1), torch.ones(len(proba)), atol=1e-5)


def test_same_seed_same_history(data):
    train, val, _ = data
    runs = []
    for _ in range(2):
        t = Trainer(mlp(), lr=3e-3, seed=4, progress=False)
        runs.append([(r["train_loss"], r["val_loss"]) for r in t.fit(train, val, epochs=3, batch_size=32)])
    assert runs[0] == runs[1]


def test_restores_best_weights_and_early_stops(data):
    train, val, _ = data
    t = Trainer(mlp(), lr=0.5, optimizer="sgd", early_stopping=2, monitor="val_accuracy", progress=False)
    hist = t.fit(train, val, epochs=30, batch_size=16)
    best = max(range(len(hist)), key=lambda i: hist[i]["val_accuracy"])
    assert t.best_epoch == best + 1
    assert t.evaluate(val)["accuracy"] == pytest.approx(hist[best]["val_accuracy"], abs=1e-6)
    if t.stopped_early:
        assert len(hist) == t.best_epoch + 2


def test_accepts_dataloader_and_custom_dataset(data):
    train, val, _ = data

    class Plain(Dataset):  # a user's own Dataset: no tensors attribute, so it streams
        def __len__(self):
            return len(train)

        def __getitem__(self, i):
            return train[i]

    t = Trainer(mlp(), lr=3e-3, progress=False)
    t.fit(Plain(), DataLoader(val, batch_size=50), epochs=2, batch_size=32)
    assert t.evaluate(DataLoader(val, batch_size=64))["accuracy"] > 0.8


def test_in_memory_and_streaming_paths_train_identically(data):
    """Same order from the same generator: the in-memory slicing path equals the DataLoader path."""
    from trainlab.data.batches import LoaderBatches, TensorBatches

    train, val, _ = data
    hists = []
    for make in (lambda: TensorBatches(*train.tensors, 32, shuffle=True),
                 lambda: LoaderBatches(train, 32, shuffle=True)):
        t = Trainer(mlp(), lr=3e-3, seed=1, progress=False)
        hists.append([r["train_loss"] for r in t.fit(make(), val, epochs=2)])
    assert hists[0] == pytest.approx(hists[1], rel=1e-6)


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw", "rmsprop"])
def test_every_optimizer_learns(data, name):
    train, val, _ = data
    lr = {"sgd": 0.05, "rmsprop": 1e-3}.get(name, 3e-3)
    t = Trainer(mlp(), optimizer=name, lr=lr, progress=False)
    hist = t.fit(train, val, epochs=3, batch_size=32)
    assert hist[-1]["val_accuracy"] > 0.85, hist[-1]


@pytest.mark.parametrize("name", ["step", "cosine", "onecycle", "reduce_on_plateau"])
def test_every_scheduler_changes_lr(data, name):
    train, val, _ = data
    own = {"step": {"step_size": 1, "gamma": 0.5}, "reduce_on_plateau": {"gamma": 0.5, "scheduler_patience": 0}}
    t = Trainer(mlp(), lr=0.01, scheduler=name, progress=False, **own.get(name, {}))
    hist = t.fit(train, val, epochs=3, batch_size=64)
    lrs = [r["lr"] for r in hist]
    assert len(set(lrs)) > 1 or name == "reduce_on_plateau", lrs
    assert hist[-1]["val_accuracy"] > 0.8


@pytest.mark.parametrize("loss", ["mse", "l1", "huber"])
def test_regression(loss):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(512, 3, generator=g)
    y = x @ torch.tensor([1.5, -2.0, 0.5]) + 0.3
    torch.manual_seed(0)
    t = Trainer(nn.Linear(3, 1), loss=loss, lr=0.05, metrics=None, progress=False)
    t.fit(TensorDataset(x[:400], y[:400]), TensorDataset(x[400:], y[400:]), epochs=20, batch_size=32)
    res = t.evaluate(TensorDataset(x[400:], y[400:]))
    assert set(res) == {"loss", "mae", "rmse", "r2"} and res["r2"] > 0.99 and res["mae"] < 0.1


def test_bce_and_label_smoothing(data):
    train, val, _ = data
    for kwargs in ({"loss": "bce_with_logits"}, {"loss": "cross_entropy", "label_smoothing": 0.1}):
        t = Trainer(mlp(), lr=3e-3, progress=False, **kwargs)
        t.fit(train, val, epochs=5, batch_size=32)
        assert t.evaluate(val)["accuracy"] > 0.85


def test_final_sigmoid_before_cross_entropy_hurts(data):
    """The course ends its network with nn.Sigmoid() and uses CrossEntropyLoss: logits squashed to (0, 1)
    make the softmax nearly uniform, so the loss cannot go below ~1.5 and learning is slow. Logits train far better."""
    train, val, _ = data
    results = {}
    for name, act in (("logits", None), ("sigmoid", nn.Sigmoid())):
        t = Trainer(mlp(out_act=act), lr=3e-3, progress=False)
        t.fit(train, val, epochs=5, batch_size=32)
        results[name] = t.evaluate(val)
    assert results["sigmoid"]["loss"] > 1.4  # the floor: softmax over values in (0,1) is nearly uniform
    assert results["logits"]["loss"] < 0.5 * results["sigmoid"]["loss"]
    assert results["logits"]["accuracy"] > results["sigmoid"]["accuracy"]


def test_nan_loss_stops_with_step_and_layer(tmp_path):
    x = torch.randn(256, 4, generator=torch.Generator().manual_seed(0))
    y = x.sum(1) * 10
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 1))
    t = Trainer(model, loss="mse", optimizer="sgd", lr=10.0, momentum=0.0, metrics=None, run_dir=tmp_path,
                progress=False)
    with pytest.raises(UserError, match=r"non-finite at step \d+ .*first layer with non-finite gradients: 0\.weight"):
        t.fit(TensorDataset(x, y), epochs=3, batch_size=32)
    assert t.step < 20  # stopped where it diverged, not at the end


def test_nan_skip_keeps_training():
    x, y = torch.randn(256, 4), torch.randint(0, 2, (256,))
    x[10] = float("inf")  # one poisoned sample
    t = Trainer(nn.Linear(4, 2), lr=1e-2, on_nan="skip", progress=False)
    t.fit(TensorDataset(x, y), epochs=2, batch_size=16)
    assert all(torch.isfinite(p).all() for p in t.model.parameters())


def test_bad_names_fail_early():
    with pytest.raises(UserError, match="optimizer 'adamm'"):
        Trainer(mlp(), optimizer="adamm")
    with pytest.raises(UserError, match="scheduler"):
        Trainer(mlp(), scheduler="warp")


def test_batch_larger_than_data_with_drop_last():
    from trainlab.data.batches import TensorBatches

    t = Trainer(nn.Linear(4, 2), progress=False)
    with pytest.raises(UserError, match="no training batch"):
        t.fit(TensorBatches(torch.randn(10, 4), torch.zeros(10, dtype=torch.long), 64, drop_last=True), epochs=1)


# ----------------------------------------------------------------------------- speed switches (issue 6)

@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_mixed_precision_trains(data, precision):
    """autocast on the CPU: bf16 and fp16 (with a grad scaler) still learn digits; fp32 runs without autocast."""
    train, val, test = data
    t = Trainer(mlp(), lr=3e-3, precision=precision, progress=False)
    hist = t.fit(train, val, epochs=4, batch_size=64)
    assert t.scaler.is_enabled() == (precision == "fp16")
    assert hist[-1]["train_loss"] < hist[0]["train_loss"] / 2
    assert t.evaluate(test)["accuracy"] >= 0.9


def test_channels_last_is_a_layout_change_only():
    """channels_last changes the memory layout of a CNN's weights, not what it learns (same losses to 1e-4)."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(256, 3, 16, 16, generator=g), torch.randint(0, 4, (256,), generator=g)

    def cnn():
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                             nn.Linear(8, 4))

    runs = []
    for channels_last in (False, True):
        t = Trainer(cnn(), lr=1e-2, channels_last=channels_last, progress=False)
        runs.append([r["train_loss"] for r in t.fit(TensorDataset(x, y), epochs=3, batch_size=32)])
        assert t.model[0].weight.is_contiguous(memory_format=torch.channels_last) == channels_last
    assert runs[0] == pytest.approx(runs[1], rel=1e-4)


@pytest.mark.slow
def test_compile_matches_eager(data):
    """train.compile=true runs the model through torch.compile (inductor on the CPU): same losses as eager."""
    train, val, _ = data
    losses = []
    for compile in (False, True):
        t = Trainer(mlp(), lr=3e-3, compile=compile, progress=False)
        losses.append([r["train_loss"] for r in t.fit(train, val, epochs=2, batch_size=64)])
    assert losses[0] == pytest.approx(losses[1], rel=1e-4)
