"""Plots: activation derivatives are right for every registered activation, flat zones are found, and every
plot function and `trainlab plot` command writes a real PNG."""
from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from conftest import assert_one_line_error
from trainlab.core.files import write_history
from trainlab.models.activations import ACTIVATIONS
from trainlab.observe import plots


def png_size(path) -> tuple[int, int]:
    with Image.open(path) as im:
        assert im.format == "PNG"
        return im.size


@pytest.mark.parametrize("name", ACTIVATIONS.names())
def test_activation_derivative_matches_finite_differences(name):
    c = plots.activation_curves(name)
    x, y, dy = c["x"], c["y"], c["dy"]
    h = float(x[1] - x[0])
    numeric = (y[2:] - y[:-2]) / (2 * h)  # central differences at x[1:-1]
    away_from_kinks = (x[1:-1].abs() > 2 * h)  # relu & co. have a kink at 0
    assert torch.allclose(dy[1:-1][away_from_kinks], numeric[away_from_kinks], atol=2e-3), name


def test_flat_zones_dead_and_saturated():
    relu = plots.activation_curves("relu")["zones"]
    assert relu == [{"from": -6.0, "to": -0.01, "kind": "dead"}]  # the whole negative side (grid step 0.01)
    sig = plots.activation_curves("sigmoid")["zones"]
    # sigmoid' = s(1 - s) < 5% of its peak 0.25 beyond |x| = 4.36
    assert [z["kind"] for z in sig] == ["saturated", "saturated"]
    assert sig[0]["to"] == pytest.approx(-4.37, abs=0.02) and sig[1]["from"] == pytest.approx(4.37, abs=0.02)
    assert plots.activation_curves("identity")["zones"] == []
    # leaky ReLU keeps a small slope (0.01) where ReLU is dead: nearly flat, but not dead
    assert plots.activation_curves("leaky_relu")["zones"] == [{"from": -6.0, "to": -0.01, "kind": "saturated"}]


def test_plot_activations_command(cli, tmp_path):
    code, out, err = cli("plot", "activations", "relu", "tanh", "--out", tmp_path)
    assert code == 0, err
    w, h = png_size(tmp_path / "activations.png")
    assert w > 600 and h > 300
    res = json.loads((tmp_path / "result.json").read_text())
    assert list(res["activations"]) == ["relu", "tanh"]
    assert res["activations"]["tanh"]["max_derivative"] == pytest.approx(1.0, abs=1e-3)
    code, out, err = cli("plot", "activations", "relu", "swishy")
    assert_one_line_error(code, err, "unknown activation 'swishy'", "relu")


def test_plot_all_activations_by_default(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli("plot", "activations")[0] == 0
    _, h = png_size(tmp_path / "activations.png")
    assert h >= 2.1 * 100 * len(ACTIVATIONS.names())  # one row per registered activation


def history(n=8):
    return [{"epoch": e, "train_loss": 1 / e, "train_accuracy": 1 - 0.5 / e, "val_loss": 1 / e + 0.01 * e,
             "val_accuracy": 0.9, "lr": 1e-3, "time": 0.1} for e in range(1, n + 1)]


def test_training_and_evaluation_plots(tmp_path):
    h = history()
    assert png_size(plots.learning_curves(h, tmp_path / "c.png", "val_loss", 4, True, 5))[0] > 900  # two panels
    assert plots.metric_to_show(h, "val_loss") == "val_accuracy"
    assert plots.metric_to_show(h, "val_accuracy") == "val_accuracy"
    assert plots.metric_to_show([{"epoch": 1, "train_loss": 1.0, "val_loss": 1.0}], "val_loss") is None
    png_size(plots.confusion_matrix([[5, 1], [0, 4]], ["cat", "dog"], tmp_path / "cm.png"))
    png_size(plots.per_class({"cat": {"precision": 1.0, "recall": 0.8, "f1": 0.9}}, tmp_path / "pc.png"))
    png_size(plots.predictions_vs_actual(torch.arange(10.0), torch.arange(10.0) + 1, tmp_path / "p1.png", True))
    png_size(plots.predictions_vs_actual(torch.rand(20, 1), torch.rand(20), tmp_path / "p2.png", False))
    png_size(plots.gradient_norms([{"0.weight": 1e-3, "2.weight": 0.0}] * 3, tmp_path / "g.png"))
    png_size(plots.compare_curves({"a": h, "b": history(5)}, tmp_path / "cmp.png", "val_accuracy"))


def test_plot_curves_command(cli, tmp_path):
    write_history(tmp_path / "history.csv", history())
    (tmp_path / "result.json").write_text(json.dumps({"monitor": "val_loss", "best_epoch": 3}))
    code, out, err = cli("plot", "curves", tmp_path, "--out", tmp_path / "o")
    assert code == 0 and (tmp_path / "o" / "curves.png").is_file(), err
    assert plots.read_history(tmp_path / "history.csv")[2]["val_loss"] == pytest.approx(1 / 3 + 0.03)
    assert_one_line_error(*_code_err(cli("plot", "curves", tmp_path / "o")), "no history.csv")
    assert_one_line_error(*_code_err(cli("plot", "curves")), "exactly one RUN_DIR")
    assert_one_line_error(*_code_err(cli("plot", "bars")), "invalid choice")


def _code_err(result):
    return result[0], result[2]


def test_plotting_keeps_a_backend_the_caller_chose():
    """A notebook's inline backend must survive `trainlab train` in the same kernel (its figures would vanish)."""
    import subprocess
    import sys

    code = ("import matplotlib; matplotlib.use('svg'); import matplotlib.pyplot as plt\n"
            "from trainlab.observe import plots; plots.pyplot(); print(matplotlib.get_backend())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "svg"


def test_small_faults_of_the_plots_and_tables(tmp_path):
    """Loss curves spanning decades go on a log axis; gradient legends name layers; the summary prints counts."""
    from torch import nn

    from trainlab.diagnose.signals import layer_labels
    from trainlab.engine.summary import model_summary

    assert plots.spans_decades([40_000.0, 9_000.0, 450.0, 300.0]) and not plots.spans_decades([2.3, 0.4, 0.05])
    model = nn.Sequential(nn.Sequential(nn.Conv2d(1, 8, 3), nn.Flatten()), nn.Linear(8 * 6 * 6, 10))
    assert layer_labels(model) == {"0.0.weight": "1 Conv2d 1->8 3x3", "1.weight": "2 Linear 288->10"}
    assert "Total mult-adds: 36,010 (0.04 million)" in model_summary(nn.Sequential(nn.Flatten(), nn.Linear(
        3600, 10)), (1, 60, 60))  # not torchinfo's "Total mult-adds (Units.MEGABYTES): 0.04"
    path = plots.gradient_norms([{"0.0.weight": 0.1, "1.weight": 0.2}] * 3, tmp_path / "g.png", layer_labels(model))
    cm = plots.confusion_matrix(torch.tensor([[5, 1], [0, 7]]), ["a", "b"], tmp_path / "cm.png")
    assert png_size(path)[0] > 100 and png_size(cm)[0] > 100


def test_lr_find_names_the_smaller_rate_cautious():
    from trainlab.workflows.lr_find import alternative

    assert alternative({"suggested_lr": 1e-2, "lr_min_loss": 3e-2}).startswith("more cautious: 3.00e-03")
    assert alternative({"suggested_lr": 1e-3, "lr_min_loss": 3e-1}).startswith("bolder: 3.00e-02")
