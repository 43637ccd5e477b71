"""The HTML views render in a real browser: inspect.html with --attribution --internals (a CNN on an image folder, a
Transformer on texts) and show.html, in headless Chromium (Debian's /usr/bin/chromium through playwright): no page
error, no request but the file itself, every <img> decodes, the expected sections are there.

Skipped when chromium or playwright is missing (tests/test_report.py is the check that insists on a browser)."""
from __future__ import annotations

import os

import numpy as np
import pytest
import yaml
from PIL import Image

from trainlab.cli.main import main

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
INSPECT = ["Top 8 losses", "Most-confused class pairs", "Mistakes per class"]
WORDS = "apple river stone cloud paper green music table window garden honey silver candle forest".split()


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def rendered(browser, html) -> tuple[list[str], list[int]]:
    """(h2 headings, naturalWidth of every <img>) of the page; asserts no error and no request but the file."""
    page = browser.new_page(viewport={"width": 1000, "height": 800})
    errors, requests = [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(html.as_uri(), wait_until="load")
    assert errors == []
    assert [u for u in requests if not u.startswith("data:")] == [html.as_uri()]
    headings = page.locator("h2").all_inner_texts()
    widths = page.eval_on_selector_all("img", "imgs => imgs.map(i => i.naturalWidth)")
    page.close()
    return headings, widths


def run_cli(*args) -> None:
    assert main([str(a) for a in args]) == 0


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    """4 classes of 12x12 noise with a bright 3x3 patch in the class's corner: a CNN learns it in a few epochs."""
    root = tmp_path_factory.mktemp("views") / "img"
    rng = np.random.default_rng(0)
    for k, (r, c) in enumerate([(1, 1), (1, 8), (8, 1), (8, 8)]):
        (root / f"c{k}").mkdir(parents=True)
        for i in range(16):
            a = (rng.random((12, 12)) * 120).astype(np.uint8)
            a[r:r + 3, c:c + 3] = 255
            Image.fromarray(a, "L").save(root / f"c{k}" / f"{i}.png")
    return root


def test_inspect_of_a_cnn_renders(browser, image_folder, tmp_path):
    cfg = {"seed": 0, "data": {"name": "image_folder", "path": str(image_folder), "image_size": [12, 12],
                               "channels": 1, "batch_size": 16, "val_fraction": 0.25, "test_fraction": 0.1},
           "model": {"name": "cnn", "channels": [4, 8], "hidden": [16]},
           "train": {"epochs": 2, "lr": 0.01, "num_threads": 1, "verbose": False}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    run_cli("train", tmp_path / "c.yaml", "--out", tmp_path / "run")
    run_cli("inspect", tmp_path / "run", "--attribution", "--internals", "--top", 8,
            "--out", tmp_path / "look")
    headings, widths = rendered(browser, tmp_path / "look" / "inspect.html")
    assert headings == INSPECT + ["Attribution maps of the top losses", "Feature maps of the first conv layers"]
    # top losses (8) + attribution (2 methods x 8) + the input + 4 + 8 channel maps, and the mistake cards
    assert len(widths) >= 8 + 16 + 13 and min(widths) > 0


def test_inspect_of_a_transformer_renders(browser, tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for i in range(120):
        words = list(rng.choice(WORDS, int(rng.integers(4, 9))))
        if i % 2:
            words[int(rng.integers(len(words)))] = "zebra"
        rows.append(f"{' '.join(words)},{'zebra' if i % 2 else 'none'}\n")
    (tmp_path / "z.csv").write_text("text,label\n" + "".join(rows))
    cfg = {"seed": 0, "data": {"name": "text", "path": str(tmp_path / "z.csv"), "max_len": 12, "batch_size": 32,
                               "transforms": {"train": [], "eval": []}},
           "model": {"name": "transformer", "d_model": 16, "heads": 2, "layers": 1, "ff_dim": 32},
           "train": {"epochs": 2, "lr": 0.003, "num_threads": 1, "verbose": False}}
    (tmp_path / "t.yaml").write_text(yaml.safe_dump(cfg))
    run_cli("train", tmp_path / "t.yaml", "--out", tmp_path / "run")
    run_cli("inspect", tmp_path / "run", "--attribution", "--internals", "--text", "a zebra by the river",
            "--top", 8, "--out", tmp_path / "look")
    headings, widths = rendered(browser, tmp_path / "look" / "inspect.html")
    assert headings == INSPECT + ["Token attribution", "Attention per head"]
    assert len(widths) >= 1 and min(widths) > 0  # the attention heat maps


def test_show_of_an_augmented_image_config_renders(browser, image_folder, tmp_path):
    cfg = {"seed": 0, "data": {"name": "image_folder", "path": str(image_folder), "image_size": [12, 12],
                               "channels": 1, "transforms": {"train": [{"name": "random_affine", "degrees": 20},
                                                                       {"name": "normalize"}],
                                                             "eval": [{"name": "normalize"}]}},
           "model": {"name": "cnn"}}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(cfg))
    run_cli("show", tmp_path / "s.yaml", "--n", 4, "--out", tmp_path / "show")
    headings, widths = rendered(browser, tmp_path / "show" / "show.html")
    assert headings == ["Splits", "Training samples before and after augmentation", "Transforms", "Data audit"]
    # the class-count chart + 4 samples x (stored, 2 training draws, eval pipeline)
    assert len(widths) == 1 + 4 * 4 and min(widths) > 0
