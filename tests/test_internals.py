"""trainlab inspect --internals on a CNN run whose answer is known: the class is the corner of a bright patch."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from tests.conftest import assert_one_line_error

from trainlab.cli.main import main
from trainlab.use.feature_maps import feature_maps
from trainlab.use.loaded import load_run

SIZE = 16
CORNERS = [(2, 2), (2, 10), (10, 2), (10, 10)]


@pytest.fixture(scope="module")
def cnn_run(tmp_path_factory):
    """An image folder of 4 classes (32 PNGs each: noise + a bright 4x4 patch at the class's corner), a CNN run."""
    tmp = tmp_path_factory.mktemp("internals")
    rng = np.random.default_rng(0)
    for k, (r, c) in enumerate(CORNERS):
        (tmp / "img" / f"corner{k}").mkdir(parents=True)
        for i in range(32):
            a = (rng.random((SIZE, SIZE)) * 120).astype(np.uint8)
            a[r:r + 4, c:c + 4] = 255
            Image.fromarray(a, "L").save(tmp / "img" / f"corner{k}" / f"{i}.png")
    cfg = {"seed": 0, "data": {"name": "image_folder", "path": str(tmp / "img"), "image_size": [SIZE, SIZE],
                               "channels": 1, "batch_size": 16, "val_fraction": 0.25, "test_fraction": 0.1},
           "model": {"name": "cnn", "channels": [8, 16], "hidden": [32]},
           "train": {"epochs": 12, "lr": 0.01}}
    (tmp / "c.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["train", str(tmp / "c.yaml"), "--out", str(tmp / "run")]) == 0
    return tmp / "run"


def test_first_layer_maps_light_up_at_the_patch(cnn_run):
    run = load_run(cnn_run)
    hits = 0
    for r, c in CORNERS:
        a = np.full((SIZE, SIZE), 60, np.uint8)
        a[r:r + 4, c:c + 4] = 255
        x = run.eval_pipeline()(torch.from_numpy(a)[None, None])  # (1, 1, 16, 16)
        maps = feature_maps(run.model, x, layers=2)
        assert [m.shape for _, m in maps] == [(8, SIZE, SIZE), (16, SIZE // 2, SIZE // 2)]
        energy = maps[0][1].clamp_min(0).sum(0)  # (16, 16): total first-layer response per pixel
        peak = divmod(int(energy.argmax()), SIZE)
        # a flat grey image with one bright patch: the only structure is the patch and its edges (1 px of
        # padding-free conv context around it)
        hits += r - 1 <= peak[0] <= r + 4 and c - 1 <= peak[1] <= c + 4
    assert hits == len(CORNERS), hits


def test_inspect_internals_and_attribution_panels(cnn_run, tmp_path, capsys):
    code = main(["inspect", str(cnn_run), "--internals", "--attribution", "--index", "3", "--out", str(tmp_path)])
    assert code == 0, capsys.readouterr().err
    page = (tmp_path / "inspect.html").read_text()
    assert "Feature maps of the first conv layers" in page and "dataset index 3" in page
    assert page.count("alt=\"channel ") == 8 + 16  # every channel of both layers drawn
    assert "gradcam" in page.replace(" ", "").lower() and "integrated gradients" in page
    assert json.loads((tmp_path / "result.json").read_text())["split"] == "val"


def test_internals_index_out_of_range_is_one_line(cnn_run, tmp_path, capsys):
    code = main(["inspect", str(cnn_run), "--internals", "--index", "100000", "--out", str(tmp_path)])
    assert_one_line_error(code, capsys.readouterr().err, "--index 100000")
