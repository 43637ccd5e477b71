"""trainlab serve: the JSON API (FastAPI's test client), the page in headless Chromium, a loopback load test."""
from __future__ import annotations

import importlib.util
import io
import json
import os
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import assert_one_line_error
from test_export import csv_run, trained_run
from trainlab.use.export import parity_inputs, split_samples
from trainlab.use.loaded import load_run
from trainlab.use.serve import create_app, running_server
from trainlab.use.serve_request import MAX_PIXELS

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")
ROOT = Path(__file__).resolve().parents[1]
SMALL_LIMIT = 64 * 1024  # a small --max-bytes keeps the too-large tests cheap


@pytest.fixture(scope="module")
def mlp_run(tmp_path_factory) -> Path:
    return trained_run(tmp_path_factory, "mlp")


@pytest.fixture(scope="module")
def digits(mlp_run) -> tuple[torch.Tensor, list[bytes], torch.Tensor]:
    """Raw uint8 test-split digits (N, 1, 8, 8), the same digits as PNG files, and their labels."""
    x, y, _ = split_samples(load_run(mlp_run), 16)
    return x, [png_bytes(img[0].numpy()) for img in x], y


@pytest.fixture(scope="module")
def client(mlp_run):
    from fastapi.testclient import TestClient

    return TestClient(create_app(mlp_run, max_bytes=SMALL_LIMIT), raise_server_exceptions=False)


@pytest.fixture(scope="module")
def table_client(tmp_path_factory):
    from fastapi.testclient import TestClient

    return TestClient(create_app(csv_run(tmp_path_factory)), raise_server_exceptions=False)


def png_bytes(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()


def upload(png: bytes) -> dict:
    return {"files": {"file": ("digit.png", png, "image/png")}}


def assert_json_error(r, status: int, needle: str) -> None:
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert set(body) == {"error"} and needle in body["error"], body
    assert "Traceback" not in r.text


# ----------------------------------------------------------------------------- API

def test_predict_returns_the_models_probabilities(client, mlp_run, digits):
    x, pngs, _ = digits
    expected = load_run(mlp_run).predict_proba(x)
    for i, png in enumerate(pngs):
        r = client.post("/predict", **upload(png))
        assert r.status_code == 200, r.text
        (row,) = r.json()["predictions"]
        probs = torch.tensor(list(row["probabilities"].values()))
        assert list(row["probabilities"]) == [str(c) for c in range(10)]
        assert torch.allclose(probs, expected[i], atol=1e-5)
        assert row["prediction"] == str(int(expected[i].argmax()))
        top = [t["probability"] for t in row["top"]]
        assert len(top) == 5 and top == sorted(top, reverse=True) and top[0] == pytest.approx(float(expected[i].max()))
    raw = client.post("/predict?top=2", content=pngs[0], headers={"content-type": "image/png"})
    assert raw.status_code == 200 and len(raw.json()["predictions"][0]["top"]) == 2
    assert raw.json()["predictions"][0]["prediction"] == str(int(expected[0].argmax()))


def test_health_info_and_page(client, table_client):
    assert client.get("/health").json()["status"] == "ok"
    info = client.get("/info").json()
    assert info["classes"] == [str(c) for c in range(10)] and info["raw_shape"] == [1, 8, 8] and info["canvas"]
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'id="canvas"' in page.text and '"canvas": true' in page.text
    table_info = table_client.get("/info").json()
    assert not table_info["canvas"] and table_info["features"][:3] == ["a", "b", "c"]


def _streamed(n: int):
    """A chunked body without Content-Length: the limit must hold while reading, not only from the header."""
    for _ in range(n // 4096):
        yield b"\0" * 4096


def _big_png() -> bytes:
    side = int(MAX_PIXELS ** 0.5) + 1  # a black image compresses to a few KB but decodes to 16M+ pixels
    return png_bytes(np.zeros((side, side), dtype=np.uint8))


BAD_IMAGE_REQUESTS = {
    "not an image": (dict(files={"file": ("a.png", b"hello, not a picture", "image/png")}), 400, "not an image"),
    "raw body not an image": (dict(content=b"GIF89a-nope", headers={"content-type": "image/gif"}), 400, "not an"),
    "truncated image": ("truncated", 400, "truncated or corrupted"),
    "empty body": (dict(content=b"", headers={"content-type": "image/png"}), 400, "empty body"),
    "too large (header)": (dict(content=b"\0" * (SMALL_LIMIT + 1), headers={"content-type": "image/png"}), 413,
                           "request too large"),
    "too large (streamed)": ("streamed", 413, "request too large"),
    "too many pixels": ("big", 413, "image too large"),
    "malformed multipart": (dict(content=b"--x\r\ngarbage", headers={"content-type": "multipart/form-data"}), 400,
                            "boundary"),
    "no file field": (dict(files={"picture": ("a.png", b"x", "image/png")}), 400, "no file field 'file'"),
    "wrong content type": (dict(content=b"abc", headers={"content-type": "text/plain"}), 415, "unsupported"),
    "json to an image model": (dict(json={"features": [1, 2, 3]}), 415, "takes an image"),
}


@pytest.mark.parametrize("case", list(BAD_IMAGE_REQUESTS))
def test_bad_image_requests_get_a_json_4xx(case, client, digits):
    kwargs, status, needle = BAD_IMAGE_REQUESTS[case]
    if kwargs == "truncated":
        kwargs = upload(digits[1][0][:60])
    elif kwargs == "streamed":
        kwargs = dict(content=_streamed(SMALL_LIMIT + 8192), headers={"content-type": "image/png"})
    elif kwargs == "big":
        kwargs = upload(_big_png())
    assert_json_error(client.post("/predict", **kwargs), status, needle)
    ok = client.post("/predict", **upload(digits[1][0]))  # and the server goes on serving
    assert ok.status_code == 200


def test_bad_query_and_method_get_a_json_4xx(client, digits):
    assert_json_error(client.post("/predict?top=many", **upload(digits[1][0])), 422, "top")
    assert client.get("/predict").status_code == 405 and "error" in client.get("/predict").json()
    assert_json_error(client.get("/nowhere"), 404, "Not Found")


def test_tabular_features(table_client, tmp_path_factory):
    run = load_run(csv_run(tmp_path_factory))
    x, _ = parity_inputs(run, 4)
    r = table_client.post("/predict", json={"features": x[0].tolist()})
    assert r.status_code == 200, r.text
    probs = torch.tensor(list(r.json()["predictions"][0]["probabilities"].values()))
    assert torch.allclose(probs, run.predict_proba(x[:1])[0], atol=1e-5)
    batch = table_client.post("/predict", json={"features": x.tolist()}).json()["predictions"]
    assert [b["prediction"] for b in batch] == [run.classes[i] for i in run.predict_proba(x).argmax(1)]


BAD_TABLE_REQUESTS = {
    "wrong feature count": (dict(json={"features": [1.0, 2.0]}), 422, "wrong feature count"),
    "wrong count in a batch": (dict(json={"features": [[0.0] * 5, [0.0] * 4]}), 422, "features must be"),
    "not numbers": (dict(json={"features": ["a", "b", "c", "d", "e"]}), 422, "features must be"),
    "not finite": (dict(content=b'{"features": [NaN, 1, 2, 3, 4]}', headers={"content-type": "application/json"}),
                   422, "finite"),
    "malformed json": (dict(content=b'{"features": [1, 2', headers={"content-type": "application/json"}), 400,
                       "malformed JSON"),
    "no features key": (dict(json={"values": [1, 2, 3, 4, 5]}), 400, "expected a JSON object"),
    "not an object": (dict(json=[1, 2, 3, 4, 5]), 400, "expected a JSON object"),
    "image to a tabular model": (dict(files={"file": ("a.png", b"x", "image/png")}), 415, "takes JSON"),
}


@pytest.mark.parametrize("case", list(BAD_TABLE_REQUESTS))
def test_bad_feature_requests_get_a_json_4xx(case, table_client):
    kwargs, status, needle = BAD_TABLE_REQUESTS[case]
    assert_json_error(table_client.post("/predict", **kwargs), status, needle)


def test_serve_command_errors_are_one_line(mlp_run, tmp_path, cli):
    from trainlab.cli.main import parse_args

    assert parse_args(["serve", str(mlp_run)]).host == "127.0.0.1"  # never 0.0.0.0 unless --host says so
    code, _, err = cli("serve", tmp_path)
    assert_one_line_error(code, err, "not a trainlab run directory")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        code, _, err = cli("serve", mlp_run, "--port", busy.getsockname()[1])
    assert_one_line_error(code, err, "cannot listen on 127.0.0.1")
    assert_one_line_error(*_code_err(cli("serve", mlp_run, "--port", "70000")), "--port")


def _code_err(result: tuple[int, str, str]) -> tuple[int, str]:
    return result[0], result[2]


# ----------------------------------------------------------------------------- the page in Chromium

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def browser():
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not os.path.exists(path):
        if os.environ.get("CI"):
            pytest.fail("Debian's chromium is missing: .ci/run installs it (apt-get install chromium)")
        pytest.skip("chromium not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield b
        b.close()


def _answer(page) -> str:
    page.wait_for_function("document.body.dataset.state === 'done'", timeout=15_000)
    return page.inner_text("#prediction")


@pytest.mark.slow
def test_page_upload_and_drawing_in_chromium(browser, mlp_run, digits, tmp_path):
    x, pngs, labels = digits
    predicted = load_run(mlp_run).predict_proba(x).argmax(1)
    i = int((predicted == labels).nonzero()[0])  # a test digit this model gets right: the page must show it
    label = str(int(labels[i]))
    with running_server(create_app(mlp_run)) as url:
        page = browser.new_page()
        page.goto(url + "/")
        # upload a test-split digit: the page shows the model's class on top, with bars
        (tmp_path / "digit.png").write_bytes(pngs[i])
        page.set_input_files("#file", str(tmp_path / "digit.png"))
        assert _answer(page) == label
        assert page.locator("#result .row").count() == 5
        assert page.locator("#result .row").first.get_attribute("data-class") == label
        # a file that is not an image: the error is shown, and the next upload works again
        (tmp_path / "notes.png").write_text("not an image")
        page.set_input_files("#file", str(tmp_path / "notes.png"))
        _answer(page)
        assert "not an image" in page.inner_text("#error") and page.locator("#result .row").count() == 0
        # draw test digits on the canvas (rows of bright pixels as strokes): the drawing is binarized and
        # reframed, so ask for 2 of the first 3 digits the model gets right (chance: 1 in 10 each)
        shown = []
        for j in (predicted == labels).nonzero()[:3, 0].tolist():
            page.click("#clear")
            _draw(page, x[j, 0])
            shown.append(_answer(page) == str(int(labels[j])))
        assert sum(shown) >= 2, shown
        page.screenshot(path=str(tmp_path / "page.png"))
        page.close()


def _draw(page, pixels: torch.Tensor) -> None:
    box = page.locator("#canvas").bounding_box()
    cell = box["width"] / pixels.shape[1]
    for r, row in enumerate(pixels.tolist()):
        c = 0
        while c < len(row):
            if row[c] < 128:
                c += 1
                continue
            end = c
            while end + 1 < len(row) and row[end + 1] >= 128:
                end += 1
            y = box["y"] + (r + 0.5) * cell
            page.mouse.move(box["x"] + (c + 0.5) * cell, y)
            page.mouse.down()
            page.mouse.move(box["x"] + (end + 0.5) * cell + 1, y, steps=2)
            page.mouse.up()
            c = end + 1


# ----------------------------------------------------------------------------- load test on loopback

def _bench():
    spec = importlib.util.spec_from_file_location("serve_load", ROOT / "bench" / "serve_load.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_load_on_loopback_has_zero_errors(mlp_run):
    import httpx

    bench = _bench()
    with bench.served(mlp_run) as url:  # `python -m trainlab serve RUN --port 0`: the real CLI and uvicorn
        assert url.startswith("http://127.0.0.1:")
        bad = httpx.post(url + "/predict", content=b"junk", headers={"content-type": "image/png"})
        assert bad.status_code == 400 and json.loads(bad.text)["error"].startswith("not an image")
        stats = bench.load(url, bench.digit_payloads(32), requests=200, concurrency=8, timeout=60)
    assert stats["ok"] == 200 and stats["errors"] == 0, stats
    assert stats["p50_ms"] <= stats["p99_ms"] and stats["rps"] > 0
    assert stats["accuracy"] > 0.8  # real answers, not just status 200
