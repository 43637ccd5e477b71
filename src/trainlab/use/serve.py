"""`trainlab serve RUN_DIR|MODEL_FILE [--port 8000]`: a web page and a JSON API for a trained model.

    trainlab serve runs/demo                 # http://127.0.0.1:8000/ : upload or draw a digit
    curl -F file=@digit.png http://127.0.0.1:8000/predict
    curl -H 'Content-Type: application/json' -d '{"features": [5.1, 3.5, 1.4, 0.2]}' http://127.0.0.1:8000/predict

Endpoints: `GET /` (page), `GET /health`, `GET /info` (label map, input format), `GET /openapi.json`,
`POST /predict` with images (multipart field `file`, repeated for several, or a raw image/* body) or JSON
`{"features": [...]}`, `{"text": ...}` or `{"instances": [...]}` for tabular/sequence/text runs: one
prediction per image or sample. Bad requests get a 4xx JSON `{"error": ...}` (use/serve_request.py:
400 empty or malformed, 408 a body that stalls (--body-timeout), 413 too large, 415 wrong content type, 422 bad
values or parameters); the server
binds 127.0.0.1 unless --host says otherwise.
In Python: `app = create_app("runs/demo")`, or `with running_server(app) as url: ...` in a notebook.
"""
# No `from __future__ import annotations`: FastAPI reads the endpoints' annotations (Request) at definition
# time, and fastapi is imported inside create_app so `trainlab --help` stays fast.
import asyncio
import contextlib
import logging
import socket
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch

from trainlab.core.errors import UserError
from trainlab.core.report import Reporter, print_progress
from trainlab.use.card import CARD
from trainlab.use.inference import Predictor, load_predictor, predictor_from_run
from trainlab.use.loaded import Run
from trainlab.use.serve_page import PREDICT_ERRORS, PREDICT_OPENAPI, page_html, table_columns
from trainlab.use.serve_request import MAX_FILES, MAX_PIXELS, MAX_SAMPLES, MAX_SIDE, BadRequest, read_payload, to_batch

DEFAULT_MAX_BYTES = 2 * 2**20  # upload limit: a 2 MiB image is far larger than anything a model here takes
DEFAULT_BODY_TIMEOUT = 30.0  # seconds a request body may take to arrive: 2 MiB at 70 KB/s; a stalled client is cut
LOOPBACK = ("127.0.0.1", "localhost", "::1")
log = logging.getLogger("trainlab.use.serve")


def serve_run(source: str | Path, host: str = "127.0.0.1", port: int = 8000, max_bytes: int = DEFAULT_MAX_BYTES,
              trust_code: bool = False, log_level: str = "info", report: Reporter = print_progress,
              body_timeout: float = DEFAULT_BODY_TIMEOUT) -> int:
    """`trainlab serve`: serve a run directory or exported model file until Ctrl+C; says where it listens.
    A request body that has not arrived whole within `body_timeout` seconds is answered 408."""
    if not 0 <= port <= 65535:
        raise UserError(f"--port must be in 0..65535, got {port}")
    if max_bytes < 1024:
        raise UserError(f"--max-bytes must be >= 1024, got {max_bytes}")
    if not 0 < body_timeout <= 86_400:  # the CLI's bound (cli/arguments.seconds), for callers of serve_run
        raise UserError(f"--body-timeout must be a number of seconds above 0 and at most 86400, got {body_timeout}")
    with one_line_warnings():
        app = create_app(source, max_bytes, trust_code=trust_code, body_timeout=body_timeout)
        sock = bind(host, port)
        bound_host, bound_port = sock.getsockname()[:2]
        if host not in LOOPBACK:
            report(f"warning: listening on {host}: other machines on your network can reach this model", warning=True)
        url_host = f"[{bound_host}]" if ":" in bound_host else bound_host
        report(f"serving {app.state.predictor.source} at http://{url_host}:{bound_port}/  (Ctrl+C stops)")
        server(app, log_level).run(sockets=[sock])
    return 0


@contextlib.contextmanager
def one_line_warnings() -> Iterator[None]:
    """While serving, a warning (Pillow on an odd palette, torch on a model file) is one log line, not the
    two lines of `file:line: message` and source that Python prints on stderr; restored on exit."""
    def log_warning(message, category, filename, lineno, file=None, line=None) -> None:
        text = (str(message).splitlines() or [""])[0]
        log.warning("%s: %s (%s:%s)", category.__name__, text, Path(filename).name, lineno)

    with warnings.catch_warnings():
        warnings.showwarning = log_warning
        yield


# ----------------------------------------------------------------------------- the app

def create_app(run_or_path, max_bytes: int = DEFAULT_MAX_BYTES, trust_code: bool = False,
               body_timeout: float = DEFAULT_BODY_TIMEOUT):
    """A FastAPI app for a Run, a Predictor, a run directory or an exported model file; a request body must
    arrive whole within `body_timeout` seconds (else 408).

    A TorchScript file runs code when loaded: only with trust_code (`serve --trust-code`, the owner's choice)."""
    from fastapi import FastAPI, Query, Request  # optional heavy dependency: imported on use
    from fastapi.responses import HTMLResponse, PlainTextResponse  # optional heavy dependency: imported on use
    from starlette.concurrency import run_in_threadpool  # optional heavy dependency: imported on use

    predictor = _predictor(run_or_path, trust_code)
    info = public_info(predictor.data, max_bytes)
    card = card_file(run_or_path)  # MODEL_CARD.md beside the model (`trainlab card`, `trainlab export`)
    info["card"] = "/card" if card else None
    # /openapi.json is served; the /docs and /redoc pages are not: they load their scripts from a CDN
    app = FastAPI(title="trainlab serve", docs_url=None, redoc_url=None)
    app.state.predictor = predictor
    _install_error_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=max_bytes, body_timeout=body_timeout)
    page = page_html(info)

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return page

    @app.get("/card", response_class=PlainTextResponse)
    def model_card():
        if card is None or not card.is_file():
            return _json_response(404, "no model card beside this model; write one with: trainlab card RUN_DIR")
        return PlainTextResponse(card.read_text(encoding="utf-8"), media_type="text/markdown; charset=utf-8")

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "model": info["model"], "source": predictor.source}

    @app.get("/info")
    def model_info() -> dict:
        return info

    @app.post("/predict", openapi_extra=PREDICT_OPENAPI, responses=PREDICT_ERRORS)
    async def predict(request: Request, top: int = Query(5, ge=1, description="classes listed per answer")) -> dict:
        payload = await read_payload(request, predictor.data)  # the body: I/O on the event loop
        out, warns = await run_in_threadpool(answer, payload, predictor)  # decoding, the model: off the event loop
        rows = prediction_rows(out, predictor, top)
        return {"predictions": [{**row, "warning": w} if w else row for row, w in zip(rows, warns, strict=True)]}

    return app


def card_file(run_or_path) -> Path | None:
    """MODEL_CARD.md in the run directory, or beside an exported model file; None when there is none."""
    base = run_or_path.dir if isinstance(run_or_path, Run) else \
        Path(run_or_path) if isinstance(run_or_path, (str, Path)) else None
    if base is None:
        return None
    path = (base if base.is_dir() else base.parent) / CARD
    return path if path.is_file() else None


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
            "dataset": data.get("dataset"), "raw_shape": shape, "features": names, "columns": table_columns(data),
            "canvas": image and shape[0] == 1, "max_bytes": max_bytes,
            "limits": {"bytes": max_bytes, "pixels": MAX_PIXELS, "side": MAX_SIDE, "files": MAX_FILES,
                       "samples": MAX_SAMPLES}}


def answer(payload, predictor) -> tuple[torch.Tensor, list]:
    """read_payload's result -> the model's (B, classes) probabilities or (B, outputs) predictions, and one
    warning or None per sample."""
    x, warns = to_batch(payload, predictor.data)
    out = predictor(x)
    if out.is_floating_point() and not torch.isfinite(out).all():  # JSON has no NaN: FastAPI would send null
        raise BadRequest(422, "the model's output is not a finite number for these inputs "
                              "(values far outside what it was trained on?)")
    return out, warns


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


# ----------------------------------------------------------------------------- errors and limits

class BodyTooLarge(Exception):
    pass


class BodyTimeout(Exception):
    pass


class BodyLimit:
    """ASGI middleware: 413 for a Content-Length over the limit, and for bodies that stream past it; 408 for a
    body not whole within `body_timeout` seconds of the request (uvicorn's timeout_keep_alive covers only the
    idle time between requests: a client that sends headers and stalls would hold a connection forever)."""
    def __init__(self, app, max_bytes: int, body_timeout: float = DEFAULT_BODY_TIMEOUT):
        self.app, self.max_bytes, self.body_timeout = app, max_bytes, body_timeout

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            return await _json_response(413, self._message(int(length)))(scope, receive, send)
        seen, done = 0, False
        deadline = asyncio.get_running_loop().time() + self.body_timeout

        async def limited_receive():
            nonlocal seen, done
            if done:  # the body is in: what follows is the wait for a disconnect, not bounded here
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - asyncio.get_running_loop().time()))
            except asyncio.TimeoutError:
                raise BodyTimeout(f"request body not received within {self.body_timeout:g} s "
                                  f"({seen:,} bytes arrived); see --body-timeout") from None
            done = message.get("type") != "http.request" or not message.get("more_body", False)
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
    from starlette.requests import ClientDisconnect  # optional heavy dependency: imported on use

    async def http_error(request, exc: HTTPException):
        return _json_response(exc.status_code, str(exc.detail))

    async def bad_request(request, exc: BadRequest):
        return _json_response(exc.status, exc.message)

    async def disconnected(request, exc: ClientDisconnect):
        # the client went away mid-body: nothing to answer and nothing wrong with the server
        log.warning("client %s disconnected before sending the whole request (%s %s)",
                    request.client.host if request.client else "?", request.method, request.url.path)
        return _json_response(400, "client disconnected")

    async def validation_error(request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return _json_response(422, f"invalid {where}: {first.get('msg', 'bad value')}")

    async def too_large(request, exc: BodyTooLarge):
        return _json_response(413, str(exc))

    async def too_slow(request, exc: BodyTimeout):
        log.warning("%s: %s", request.client.host if request.client else "?", exc)
        return _json_response(408, str(exc))

    async def unexpected(request, exc: Exception):
        log.exception("unexpected error in %s %s", request.method, request.url.path)
        return _json_response(500, "internal error (see the server log)")

    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(BadRequest, bad_request)
    app.add_exception_handler(ClientDisconnect, disconnected)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(BodyTooLarge, too_large)
    app.add_exception_handler(BodyTimeout, too_slow)
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
