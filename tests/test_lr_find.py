"""lr-find: deterministic suggestion, restored weights, divergence stop, the steepest-descent rule."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import assert_one_line_error
from trainlab.data.prepare import load_data
from trainlab.models.catalog import build_model
from trainlab.run.config import load_config
from trainlab.workflows.lr_find import DIVERGE, analyse, lr_range_test


@pytest.fixture
def cfg_path(write_config) -> str:
    return str(write_config(train={"optimizer": "sgd"}))  # conftest's digits MLP (hidden [32])


def test_same_seed_same_suggestion_other_seed_other_curve(cfg_path):
    a = lr_range_test(load_config(cfg_path), 1e-5, 10.0, 60)
    b = lr_range_test(load_config(cfg_path), 1e-5, 10.0, 60)
    c = lr_range_test(load_config(cfg_path, ["seed=1"]), 1e-5, 10.0, 60)
    assert a["suggested_lr"] == b["suggested_lr"] and a["losses"] == b["losses"]
    assert c["losses"][:5] != a["losses"][:5]
    # SGD on digits: the loss falls from ~ln(10) and the sweep up to lr 10 diverges before its end
    assert a["losses"][0] == pytest.approx(np.log(10), abs=0.3)
    assert a["stopped"] == "diverged" and a["steps_run"] < 60
    assert a["smoothed"][-1] <= DIVERGE * min(a["smoothed"])
    assert 1e-4 < a["suggested_lr"] < a["lrs"][-1]


def test_initial_weights_are_restored(cfg_path):
    cfg = load_config(cfg_path)
    data = load_data(cfg)
    view = data.view(data.splits.train, data.splits.val)
    model = build_model(cfg.model, view.input_shape, view.bundle.num_outputs)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    seen = []
    hook = model[1].register_forward_hook(lambda m, i, o: seen.append(m.weight.detach().clone()))
    lr_range_test(cfg, 1e-3, 1.0, 20, model=model)
    hook.remove()
    assert not torch.equal(seen[0], seen[-1])  # the sweep did train the model ...
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # ... and gave it back


def test_suggestion_is_the_steepest_descent_of_the_smoothed_curve():
    lrs = list(np.logspace(-6, 0, 121))
    curve = [2.0 - 1.5 / (1 + np.exp(-4 * (np.log10(lr) + 3))) for lr in lrs]  # sigmoid drop centred at 1e-3
    result = analyse(lrs, curve, curve, 121)
    assert result["suggested_lr"] == pytest.approx(1e-3, rel=0.15)
    assert result["lr_min_loss"] == lrs[-1] and result["stopped"] == "end of sweep"


def test_cli_writes_plot_and_result(tmp_path, cfg_path, cli):
    out = tmp_path / "lr"
    code, printed, err = cli("lr-find", cfg_path, "--steps", "40", "--start", "1e-4", "--out", out)
    assert code == 0, err
    result = json.loads((out / "result.json").read_text())
    assert len(result["lrs"]) == len(result["losses"]) == result["steps_run"]
    assert (out / "lr_find.png").stat().st_size > 1000
    assert f"{result['suggested_lr']:.2e}" in printed
    code, _, err = cli("lr-find", cfg_path, "--start", "1", "--end", "0.1", "--out", out)
    assert_one_line_error(code, err, "--start (1) must be > 0 and < --end (0.1)")
