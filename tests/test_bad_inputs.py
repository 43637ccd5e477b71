"""The bad-input battery: each mistake is one line on stderr, exit code 2, and no existing run is harmed."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import TensorDataset

from conftest import assert_one_line_error, tiny_config
from trainlab import Trainer
from trainlab.core.errors import UserError


def csv_config(write_config, path, **data):
    return write_config(tiny_config(data={"name": "csv", "path": str(path), **data}))


def test_csv_non_numeric_value(cli, write_config, tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("a,b,y\n1,2,0\n3,oops,1\n" + "".join(f"{i},{i},{i % 2}\n" for i in range(40)))
    code, _, err = cli("train", csv_config(write_config, p, categorical="error"))
    assert_one_line_error(code, err, "oops", "'b'")


def test_csv_missing_value(cli, write_config, tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("a,b,y\n1,2,0\n3,,1\n" + "".join(f"{i},{i},{i % 2}\n" for i in range(40)))
    code, _, err = cli("train", csv_config(write_config, p))
    assert_one_line_error(code, err, "missing value", "row 3", "'b'", "data.missing=drop")


def test_csv_nan_and_inf_inputs(cli, write_config, tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("a,b,y\n1,inf,0\n" + "".join(f"{i},{i},{i % 2}\n" for i in range(40)))
    code, _, err = cli("train", csv_config(write_config, p))
    assert_one_line_error(code, err, "value inf", "row 2", "'b'", "infinite")


def test_empty_csv(cli, write_config, tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("a,b,y\n")
    code, _, err = cli("train", csv_config(write_config, p))
    assert_one_line_error(code, err, "no data rows")


def test_image_folder_with_a_text_file(cli, write_config, tmp_path):
    for c in ("a", "b"):
        (tmp_path / "img" / c).mkdir(parents=True)
        for i in range(10):
            Image.fromarray(np.full((8, 8, 3), i * 20, np.uint8)).save(tmp_path / "img" / c / f"{i}.png")
    (tmp_path / "img" / "b" / "readme.txt").write_text("x")
    (tmp_path / "img" / "a" / "9.png").write_bytes((tmp_path / "img" / "a" / "9.png").read_bytes()[:40])
    data = {"name": "image_folder", "path": str(tmp_path / "img")}
    code, out, err = cli("train", write_config(tiny_config(data=data, train={"epochs": 1})), "--out", tmp_path / "r")
    assert code == 0, err  # a stray file is skipped and reported, not a reason to stop
    assert "skipped 2 of 21 files" in out and "readme.txt" in out and "9.png" in out
    code, _, err = cli("train", write_config(tiny_config(data={**data, "bad_files": "error"})))
    assert_one_line_error(code, err, "1 unreadable image", "9.png")


def test_batch_larger_than_dataset_with_drop_last(cli, write_config):
    code, _, err = cli("train", write_config(tiny_config(data={"batch_size": 5000, "drop_last": True})))
    assert_one_line_error(code, err, "batch_size=5000", "drop_last")


def test_labels_outside_class_range():
    t = Trainer(torch.nn.Linear(4, 3), progress=False)
    with pytest.raises(UserError, match="label 7 is outside the model's 3 outputs"):
        t.fit(TensorDataset(torch.randn(20, 4), torch.tensor([0, 1, 2, 7] * 5)), epochs=1)


def test_model_input_size_mismatch_before_training():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
    t = Trainer(model, progress=False)
    before = [p.clone() for p in model.parameters()]
    with pytest.raises(UserError, match=r"input batch shape \(2, 1, 8, 8\); its first layer Linear expects 784"):
        t.fit(TensorDataset(torch.randn(40, 1, 8, 8), torch.randint(0, 10, (40,))), epochs=1)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=False))  # nothing trained


def test_empty_dataset():
    t = Trainer(torch.nn.Linear(4, 3), progress=False)
    with pytest.raises(UserError, match="no training batch"):
        t.fit(TensorDataset(torch.randn(0, 4), torch.zeros(0, dtype=torch.long)), epochs=1)


def _digest(folder) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def test_failed_commands_leave_an_existing_run_untouched(cli, write_config, tmp_path):
    run = tmp_path / "run"
    assert cli("train", write_config(), "--out", run)[0] == 0
    before = _digest(run)
    other = write_config(tiny_config(model={"hidden": [8]}), name="other.yaml")
    for args in (["train", other, "--out", run], ["train", write_config(), "--out", run, "train.lr=-1"],
                 ["train", "--resume", run, "model.hidden=[3]"], ["predict", run, tmp_path / "missing.png"]):
        code, _, err = cli(*args)
        assert_one_line_error(code, err)
    assert _digest(run) == before


def test_overwrite_replaces_only_a_trainlab_run(cli, write_config, tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    code, _, err = cli("train", write_config(), "--out", foreign, "--overwrite")
    assert_one_line_error(code, err, "not a trainlab run")
    assert (foreign / "thesis.tex").read_text() == "precious"
