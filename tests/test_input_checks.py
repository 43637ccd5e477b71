"""Issue 17's bad inputs, one regression test each: sizes refused on load, data-dependent settings refused
before the first step (and before a run directory exists), unreadable or half-numeric CSVs, crafted files."""
from __future__ import annotations

import re
import time
import warnings
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import assert_one_line_error, tiny_config
from trainlab.core.checkpoint import safe_load
from trainlab.core.errors import UserError
from trainlab.core.schema import from_dict, opt
from trainlab.models.catalog import MAX_PARAMETERS, MODELS, build_model
from trainlab.models.config import model_settings
from trainlab.run.config import build_config

# ----------------------------------------------------------------------------- sizes, on load


@dataclass
class Sizes:
    widths: list[int] = opt(lambda: [4], ge=1, le=100)


def test_range_checks_apply_to_every_list_element():
    assert from_dict(Sizes, {"widths": [1, 100]}).widths == [1, 100]
    for bad, where in (([5, 0], "widths[1]"), ([101], "widths[0]")):
        with pytest.raises(UserError, match=re.escape(f"bad value for {where}: ")):
            from_dict(Sizes, {"widths": bad})


@pytest.mark.parametrize("model, value", [("mlp", {"hidden": [-5]}), ("mlp", {"hidden": [0]}),
                                          ("mlp", {"hidden": [10_000_000_000]}), ("rnn", {"hidden": 100_000_000}),
                                          ("cnn", {"channels": [16, 0]}), ("transformer", {"d_model": 10**9}),
                                          ("transformer", {"ff_dim": 0}), ("resnet_small", {"blocks": [1, -1]})])
def test_model_sizes_are_refused_on_load(model, value):
    key = next(iter(value))
    with pytest.raises(UserError, match=rf"model\.{key}"):
        model_settings({"name": model, **value})


def test_a_model_over_the_parameter_budget_is_refused_before_allocating():
    cfg = model_settings({"name": "mlp", "hidden": [60000, 60000]})  # 3.6e9 parameters, 13 GiB of float32
    start = time.perf_counter()
    with pytest.raises(UserError, match=r"3,604,\d{3},\d{3} parameters .* limit of 1,000,000,000"):
        build_model(cfg, (1, 8, 8), 10)
    assert time.perf_counter() - start < 5  # built on the meta device: no memory touched
    assert MAX_PARAMETERS == 1_000_000_000


@pytest.mark.parametrize("name", [n for n in MODELS.names() if not MODELS.entry(n).family])  # trainlab's own
def test_the_meta_build_changes_neither_weights_nor_the_random_stream(name):
    cfg = model_settings({"name": name})
    shape = (1, 28, 28)
    torch.manual_seed(0)
    direct = MODELS.get(name)(cfg.params, shape, 10)
    after_direct = torch.rand(3)
    torch.manual_seed(0)
    checked = build_model(cfg, shape, 10)
    assert torch.equal(torch.rand(3), after_direct)
    for (k, a), b in zip(direct.state_dict().items(), checked.state_dict().values(), strict=True):
        assert torch.equal(a, b), k


def test_cnn_deeper_than_the_image_builds_and_trains(cli, write_config, tmp_path):
    # 5 blocks on 8x8 digits: pooling stops at 1x1, where BatchNorm saw one value per channel (an error before)
    code, _, err = cli("train", write_config(tiny_config(model={"name": "cnn", "channels": [8] * 5, "hidden": [8]},
                                                         train={"epochs": 1})), "--out", tmp_path / "r", "--dry-run")
    assert code == 0, err


# ----------------------------------------------------------------------------- data-dependent, before the first step

def _csv(tmp_path, rows: list[str], header: str = "a,b,y", name: str = "t.csv"):
    p = tmp_path / name
    p.write_text(header + "\n" + "\n".join(rows) + "\n")
    return str(p)


def _refused_before_any_run_dir(cli, tmp_path, cfg_path, *needles, command=("train",)):
    out = tmp_path / "out"
    code, _, err = cli(*command, cfg_path, "--out", out)
    assert_one_line_error(code, err, *needles)
    assert not out.exists()  # nothing half-written: the check ran before the run directory


def test_one_class_csv(cli, write_config, tmp_path):
    path = _csv(tmp_path, [f"{i},{i * 2},1" for i in range(40)])
    cfg = write_config(tiny_config(data={"name": "csv", "path": path}))
    _refused_before_any_run_dir(cli, tmp_path, cfg, "only class '1'", "at least 2 classes")


def test_one_class_image_folder(cli, write_config, tmp_path):
    (tmp_path / "img" / "cat").mkdir(parents=True)
    for i in range(8):
        Image.fromarray(np.full((8, 8, 3), i * 30, np.uint8)).save(tmp_path / "img" / "cat" / f"{i}.png")
    cfg = write_config(tiny_config(data={"name": "image_folder", "path": str(tmp_path / "img"), "image_size": [8, 8]}))
    _refused_before_any_run_dir(cli, tmp_path, cfg, "only class 'cat'")


@pytest.mark.parametrize("data, train, needles", [
    ({}, {"loss": "mse"}, ["train.loss=mse is a regression loss", "'digits' is a classification task"]),
    ({}, {"loss": "huber"}, ["train.loss=huber", "cross_entropy or bce_with_logits"]),
    ({"name": "timeseries"}, {"loss": "cross_entropy"}, ["classification loss", "regression task", "mse, l1"]),
    ({}, {"metrics": ["r2"]}, ["train.metrics: r2 is not a classification metric"]),
    ({}, {"monitor": "val_r2"}, ["train.monitor=val_r2 is not recorded", "val_accuracy"]),
    ({}, {"metrics": ["f1"], "monitor": "val_accuracy"}, ["train.monitor=val_accuracy", "val_f1"]),
    ({"transforms": {"train": [{"name": "random_crop", "size": 20}], "eval": []}}, {},
     ["data.transforms.train does not fit the data (inputs 1x8x8)", "crop size (20, 20)"]),
    ({"transforms": {"train": [{"name": "random_crop", "size": 6}], "eval": []}}, {},
     ["train gives inputs of shape 1x6x6 but data.transforms.eval gives 1x8x8"]),
    ({"name": "first_marker", "samples": 100, "transforms": {"train": [], "eval": []}}, {},
     ["model 'mlp' does not read text"]),
    ({"name": "timeseries", "lookback": 300}, {}, ["the val split has 1 sample and R² needs at least 2"]),
])
def test_settings_that_do_not_fit_the_data(cli, write_config, tmp_path, data, train, needles):
    cfg = tiny_config(data=data, train=train)
    if data.get("name") == "timeseries":
        cfg["model"] = {"name": "rnn", "hidden": 8}
    _refused_before_any_run_dir(cli, tmp_path, write_config(cfg), *needles)


@pytest.mark.parametrize("command", [("cv", "--folds", "2"), ("lr-find",), ("tune", "--trials", "1")])
def test_cv_tune_and_lr_find_check_the_fit_too(cli, write_config, tmp_path, command):
    space = {"train.lr": {"type": "float", "low": 1e-3, "high": 1e-2}}
    cfg = write_config(tiny_config(train={"loss": "mse"}, tune=space))
    out = tmp_path / "out"
    code, _, err = cli(command[0], cfg, *command[1:], "--out", out)
    assert_one_line_error(code, err, "train.loss=mse is a regression loss")
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("spec, needle", [
    ({"name": "normalize", "mean": float("nan"), "std": 1.0}, "mean must be finite"),
    ({"name": "normalize", "mean": [0.5], "std": [float("inf")]}, "std must be finite"),
    ({"name": "resize", "size": 100_000}, "1..4096")])
def test_transform_arguments_are_checked(cli, write_config, tmp_path, spec, needle):
    cfg = write_config(tiny_config(data={"transforms": {"train": [spec], "eval": [spec]}}))
    _refused_before_any_run_dir(cli, tmp_path, cfg, needle)


def test_random_augmentation_in_the_eval_pipeline_is_refused_on_load():
    with pytest.raises(UserError, match=r"data.transforms.eval\[0\]: random_crop is a random augmentation"):
        build_config(tiny_config(data={"transforms": {"eval": [{"name": "random_crop", "size": 6}]}}))


# ----------------------------------------------------------------------------- CSV files

def test_one_stray_string_in_a_numeric_column_is_refused_with_its_row(cli, write_config, tmp_path):
    rows = [f"{i},{'oops' if i in (7, 20) else i * 2},{i % 2}" for i in range(50)]
    cfg = write_config(tiny_config(data={"name": "csv", "path": _csv(tmp_path, rows)}))
    _refused_before_any_run_dir(cli, tmp_path, cfg, "'oops'", "'b'", "row 9", "and 1 more")


def test_a_categorical_column_is_still_one_hot_encoded(tmp_path):
    from trainlab.data.tabular import read_csv_bundle
    from trainlab.run.config import build_config as build

    rows = [f"{i},{'xyz'[i % 3] if i % 2 else i},{i % 2}" for i in range(60)]  # half numbers: a category column
    cfg = build(tiny_config(data={"name": "csv", "path": _csv(tmp_path, rows)}))
    bundle = read_csv_bundle(cfg.data.params)
    assert bundle.pool.x.shape[1] == 1 + len({"x", "y", "z"} | {str(i) for i in range(0, 60, 2)})


def test_a_stray_string_in_the_test_csv_is_refused(cli, write_config, tmp_path):
    train = _csv(tmp_path, [f"{i},{i * 2},{i % 2}" for i in range(40)])
    test = _csv(tmp_path, [f"{i},{'oops' if i == 3 else i},{i % 2}" for i in range(10)], name="test.csv")
    cfg = write_config(tiny_config(data={"name": "csv", "path": train, "test_path": test}))
    _refused_before_any_run_dir(cli, tmp_path, cfg, "'oops'", "numeric column of the training data", "row 5")


def test_a_value_beyond_float32_is_refused_without_numpy_warnings(cli, write_config, tmp_path):
    rows = [f"{i},{'1e308' if i == 7 else i},{i % 2}" for i in range(40)]
    cfg = write_config(tiny_config(data={"name": "csv", "path": _csv(tmp_path, rows)}))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a RuntimeWarning (overflow in cast) would fail here
        _refused_before_any_run_dir(cli, tmp_path, cfg, "1e+308", "row 9", "beyond float32's range")


def test_an_unreadable_csv_is_one_line(cli, write_config, tmp_path, monkeypatch):
    import pandas as pd

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(pd, "read_csv", denied)  # chmod 000 does not stop root, who runs CI containers
    cfg = write_config(tiny_config(data={"name": "csv", "path": _csv(tmp_path, ["1,2,0", "3,4,1"])}))
    _refused_before_any_run_dir(cli, tmp_path, cfg, "cannot read CSV", "Permission denied")


@pytest.mark.parametrize("path", ["x" * 300 + ".csv", "folder"])
def test_a_csv_path_that_is_no_file_is_one_line(cli, write_config, tmp_path, path):
    (tmp_path / "folder").mkdir()
    cfg = write_config(tiny_config(data={"name": "csv", "path": str(tmp_path / path)}))
    _refused_before_any_run_dir(cli, tmp_path, cfg, "CSV")


# ----------------------------------------------------------------------------- checkpoint files

class Evil:
    def __reduce__(self):
        import os

        return (os.system, ("true",))


def test_a_crafted_checkpoint_names_the_global_first_and_prints_no_warning(tmp_path, capfd):
    bad = tmp_path / "best.pt"
    torch.save({"model": Evil()}, bad)
    with pytest.raises(UserError) as e:
        safe_load(bad)
    assert str(e.value).startswith(f"refusing to load {bad}: Trying to load unsupported GLOBAL posix.system")
    assert capfd.readouterr().err == ""  # torch's UserWarning about the pickle protocol is not shown


@pytest.mark.parametrize("content, needle", [(b"", "the file is empty"), (b"epoch,loss\n1,0.5\n", "a text file"),
                                             (b"\x89PNG\r\n\x1a\n" + bytes(40), "a PNG image"),
                                             (b"PK\x03\x04" + bytes(40), "incomplete zip archive")])
def test_a_file_that_is_no_checkpoint_says_what_it_is(tmp_path, content, needle):
    (tmp_path / "best.pt").write_bytes(content)
    with pytest.raises(UserError, match=needle):
        safe_load(tmp_path / "best.pt")


def test_a_torchscript_file_given_as_a_checkpoint(tmp_path):
    with warnings.catch_warnings():  # torch.jit.script is deprecated; such files still exist
        warnings.simplefilter("ignore")
        torch.jit.script(torch.nn.Linear(2, 2)).save(str(tmp_path / "best.pt"))
    with pytest.raises(UserError, match="a TorchScript archive, not a checkpoint"):
        safe_load(tmp_path / "best.pt")


def test_an_unreadable_checkpoint_says_so(tmp_path, monkeypatch):
    import os

    (tmp_path / "best.pt").write_bytes(b"x")
    monkeypatch.setattr(os, "access", lambda *a: False)
    with pytest.raises(UserError, match="permission denied"):
        safe_load(tmp_path / "best.pt")
    (tmp_path / "folder.pt").mkdir()
    with pytest.raises(UserError, match="is a folder"):
        safe_load(tmp_path / "folder.pt")
