"""Activation distributions per layer over training: dead ReLUs and saturated sigmoid/tanh, with known answers."""
from __future__ import annotations

import json

import pytest
import torch
from tests.conftest import tiny_config
from torch import nn

from trainlab.diagnose.signals import SATURATED_SLOPE, activation_stats
from trainlab.run.config import build_config
from trainlab.workflows.train import train_run


def test_saturation_matches_the_pre_activations():
    """Sigmoid saturates (slope < 5% of 0.25) beyond |x| = 4.36, tanh (slope < 5% of 1) beyond |x| = 2.18:
    the share measured from the outputs equals the share of pre-activations beyond those points."""
    torch.manual_seed(0)
    x = torch.randn(512, 16) * 4  # pre-activations: N(0, 4^2)
    sig_cut = float(torch.log(torch.tensor(1 / (1 - (1 - SATURATED_SLOPE) ** 0.5) * 2 - 1)))  # s(1-s) = 0.05*0.25
    tanh_cut = float(torch.atanh(torch.tensor((1 - SATURATED_SLOPE) ** 0.5)))  # 1 - t^2 = 0.05
    for act, cut in ((nn.Sigmoid(), sig_cut), (nn.Tanh(), tanh_cut)):
        stats = activation_stats(nn.Sequential(nn.Identity(), act), x)
        expected = float((x.abs() > cut).float().mean())
        assert stats["1"]["saturated"] == pytest.approx(expected, abs=2e-3), (act, cut)
        q = torch.quantile(act(x).flatten(), torch.tensor([0.05, 0.25, 0.5, 0.75, 0.95]))
        assert stats["1"]["q"] == pytest.approx(q.tolist(), abs=1e-5)
    assert sig_cut == pytest.approx(4.36, abs=0.01) and tanh_cut == pytest.approx(2.18, abs=0.01)


def test_dead_relu_units_are_units_that_never_fire():
    lin = nn.Linear(4, 10)
    with torch.no_grad():
        lin.weight.abs_()
        lin.bias.fill_(0.1)  # positive weights and bias on inputs in [0, 1): every unit fires ...
        lin.bias[:3] = -100.0  # ... but units 0-2, which can never be positive
    stats = activation_stats(nn.Sequential(lin, nn.ReLU()), torch.rand(64, 4))
    assert stats["1"]["dead"] == pytest.approx(0.3) and stats["1"]["kind"] == "relu"


def run(tmp_path, name, **over):
    over["model"] = {"hidden": [64, 64], **over.get("model", {})}
    cfg = tiny_config(**over)
    cfg["train"]["epochs"] = 3
    return train_run(build_config(cfg), out=tmp_path / name, quiet=True), tmp_path / name


def test_a_run_records_and_shows_its_activations(tmp_path):
    """The same network, lr 0.01 (Adam) vs plain SGD at lr 1.0: the big steps kill the ReLUs (measured 0.97-1.0
    dead vs 0.11), and the run says so in result.json, diagnostics.jsonl, activations.png and the report."""
    ok, ok_dir = run(tmp_path, "ok")
    bad, _ = run(tmp_path, "bad", train={"lr": 1.0, "optimizer": "sgd"})
    assert list(ok["activity"]) == ["2", "4"] and all(a["kind"] == "relu" for a in ok["activity"].values())
    assert max(a["dead"] for a in ok["activity"].values()) < 0.3
    assert min(a["dead"] for a in bad["activity"].values()) > 0.9
    lines = [json.loads(t) for t in (ok_dir / "diagnostics.jsonl").read_text().splitlines()]
    assert [sorted(r["activity"]) for r in lines] == [["2", "4"]] * 3
    assert (ok_dir / "activations.png").stat().st_size > 10_000
    page = (ok_dir / "report.html").read_text()
    assert "Activations per layer" in page and "% dead" in page


def test_sigmoid_runs_report_saturation(tmp_path):
    res, _ = run(tmp_path, "sig", model={"activation": "sigmoid"})
    assert all(a["kind"] == "sigmoid" and 0 <= a["saturated"] <= 1 for a in res["activity"].values())
    assert all(len(a["q"]) == 5 and a["q"] == sorted(a["q"]) and 0 <= a["q"][0] and a["q"][-1] <= 1
               for a in res["activity"].values())
