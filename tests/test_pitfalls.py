"""The course's pitfalls, each provoked (the check fires and names the right cause and fix) and healthy (quiet):
first on tensors and modules directly, then through the Python API and the CLI."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import yaml
from torch import nn
from torch.utils.data import TensorDataset

from conftest import assert_one_line_error, tiny_config
from trainlab.core.errors import UserError
from trainlab.diagnose import pitfalls
from trainlab.engine.trainer import Trainer


def mlp(out_act: nn.Module | None = None, k: int = 10, d: int = 8) -> nn.Module:
    torch.manual_seed(0)
    layers = [nn.Linear(d, 16), nn.ReLU(), nn.Linear(16, k)]
    return nn.Sequential(*layers, *([out_act] if out_act is not None else []))


def blobs(n: int = 400, k: int = 4, d: int = 8, seed: int = 0, shares=None):
    """Gaussian blobs (normalized features, learnable); `shares` sets the class proportions."""
    g = torch.Generator().manual_seed(seed)
    y = (torch.multinomial(torch.tensor(shares), n, replacement=True, generator=g) if shares
         else torch.arange(n) % k)
    centres = torch.randn(k, d, generator=g) * 2
    return (centres[y] + torch.randn(n, d, generator=g)) / 2, y


# ----------------------------------------------------------------------------- output activation

@pytest.mark.parametrize("act", [nn.Sigmoid(), nn.Softmax(dim=1)])
def test_squashing_output_before_cross_entropy_names_the_cap_and_the_fix(act):
    model, x = mlp(act), torch.randn(64, 8)
    module, out = pitfalls.final_module(model, x)
    f = pitfalls.output_activation(module, out, "cross_entropy", torch.zeros(64, dtype=torch.long))
    assert f.severity == "warning" and f.code == "output_activation" and f.stage == "before"
    assert f"ends in {type(act).__name__}" in f.cause and "capped at e/(e+9) = 0.232" in f.cause
    assert f.evidence["loss_floor"] == pytest.approx(math.log(1 + 9 / math.e))  # the course's 1.46
    assert f.fix == [f"remove the final nn.{type(act).__name__}() from your model: return the last layer's raw "
                     f"outputs (logits)"]
    cfg_fix = pitfalls.output_activation(module, out, "cross_entropy", torch.zeros(64), in_config=True).fix[0]
    assert cfg_fix.startswith("model.output_activation: null")


def test_functional_softmax_in_forward_is_recognised_by_its_outputs():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(8, 5)

        def forward(self, x):
            return torch.softmax(self.fc(x), dim=1)  # no module at the end: judged by rows summing to 1

    module, out = pitfalls.final_module(Net(), torch.randn(32, 8))
    assert module is None
    f = pitfalls.output_activation(module, out, "cross_entropy", torch.zeros(32))
    assert f.severity == "warning" and "ends in Softmax" in f.cause and "e/(e+4)" in f.cause


def test_logits_logsoftmax_and_bounded_regression_outputs():
    x = torch.randn(64, 8)
    assert pitfalls.output_activation(*pitfalls.final_module(mlp(), x), "cross_entropy", torch.zeros(64)) is None
    note = pitfalls.output_activation(*pitfalls.final_module(mlp(nn.LogSoftmax(1)), x), "cross_entropy",
                                      torch.zeros(64))
    assert note.severity == "note" and "harmless" in note.cause  # log_softmax twice = log_softmax once
    bce = pitfalls.output_activation(*pitfalls.final_module(mlp(nn.Sigmoid()), x), "bce_with_logits", torch.zeros(64))
    assert bce.severity == "warning" and "between 0.5 and 0.73" in bce.cause
    reg = mlp(nn.Sigmoid(), k=1)
    prices = torch.linspace(0, 40_000, 64)
    f = pitfalls.output_activation(*pitfalls.final_module(reg, x), "mse", prices)
    assert f.severity == "warning" and "ends in Sigmoid, whose outputs lie in (0, 1), but 98% of the targets" in f.cause
    assert pitfalls.output_activation(*pitfalls.final_module(reg, x), "mse", torch.rand(64)) is None  # 0..1 targets


def test_api_user_module_with_sigmoid_is_told_before_training(capsys):
    """The course's mistake through the Python API: the Trainer says it before the first epoch and the final
    diagnosis blames the activation, not the model size."""
    x, y = blobs(k=10)
    trainer = Trainer(mlp(nn.Sigmoid()), lr=1e-3, verbose=True, num_threads=1)
    trainer.fit(TensorDataset(x, y), TensorDataset(*blobs(k=10, seed=1)), epochs=2, batch_size=32)
    out = capsys.readouterr().out.splitlines()
    assert out.pop(2).startswith("precision fp32: ")  # the run's precision (engine/precision.py), then epoch 1
    assert out[0].startswith("diagnosis: the model ends in Sigmoid, but cross_entropy expects raw logits")
    assert out[1] == ("  try: remove the final nn.Sigmoid() from your model: return the last layer's raw outputs "
                      "(logits)")
    assert out[2].startswith("epoch   1/2  train_loss")
    d = trainer.diagnosis
    assert d.problems[0] == "output_activation" and not d.healthy
    for f in d.findings:  # any curve symptom names the activation first
        if f.code in ("underfitting", "learning_rate"):
            assert f.fix[0].startswith("first: remove the final nn.Sigmoid()") and "output activation" in f.cause


# ----------------------------------------------------------------------------- inputs and labels

def test_raw_pixels_and_unnormalized_features_vs_normalized():
    pixels = torch.randint(0, 256, (64, 1, 28, 28)).float()
    f = pitfalls.input_scale(pixels)
    assert f.code == "input_scale" and "raw 0-255 pixel values (max 255)" in f.cause and "/ 255" in f.fix[1]
    from sklearn.datasets import load_wine

    wine = torch.tensor(load_wine().data, dtype=torch.float32)  # proline ~ 750, hue ~ 1
    f = pitfalls.input_scale(wine)
    assert "not normalized" in f.cause and f.evidence["worst_feature"] == 12 and "normalize" in f.fix[0]
    assert pitfalls.input_scale((wine - wine.mean(0)) / wine.std(0)) is None
    assert pitfalls.input_scale(pixels / 255) is None  # 0-1 images are fine
    assert pitfalls.input_scale(torch.randint(0, 50, (64, 20))) is None  # token ids are looked up, not scaled


def test_labels_that_do_not_fit_the_loss_are_one_line_errors():
    with pytest.raises(UserError, match=r"labels are floats \(e.g. 3\); cross_entropy needs integer .* y.long\(\)"):
        pitfalls.check_labels(torch.tensor([3.0, 1.0]), 10, "cross_entropy")
    with pytest.raises(UserError, match="one-hot vectors .* y.argmax"):
        pitfalls.check_labels(torch.eye(4)[[0, 2, 1]], 4, "cross_entropy")
    with pytest.raises(UserError, match=r"continuous .* regression; use loss: mse"):
        pitfalls.check_labels(torch.tensor([0.37, 2.4, 1.1]), 3, "cross_entropy")
    with pytest.raises(UserError, match="10 outputs but each target is one number"):
        pitfalls.check_labels(torch.arange(5).float(), 10, "mse")
    with pytest.raises(UserError, match=r"label 34000 is outside .* regression \(loss: mse\)"):
        pitfalls.labels_outside(torch.tensor([12000, 34000, 500]), 10)
    pitfalls.check_labels(torch.tensor([3, 1]), 10, "cross_entropy")  # class indices: fine
    pitfalls.labels_outside(torch.tensor([0, 9]), 10)


def test_api_float_labels_stop_before_training():
    x, y = blobs()
    with pytest.raises(UserError, match="labels are floats"):
        Trainer(mlp(k=4), verbose=False).fit(TensorDataset(x, y.float()), epochs=1)


# ----------------------------------------------------------------------------- class imbalance

def test_class_imbalance_names_majority_baseline_and_remedies():
    y = torch.tensor([0] * 90 + [1] * 6 + [2] * 4)
    f = pitfalls.class_imbalance(y, 3, [], ["cat", "dog", "bird"])
    assert f.severity == "warning" and "class 'cat' has 90% of the training labels (22:1" in f.cause
    assert "accuracy 0.90" in f.cause and "macro-F1" in f.cause
    assert f.fix[0].startswith("train.class_weights: auto") and f.fix[1].startswith("data.sampler: balanced")
    note = pitfalls.class_imbalance(y, 3, ["train.class_weights"])
    assert note.severity == "note" and "handled by train.class_weights" in note.cause
    assert pitfalls.class_imbalance(torch.tensor([0] * 59 + [1] * 71 + [2] * 48), 3, []) is None  # wine: 1.5:1


def test_class_weights_auto_weigh_the_loss_and_tell_the_diagnosis():
    x, y = blobs(shares=[0.9, 0.07, 0.03])
    quiet = Trainer(mlp(k=3), verbose=False, num_threads=1)
    quiet.fit(TensorDataset(x, y), epochs=1, batch_size=64)
    assert quiet.diagnosis.problems[0] == "class_imbalance"
    weighted = Trainer(mlp(k=3), verbose=False, class_weights="auto", num_threads=1)
    weighted.fit(TensorDataset(x, y), epochs=1, batch_size=64)
    counts = torch.bincount(y, minlength=3).float()
    assert torch.allclose(weighted.loss_fn.weight, len(y) / (3 * counts))  # scikit-learn's "balanced"
    assert "class_imbalance" not in weighted.diagnosis.problems
    assert any(f.code == "class_imbalance" and f.severity == "note" for f in weighted.diagnosis.findings)
    with pytest.raises(UserError, match="2 values but the model has 3 outputs"):
        Trainer(mlp(k=3), verbose=False, class_weights=[1.0, 2.0]).fit(TensorDataset(x, y), epochs=1)


def test_balanced_sampler_draws_classes_equally_and_resumes_bit_exact(tmp_path, monkeypatch):
    import shutil

    from trainlab.data.batches import TensorBatches, balanced_weights
    from trainlab.run.config import build_config
    from trainlab.workflows.train import train_run

    y = torch.tensor([0] * 900 + [1] * 100)
    b = TensorBatches(torch.zeros(1000, 1), y, 100, shuffle=True, sample_weights=balanced_weights(y))
    drawn = y[b.order(torch.Generator().manual_seed(0))]
    assert 0.45 < drawn.float().mean() < 0.55  # the 10% class now fills half of the epoch
    cfg = tiny_config(data={"sampler": "balanced", "batch_size": 32},
                      train={"epochs": 2, "checkpoint_every": 30, "num_threads": 1})
    snaps, original = [], Trainer._save_mid_epoch

    def spy(self, *args):
        original(self, *args)
        if self.step == 30:
            shutil.copytree(self.run_dir, tmp_path / "snap")
            snaps.append(self.step)
    monkeypatch.setattr(Trainer, "_save_mid_epoch", spy)
    full = train_run(build_config(cfg), tmp_path / "full", quiet=True)
    monkeypatch.setattr(Trainer, "_save_mid_epoch", original)
    assert snaps == [30]
    resumed = train_run(build_config(cfg), resume=tmp_path / "snap", quiet=True)
    assert resumed["final"]["train_loss"] == full["final"]["train_loss"] and resumed["test"] == full["test"]


# ----------------------------------------------------------------------------- splits and batches

def test_duplicates_across_splits_are_counted_with_examples():
    train, val = torch.arange(40.0).reshape(10, 4), torch.arange(40.0, 60.0).reshape(5, 4)
    val[1], val[3] = train[7], train[2]
    hashes = {"train": pitfalls.content_hashes(train), "val": pitfalls.content_hashes(val)}
    f = pitfalls.duplicates(hashes)
    assert f.severity == "warning" and f.evidence["counts"] == {"val": 2}
    assert "2 of the val split also appear" in f.cause and "val #1 = train #7" in f.cause
    clean = {"train": pitfalls.content_hashes(train), "val": pitfalls.content_hashes(val[[0, 2, 4]])}
    assert pitfalls.duplicates(clean) is None
    twins = torch.cat([train, train[:2]])  # duplicates inside one split are not leakage
    assert pitfalls.duplicates({"train": pitfalls.content_hashes(twins)}) is None


def test_csv_with_duplicated_rows_is_told_leakage_in_cli_and_result(tmp_path, cli):
    import pandas as pd
    from sklearn.datasets import load_wine

    frame = load_wine(as_frame=True).frame
    pd.concat([frame, frame.iloc[:40]]).to_csv(tmp_path / "wine.csv", index=False)  # 40 rows twice
    cfg = {"seed": 0, "data": {"name": "csv", "path": str(tmp_path / "wine.csv"), "target": "target"},
           "model": {"name": "mlp", "hidden": [16]}, "train": {"epochs": 2, "num_threads": 1}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    code, out, err = cli("train", tmp_path / "c.yaml", "--out", tmp_path / "r")
    assert code == 0, err
    line = next(t for t in out.splitlines() if "leakage" in t)
    assert line.startswith("diagnosis: leakage: ") and " = train #" in line
    res = json.loads((tmp_path / "r" / "result.json").read_text())
    assert "duplicates" in res["diagnosis"]["problems"]
    n = sum(res["diagnosis"]["findings"][res["diagnosis"]["problems"].index("duplicates")]["evidence"]["counts"]
            .values())
    assert 10 <= n <= 40  # 40 rows doubled; the copies that landed in val/test of a different split


def test_batch_norm_with_one_sample_batches_and_drop_last_waste():
    bn1 = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
    with pytest.raises(UserError, match=r"last batch of each epoch holds 1 sample \(65 % 64\).*BatchNorm1d.*"
                                        r"data.drop_last: true"):
        pitfalls.batch_norm(bn1, 65, 64, drop_last=False)
    assert pitfalls.batch_norm(bn1, 65, 64, drop_last=True) is None
    assert pitfalls.batch_norm(bn1, 64, 64, drop_last=False) is None
    bn2 = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4))
    f = pitfalls.batch_norm(bn2, 100, 1, drop_last=False)
    assert f.severity == "warning" and "batch_size is 1" in f.cause and "single sample" in f.cause
    f = pitfalls.drop_last_waste(100, 64, drop_last=True)
    assert f.code == "drop_last" and "drops 36 of 100 training samples (36%)" in f.cause
    assert pitfalls.drop_last_waste(1000, 64, drop_last=True) is None  # 40 of 1000: 4%
    assert pitfalls.drop_last_waste(100, 64, drop_last=False) is None


def test_cli_batch_norm_last_batch_of_one_is_a_one_line_error(tmp_path, write_config, cli):
    # digits: 1,294 training samples; 1,294 % 431 == 1
    cfg = tiny_config(model={"hidden": [16], "batch_norm": True}, data={"batch_size": 431}, train={"epochs": 1})
    code, out, err = cli("train", write_config(cfg), "--out", tmp_path / "r")
    assert_one_line_error(code, err, "last batch of each epoch holds 1 sample (1294 % 431)", "data.drop_last: true")


def test_cli_sigmoid_output_is_named_before_training_and_in_result(tmp_path, write_config, cli):
    cfg = tiny_config(model={"hidden": [32], "output_activation": "sigmoid"}, train={"epochs": 2, "num_threads": 1})
    code, out, err = cli("train", write_config(cfg), "--out", tmp_path / "r")
    assert code == 0, err
    lines = out.splitlines()
    first = next(i for i, t in enumerate(lines) if t.startswith("diagnosis: the model ends in Sigmoid"))
    assert first < next(i for i, t in enumerate(lines) if t.startswith("epoch   1/2"))
    assert lines[first + 1] == "  try: model.output_activation: null (the model then returns logits)"
    res = json.loads((tmp_path / "r" / "result.json").read_text())
    assert res["diagnosis"]["problems"][0] == "output_activation"
    assert res["diagnosis"]["findings"][0]["evidence"]["probability_cap"] == pytest.approx(math.e / (math.e + 9))
    report = (tmp_path / "r" / "report.html").read_text()
    assert "Output activation (before training)" in report and "model.output_activation: null" in report


def test_healthy_blobs_raise_no_pitfall():
    x, y = blobs(k=4)
    trainer = Trainer(mlp(k=4), verbose=False, num_threads=1)
    trainer.fit(TensorDataset(x, y), TensorDataset(*blobs(k=4, seed=1)), epochs=2, batch_size=32)
    assert not [f for f in trainer.diagnosis.findings if f.stage == "before"], trainer.diagnosis
    assert np.isfinite(trainer.history[-1]["val_loss"])


def test_content_hashes_equal_exactly_for_equal_rows():
    from trainlab.diagnose.pitfalls import content_hashes

    g = torch.Generator().manual_seed(0)
    x = torch.rand(9000, 1, 5, 5, generator=g)  # 100 bytes per row: not a multiple of 8, crosses a chunk
    x[8500] = x[3]  # an exact duplicate in another chunk
    y = x.clone()
    y[7].view(-1).view(torch.int32)[4] ^= 1  # one flipped bit
    hx, hy = content_hashes(x), content_hashes(y)
    assert len(hx) == 9000 and all(len(h) == 16 for h in hx)
    assert hx[8500] == hx[3] and len(set(hx)) == 8999
    assert hx[7] != hy[7] and hx[:7] == hy[:7] and hx[8:] == hy[8:]
    assert content_hashes(torch.zeros(0, 3)) == []
    assert content_hashes(torch.arange(6).reshape(3, 2)) != content_hashes(torch.arange(6).reshape(3, 2) + 1)


def test_content_hashes_of_an_unaligned_view_equal_those_of_a_copy():
    from trainlab.diagnose.pitfalls import content_hashes

    flat = torch.arange(1 + 6 * 4, dtype=torch.float32)
    x = flat[1:].reshape(6, 4)  # storage offset of 4 bytes: the rows are not 8-byte aligned
    assert content_hashes(x) == content_hashes(x.clone())
    assert len(set(content_hashes(x))) == 6


def test_rows_that_differ_only_in_sign_bits_hash_apart():
    """Sign bits sit at the top of machine words: a linear hash of 64-bit words with odd multipliers sent
    [1, 2] and [-1, -2] (float64) to one digest, and the leakage check then reported different rows as equal."""
    from trainlab.diagnose.pitfalls import content_hashes

    for x in (torch.tensor([[1.0, 2.0], [-1.0, -2.0]], dtype=torch.float64),
              torch.tensor([[1.0, 2.0, 3.0, 4.0], [1.0, -2.0, 3.0, -4.0]]),
              torch.tensor([[0.5] * 8, [-0.5] * 8])):
        a, b = content_hashes(x)
        assert a != b, x


def test_split_digests_find_the_same_leakage_as_full_hashes():
    from trainlab.diagnose.pitfalls import content_hashes, duplicates, split_digests

    g = torch.Generator().manual_seed(0)
    train = torch.rand(3000, 1, 6, 6, generator=g)
    train[:, :, 0, :] = 0.0  # a constant border, as in MNIST: many sampled words are equal everywhere
    val = torch.rand(400, 1, 6, 6, generator=g)
    val[5], val[9], val[10] = train[17], train[2999], train[17]  # leaked rows (one of them twice)
    val[11] = train[3].clone()
    val[11, 0, 5, 5] += 1e-3  # differs from train #3 in one value: no leak
    test = torch.cat([train[:2], torch.rand(50, 1, 6, 6, generator=g), val[:1]])
    test[20] = test[21]  # a duplicate inside one split: no leak
    splits = {"train": train, "val": val, "test": test}
    fast, full = duplicates(split_digests(splits)), duplicates({k: content_hashes(v) for k, v in splits.items()})
    assert fast is not None and fast.evidence == full.evidence
    assert fast.evidence["counts"] == {"val": 3, "test": 3}
    digests = split_digests(splits)
    assert len(set(digests["val"])) == 399  # only the leaked twins (val #5 and #10) share a digest
    assert isinstance(digests["val"][5], bytes) and isinstance(digests["val"][100], int)  # full digest: shared key
    assert split_digests({"train": train, "val": val[:0]})["val"] == []
    assert duplicates(split_digests({"train": train, "val": val[11:12]})) is None
