"""trainlab serve under attack (issue 17 items 4, 6, 7; issue 15 item 5): crafted bodies, images, parameters and
clients each get the documented 4xx with a one-line JSON error, never a 5xx, a traceback or a warning.

Every warning raised while a test runs is an error here, so one reaching the server's code shows up as a 500.
"""
from __future__ import annotations

import io
import json
import logging
import math
import socket
import struct
import time
import warnings
import zlib
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFile

from test_export import csv_run, trained_run
from test_serve import assert_json_error, png_bytes, upload
from trainlab.data.images import png_pixels_complete
from trainlab.data.text import encode
from trainlab.use.export import split_samples
from trainlab.use.inference import Predictor
from trainlab.use.loaded import load_run
from trainlab.use.serve import create_app, one_line_warnings, running_server
from trainlab.use.serve_request import MAX_FILES, MAX_PIXELS, MAX_SAMPLES, MAX_SIDE

pytestmark = [pytest.mark.filterwarnings("error"),
              pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")]
JSON = {"content-type": "application/json"}


# ----------------------------------------------------------------------------- runs, clients, crafted files

def _client(run):
    from fastapi.testclient import TestClient

    return TestClient(create_app(run), raise_server_exceptions=False)


@pytest.fixture(scope="module")
def mlp_run(tmp_path_factory) -> Path:
    return trained_run(tmp_path_factory, "mlp")


@pytest.fixture(scope="module")
def text_run(tmp_path_factory) -> Path:
    return trained_run(tmp_path_factory, "transformer")


@pytest.fixture(scope="module")
def clients(mlp_run, text_run, tmp_path_factory) -> dict:
    return {"image": _client(mlp_run), "table": _client(csv_run(tmp_path_factory)), "text": _client(text_run)}


@pytest.fixture(scope="module")
def digit_pngs(mlp_run) -> list[bytes]:
    x, _, _ = split_samples(load_run(mlp_run), 8)
    return [png_bytes(img[0].numpy()) for img in x]


def declaring(width: int, height: int) -> bytes:
    """A 1x1 PNG whose header is patched (checksum fixed) to declare width x height: 69 bytes."""
    data = bytearray(png_bytes(np.zeros((1, 1), dtype=np.uint8)))
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def bilevel(width: int, height: int) -> bytes:
    """A real all-black 1-bit PNG: compresses about 1000:1, so 14000x14000 pixels fit in 24 KB."""
    buf = io.BytesIO()
    Image.new("1", (width, height)).save(buf, "PNG")
    return buf.getvalue()


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def short_png(rows: int, width: int = 8, height: int = 8) -> bytes:
    """A grayscale PNG with valid chunk checksums whose pixel data holds only `rows` of its `height` rows."""
    pixels = b"".join(b"\0" + bytes(range(0, 256, 256 // width))[:width] for _ in range(rows))
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + _chunk(b"IDAT", zlib.compress(pixels)) + _chunk(b"IEND", b""))


def files(*pngs: bytes) -> dict:
    return {"files": [("file", (f"{chr(97 + i)}.png", png, "image/png")) for i, png in enumerate(pngs)]}


def assert_same_answers(got: list[dict], want: list[dict]) -> None:
    """The same classes in the same order; probabilities equal up to batched-matmul rounding."""
    assert [row["prediction"] for row in got] == [row["prediction"] for row in want]
    for g, w in zip(got, want, strict=True):
        assert list(g["probabilities"]) == list(w["probabilities"])
        assert list(g["probabilities"].values()) == pytest.approx(list(w["probabilities"].values()), abs=1e-5)


never_decoded = mock.patch("trainlab.use.serve_request.load_image", side_effect=AssertionError("decoded"))


# ----------------------------------------------------------------------------- 400: empty, malformed, truncated

@pytest.mark.parametrize("kind", ["table", "text"])
def test_deeply_nested_json_is_400_not_500(clients, kind):
    deep = b'{"features": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    assert_json_error(clients[kind].post("/predict", content=deep, headers=JSON), 400, "nested too deeply")
    # 500 levels still parse (under Python's recursion limit): a wrong shape, not a crash
    nested = b'{"features": ' + b"[" * 500 + b"1" + b"]" * 500 + b"}"
    assert_json_error(clients[kind].post("/predict", content=nested, headers=JSON), 422, "features must be")


@pytest.mark.parametrize("kind", ["image", "table", "text"])
@pytest.mark.parametrize("ctype", [None, "image/png", "application/json", "text/plain"])
def test_an_empty_body_is_400_whatever_its_content_type(clients, kind, ctype):
    headers = {"content-type": ctype} if ctype else {}
    assert_json_error(clients[kind].post("/predict", content=b"", headers=headers), 400, "empty body: send")


def test_png_with_truncated_pixel_data_is_400(clients):
    full, half = short_png(rows=8), short_png(rows=4)
    assert png_pixels_complete(full) and not png_pixels_complete(half)
    r = clients["image"].post("/predict", **upload(half))  # answered 200 before: Pillow fills the rows in black
    assert_json_error(r, 400, "truncated or corrupted (PNG pixel data ends early)")
    saved = png_bytes(np.random.default_rng(0).integers(0, 255, (8, 8), dtype=np.uint8))
    no_checksum = saved[:-20]  # cut inside the zlib checksum: Pillow's load() accepts it, verify() does not
    assert_json_error(clients["image"].post("/predict", **upload(no_checksum)), 400, "truncated or corrupted")
    assert clients["image"].post("/predict", **upload(full)).status_code == 200
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


# ----------------------------------------------------------------------------- 413: bombs, strips, too many

@pytest.mark.parametrize("png, needle", [
    (lambda: declaring(20_000, 20_000), "declares over 178,956,970 pixels"),  # past Pillow's own bomb error
    (lambda: bilevel(14_000, 14_000), "declares over 178,956,970 pixels"),  # a real 24 KB file
    (lambda: bilevel(5_000, 5_000), "5000x5000 pixels"),  # under Pillow's warning, over ours
    (lambda: bilevel(16_000_000, 1), f"{MAX_SIDE} per side"),  # 16M pixels < MAX_PIXELS: the side cap
    (lambda: declaring(1, 16_000_000), f"{MAX_SIDE} per side"),  # took 9.4 s of server CPU as a 30 KB file
], ids=["20000x20000-header", "14000x14000-1bit", "5000x5000-1bit", "16Mx1-1bit", "1x16M-header"])
def test_decompression_bombs_are_413_before_any_pixel_is_decoded(clients, png, needle):
    body = png()
    assert len(body) < 40_000
    with never_decoded:
        assert_json_error(clients["image"].post("/predict", **upload(body)), 413, needle)
        assert_json_error(clients["image"].post("/predict", content=body, headers={"content-type": "image/png"}),
                          413, "image too large")


def test_pixel_budget_is_per_request_and_the_limits_are_inclusive(clients):
    with never_decoded:
        r = clients["image"].post("/predict", **files(bilevel(3000, 3000), bilevel(3000, 3000)))
    assert_json_error(r, 413, f"images too large together: 18,000,000 pixels in 2 files (limit {MAX_PIXELS:,}")
    assert clients["image"].post("/predict", **upload(bilevel(MAX_SIDE, 1))).status_code == 200


def test_more_files_than_the_limit_is_413(clients, digit_pngs):
    r = clients["image"].post("/predict", **files(*[digit_pngs[0]] * (MAX_FILES + 1)))
    assert_json_error(r, 413, f"too many files: {MAX_FILES + 1}")


# ----------------------------------------------------------------------------- 422: parameters and values

@pytest.mark.parametrize("top", ["0", "-1", "-99999999999999999999", "1.5", "many"])
def test_top_below_one_or_not_an_integer_is_422(clients, digit_pngs, top):
    assert_json_error(clients["image"].post(f"/predict?top={top}", **upload(digit_pngs[0])), 422, "query.top")


def test_top_in_range_sets_the_length_of_top(clients, digit_pngs):
    for top, n in ((1, 1), (3, 3), (10_000, 10)):
        rows = clients["image"].post(f"/predict?top={top}", **upload(digit_pngs[0])).json()["predictions"]
        assert len(rows[0]["top"]) == n


def test_token_ids_must_be_integers_on_text_runs(clients, text_run):
    meta = load_run(text_run).data["meta"]
    ids = encode(["qqaqbqc"], meta)[0].tolist()
    by_text = clients["text"].post("/predict", json={"text": "qqaqbqc"}).json()["predictions"]
    by_ids = clients["text"].post("/predict", json={"features": ids}).json()["predictions"]
    assert by_ids == by_text
    for bad in ([float(i) + 0.5 for i in ids], [float(i) for i in ids]):  # 2.5 was read as token 2 before
        assert_json_error(clients["text"].post("/predict", json={"features": bad}), 422, "whole numbers")
    assert_json_error(clients["text"].post("/predict", json={"features": [True] * len(ids)}), 422, "true/false")
    assert_json_error(clients["text"].post("/predict", json={"features": [2**70] * len(ids)}), 422, "too large")


@pytest.mark.parametrize("values, needle", [
    ([1e308] * 5, "finite numbers (the model reads float32"),  # finite in JSON, infinite as float32
    ([1e309, 0, 0, 0, 0], "finite numbers"),  # Python reads 1e309 as inf
    ([3e38] * 5, "output is not a finite number"),  # finite float32, overflows in normalize: NaN probabilities
])
def test_features_that_overflow_are_422_without_a_warning(clients, values, needle):
    body = json.dumps({"features": values}).encode()
    assert_json_error(clients["table"].post("/predict", content=body, headers=JSON), 422, needle)


# ----------------------------------------------------------------------------- several answers per request

def test_several_files_get_several_answers_in_order(clients, digit_pngs):
    one_by_one = [clients["image"].post("/predict", **upload(p)).json()["predictions"][0] for p in digit_pngs[:3]]
    together = clients["image"].post("/predict", **files(*digit_pngs[:3]))
    assert together.status_code == 200
    assert_same_answers(together.json()["predictions"], one_by_one)
    r = clients["image"].post("/predict", **files(digit_pngs[0], b"not a picture", digit_pngs[1]))
    assert_json_error(r, 400, "file 2 (b.png): not an image")


def test_batch_json_instances_on_a_tabular_run(clients, tmp_path_factory):
    from trainlab.use.export import parity_inputs

    x, _ = parity_inputs(load_run(csv_run(tmp_path_factory)), 3)
    rows = x.tolist()
    batch = clients["table"].post("/predict", json={"features": rows}).json()["predictions"]
    instances = [{"features": rows[0]}, rows[1], {"features": [rows[2]]}]  # a body, a bare row, a batch of one
    r = clients["table"].post("/predict", json={"instances": instances})
    assert r.status_code == 200
    assert_same_answers(r.json()["predictions"], batch)
    bad = clients["table"].post("/predict", json={"instances": [rows[0], rows[1][:2]]})
    assert_json_error(bad, 422, "instances[1]: wrong feature count")
    assert_json_error(clients["table"].post("/predict", json={"instances": [rows[:2]]}), 422,
                      "instances[0]: one sample per instance, got 2")
    assert_json_error(clients["table"].post("/predict", json={"instances": []}), 422, "non-empty list")
    many = clients["table"].post("/predict", json={"instances": [rows[0]] * (MAX_SAMPLES + 1)})
    assert_json_error(many, 413, f"too many instances: {MAX_SAMPLES + 1}")
    assert_json_error(clients["table"].post("/predict", json={"features": [rows[0]] * (MAX_SAMPLES + 1)}), 413,
                      "too many samples")


def test_batch_json_instances_on_a_text_run(clients, text_run):
    ids = encode(["zzcab"], load_run(text_run).data["meta"])[0].tolist()
    alone = [clients["text"].post("/predict", json=body).json()["predictions"][0]
             for body in ({"text": "qqaqbqc"}, {"text": "cba"}, {"features": ids})]
    r = clients["text"].post("/predict", json={"instances": ["qqaqbqc", {"text": "cba"}, {"features": ids}]})
    assert r.status_code == 200
    assert_same_answers(r.json()["predictions"], alone)
    assert_json_error(clients["text"].post("/predict", json={"instances": ["ok", 7]}), 400, "instances[1]")


def test_openapi_json_is_served_and_the_cdn_pages_are_not(clients):
    spec = clients["image"].get("/openapi.json").json()
    post = spec["paths"]["/predict"]["post"]
    assert set(post["requestBody"]["content"]) == {"multipart/form-data", "image/*", "application/json"}
    assert {"400", "413", "415", "422"} <= set(post["responses"])
    assert post["responses"]["422"]["content"]["application/json"]["schema"]["required"] == ["error"]
    (top,) = post["parameters"]
    assert top["name"] == "top" and top["schema"]["minimum"] == 1
    assert clients["image"].get("/docs").status_code == 404 and clients["image"].get("/redoc").status_code == 404
    assert clients["image"].get("/info").json()["limits"]["side"] == MAX_SIDE


# ----------------------------------------------------------------------------- a client that goes away

@pytest.mark.parametrize("ctype", ["image/png", "multipart/form-data; boundary=xx"])
def test_a_client_disconnecting_mid_body_is_one_warning_line(mlp_run, caplog, capfd, ctype):
    caplog.set_level(logging.INFO)
    with running_server(create_app(mlp_run)) as url:
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(f"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: {ctype}\r\n"
                      f"Content-Length: 100000\r\n\r\n".encode() + b"--xx\r\n" + b"a" * 1000)
            time.sleep(0.2)
        for _ in range(100):  # up to 5 s for the server to notice
            if any("disconnected" in r.getMessage() for r in caplog.records):
                break
            time.sleep(0.05)
    mine = [r for r in caplog.records if r.name.startswith(("trainlab", "uvicorn"))]
    assert [(r.levelname, "disconnected before sending the whole request" in r.getMessage()) for r in mine
            if r.levelno >= logging.WARNING] == [("WARNING", True)], [r.getMessage() for r in mine]
    assert not any(r.exc_info for r in mine)
    assert "Traceback" not in capfd.readouterr().err


# ----------------------------------------------------------------------------- warnings while serving

def test_a_warning_while_serving_is_one_log_line(caplog, capfd, digit_pngs):
    """`trainlab serve` runs inside one_line_warnings: a warning raised in a request (Pillow converting a
    palette PNG with byte transparency to RGB does, torch on odd inputs) is one log record, not stderr noise."""
    def model(x: torch.Tensor) -> torch.Tensor:  # (B, 3, 8, 8) uint8 -> (B, 2)
        warnings.warn("first line\nsecond line", UserWarning, stacklevel=1)
        return torch.full((len(x), 2), 0.5)

    data = {"task": "classification", "kind": "image", "classes": ["a", "b"], "raw_shape": [3, 8, 8],
            "raw_dtype": "uint8"}
    client = _client(Predictor(data, model, "a model that warns"))
    with warnings.catch_warnings(), one_line_warnings():
        warnings.simplefilter("always")  # this module turns warnings into errors
        r = client.post("/predict", **upload(digit_pngs[0]))
    assert r.status_code == 200 and r.json()["predictions"][0]["prediction"] in ("a", "b")
    records = [(rec.levelname, rec.getMessage()) for rec in caplog.records if rec.name == "trainlab.use.serve"]
    assert len(records) == 1 and records[0][0] == "WARNING", records
    assert records[0][1].startswith("UserWarning: first line (test_serve_hostile.py:") and "second" not in records[0][1]
    assert "second line" not in capfd.readouterr().err


# ----------------------------------------------------------------------------- fuzzing the HTTP API

CONTENT_TYPES = st.sampled_from([None, "application/json", "application/json; charset=utf-8", "image/png",
                                 "image/jpeg", "application/octet-stream", "multipart/form-data",
                                 "multipart/form-data; boundary=xyz", "text/plain", "application/x-www-form-urlencoded"]
                                ) | st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(
        st.sampled_from(["features", "text", "instances", "file"]) | st.text(max_size=6), inner, max_size=4),
    max_leaves=40)
QUERIES = st.dictionaries(st.sampled_from(["top", "x"]), st.integers(-3, 20).map(str) | st.text(max_size=6),
                          max_size=2)


@st.composite
def hostile_requests(draw, digit: bytes, width: int, image: bool) -> dict:
    """A request body of one of: random bytes, random JSON, near-valid features/texts, a mangled digit PNG,
    (image runs) a multipart form of those; with a random content type and query."""
    extremes = st.sampled_from([3e38, -3e38, 1e308, 1e-45, -0.0, 2**63, -(2**63) - 1])
    numbers = st.integers(-300, 300) | st.floats(width=32) | st.floats() | extremes
    bodies = {
        "bytes": st.binary(max_size=400),
        "json": JSON_VALUES.map(lambda v: json.dumps(v).encode()),
        "features": st.lists(numbers, min_size=width, max_size=width).map(
            lambda v: json.dumps({"features": v}).encode()),
        "text": st.text(max_size=50).map(lambda t: json.dumps({"text": t}).encode()),
        "instances": st.lists(st.lists(numbers, min_size=width, max_size=width) | st.text(max_size=20), max_size=4
                              ).map(lambda v: json.dumps({"instances": v}).encode()),
        "png": st.tuples(st.integers(0, len(digit)), st.integers(0, len(digit) - 1), st.integers(0, 255)).map(
            lambda cut: (digit[:cut[1]] + bytes([cut[2]]) + digit[cut[1] + 1:])[:max(cut[0], 1)]),
    }
    kind = draw(st.sampled_from([*bodies, *(["png"] * 3 if image else ["features"] * 3)]))  # near-valid: often
    params = draw(st.just({}) | QUERIES)
    if image and draw(st.booleans()):
        parts = draw(st.lists(st.tuples(st.sampled_from(["file", "other"]), st.one_of(*bodies.values())), max_size=3))
        return {"files": [(name, ("x.png", part, "image/png")) for name, part in parts] or None,
                "data": {"note": "x"}, "params": params}
    natural = "image/png" if kind in ("bytes", "png") else "application/json"
    ctype = draw(st.just(natural) | CONTENT_TYPES)
    return {"content": draw(bodies[kind]), "headers": {"content-type": ctype} if ctype else {}, "params": params}


@pytest.mark.parametrize("kind", ["image", "table", "text"])
def test_fuzzed_requests_never_get_a_5xx(clients, digit_pngs, kind):
    info = clients[kind].get("/info").json()

    @settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
    @given(request=hostile_requests(digit_pngs[0], info["raw_shape"][-1], info["kind"] == "image"))
    def check(request):
        r = clients[kind].post("/predict", **request)
        assert r.status_code < 500, (r.status_code, r.text)
        body = r.json()
        if r.status_code >= 400:
            assert set(body) == {"error"} and isinstance(body["error"], str) and body["error"], body
            assert "\n" not in body["error"] and "Traceback" not in body["error"]
        else:
            rows = body["predictions"]
            assert rows and all(row["prediction"] is not None for row in rows), rows
            probabilities = [v for row in rows for v in row["probabilities"].values()]  # every run here classifies
            assert all(isinstance(p, float) and math.isfinite(p) for p in probabilities), rows

    check()
