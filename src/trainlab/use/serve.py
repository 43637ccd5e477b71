"""`trainlab serve RUN_DIR|MODEL_FILE [--port 8000]`: a web page and a JSON API for a trained model.

    trainlab serve runs/demo                 # http://127.0.0.1:8000/ : upload or draw a digit
    curl -F file=@digit.png http://127.0.0.1:8000/predict
    curl -H 'Content-Type: application/json' -d '{"features": [5.1, 3.5, 1.4, 0.2]}' http://127.0.0.1:8000/predict

Endpoints: `GET /` (page), `GET /health`, `GET /info` (label map, input format), `POST /predict` with an image
(multipart field `file`, or a raw image/* body) or JSON `{"features": [...]}` for tabular/sequence runs.
Bad requests get a 4xx JSON `{"error": ...}` (400 malformed / not an image, 413 too large, 415 wrong
content type, 422 wrong feature count); the server binds 127.0.0.1 unless --host says otherwise.
In Python: `app = create_app("runs/demo")`, or `with running_server(app) as url: ...` in a notebook.
"""
# No `from __future__ import annotations`: FastAPI reads the endpoints' annotations (Request) at definition
# time, and fastapi is imported inside create_app so `trainlab --help` stays fast.
import argparse
import contextlib
import io
import json
import logging
import socket
import sys
import threading
from collections.abc import Iterator

import torch

from trainlab.core.errors import UserError
from trainlab.data.images import load_image
from trainlab.data.text import encode
from trainlab.use.inference import Predictor, load_predictor, predictor_from_run
from trainlab.use.loaded import Run
from trainlab.use.serve_page import page_html

DEFAULT_MAX_BYTES = 2 * 2**20  # upload limit: a 2 MiB image is far larger than anything a model here takes
MAX_PIXELS = 4096 * 4096  # decoded size limit: a small PNG can still decode to gigabytes
LOOPBACK = ("127.0.0.1", "localhost", "::1")
log = logging.getLogger("trainlab.use.serve")


def run(args: argparse.Namespace) -> int:
    if not 0 <= args.port <= 65535:
        raise UserError(f"--port must be in 0..65535, got {args.port}")
    if args.max_bytes < 1024:
        raise UserError(f"--max-bytes must be >= 1024, got {args.max_bytes}")
    app = create_app(args.run_dir, args.max_bytes, trust_code=args.trust_code)
    sock = bind(args.host, args.port)
    host, port = sock.getsockname()[:2]
    if args.host not in LOOPBACK:
        print(f"warning: listening on {args.host}: other machines on your network can reach this model",
              file=sys.stderr)
    url_host = f"[{host}]" if ":" in host else host
    print(f"serving {app.state.predictor.source} at http://{url_host}:{port}/  (Ctrl+C stops)", flush=True)
    server(app, args.log_level).run(sockets=[sock])
    return 0


# ----------------------------------------------------------------------------- the app

def create_app(run_or_path, max_bytes: int = DEFAULT_MAX_BYTES, trust_code: bool = False):
    """A FastAPI app for a Run, a Predictor, a run directory or an exported model file.

    A TorchScript file runs code when loaded: only with trust_code (`serve --trust-code`, the owner's choice)."""
    from fastapi import FastAPI, Request  # optional heavy dependency: imported on use
    from fastapi.responses import HTMLResponse  # optional heavy dependency: imported on use
    from starlette.concurrency import run_in_threadpool  # optional heavy dependency: imported on use


    predictor = _predictor(run_or_path, trust_code)
    info = public_info(predictor.data, max_bytes)
    app = FastAPI(title="trainlab serve", docs_url=None, redoc_url=None)  # the docs pages load from a CDN
    app.state.predictor = predictor
    _install_error_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=max_bytes)
    page = page_html(info)

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return page

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "model": info["model"], "source": predictor.source}

    @app.get("/info")
    def model_info() -> dict:
        return info

    @app.post("/predict")
    async def predict(request: Request, top: int = 5) -> dict:
        x = await read_request(request, predictor.data)
        out = await run_in_threadpool(predictor, x)  # keep the event loop free while the model runs
        return {"predictions": prediction_rows(out, predictor, max(1, top))}

    return app


def _predictor(run_or_path, trust_code: bool = False):
    if isinstance(run_or_path, Predictor):
        return run_or_path
    if isinstance(run_or_path, Run):
        return predictor_from_run(run_or_path)
    return load_predictor(run_or_path, trust_code=trust_code)


def public_info(data: dict, max_bytes: int) -> dict:
    """What the page and API clients need: classes, input kind and shape, feature names."""
    meta, shape = data.get("meta") or {}, data["raw_shape"]
    image = data["kind"] == "image"
    # feature names per step: tabular `features` (one-hot expanded), time-series `columns`
    names = next((meta[k] for k in ("features", "columns") if isinstance(meta.get(k), list)
                  and len(meta[k]) == shape[-1] and not image), None)
    return {"task": data["task"], "kind": data["kind"], "classes": data.get("classes"), "model": data.get("model"),
            "dataset": data.get("dataset"), "raw_shape": shape, "features": names,
            "canvas": image and shape[0] == 1, "max_bytes": max_bytes}


def prediction_rows(out: torch.Tensor, predictor, top: int) -> list[dict]:
    """(B, classes) probabilities -> [{prediction, probabilities: {class: p}, top: [{class, probability}]}]."""
    if predictor.task != "classification":
        return [{"prediction": v if len(v) > 1 else v[0]} for v in out.reshape(len(out), -1).tolist()]
    classes, rows = predictor.classes, []
    for p in out.tolist():
        order = sorted(range(len(p)), key=lambda i: -p[i])
        rows.append({"prediction": classes[order[0]], "probabilities": dict(zip(classes, p, strict=True)),
                     "top": [{"class": classes[i], "probability": p[i]} for i in order[:top]]})
    return rows


# ----------------------------------------------------------------------------- request parsing

def _http_error(status: int, message: str):
    from fastapi import HTTPException  # optional heavy dependency: imported on use

    return HTTPException(status_code=status, detail=message)


async def read_request(request, data: dict) -> torch.Tensor:
    """The request body -> a raw input batch (B, *raw_shape), or a 4xx HTTPException saying what is wrong."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    image = data["kind"] == "image"
    if ctype == "application/json":
        if image:
            raise _http_error(415, "this model takes an image: send it as multipart field 'file' or an image/* body")
        return parse_features(await request.body(), data)
    if not image:
        raise _http_error(415, 'this model takes JSON: Content-Type application/json, body {"features": [...]}')
    if ctype == "multipart/form-data":
        form = await request.form()
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise _http_error(400, "multipart body has no file field 'file'")
        return decode_image(await upload.read(), data["raw_shape"])
    if ctype.startswith("image/") or ctype == "application/octet-stream":
        return decode_image(await request.body(), data["raw_shape"])
    raise _http_error(415, f"unsupported Content-Type {ctype or '(none)'!r}: send multipart/form-data with a "
                           f"field 'file', or an image/* body")


def decode_image(body: bytes, raw_shape: list[int]) -> torch.Tensor:
    """Image file bytes -> uint8 (1, C, H, W) at the run's size and channels (trainlab.data.images.load_image)."""
    from PIL import Image, UnidentifiedImageError  # optional heavy dependency: imported on use


    if not body:
        raise _http_error(400, "empty body: send an image file")
    try:
        with Image.open(io.BytesIO(body)) as im:
            width, height = im.size  # reads the header only
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        raise _http_error(400, "not an image: the body is not a PNG, JPEG, GIF, BMP, WebP or TIFF file") from None
    if width * height > MAX_PIXELS:
        raise _http_error(413, f"image too large: {width}x{height} pixels (limit {MAX_PIXELS:,} pixels)")
    c, h, w = raw_shape
    try:
        return load_image(io.BytesIO(body), (h, w), c).unsqueeze(0)
    except UserError:
        raise _http_error(400, "not a readable image: the file is truncated or corrupted") from None


def parse_features(body: bytes, data: dict) -> torch.Tensor:
    """JSON {"features": [...]} (one sample) or [[...], ...] (a batch) -> (B, *raw_shape) checked tensor."""
    try:
        obj = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise _http_error(400, "malformed JSON body") from None
    if isinstance(obj, dict) and data["kind"] == "text" and "text" in obj:
        return encode_text(obj["text"], data)
    if not isinstance(obj, dict) or "features" not in obj:
        want = '{"text": "..."} or {"features": [token ids]}' if data["kind"] == "text" else '{"features": [...]}'
        raise _http_error(400, f"expected a JSON object {want}")
    dtype = getattr(torch, data["raw_dtype"])
    try:
        x = torch.tensor(obj["features"], dtype=dtype)
    except (TypeError, ValueError, RuntimeError, OverflowError):
        raise _http_error(422, "features must be a list of numbers (or a list of such lists)") from None
    shape = tuple(data["raw_shape"])
    if tuple(x.shape) == shape:
        x = x.unsqueeze(0)
    if x.ndim != len(shape) + 1 or tuple(x.shape[1:]) != shape or len(x) == 0:
        got = list(x.shape[1:]) if x.ndim == len(shape) + 1 else list(x.shape)
        want = f"{shape[0]} features" if len(shape) == 1 else f"shape {list(shape)} (steps, features)"
        raise _http_error(422, f"wrong feature count: expected {want} per sample, got {got}")
    if x.is_floating_point() and not torch.isfinite(x).all():
        raise _http_error(422, "features must be finite numbers")
    vocab = (data.get("model_info") or {}).get("vocab_size")
    if not x.is_floating_point() and vocab and (x.min() < 0 or x.max() >= vocab):
        raise _http_error(422, f"token ids must be in 0..{vocab - 1}")
    return x


def encode_text(text, data: dict) -> torch.Tensor:
    """A text or a list of texts -> (B, max_len) token ids with the run's training vocabulary."""
    texts = [text] if isinstance(text, str) else text
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise _http_error(422, "text must be a string or a non-empty list of strings")
    return encode(texts, data["meta"])


# ----------------------------------------------------------------------------- errors and limits

class BodyTooLarge(Exception):
    pass


class BodyLimit:
    """ASGI middleware: 413 for a Content-Length over the limit, and for bodies that stream past it."""
    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            return await _json_response(413, self._message(int(length)))(scope, receive, send)
        seen = 0

        async def limited_receive():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise BodyTooLarge(self._message(seen))
            return message

        await self.app(scope, limited_receive, send)

    def _message(self, n: int) -> str:
        return f"request too large: {n:,} bytes (limit {self.max_bytes:,}; see --max-bytes)"


def _json_response(status: int, message: str):
    from fastapi.responses import JSONResponse  # optional heavy dependency: imported on use

    return JSONResponse({"error": message}, status_code=status)


def _install_error_handlers(app) -> None:
    """Every error is JSON {"error": ...}; no traceback ever reaches the client."""
    from fastapi.exceptions import RequestValidationError  # optional heavy dependency: imported on use
    from starlette.exceptions import HTTPException  # optional heavy dependency: imported on use

    async def http_error(request, exc: HTTPException):
        return _json_response(exc.status_code, str(exc.detail))

    async def validation_error(request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return _json_response(422, f"invalid {where}: {first.get('msg', 'bad value')}")

    async def too_large(request, exc: BodyTooLarge):
        return _json_response(413, str(exc))

    async def unexpected(request, exc: Exception):
        log.exception("unexpected error in %s %s", request.method, request.url.path)
        return _json_response(500, "internal error (see the server log)")

    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(BodyTooLarge, too_large)
    app.add_exception_handler(Exception, unexpected)


# ----------------------------------------------------------------------------- running it

def bind(host: str, port: int) -> socket.socket:
    """A listening socket, so a busy port is a one-line error and port 0 picks a free one."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise UserError(f"cannot listen on {host}:{port}: {e.strerror or e}; pick another --port") from None
    sock.listen(128)
    return sock


def server(app, log_level: str = "info"):
    import uvicorn  # optional heavy dependency: imported on use

    return uvicorn.Server(uvicorn.Config(app, log_level=log_level, access_log=log_level in ("debug", "info")))


@contextlib.contextmanager
def running_server(app, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning") -> Iterator[str]:
    """Serve `app` from a background thread; yields its URL and stops it on exit (tests, notebooks)."""
    sock = bind(host, port)
    srv = server(app, log_level)
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(500):  # up to 5 s for startup
            if srv.started or not thread.is_alive():
                break
            threading.Event().wait(0.01)
        if not srv.started:
            raise RuntimeError("the server did not start")
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        srv.should_exit = True
        thread.join(timeout=10)
        sock.close()
