"""The Trainer speaks: `fit` prints the CLI's epoch lines and diagnosis in a terminal or notebook (and stays quiet
in tests and library use), `trainer.diagnosis` is the same structured diagnosis, and the CLI's console,
result.json and report.html render one diagnosis identically. Baselines sit next to every result."""
from __future__ import annotations

import html
import json

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from conftest import tiny_config
from trainlab.diagnose import guide
from trainlab.diagnose.diagnosis import wilson
from trainlab.engine.trainer import Trainer


def digits_split():
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = torch.tensor((x - 8.0) / 6.0, dtype=torch.float32)
    y = torch.tensor(y)
    return TensorDataset(x[:1400], y[:1400]), TensorDataset(x[1400:], y[1400:])


def net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))


def test_fit_speaks_like_the_cli_when_verbose(capsys):
    train, val = digits_split()
    trainer = Trainer(net(), lr=3e-3, verbose=True, num_threads=1)
    trainer.fit(train, val, epochs=3, batch_size=64)
    out = capsys.readouterr().out.splitlines()
    epochs = [t for t in out if t.startswith("epoch ")]
    assert len(epochs) == 3 and epochs[0].startswith("epoch   1/3  train_loss ")
    assert "val_accuracy" in epochs[-1] and "(CI 0." in epochs[-1]  # 397 validation samples: the interval shows
    lines = trainer.diagnosis.lines()
    assert out[-len(lines):] == lines and out[-len(lines) - 1] == epochs[-1]  # the final diagnosis, word for word
    assert trainer.diagnosis.healthy, trainer.diagnosis
    best = trainer.history[trainer.best_epoch - 1]["val_accuracy"]
    assert any(t.startswith(f"note: validation accuracy: network {best:.4g} vs majority class 0.09") for t in out)


def test_a_log_file_gets_one_line_per_epoch_and_the_diagnosis_without_a_bar(capsys):
    train, val = digits_split()
    trainer = Trainer(net(), lr=3e-3, num_threads=1)  # verbose auto; pytest's stdout is no terminal, like a log
    trainer.fit(train, val, epochs=2)
    out, err = capsys.readouterr()
    assert [t[:11] for t in out.splitlines() if t.startswith("epoch ")] == ["epoch   1/2", "epoch   2/2"]
    assert out.splitlines()[-len(trainer.diagnosis.lines()):] == trainer.diagnosis.lines()
    assert "batch/s" not in out + err and "\r" not in out + err  # no live bar outside a terminal


def test_quiet_when_told_or_in_library_use(capsys):
    train, val = digits_split()
    Trainer(net(), verbose=False, num_threads=1).fit(train, val, epochs=1)
    Trainer(net(), progress=False, num_threads=1).fit(train, val, epochs=1)  # tuning, CV: the caller reports
    assert capsys.readouterr().out == ""
    assert guide.resolve_verbose("auto", None) and not guide.resolve_verbose("auto", False)
    assert guide.resolve_verbose(True, False) and not guide.resolve_verbose(False, None)


def test_diagnosis_property_is_structured():
    train, val = digits_split()
    trainer = Trainer(net(), lr=1e-6, verbose=False, num_threads=1)  # far too low: the weights barely move
    trainer.fit(train, val, epochs=2, batch_size=64)
    d = trainer.diagnosis
    f = next(f for f in d.findings if f.code == "learning_rate")
    assert f.severity == "warning" and "learning rate far too low at lr=1e-06" in f.cause
    assert f.fix[0].startswith("trainlab lr-find") and f.evidence["update_ratio"] < 1e-3
    assert d.to_dict()["findings"][d.problems.index("learning_rate")]["code"] == "learning_rate"


def test_wilson_interval_matches_statsmodels():
    from statsmodels.stats.proportion import proportion_confint

    for k, n in ((140, 144), (72, 144), (9, 10), (0, 20)):
        assert wilson(k, n) == pytest.approx(proportion_confint(k, n, method="wilson"), abs=1e-9)
    assert guide.accuracy_interval(0.97, 144) == " (95% CI 0.928-0.988, n=144)"
    assert guide.accuracy_interval(0.97, 10_000) == ""  # large enough: not shown


def test_cli_console_result_and_report_say_the_same(tmp_path, write_config, cli):
    """The digits-overfit setting with early stopping: one note, in the same words, in all three places."""
    cfg = tiny_config(data={"test_fraction": 0.8, "val_fraction": 0.4, "batch_size": 32},
                      model={"hidden": [512, 512], "dropout": 0.0},
                      train={"epochs": 30, "lr": 3e-3, "early_stopping": 5, "num_threads": 1})
    code, out, err = cli("train", write_config(cfg), "--out", tmp_path / "r")
    assert code == 0, err
    res = json.loads((tmp_path / "r" / "result.json").read_text())
    d = res["diagnosis"]
    console = out.splitlines()
    start = console.index(d["lines"][0])
    assert console[start:start + len(d["lines"])] == d["lines"]
    caught = next(f for f in d["findings"] if f["code"] == "overfitting")
    assert caught["severity"] == "note"
    assert caught["cause"].startswith(f"early stopping caught overfitting at epoch {res['best_epoch']} (the epoch-"
                                      f"{res['best_epoch']} weights were restored)")
    assert "healthy" in d["lines"][0] and "note: " + caught["cause"] in console
    report = (tmp_path / "r" / "report.html").read_text()
    for f in d["findings"]:
        assert html.escape(f["cause"]) in report


def test_cli_prints_baselines_and_interval_next_to_the_test_metric(tmp_path, write_config, cli):
    code, out, err = cli("train", write_config(tiny_config(train={"epochs": 3, "num_threads": 1})),
                         "--out", tmp_path / "r")
    assert code == 0, err
    res = json.loads((tmp_path / "r" / "result.json").read_text())
    test = res["baseline_models"]["test"]
    assert test["metric"] == "accuracy" and set(test["baselines"]) == {"majority class", "logistic regression"}
    assert 0.05 < test["baselines"]["majority class"] < 0.15 and test["baselines"]["logistic regression"] > 0.9
    assert test["network"] == res["test"]["accuracy"]
    assert f"test accuracy {res['test']['accuracy']:.4f} (95% CI " in out
    assert "baselines: test accuracy: network " in out
    assert "Baselines" not in res["diagnosis"]["lines"][0]
    assert "logistic regression" in (tmp_path / "r" / "report.html").read_text()


def test_regression_run_reports_mean_and_linear_baselines(tmp_path, cli):
    """A CSV regression: the mean predictor scores R2 ~ 0, a linear model ~ 0.4-0.5 on diabetes; the console
    says whether the network beats them (issue: "a regression run reports no baseline")."""
    import yaml
    from sklearn.datasets import load_diabetes

    load_diabetes(as_frame=True, scaled=False).frame.to_csv(tmp_path / "d.csv", index=False)
    cfg = {"seed": 0, "data": {"name": "csv", "path": str(tmp_path / "d.csv"), "target": "target",
                               "task": "regression"},
           "model": {"name": "mlp", "hidden": [16]}, "train": {"epochs": 3, "num_threads": 1}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    code, out, err = cli("train", tmp_path / "c.yaml", "--out", tmp_path / "r")
    assert code == 0, err
    cmp = json.loads((tmp_path / "r" / "result.json").read_text())["baseline_models"]["test"]
    assert cmp["metric"] == "r2" and abs(cmp["baselines"]["mean predictor"]) < 0.1
    assert 0.3 < cmp["baselines"]["linear regression"] < 0.6
    verdict = "the network beats both" if all(cmp["beats"].values()) else "the network does NOT beat the"
    assert f"baselines: test r2: network {cmp['network']:.4g} vs mean predictor" in out and verdict in out
