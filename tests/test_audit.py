"""`trainlab audit`: every finding type planted (it finds them, at the samples planted) and clean (it stays quiet).

A CSV with planted near-duplicates across splits, conflicting labels and outliers is audited through the CLI
and read back from result.json (`rows` are the CSV's 0-based data rows); the other types are planted in
scikit-learn's digits. Also: `trainlab train` runs the cheap part and its report shows it, `trainlab show`
links it, and `trainlab audit RUN` uses the model's embeddings.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits, make_classification

from conftest import assert_one_line_error, tiny_config
from trainlab.data.audit import AuditInput
from trainlab.data.audit_cheap import cross_split_pairs
from trainlab.data.audit_full import full_audit

COLS = [f"f{i}" for i in range(6)]
ROOT = Path(__file__).resolve().parents[1]


def _tables(tmp_path, plant: bool):
    """train.csv (600 rows + plants) and test.csv (200 rows); -> the planted rows by finding type."""
    x, y = make_classification(n_samples=800, n_features=6, n_informative=4, n_redundant=0, n_classes=3,
                               class_sep=2.0, flip_y=0.0, random_state=0)
    train = pd.DataFrame(x[:600], columns=COLS).assign(label=np.array(list("abc"))[y[:600]])
    test = pd.DataFrame(x[600:], columns=COLS).assign(label=np.array(list("abc"))[y[600:]])
    planted = {}
    if plant:
        rng = np.random.default_rng(0)
        for k in range(5):  # test rows 0-4: slightly noisy copies of train rows 10-14, same labels
            test.loc[k, COLS] = train.loc[10 + k, COLS].to_numpy() + rng.normal(0, 0.01, 6)
            test.loc[k, "label"] = train.loc[10 + k, "label"]
        planted["near_duplicate"] = {(10 + k, k) for k in range(5)}
        conflicts = train.iloc[100:104].copy()  # rows 600-603: copies of rows 100-103 with another label
        conflicts["label"] = [{"a": "b", "b": "c", "c": "a"}[v] for v in conflicts["label"]]
        far = train.iloc[200:203].copy()  # rows 604-606: 40 standard deviations away
        far[COLS] = far[COLS].to_numpy() + np.array([40, -40, 40, 0, 0, 0])
        train = pd.concat([train, conflicts, far], ignore_index=True)
        planted["conflicting_labels"] = {(100 + k, 600 + k) for k in range(4)}
        planted["outlier"] = {604, 605, 606}
    train.to_csv(tmp_path / "train.csv", index=False)
    test.to_csv(tmp_path / "test.csv", index=False)
    return planted


def _csv_config(write_config, tmp_path):
    return write_config(tiny_config(data={"name": "csv", "path": str(tmp_path / "train.csv"),
                                          "test_path": str(tmp_path / "test.csv"), "target": "label"}))


def test_csv_planted_findings_are_read_back_as_the_csv_rows(cli, write_config, tmp_path):
    planted = _tables(tmp_path, plant=True)
    code, out, err = cli("audit", _csv_config(write_config, tmp_path), "--out", tmp_path / "audit")
    assert code == 0, err
    result = json.loads((tmp_path / "audit" / "result.json").read_text())
    by_type = {}
    for f in result["findings"]:
        by_type.setdefault(f["type"], []).append(f)
    across = {tuple(f["rows"]) for f in by_type["near_duplicate"] if f["splits"][-1] == "test"}
    assert across == planted["near_duplicate"]
    for f in by_type["near_duplicate"]:
        assert f["files"][-1].endswith("test.csv") or f["splits"][0] != f["splits"][1]
    assert {tuple(sorted(f["rows"])) for f in by_type["conflicting_labels"]} == planted["conflicting_labels"]
    assert {f["rows"][0] for f in by_type["outlier"]} == planted["outlier"]
    assert set(by_type) <= {"near_duplicate", "conflicting_labels", "outlier", "label_issue"}, result["counts"]
    conflicted = {r for pair in planted["conflicting_labels"] for r in pair}
    flagged = {f["rows"][0] for f in by_type.get("label_issue", [])}
    assert len(flagged & conflicted) >= 2 and len(flagged - conflicted) <= 1  # 1: the clean table's own rate
    conflict = next(f for f in by_type["conflicting_labels"] if 600 in f["rows"])
    assert "relabel" in conflict["message"] and 0 <= conflict["score"] <= 1
    assert "near duplicate" in out and (tmp_path / "audit" / "audit.html").is_file()
    page = (tmp_path / "audit" / "audit.html").read_text()
    assert "Conflicting labels" in page and "Labels per split" in page


def test_csv_clean_is_quiet(cli, write_config, tmp_path):
    _tables(tmp_path, plant=False)
    code, out, err = cli("audit", _csv_config(write_config, tmp_path), "--out", tmp_path / "audit")
    assert code == 0, err
    result = json.loads((tmp_path / "audit" / "result.json").read_text())
    # the published false-alarm rate (docs/audit.md): label issues in <= 0.5% of a clean table whose classes
    # overlap (points deep inside another class's cluster); nothing else
    assert set(result["counts"]) <= {"label_issue"} and result["counts"].get("label_issue", 0) <= 4
    assert "audit (train" in out


def test_image_folder_leak_is_reported_by_paths(cli, write_config, tmp_path):
    """Fashion-MNIST's case: re-encoded, resized copies of training images in the test folder."""
    import shutil
    import sys

    from PIL import Image

    sys.path.insert(0, str(ROOT / "examples"))
    from digits_image_folder import write_folder

    write_folder(tmp_path / "pool", 32)
    files = sorted((tmp_path / "pool").rglob("*.png"))
    np.random.default_rng(0).shuffle(files)
    for f in files[:200]:
        (tmp_path / "test" / f.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.move(f, tmp_path / "test" / f.parent.name / f.name)
    copies = set()
    for f in files[200:210]:  # JPEG at quality 80, resized 32 -> 34 px: no byte or pixel equality left
        copy = tmp_path / "test" / f.parent.name / f"copy-{f.stem}.jpg"
        Image.open(f).resize((34, 34)).save(copy, quality=80)
        copies.add((str(f), str(copy)))
    cfg = write_config(tiny_config(data={"name": "image_folder", "path": str(tmp_path / "pool"),
                                         "test_path": str(tmp_path / "test"), "image_size": [32, 32]}))
    code, _, err = cli("audit", cfg, "--out", tmp_path / "audit")
    assert code == 0, err
    result = json.loads((tmp_path / "audit" / "result.json").read_text())
    assert {tuple(f["paths"]) for f in result["findings"] if f["type"] == "near_duplicate"} == copies
    assert set(result["counts"]) == {"near_duplicate"}


# ----------------------------------------------------------------------------- digits: each type planted and clean

def _digits(x=None, y=None, split=None) -> AuditInput:
    d = load_digits()
    x = torch.from_numpy(np.round(d.images * 255 / 16).astype(np.uint8)).unsqueeze(1) if x is None else x
    split = np.random.default_rng(0).choice(["train", "val", "test"], len(d.target), p=[.7, .1, .2]) \
        if split is None else split
    y = d.target.copy() if y is None else y
    return AuditInput(x, y, split, "indices", list(range(len(y))), None, [str(c) for c in range(10)], "image")


def _found(result: dict, kind: str) -> list[dict]:
    return [f for f in result["findings"] if f["type"] == kind]


@pytest.fixture(scope="module")
def clean_digits() -> dict:
    return full_audit(_digits(), progress=False)


def test_digits_clean_is_quiet(clean_digits):
    # one label issue is the published false-alarm rate on digits (docs/audit.md): 1 of 1,797
    assert {k: v for k, v in clean_digits["counts"].items() if k != "label_issue"} == {}
    assert clean_digits["counts"].get("label_issue", 0) <= 1


def test_flipped_labels_are_label_issues():
    d = load_digits()
    rng = np.random.default_rng(1)
    flip = rng.choice(len(d.target), 30, replace=False)
    y = d.target.copy()
    y[flip] = (y[flip] + rng.integers(1, 10, 30)) % 10
    found = {f["indices"][0] for f in _found(full_audit(_digits(y=y), progress=False), "label_issue")}
    assert len(found & set(flip.tolist())) >= 25 and len(found - set(flip.tolist())) <= 2


def test_shifted_test_inputs_are_an_input_shift(clean_digits):
    data = _digits()
    test = data.split == "test"
    data.x[test] = torch.roll(data.x[test], 1, dims=3)  # every test digit one pixel to the right
    shift = _found(full_audit(data, progress=False), "input_shift")
    assert len(shift) == 1 and shift[0]["auc"] > 0.9 and shift[0]["splits"][0] == "test"
    assert not _found(clean_digits, "input_shift")


def test_label_shift_class_only_in_test():
    d = load_digits()
    data = _digits()
    data.split[d.target == 9] = "test"
    found = _found(full_audit(data, progress=False), "label_shift")
    assert any(f.get("classes") == ["9"] for f in found)
    assert any(f.get("total_variation", 0) > 0.3 for f in found)


def test_image_problems_planted():
    data = _digits()
    data.x[0] = 0  # blank
    data.x[1] = (data.x[1].float() * 0.1).to(torch.uint8)  # dark: brightest pixels at 0.1
    data.x[2] = 255 - (data.x[2].float() * 0.1).to(torch.uint8)  # bright
    found = {f["indices"][0]: f["problem"] for f in _found(full_audit(data, progress=False), "image_issue")}
    assert found == {0: "near-blank", 1: "very dark", 2: "very bright"}


def test_blurry_and_grayscale_among_colour():
    data = _digits()
    big = F.interpolate(data.x.float(), size=(32, 32), mode="nearest")  # sharp-edged 32x32 digits
    palette = torch.tensor([[1, .5, .2], [.2, .6, 1], [.9, .2, .8], [.3, 1, .4], [1, .9, .2], [.5, .3, 1]])
    tint = palette[torch.arange(len(big)) % 6].view(-1, 3, 1, 1)
    colour = big.expand(-1, 3, -1, -1) * tint  # every image in its own colour
    colour[5:8] = big[5:8].expand(-1, 3, -1, -1)  # three gray ones
    colour[:5] = F.avg_pool2d(colour[:5], 7, 1, 3)  # five blurred ones
    data.x = colour.round().to(torch.uint8)
    found = {}
    for f in _found(full_audit(data, progress=False), "image_issue"):
        found.setdefault(f["problem"], set()).add(f["indices"][0])
    assert found.get("grayscale") == {5, 6, 7}
    assert len(found.get("blurry", set()) & {0, 1, 2, 3, 4}) >= 4 and found["blurry"] <= {0, 1, 2, 3, 4}
    clean = _digits(x=(big.expand(-1, 3, -1, -1) * tint).round().to(torch.uint8))
    assert not _found(full_audit(clean, progress=False), "image_issue")


def test_outlier_and_within_split_duplicate_planted():
    data = _digits()
    data.x[10] = 255 - data.x[10]  # an inverted digit: unlike anything else
    data.x[20], data.split[20] = data.x[21], data.split[21]  # an exact copy inside one split, same label
    data.y[20] = data.y[21]
    result = full_audit(data, progress=False)
    assert [f["indices"] for f in _found(result, "outlier")] == [[10]]
    dups = _found(result, "near_duplicate")
    assert [sorted(f["indices"]) for f in dups] == [[20, 21]] and dups[0]["splits"][0] == dups[0]["splits"][1]


# ----------------------------------------------------------------------------- where people look

def test_train_runs_the_cheap_audit_and_report_and_show_show_it(cli, write_config, tmp_path):
    _tables(tmp_path, plant=True)
    cfg = _csv_config(write_config, tmp_path)
    code, out, err = cli("train", cfg, "--dry-run", "--out", tmp_path / "run")
    assert code == 0, err
    audit = json.loads((tmp_path / "run" / "audit.json").read_text())
    assert audit["checks"] == "cheap" and audit["counts"]["conflicting_labels"] == 4
    assert {tuple(f["rows"]) for f in audit["findings"] if f["type"] == "near_duplicate"
            and f["splits"][-1] == "test"} == {(10 + k, k) for k in range(5)}
    assert "data audit: " in out
    assert "Data audit" in (tmp_path / "run" / "report.html").read_text()
    code, out, err = cli("show", cfg, "--out", tmp_path / "show")
    assert code == 0, err
    assert json.loads((tmp_path / "show" / "result.json").read_text())["audit"]["counts"]["conflicting_labels"] == 4
    assert "trainlab audit CONFIG" in (tmp_path / "show" / "show.html").read_text()


def test_audit_run_uses_the_model_embeddings(cli, write_config, tmp_path):
    path = write_config(tiny_config())
    code, _, err = cli("train", path, "--out", tmp_path / "run")
    assert code == 0, err
    assert json.loads((tmp_path / "run" / "audit.json").read_text())["counts"] == {}
    code, out, err = cli("audit", tmp_path / "run")
    assert code == 0, err
    result = json.loads((tmp_path / "run" / "audit" / "result.json").read_text())
    splits = json.loads((tmp_path / "run" / "splits.json").read_text())
    assert result["features"] == "model embeddings" and result["sizes"]["test"] == len(splits["test"])
    assert not {"near_duplicate", "conflicting_labels", "outlier"} & set(result["counts"])


def test_audit_refuses_overrides_for_a_run_and_text_data(cli, tmp_path):
    (tmp_path / "run").mkdir()
    code, _, err = cli("audit", tmp_path / "run", "data.seed=1")
    assert_one_line_error(code, err, "run directory")
    code, _, err = cli("audit", ROOT / "examples" / "text-transformer.yaml", "--out", tmp_path / "text")
    assert_one_line_error(code, err, "image and table")


def brute_force_pairs(z: np.ndarray, split: np.ndarray, scale: float, near: float = 0.1, k: int = 10) -> set:
    """Every (i, j) among each val/test row's k nearest others closer than near x scale: the full search."""
    others = np.flatnonzero(split != "train")
    d = torch.cdist(torch.from_numpy(z[others]).double(), torch.from_numpy(z).double())  # (Q, N)
    d[torch.arange(len(others)), torch.from_numpy(others)] = float("inf")  # not itself
    dist, idx = d.topk(k, largest=False)
    return {tuple(sorted((int(q), int(j)))) for q, row_d, row_i in zip(others, dist, idx, strict=True)
            for dd, j in zip(row_d, row_i, strict=True) if dd < near * scale}


@pytest.mark.parametrize("n", [400, 5000])
def test_the_cheap_cross_split_search_finds_what_the_full_search_finds(n):
    """within_radius only looks at a band of the widest coordinate: it must still find every close pair."""
    rng = np.random.default_rng(1)
    z = (rng.normal(size=(n, 32)) * np.linspace(3, 0.2, 32)).astype(np.float32)
    split = rng.choice(np.array(["train", "val", "test"]), n, p=[0.7, 0.15, 0.15])
    src = rng.choice(np.flatnonzero(split == "train"), 30, replace=False)
    dst = rng.choice(np.flatnonzero(split != "train"), 30, replace=False)
    z[dst[:10]] = z[src[:10]]  # identical copies
    z[dst[10:20]] = z[src[10:20]] + rng.normal(size=(10, 32)).astype(np.float32) * 0.01  # near copies
    z[dst[20:]] = z[src[20:]] + rng.normal(size=(10, 32)).astype(np.float32) * 0.5  # not near
    pairs, scale = cross_split_pairs(z, split)
    found = {tuple(int(v) for v in p[:2]) for p in pairs}
    assert found == brute_force_pairs(z, split, scale)
    assert {tuple(sorted((int(a), int(b)))) for a, b in zip(src[:20], dst[:20], strict=True)} <= found
    exact = {tuple(int(v) for v in p[:2]): p[2] for p in pairs}
    assert all(exact[tuple(sorted((int(a), int(b))))] == 0 for a, b in zip(src[:10], dst[:10], strict=True))
