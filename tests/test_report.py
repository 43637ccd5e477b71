"""report.html: self-contained (every image embedded, no script, no request), complete, and rendered by a real
browser (Debian's chromium through playwright) without console errors."""
from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil

import pytest
from PIL import Image, ImageStat

from trainlab.observe.report import write_report
from trainlab.run.config import build_config
from trainlab.workflows.train import train_run

SECTIONS = ["Overview", "Diagnosis", "Learning curves", "Test metrics", "Confusion matrix", "Per-class metrics",
            "Gradients per layer", "Activations per layer", "Mistakes", "Data", "Data audit",
            "Model", "Config", "Environment"]
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    cfg = {"seed": 0, "data": {"name": "digits", "batch_size": 64}, "model": {"name": "mlp", "hidden": [64]},
           "train": {"epochs": 3, "lr": 0.01, "num_threads": 1}}
    train_run(build_config(cfg), out=out, quiet=True)
    return out


def test_report_is_self_contained_and_complete(run_dir):
    page = (run_dir / "report.html").read_text()
    assert "<script" not in page.lower()
    urls = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert urls and all(u.startswith(("data:", "#")) for u in urls), [u[:40] for u in urls if not u.startswith("d")]
    assert "http://" not in page and "https://" not in page and "url(" not in page
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == 6  # curves, confusion matrix, per-class, gradients, activations, mistakes
    for data in images:
        with Image.open(io.BytesIO(base64.b64decode(data))) as im:
            assert im.format == "PNG" and im.size[0] > 300
    for title in SECTIONS:
        assert f"<h2>{title}</h2>" in page, title
    result = json.loads((run_dir / "result.json").read_text())
    assert f"{result['test']['accuracy']:.4f}" in page  # the headline test metric
    assert "  lr: 0.01\n" in page and "num_threads: 1" in page  # the resolved config
    assert result["plots"] == ["activations.png", "confusion_matrix.png", "curves.png", "gradients.png",
                               "mistakes.png", "per_class.png"]
    per_class = result["per_class"]
    assert list(per_class) == [str(i) for i in range(10)]
    n_test = len(json.loads((run_dir / "splits.json").read_text())["test"])
    assert sum(c["support"] for c in per_class.values()) == sum(map(sum, result["confusion_matrix"])) == n_test


def test_report_of_a_failed_run(run_dir, tmp_path):
    for name in ("config.yaml", "manifest.json", "data.json", "summary.txt"):
        shutil.copy(run_dir / name, tmp_path / name)
    result = {"error": "loss became non-finite at step 3", "test": {}, "epochs_run": 0,
              "diagnosis": {"healthy": False, "problems": ["divergence"], "checks": {"divergence": {
                  "status": "warning", "message": "divergence: the loss became non-finite at step 3",
                  "remedies": ["lower the learning rate 3-10x"]}}}}
    page = write_report(tmp_path, result).read_text()
    assert 'class="error">Training stopped: loss became non-finite at step 3' in page
    assert "<li>lower the learning rate 3-10x</li>" in page and "No completed epoch." in page


@pytest.fixture(scope="module")
def browser():
    # No skip: the issue asks for the report to be verified in a real browser, so a missing chromium must fail
    # the suite loudly (in CI and locally alike) instead of silently passing without that check.
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not os.path.exists(path):
        pytest.fail("Debian's chromium is missing, so report.html cannot be checked in a browser: "
                    "apt-get install chromium (.ci/run installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.mark.slow
def test_report_renders_in_chromium(browser, run_dir, tmp_path):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors, requests = [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("requestfailed", lambda r: errors.append(f"failed: {r.url}"))
    page.on("request", lambda r: requests.append(r.url))
    page.goto((run_dir / "report.html").as_uri(), wait_until="load")
    assert errors == []
    assert [u for u in requests if not u.startswith("data:")] == [(run_dir / "report.html").as_uri()]
    assert page.locator("h2").all_inner_texts() == SECTIONS
    # every embedded image decoded to its real size (a broken data URI leaves naturalWidth 0)
    widths = page.eval_on_selector_all("img", "imgs => imgs.map(i => i.naturalWidth)")
    assert len(widths) == 6 and min(widths) > 300
    page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    with Image.open(tmp_path / "report.png") as shot:
        assert shot.size[0] == 1280 and shot.size[1] > 3000  # the whole page, not one screen
        stat = ImageStat.Stat(shot.convert("L"))
        assert stat.stddev[0] > 20  # not blank: text, plots and section cards
    page.close()


def test_forecast_run_plots_forecast_vs_actual(tmp_path):
    """A time-series run: predictions.png is the forecast-vs-actual line plot (9x4 in at 100 dpi, not the 5.5x5
    scatter of plain regression), in the report instead of a confusion matrix."""
    cfg = {"seed": 0, "data": {"name": "timeseries", "series": "sunspots", "lookback": 12, "horizon": 2,
                               "batch_size": 32},
           "model": {"name": "rnn", "cell": "lstm", "hidden": 8}, "train": {"epochs": 2, "lr": 0.01, "loss": "mse",
                                                                          "num_threads": 1}}
    result = train_run(build_config(cfg), out=tmp_path, quiet=True)
    assert result["plots"] == ["curves.png", "gradients.png", "predictions.png"]
    with Image.open(tmp_path / "predictions.png") as im:
        assert im.size == (900, 400)
    page = (tmp_path / "report.html").read_text()
    assert "<h2>Predictions vs actual</h2>" in page and "Confusion matrix" not in page
    assert "per_class" not in result and result["test"]["mae"] > 0
