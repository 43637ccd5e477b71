"""`trainlab tune` on an image folder with stray files: the "skipped N files" line is said once per command, and
the folder is read once per study (trials whose data settings are the same reuse it)."""
from __future__ import annotations

import re

import numpy as np
import pytest
import yaml
from PIL import Image

import trainlab.workflows.tune
from conftest import tiny_config
from trainlab.cli.main import main
from trainlab.data.images import ImageFiles, first_mention, skipped_said_once
from trainlab.run.config import build_config
from trainlab.workflows.tune import SameData


def image_folder(root, junk: bool) -> str:
    """root/{a,b}/ 12 gray 8x8 PNGs each (a dark, b bright); with `junk`, a notes.txt and a truncated PNG."""
    rng = np.random.default_rng(0)
    for c, base in (("a", 40), ("b", 200)):
        (root / c).mkdir(parents=True)
        for i in range(12):
            pixels = np.clip(base + rng.normal(0, 20, (8, 8)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / c / f"{i}.png")
    if junk:
        (root / "a" / "notes.txt").write_text("not an image")
        (root / "b" / "cut.png").write_bytes((root / "b" / "0.png").read_bytes()[:30])
    return str(root)


def tune_config(tmp_path, folder: str) -> str:
    data = {"name": "image_folder", "path": folder, "image_size": [8, 8], "channels": 1, "batch_size": 8,
            "val_fraction": 0.25, "test_fraction": 0.2}
    cfg = tiny_config(data=data, train={"epochs": 2},
                      tune={"train.lr": {"type": "float", "low": 1e-3, "high": 3e-2, "log": True}})
    path = tmp_path / "photos.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


@pytest.mark.parametrize("junk", [True, False])
def test_tune_says_skipped_files_once(tmp_path, cli, monkeypatch, junk):
    """3 trials and the final run read the folder; the line comes once (junk) or never (a clean folder)."""
    loads = []
    real = trainlab.workflows.tune.load_data
    monkeypatch.setattr(trainlab.workflows.tune, "load_data", lambda cfg: loads.append(1) or real(cfg))
    cfg = tune_config(tmp_path, image_folder(tmp_path / "photos", junk))
    code, out, err = cli("tune", cfg, "--trials", "3", "--out", tmp_path / "tune", "--no-prune")
    assert code == 0, err
    assert out.count("trial ") >= 3 and "complete" in out  # the three trials ran
    said = [line for line in (out + err).splitlines() if "skipped" in line and "files in" in line]
    if junk:
        assert len(said) == 1, said
        assert "skipped 2 of 26 files" in said[0] and "notes.txt" in said[0] and "cut.png" in said[0]
    else:
        assert said == []
    assert len(loads) == 1  # the search read the folder once (objective check); the trials reused it
    final = yaml.safe_load((tmp_path / "tune" / "final" / "data.json").read_text())
    assert final["meta"]["intake"]["train"]["skipped"] == (2 if junk else 0)  # still recorded in the final run


@pytest.mark.slow
def test_cv_workers_do_not_repeat_it(tmp_path, capfd):
    """`trainlab cv --jobs 2`: each worker process reads the folder again; only the command says what was skipped.
    capfd: the workers write to the file descriptors, not to this process's sys.stdout."""
    cfg = tune_config(tmp_path, image_folder(tmp_path / "photos", junk=True))
    assert main(["cv", cfg, "--folds", "2", "--jobs", "2", "--out", str(tmp_path / "cv")]) == 0
    captured = capfd.readouterr()
    said = [line for line in (captured.out + captured.err).splitlines() if "skipped 2 of 26 files" in line]
    assert len(said) == 1, said
    ends = [line.split("  ")[0] for line in captured.out.splitlines() if re.match(r"fold \d/2  val_loss", line)]
    assert sorted(ends) == ["fold 1/2", "fold 2/2"]  # as each worker finishes


def test_outside_a_command_every_load_says_it(tmp_path):
    """train (or a user's own loop) says it on every load; skipped_said_once() scopes the dedup to one command."""
    folder = ImageFiles(image_folder(tmp_path / "p", True), (8, 8), 1)
    assert first_mention(folder) and first_mention(folder)
    with skipped_said_once():
        assert first_mention(folder) and not first_mention(folder)
        other = ImageFiles(image_folder(tmp_path / "q", True), (8, 8), 1)
        assert first_mention(other)  # another folder is its own news
    with skipped_said_once(muted=True):
        assert not first_mention(folder)
    assert first_mention(folder)


def test_same_data_reuses_only_what_the_split_depends_on(tmp_path):
    base = tiny_config(data={"name": "image_folder", "path": image_folder(tmp_path / "p", True),
                             "image_size": [8, 8], "channels": 1})
    same = SameData()
    first = same.load(build_config(base))
    bigger_batch = build_config({**base, "data": {**base["data"], "batch_size": 4}})
    second = same.load(bigger_batch)
    assert second.bundle is first.bundle and second.cfg is bigger_batch  # the trial's own loader settings
    assert second.cfg.data.batch_size == 4 and np.array_equal(second.splits.train, first.splits.train)
    other_split = same.load(build_config({**base, "data": {**base["data"], "val_fraction": 0.3}}))
    assert other_split.bundle is not first.bundle and len(other_split.splits.val) > len(first.splits.val)
    reseeded = same.load(build_config({**base, "seed": 1}))
    assert reseeded.bundle is not other_split.bundle
