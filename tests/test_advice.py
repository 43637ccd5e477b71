"""The guide off the demo path (diagnose/advice.py): fine-tuning from scratch, tables whose features cannot decide
the label, expected duplicates, unscaled regression targets - each provoked, and a healthy run kept quiet."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import assert_one_line_error
from trainlab.core.errors import UserError
from trainlab.diagnose import advice
from trainlab.diagnose.diagnosis import Diagnosis, Finding

EXAMPLE = "examples/finetune-image-folder.yaml"


# ----------------------------------------------------------------------------- pure functions

def test_ema_longer_than_the_run_is_named_with_the_share_of_step_one():
    f = advice.ema_horizon(0.99, total_steps=30)
    assert f.code == "ema_horizon" and f.severity == "warning"
    assert f.evidence["first_step_share"] == pytest.approx(0.99 ** 30)  # 0.740
    assert "74%" in f.cause and "100 optimizer steps" in f.cause and f.fix[0].startswith("train.ema: null")
    assert advice.ema_horizon(0.99, total_steps=600) is None  # 0.99^600 = 0.2%: the average forgot step 1
    assert advice.ema_horizon(None, 30) is None and advice.ema_horizon(0.999, 10_000) is None


def test_frozen_random_backbone_warns_refuses_when_never_unfrozen_and_is_quiet_when_pretrained():
    f = advice.frozen_backbone("backbone", 1, 5, pretrained=False, lr_mult=0.1)
    assert f.code == "frozen_backbone" and "1 of 5 epochs" in f.cause
    assert f.fix[0].startswith("train.freeze: none") and any("lr_mult: 1" in x for x in f.fix)
    with pytest.raises(UserError, match="freeze_epochs 5 >= epochs 5"):
        advice.frozen_backbone("backbone", 5, 5, pretrained=False)
    assert advice.frozen_backbone("backbone", 1, 5, pretrained=True) is None
    assert advice.frozen_backbone("backbone", 1, 5, pretrained=None) is None  # Python API: not known
    assert advice.frozen_backbone("none", 1, 5, pretrained=False) is None


def test_head_phase_that_stayed_at_chance_is_named():
    chance = math.log(4)
    f = advice.head_phase("backbone", 1, [1.3863, 0.9, 0.5], chance)
    assert f.code == "head_phase" and f.evidence["frozen_losses"] == [1.3863]
    assert advice.head_phase("backbone", 1, [1.1, 0.6], chance) is None  # the head learned: 1.1 < 0.97 * 1.386
    assert advice.head_phase("none", 1, [1.3863], chance) is None


def test_label_conflicts_counts_rows_and_the_entropy_floor():
    # 4 identical rows with labels 0,0,1,1 (floor ln 2 each) and 4 unique rows
    x = torch.tensor([[0.0, 1.0]] * 4 + [[float(i), 5.0] for i in range(4)])
    y = torch.tensor([0, 0, 1, 1, 0, 1, 0, 1])
    c = advice.label_conflicts(x, y)
    assert c["rows"] == 8 and c["distinct"] == 5 and c["conflicting"] == 4 and c["repeated"] == 4
    assert c["floor"] == pytest.approx(4 * math.log(2) / 8)
    assert c["constant"] == pytest.approx(math.log(2))
    assert "conflicting" not in advice.label_conflicts(x, y.float())  # regression: no label to conflict
    # 2 columns of 2 equally frequent values: a random pair is identical with P = 1/4; 8 rows -> 1 - (3/4)^7
    codes = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]] * 2)
    assert advice.chance_twins(codes) == pytest.approx(1 - 0.75 ** 7)
    assert advice.label_conflicts(x.reshape(8, 1, 2), y) == {}  # images, sequences: not a table


def test_underfitting_on_ambiguous_rows_becomes_the_features_limit_not_a_bigger_model():
    conflicts = {"rows": 1000, "distinct": 150, "conflicting": 700, "floor": 0.48, "constant": 0.69}
    note = advice.ambiguous_features(conflicts)
    under = Finding("underfitting", "warning", "underfitting: ...", ["a bigger model (more or wider layers)"],
                    {"train_loss": 0.50})
    cmp = {"metric": "accuracy", "network": 0.735, "baselines": {"majority class": 0.678, "logistic regression": 0.725},
           "beats": {"majority class": True, "logistic regression": False}}
    diag = advice.revise(Diagnosis([under, note]), cmp)
    assert [f.code for f in diag.findings] == ["features_limit", "ambiguous_features"]
    top = diag.findings[0]
    assert "do not determine the label" in top.cause and "logistic regression does as well" in top.cause
    assert not any("bigger model" in x for x in top.fix)
    # far above the floor and beating the linear model: still underfitting, the usual advice stays
    under2 = Finding("underfitting", "warning", "underfitting", ["a bigger model"], {"train_loss": 0.66})
    kept = advice.revise(Diagnosis([under2, note]), {"beats": {"majority class": True, "logistic regression": True}})
    assert kept.findings[0] is under2
    assert advice.ambiguous_features({**conflicts, "conflicting": 10}) is None  # 1%: unique rows, quiet


def test_dead_units_at_the_features_limit_are_a_note_not_a_fault_to_fix():
    """The survey's oversized MLP has 59% dead units in its second layer: true, and harmless when the network
    already does what the features allow; elsewhere the warning and its remedies stay."""
    conflicts = {"rows": 1000, "distinct": 150, "conflicting": 700, "floor": 0.48, "constant": 0.69}
    note = advice.ambiguous_features(conflicts)
    under = Finding("underfitting", "warning", "underfitting", ["a bigger model"], {"train_loss": 0.49})
    dead = Finding("dead_units", "warning", "dead ReLUs: 59% of the units of ReLU module 5 never activate",
                   ["a lower learning rate"], {"worst_fraction": 0.59})
    cmp = {"metric": "accuracy", "network": 0.72, "baselines": {"majority class": 0.68, "logistic regression": 0.72},
           "beats": {"majority class": True, "logistic regression": False}}
    behind = Finding("baselines", "warning", "the network does not beat the majority class", ["a bigger model"],
                     {"network": 0.70})
    diag = advice.revise(Diagnosis([under, dead, behind, note]), cmp)
    found = {f.code: f for f in diag.findings}
    assert found["baselines"].severity == "note" and "expected here" in found["baselines"].cause
    assert found["dead_units"].severity == "note" and found["dead_units"].fix == []
    assert "harmless here" in found["dead_units"].cause and found["dead_units"].evidence["worst_fraction"] == 0.59
    under2 = Finding("underfitting", "warning", "underfitting", ["a bigger model"], {"train_loss": 0.66})
    kept = advice.revise(Diagnosis([under2, dead, note]), {"beats": {"majority class": True,
                                                                     "logistic regression": True}})
    assert [f.severity for f in kept.findings if f.code == "dead_units"] == ["warning"]


def test_gradient_ratio_is_not_judged_in_a_normalized_network_but_growth_is():
    """A from-scratch MobileNetV3 (BatchNorm after every conv) reads first/last 4e3 with nothing wrong."""
    from trainlab.diagnose import curves

    rms = [{"conv_stem.weight": 4.0, "classifier.weight": 1e-3}] * 3
    assert curves.gradients(rms)["problem"] == "exploding"
    judged = curves.gradients(rms, normalized=True)
    assert judged["status"] == "ok" and judged["first_to_last"] == pytest.approx(4e3)
    assert curves.gradients([{"a": 1e-7, "b": 1.0}] * 3, normalized=True)["status"] == "ok"
    growing = [{"a": 1.0, "b": 1.0}, {"a": 1e3, "b": 1e3}]
    assert curves.gradients(growing, normalized=True)["problem"] == "exploding"


def test_has_normalization_finds_batch_layer_and_group_norm():
    from torch import nn

    from trainlab.diagnose.signals import has_normalization

    assert not has_normalization(nn.Sequential(nn.Linear(4, 8), nn.Sigmoid(), nn.Linear(8, 2)))
    for norm in (nn.BatchNorm2d(8), nn.LayerNorm(8), nn.GroupNorm(2, 8), nn.BatchNorm1d(8)):
        assert has_normalization(nn.Sequential(nn.Linear(4, 8), norm))


def test_duplicates_in_a_low_cardinality_table_are_explained_not_called_leakage():
    leak = Finding("duplicates", "warning", "leakage: 163 of the val split ...", ["remove exact duplicates"],
                   {"counts": {"val": 163, "test": 431}}, "before")
    splits = {"train": [b""] * 4584, "val": [b""] * 509, "test": [b""] * 1273}
    table = {"rows": 4584, "distinct": 3669, "conflicting": 675, "repeated": 1500, "floor": 0.09, "chance": 0.26}
    f = advice.expected_duplicates(leak, table, splits)  # 33% twins inside training, 32% / 34% across
    assert f.severity == "note" and "expected" in f.cause and "163 of 509 val rows" in f.cause
    assert f.evidence["share_inside"] == pytest.approx(1500 / 4584)
    assert any("split by group" in x for x in f.fix) and any("drop_duplicates" in x for x in f.fix)
    # training rows nearly all distinct, yet a third of validation copies them: that is leakage
    assert advice.expected_duplicates(leak, {**table, "chance": 0.0}, splits) is leak  # real values: no chance twins
    assert advice.expected_duplicates(leak, {**table, "repeated": 40}, splits) is leak
    # twins inside training are common, but validation shares far more with training than that: leakage still
    assert advice.expected_duplicates(Finding("duplicates", "warning", "leakage", [], {"counts": {"val": 400}}),
                                      {**table, "repeated": 500}, splits).severity == "warning"
    assert advice.expected_duplicates(None, table, splits) is None


def test_unscaled_regression_targets_warn_and_scaled_ones_get_a_note():
    f = advice.unscaled_targets(1200.0, 500.0, scaled=False)
    assert f.severity == "warning" and f.code == "target_scale" and "data.scale_target: true" in f.fix[0]
    assert advice.unscaled_targets(1200.0, 500.0, scaled=True).severity == "note"
    assert advice.unscaled_targets(0.3, 1.2, scaled=False) is None


# ----------------------------------------------------------------------------- fine-tuning from scratch, end to end

def photo_folder(root, per_class: int = 12, size: int = 16) -> None:
    """4 classes of small RGB images told apart by colour: a from-scratch network can learn them."""
    rng = np.random.default_rng(0)
    for k, name in enumerate(["red", "green", "blue", "grey"]):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            img = rng.integers(0, 60, (size, size, 3)).astype(np.uint8)
            img[..., k % 3] += 150 if k < 3 else 0
            Image.fromarray(img).save(root / name / f"{i}.png")


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos") / "photos"
    photo_folder(root)
    return root


def finetune_args(photos, out, *overrides):
    return ["train", EXAMPLE, f"data.path={photos}", "model.pretrained=false", "data.image_size=[16,16]",
            "model.image_size=32", "train.epochs=2", "data.batch_size=8", "train.baselines=false",
            *overrides, "--out", out]


@pytest.mark.slow
def test_finetune_example_from_scratch_names_its_own_settings(photos, tmp_path, cli):
    code, out, err = cli(*finetune_args(photos, tmp_path / "run"))
    assert code == 0, err
    diag = json.loads((tmp_path / "run" / "result.json").read_text())["diagnosis"]
    assert {"ema_horizon", "frozen_backbone"} <= set(diag["problems"])
    ema = next(f for f in diag["findings"] if f["code"] == "ema_horizon")
    n_train = len(json.loads((tmp_path / "run" / "splits.json").read_text())["train"])
    assert ema["evidence"]["total_steps"] == 2 * math.ceil(n_train / 8)  # 2 epochs x batches of 8
    # any symptom on the curves points at the settings first, not at lr-find
    for f in diag["findings"]:
        if f["code"] in ("underfitting", "learning_rate", "baselines") and f["severity"] == "warning":
            assert f["fix"][0].startswith("first: train.ema: null"), f
            assert not any("lr-find" in x for x in f["fix"]), f  # useless while the EMA hides the training
    assert "train.ema 0.99 averages" in out


def test_finetune_example_from_scratch_refuses_a_backbone_frozen_for_the_whole_run(photos, tmp_path, cli):
    code, out, err = cli(*finetune_args(photos, tmp_path / "run", "train.freeze_epochs=2"))
    assert_one_line_error(code, err, "randomly initialised backbone", "train.freeze=none")


@pytest.mark.slow
def test_finetune_from_scratch_without_the_traps_is_quiet_about_them(photos, tmp_path, cli):
    code, out, err = cli(*finetune_args(photos, tmp_path / "run", "train.ema=null", "train.freeze=none",
                                        "train.lr_mult=1"))
    assert code == 0, err
    diag = json.loads((tmp_path / "run" / "result.json").read_text())["diagnosis"]
    assert not {"ema_horizon", "frozen_backbone", "head_phase"} & {f["code"] for f in diag["findings"]}


# ----------------------------------------------------------------------------- the best epoch

def track(trainer, rows):
    for i, (acc, loss) in enumerate(rows, 1):
        record = {"epoch": i, "train_loss": 0.1, "val_loss": loss, "val_accuracy": acc}
        trainer.history.append(record)
        trainer._track_best(record)
    return trainer.best_epoch


def test_a_tie_on_the_monitor_goes_to_the_epoch_with_the_lower_validation_loss():
    from trainlab.engine.trainer import Trainer

    trainer = Trainer(torch.nn.Linear(2, 2), monitor="val_accuracy", progress=False)
    # accuracy 1.0 from epoch 3 on (a tiny split), the loss keeps falling until epoch 5
    assert track(trainer, [(0.9, 0.5), (0.95, 0.4), (1.0, 0.3), (1.0, 0.2), (1.0, 0.1), (1.0, 0.15)]) == 5
    assert trainer.bad_epochs == 1


def test_without_ties_the_monitor_alone_picks_the_best_epoch():
    from trainlab.engine.trainer import Trainer

    trainer = Trainer(torch.nn.Linear(2, 2), monitor="val_accuracy", progress=False)
    assert track(trainer, [(0.8, 0.5), (0.9, 0.6), (0.85, 0.1)]) == 2  # a lower loss does not beat a higher accuracy


# ----------------------------------------------------------------------------- regression targets

def grunfeld_config(tmp_path, **data):
    import statsmodels.api as sm
    import yaml

    path = tmp_path / "grunfeld.csv"
    sm.datasets.grunfeld.load_pandas().data.to_csv(path, index=False)  # bundled with statsmodels: no download
    cfg = {"seed": 0, "data": {"name": "csv", "path": str(path), "target": "invest", "batch_size": 32,
                               "transforms": {"train": [{"name": "normalize"}], "eval": [{"name": "normalize"}]},
                               **data},
           "model": {"name": "mlp", "hidden": [64, 32]}, "train": {"epochs": 12, "lr": 0.003, "num_threads": 1}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    return tmp_path / "config.yaml", path


def test_regression_targets_far_from_unit_scale_are_standardized_and_predicted_in_their_units(tmp_path, cli):
    import pandas as pd

    config, csv = grunfeld_config(tmp_path)
    code, out, err = cli("train", config, "--out", tmp_path / "run")
    assert code == 0, err
    run = tmp_path / "run"
    info = json.loads((run / "data.json").read_text())["model_info"]
    invest = pd.read_csv(csv)["invest"].to_numpy()
    train = json.loads((run / "splits.json").read_text())["train"]
    assert info["target_mean"][0] == pytest.approx(invest[train].mean(), rel=1e-6)  # training rows only
    assert info["target_std"][0] == pytest.approx(invest[train].std(), rel=1e-6)
    assert "are standardized for the network" in out
    result = json.loads((run / "result.json").read_text())
    assert "target_scale" not in result["diagnosis"]["problems"]
    # predict answers in the data's units: its MAE on the test rows is the run's test MAE
    code, _, err = cli("predict", run, csv, "--out", tmp_path / "pred")
    assert code == 0, err
    pred = pd.read_csv(tmp_path / "pred" / "predictions.csv")["prediction"].to_numpy()
    test = json.loads((run / "splits.json").read_text())["test"]
    assert abs(pred[test] - invest[test]).mean() == pytest.approx(result["test"]["mae"], rel=1e-4)
    # the same run without scaling is told why it struggles
    code, out, err = cli("train", config, "data.scale_target=false", "--out", tmp_path / "raw")
    raw = json.loads((tmp_path / "raw" / "result.json").read_text())
    assert code == 0 and "target_scale" in raw["diagnosis"]["problems"], err
    assert raw["test"]["r2"] < result["test"]["r2"]


def test_targets_near_unit_scale_are_left_alone_and_the_guide_is_quiet(tmp_path, cli):
    import pandas as pd

    config, csv = grunfeld_config(tmp_path)
    df = pd.read_csv(csv)
    df["invest"] = (df["invest"] - df["invest"].mean()) / df["invest"].std()
    df.to_csv(csv, index=False)
    code, out, err = cli("train", config, "train.epochs=2", "--out", tmp_path / "run")
    assert code == 0, err
    assert "target_mean" not in json.loads((tmp_path / "run" / "data.json").read_text())["model_info"]
    codes = [f["code"] for f in json.loads((tmp_path / "run" / "result.json").read_text())["diagnosis"]["findings"]]
    assert "target_scale" not in codes and "standardized" not in out


# ----------------------------------------------------------------------------- a survey table, end to end

def fair_config(tmp_path):
    import statsmodels.api as sm
    import yaml

    df = sm.datasets.fair.load_pandas().data  # 6,366 survey answers, bundled with statsmodels: no download
    df["affair"] = (df.pop("affairs") > 0).map({True: "yes", False: "no"})
    df.to_csv(tmp_path / "fair.csv", index=False)
    cfg = {"seed": 0, "data": {"name": "csv", "path": str(tmp_path / "fair.csv"), "target": "affair",
                               "batch_size": 64,
                               "transforms": {"train": [{"name": "normalize"}], "eval": [{"name": "normalize"}]}},
           "model": {"name": "mlp", "hidden": [256, 128]}, "train": {"epochs": 12, "lr": 0.001, "num_threads": 1}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    return tmp_path / "config.yaml"


def test_a_survey_table_gets_the_features_limit_not_a_bigger_model_and_no_bare_leakage(tmp_path, cli):
    code, out, err = cli("train", fair_config(tmp_path), "--out", tmp_path / "run")
    assert code == 0, err
    diag = json.loads((tmp_path / "run" / "result.json").read_text())["diagnosis"]
    found = {f["code"]: f for f in diag["findings"]}
    assert "features_limit" in diag["problems"] and "underfitting" not in diag["problems"]
    assert not any("bigger model (more" in x for f in diag["findings"] for x in f["fix"])
    dup = found["duplicates"]
    assert dup["severity"] == "note" and dup["evidence"]["expected"]
    assert dup["evidence"]["share_across"] <= 1.5 * dup["evidence"]["share_inside"] + 0.02
    assert "leakage:" not in out


def test_a_library_model_is_not_told_to_change_model_activation():
    dead = Finding("dead_units", "warning", "dead ReLUs", ["a lower learning rate", "model.activation: leaky_relu"])
    fixed = advice.revise(Diagnosis([dead]), facts={"model": "timm:mobilenetv3_small_100"}).findings[0]
    assert not any("model.activation" in x for x in fixed.fix) and "train.warmup" in fixed.fix[1]
    own = Finding("dead_units", "warning", "dead ReLUs", ["model.activation: leaky_relu"])
    assert advice.revise(Diagnosis([own]), facts={"model": "mlp"}).findings[0].fix == ["model.activation: leaky_relu"]


def test_the_mistakes_strip_shows_only_mistakes(tmp_path):
    from trainlab.observe.mistakes import mistakes_png

    img = np.zeros((1, 8, 8), np.uint8)
    right = {"image": img, "true": "3", "predicted": "3", "probability": 0.9}
    wrong = {"image": img, "true": "3", "predicted": "8", "probability": 0.6}
    assert mistakes_png([right, right], tmp_path / "none.png") is None and not (tmp_path / "none.png").exists()
    assert mistakes_png([right, wrong], tmp_path / "one.png") is not None
    assert Image.open(tmp_path / "one.png").width == 56 + 4  # one thumbnail (THUMB 56) and its gap
