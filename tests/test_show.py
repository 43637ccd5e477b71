"""`trainlab show`: the data as `trainlab train` would feed it - the same splits, the same transforms - on digits,
a generated image folder, a generated text CSV with planted unseen words, a synthetic series and a table; and the
Data section of a run's report."""
from __future__ import annotations

import csv
import json
import re

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_digits

from conftest import assert_one_line_error, tiny_config
from trainlab.data import preview
from trainlab.data.prepare import load_data
from trainlab.run.config import build_config

AFFINE = [{"name": "random_affine", "degrees": 25, "translate": [0.15, 0.15]}, {"name": "normalize"}]


def _show(cli, cfg_path, out, *extra) -> tuple[dict, str]:
    code, stdout, err = cli("show", cfg_path, "--out", out, *extra)
    assert code == 0, err
    return json.loads((out / "result.json").read_text()), stdout


def _view(cfg: dict):
    data = load_data(build_config(cfg))
    return data.view(data.splits.train, data.splits.val)


# ----------------------------------------------------------------------------- images

def test_digits_counts_are_the_splits_train_makes_and_augmentation_is_visible(cli, write_config, tmp_path):
    cfg = tiny_config(seed=3, data={"transforms": {"train": AFFINE, "eval": [{"name": "normalize"}]}})
    path = write_config(cfg)
    result, stdout = _show(cli, path, tmp_path / "show", "--n", "5")
    code, _, err = cli("train", path, "--dry-run", "--out", tmp_path / "run")  # the splits train itself records
    assert code == 0, err
    splits = json.loads((tmp_path / "run" / "splits.json").read_text())
    y = load_digits().target
    for split in ("train", "val", "test"):
        expected = np.bincount(y[splits[split]], minlength=10)
        assert [result["class_counts"][split][str(c)] for c in range(10)] == expected.tolist(), split
        assert result["sizes"][split] == len(splits[split])
    assert f"train {len(splits['train'])}, val {len(splits['val'])}, test {len(splits['test'])}" in stdout
    aug = result["augmentation"]
    assert aug["random"] and len(aug["indices"]) == 5 and set(aug["indices"]) <= set(splits["train"])
    assert all(c > 0.2 for c in aug["changed_vs_raw"]) and all(c > 0.2 for c in aug["differs_from_eval"])
    page = (tmp_path / "show" / "show.html").read_text()
    assert len(re.findall(r'src="data:image/png;base64,', page)) == 5 * 4 + 1  # stored, 2 draws, eval; bar chart
    assert "<script" not in page and "http" not in page.replace("http-equiv", "")


def test_augmented_draws_differ_and_no_augmentation_shows_the_stored_pixels():
    view = _view(tiny_config(data={"transforms": {"train": AFFINE, "eval": [{"name": "normalize"}]}}))
    aug = preview.augmentation_preview(view, n=6, draws=2, seed=0)
    assert aug["raw"].shape == aug["eval"].shape == (6, 1, 8, 8)
    assert not np.array_equal(aug["train"][0], aug["raw"]) and not np.array_equal(aug["train"][0], aug["train"][1])
    np.testing.assert_array_equal(aug["eval"], aug["raw"])  # normalize undone for display: the stored pixels
    again = preview.augmentation_preview(view, n=6, draws=2, seed=0)
    np.testing.assert_array_equal(again["train"][1], aug["train"][1])  # seeded: the same draws every time

    plain = preview.augmentation_preview(_view(tiny_config()), n=6, draws=2, seed=0)
    assert not plain["random"] and plain["changed_vs_raw"] == [0.0, 0.0] and plain["differs_from_eval"] == [0.0, 0.0]
    for drawn in plain["train"]:
        np.testing.assert_array_equal(drawn, plain["raw"])


def _image_folder(root, per_class=(9, 6)):
    rng = np.random.default_rng(0)
    for name, n in zip(("cats", "dogs"), per_class, strict=True):
        (root / name).mkdir(parents=True)
        for i in range(n):
            arr = rng.integers(0, 256, (10 + i, 14, 3), dtype=np.uint8)
            Image.fromarray(arr).save(root / name / f"{i}.png")
    return root


def test_image_folder_counts_and_random_crop(cli, write_config, tmp_path):
    folder = _image_folder(tmp_path / "photos")
    cfg = tiny_config(data={"name": "image_folder", "path": str(folder), "image_size": [12, 12], "val_fraction": 0.2,
                            "test_fraction": 0.2, "transforms": {"train": [{"name": "random_crop", "size": 12,
                                                                            "padding": 3}, {"name": "normalize"}],
                                                                 "eval": [{"name": "normalize"}]}})
    result, _ = _show(cli, write_config(cfg), tmp_path / "show", "--n", "3")
    data = load_data(build_config(cfg))
    targets = data.bundle.pool.targets.numpy()
    for split in ("train", "val", "test"):
        expected = np.bincount(targets[getattr(data.splits, split)], minlength=2)
        assert [result["class_counts"][split][c] for c in ("cats", "dogs")] == expected.tolist()
    assert sum(result["class_counts"][s]["cats"] for s in ("train", "val", "test")) == 9
    assert result["augmentation"]["random"] and all(c > 0 for c in result["augmentation"]["changed_vs_raw"])
    assert result["input_shape"] == [3, 12, 12]


# ----------------------------------------------------------------------------- texts

WORDS = ["good", "bad", "great", "awful", "fine", "movie", "plot", "actor"]


def _texts(tmp_path) -> tuple:
    """60 pool texts of 3..10 known words (each word in >= 20 texts, so all reach the training vocabulary) and a
    test CSV of 10 five-token texts: 5 with one unseen word, 5 with two -> 15 of 50 tokens out of vocabulary."""
    pool, test = tmp_path / "pool.csv", tmp_path / "test.csv"
    lengths = [3 + i % 8 for i in range(60)]
    with open(pool, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        for i, n in enumerate(lengths):
            w.writerow([" ".join(WORDS[(i + j) % 8] for j in range(n)), "pos" if i % 2 else "neg"])
    with open(test, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        for i in range(10):
            unseen = f"zq{i}" if i < 5 else f"zq{i} zz{i}"
            w.writerow([f"good {unseen} movie " + ("plot bad" if i < 5 else "plot"), "pos" if i % 2 else "neg"])
    return pool, test, lengths


def test_text_oov_share_truncation_and_tokens(cli, write_config, tmp_path):
    pool, test, lengths = _texts(tmp_path)
    cfg = {"seed": 0, "data": {"name": "text", "path": str(pool), "test_path": str(test), "max_len": 6,
                               "val_fraction": 0.15, "transforms": {"train": [], "eval": []}},
           "model": {"name": "transformer"}, "train": {"epochs": 1}}
    result, stdout = _show(cli, write_config(cfg), tmp_path / "show", "--n", "6")
    text = result["text"]
    assert text["vocab_size"] == 2 + len(WORDS)
    st = text["splits"]
    assert st["test"]["tokens"] == 50 and st["test"]["oov_tokens"] == 15
    assert st["test"]["oov_share"] == pytest.approx(0.3) and st["test"]["coverage"] == pytest.approx(0.7)
    assert st["train"]["oov_share"] == st["val"]["oov_share"] == 0.0
    assert st["train"]["truncated"] + st["val"]["truncated"] == sum(n > 6 for n in lengths) == 28
    assert st["test"]["truncated"] == 0 and st["train"]["texts"] + st["val"]["texts"] == 60
    assert {t for t, _ in st["test"]["common_oov"]} <= {f"zq{i}" for i in range(10)} | {f"zz{i}" for i in range(10)}
    for s in text["samples"]:
        n = len(s["text"].split())
        assert len(s["tokens"]) == min(n, 6) and s["pad"] == max(6 - n, 0) and s["cut"] == max(n - 6, 0)
        assert [t for t, _, _ in s["tokens"]] == s["text"].split()[:6]
    assert "test 70.0%" in stdout and "28 of 70 texts longer than max_len 6" in stdout


def test_text_tokens_mark_unknown_words():
    """A word below min_freq is <unk> for the model: the page shows it as written, marked unk, with id 1."""
    ids = preview.token_view(torch.tensor([5, 1, 2, 0, 0]), ["good", "rare", "plot"],
                             ["<pad>", "<unk>", "plot", "x", "y", "good"])
    assert ids == {"tokens": [["good", 5, "word"], ["rare", 1, "unk"], ["plot", 2, "word"]], "pad": 2, "cut": 0}


# ----------------------------------------------------------------------------- series and tables

def test_series_windows_hold_the_next_values(cli, write_config, tmp_path):
    series = tmp_path / "series.csv"
    pd.DataFrame({"value": np.arange(120, dtype=float)}).to_csv(series, index=False)  # value = time step
    cfg = {"seed": 0, "data": {"name": "timeseries", "path": str(series), "lookback": 7, "horizon": 2},
           "model": {"name": "rnn"}, "train": {"epochs": 1, "loss": "mse", "metrics": ["mae"], "monitor": "val_mae"}}
    result, stdout = _show(cli, write_config(cfg), tmp_path / "show", "--n", "4")
    view = _view(cfg)
    assert result["sizes"] == {"train": len(view.train_idx), "val": len(view.val_idx), "test": len(view.bundle.test)}
    win = result["windows"]
    assert (win["lookback"], win["horizon"], len(win["windows"])) == (7, 2, 4)
    for w in win["windows"]:
        past = [row[0] for row in w["inputs"]]
        assert past == list(np.arange(past[0], past[0] + 7)) and w["target"] == [[past[-1] + 1], [past[-1] + 2]]
    assert result["class_counts"] is None and result["targets"]["train"]["samples"] == len(view.train_idx)
    assert "windows.png" in result["files"] and "7 past steps of value -> the next 2" in stdout


def test_table_rows_by_feature_name(cli, write_config, tmp_path):
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"height": rng.normal(170, 10, 80).round(1), "weight": rng.normal(70, 8, 80).round(1),
                       "label": ["a"] * 50 + ["b"] * 30})
    df.to_csv(tmp_path / "t.csv", index=False)
    cfg = tiny_config(data={"name": "csv", "path": str(tmp_path / "t.csv")})
    result, _ = _show(cli, write_config(cfg), tmp_path / "show", "--n", "3")
    rows = result["rows"]
    assert rows["features"] == ["height", "weight"] and len(rows["rows"]) == 3
    for r in rows["rows"]:
        assert r["values"] == pytest.approx(df.loc[r["index"], ["height", "weight"]].tolist())
        assert r["target"] == df.loc[r["index"], "label"]
    assert {c: sum(result["class_counts"][s][c] for s in result["sizes"]) for c in "ab"} == {"a": 50, "b": 30}


# ----------------------------------------------------------------------------- errors and the report

def test_bad_key_and_bad_n_are_one_line_errors(cli, write_config, tmp_path):
    path = write_config(tiny_config())
    code, _, err = cli("show", path, "data.bogus=1", "--out", tmp_path / "x")
    assert_one_line_error(code, err, "bogus")
    code, _, err = cli("show", path, "--n", "0")
    assert_one_line_error(code, err, "--n")
    assert not (tmp_path / "x").exists()


def test_report_has_a_data_section_with_the_augmentation_strip(cli, write_config, tmp_path):
    cfg = tiny_config(data={"transforms": {"train": AFFINE, "eval": [{"name": "normalize"}]}},
                      train={"epochs": 1, "num_threads": 1})
    code, _, err = cli("train", write_config(cfg), "--out", tmp_path / "run")
    assert code == 0, err
    run = tmp_path / "run"
    result = json.loads((run / "result.json").read_text())
    splits = json.loads((run / "splits.json").read_text())
    y = load_digits().target
    assert [result["data"]["class_counts"]["val"][str(c)] for c in range(10)] == np.bincount(y[splits["val"]],
                                                                                             minlength=10).tolist()
    assert "augmentation.png" in result["plots"]
    with Image.open(run / "augmentation.png") as im:
        assert im.size[0] > 8 * 48 and im.size[1] >= 4 * 48  # 8 samples; stored, 2 draws, eval
    page = (run / "report.html").read_text()
    assert "<h2>Data</h2>" in page and f"val ({len(splits['val'])})" in page
