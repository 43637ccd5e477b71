"""How `trainlab serve` reads `POST /predict`: image uploads or JSON -> one checked raw input batch.

    payload = await read_payload(request, data)      # I/O only: the body, or the uploaded files
    x, warns = to_batch(payload, data)               # CPU (in a worker thread): check, decode, parse

A table's run takes rows as in its CSV, {"occupation": "white-collar", "age": 32, ...} (or {"features": {...}}),
encoded as in training; `warns` holds one warning or None per sample (an unseen category, an empty text, a text
longer than the model's max_len tokens: only its head is tokenized).

Every refusal is a `BadRequest` with the status docs/use.md lists: 400 empty or malformed, 413 too large
(bytes, declared pixels, files, samples), 415 wrong content type, 422 values the model cannot take.
Images are checked from their header (size) and checksums before any pixel is decoded.
"""
from __future__ import annotations

import io
import json

import pandas as pd
import torch

from trainlab.core.errors import UserError
from trainlab.data.images import ImageTooLarge, check_image_bytes, load_image
from trainlab.data.tabular import encode_rows
from trainlab.data.text import TextCoder

MAX_PIXELS = 4096 * 4096  # per request: a small PNG can still decode to gigabytes
MAX_SIDE = 8192  # per side: a 1 x 16,000,000 strip is under MAX_PIXELS and still costs seconds to decode
MAX_FILES = 64  # images in one multipart request
MAX_SAMPLES = 1024  # rows (features, texts, instances) in one JSON request
JSON_TYPE = "application/json"
WANT_IMAGE = "an image file as multipart field 'file' (repeat the field for several) or an image/* body"
WANT_JSON = ('JSON (Content-Type application/json): {"features": [...]}, {"text": ...} for text runs, '
             'or {"instances": [...]}')


class BadRequest(Exception):
    """A request the server refuses: an HTTP `status` and a one-line `message` for the client."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


# ----------------------------------------------------------------------------- reading the body

def content_type(request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def read_payload(request, data: dict) -> list[tuple[str, bytes]] | bytes:
    """Image runs: [(file name, bytes)]; other runs: the JSON body's bytes. Nothing is decoded yet."""
    ctype, image = content_type(request), data["kind"] == "image"
    if image and ctype == "multipart/form-data":
        return await read_uploads(request)
    body = await request.body()
    want = WANT_IMAGE if image else WANT_JSON
    if not body:
        raise BadRequest(400, f"empty body: send {want}")
    if not image and ctype == JSON_TYPE:
        return body
    if image and (ctype.startswith("image/") or ctype == "application/octet-stream"):
        return [("body", body)]
    raise BadRequest(415, f"unsupported Content-Type {ctype or '(none)'!r}: this model takes {want}")


async def read_uploads(request) -> list[tuple[str, bytes]]:
    """Every multipart field named 'file', in order; the upload's temporary files are closed on return."""
    async with request.form() as form:  # starlette answers a malformed multipart body with 400
        uploads = form.getlist("file")
        if not uploads:
            raise BadRequest(400, "multipart body has no file field 'file'")
        if len(uploads) > MAX_FILES:
            raise BadRequest(413, f"too many files: {len(uploads)} (limit {MAX_FILES} per request)")
        if any(isinstance(u, str) for u in uploads):
            raise BadRequest(400, "multipart field 'file' must be a file upload, not a text value")
        files = [((u.filename or "")[:80], await u.read()) for u in uploads]
    return files


def _which(i: int, name: str, n: int) -> str:
    """How an error names file i of n: nothing when it is the only one."""
    return f"file {i + 1} ({name}): " if n > 1 else ""


def check_images(files: list[tuple[str, bytes]]) -> None:
    """400 / 413 from each file's header and checksums, and 413 if all of them together exceed MAX_PIXELS."""
    total = 0
    for i, (name, body) in enumerate(files):
        where = _which(i, name, len(files))
        if not body:
            raise BadRequest(400, f"{where}empty body: send {WANT_IMAGE}")
        try:
            width, height = check_image_bytes(body, MAX_PIXELS, MAX_SIDE)
        except ImageTooLarge as e:
            raise BadRequest(413, where + str(e)) from None
        except UserError as e:
            raise BadRequest(400, where + str(e)) from None
        total += width * height
    if total > MAX_PIXELS:
        raise BadRequest(413, f"images too large together: {total:,} pixels in {len(files)} files "
                              f"(limit {MAX_PIXELS:,} per request)")


# ----------------------------------------------------------------------------- to a batch

Warned = tuple[torch.Tensor, list]  # (B, *raw_shape) and one warning (str) or None per sample


def to_batch(payload: list[tuple[str, bytes]] | bytes, data: dict) -> Warned:
    """What read_payload returned -> the raw input batch (B, *raw_shape) in the run's dtype, with its warnings."""
    if isinstance(payload, list):
        check_images(payload)  # sizes from the headers, before any pixel is decoded
        return quiet(decode_images(payload, data["raw_shape"]))
    return parse_json(payload, data)


def quiet(x: torch.Tensor) -> Warned:
    return x, [None] * len(x)


def decode_images(files: list[tuple[str, bytes]], raw_shape: list[int]) -> torch.Tensor:
    """Checked image files -> uint8 (B, C, H, W) at the run's size and channels, as `trainlab predict` decodes."""
    c, h, w = raw_shape
    images = []
    for i, (name, body) in enumerate(files):
        try:
            images.append(load_image(io.BytesIO(body), (h, w), c))
        except Exception:  # noqa: BLE001  a crafted file can fail anywhere inside PIL's decoders
            where = _which(i, name, len(files))
            raise BadRequest(400, f"{where}not a readable image: the file is truncated or corrupted") from None
    return torch.stack(images)


def parse_json(body: bytes, data: dict) -> Warned:
    """{"features": ...}, {"text": ...} (text runs) or {"instances": [...]} -> (B, *raw_shape)."""
    try:
        obj = json.loads(body)
    except RecursionError:
        raise BadRequest(400, "malformed JSON body: nested too deeply") from None
    except ValueError:  # JSONDecodeError, UnicodeDecodeError, an integer of over 4300 digits
        raise BadRequest(400, "malformed JSON body") from None
    if isinstance(obj, dict) and "instances" in obj:
        x, warns = instances_batch(obj["instances"], data)
    else:
        x, warns = sample_batch(obj, data)
    if len(x) > MAX_SAMPLES:
        raise BadRequest(413, f"too many samples: {len(x)} (limit {MAX_SAMPLES} per request)")
    return x, warns


def sample_batch(obj, data: dict) -> Warned:
    """One request body (an object with "features" or "text", or a table's row by column) -> (B, *raw_shape)."""
    if isinstance(obj, dict) and data["kind"] == "text" and "text" in obj:
        return encode_text(obj["text"], data)
    if isinstance(obj, dict) and data["kind"] == "tabular" and is_row(obj.get("features", obj), data):
        return table_row(obj.get("features", obj), data)
    if not isinstance(obj, dict) or "features" not in obj:
        want = ('{"text": "..."} or {"features": [token ids]}' if data["kind"] == "text" else
                '{"column": value, ...} as in the training CSV, or {"features": [...]}' if data["kind"] == "tabular"
                else '{"features": [...]}')
        raise BadRequest(400, f'expected a JSON object {want}, or {{"instances": [...]}}')
    return quiet(features_batch(obj["features"], data))


def is_row(obj, data: dict) -> bool:
    """A table's row by column: an object naming at least one of the training CSV's feature columns."""
    columns = (data.get("meta") or {}).get("raw_features") or []
    return isinstance(obj, dict) and any(c in obj for c in columns)


def table_row(row: dict, data: dict) -> Warned:
    """{column: value} as in the training CSV -> (1, F) encoded as in training (one-hot categories), like
    `trainlab predict` on a CSV: a missing or non-numeric value is refused, an unseen category warned about."""
    meta = data.get("meta") or {}
    columns = meta.get("raw_features") or []
    missing = [c for c in columns if c not in row]
    if missing:
        raise BadRequest(422, f"missing column(s) {', '.join(map(repr, missing[:5]))}; a row needs the training "
                              f"CSV's feature columns: {', '.join(columns)}")
    values = {c: row[c] for c in columns}
    if any(isinstance(v, (dict, list)) for v in values.values()):
        raise BadRequest(422, "each column takes one number or one category (a string)")
    x, errors, warns = encode_rows(pd.DataFrame([values], columns=columns), meta)
    if errors:
        raise BadRequest(422, errors[0])
    return torch.from_numpy(x), [warns.get(0)]


def instances_batch(instances, data: dict) -> Warned:
    """{"instances": [...]}: each item one sample, as its own body ({"features": ...}), a list of features,
    or (text runs) a string; the answer lists one prediction per instance, in order."""
    if not isinstance(instances, list) or not instances:
        raise BadRequest(422, '"instances" must be a non-empty list')
    if len(instances) > MAX_SAMPLES:
        raise BadRequest(413, f"too many instances: {len(instances)} (limit {MAX_SAMPLES} per request)")
    if data["kind"] == "text" and all(isinstance(item, str) for item in instances):
        return encode_text(instances, data)  # one vocabulary lookup table for the whole request
    rows, warns = [], []
    for i, item in enumerate(instances):
        try:
            x, w = (encode_text(item, data) if isinstance(item, str) and data["kind"] == "text"
                    else quiet(features_batch(item, data)) if isinstance(item, list) else sample_batch(item, data))
            if len(x) != 1:
                raise BadRequest(422, f"one sample per instance, got {len(x)}")
        except BadRequest as e:
            raise BadRequest(e.status, f"instances[{i}]: {e.message}") from None
        rows.append(x)
        warns += w
    return torch.cat(rows), warns


def features_batch(values, data: dict) -> torch.Tensor:
    """A list of numbers (one sample) or of such lists (a batch) -> (B, *raw_shape), checked."""
    try:
        x = torch.tensor(values)  # dtype inferred: JSON 2.5 stays a float, so it cannot pass as token id 2
    except (TypeError, ValueError, RuntimeError, OverflowError) as e:
        if "overflow" in str(e).lower():
            raise BadRequest(422, "features hold an integer too large for a 64-bit number") from None
        raise BadRequest(422, "features must be a list of numbers (or a list of such lists)") from None
    dtype = getattr(torch, data["raw_dtype"])
    if x.dtype == torch.bool:
        raise BadRequest(422, "features must be numbers, not true/false")
    if x.is_floating_point() and not dtype.is_floating_point:
        raise BadRequest(422, "token ids must be whole numbers (JSON integers such as 7, not 7.5 or 7.0)")
    x = check_shape(x.to(dtype), data)
    if x.is_floating_point() and not torch.isfinite(x).all():
        raise BadRequest(422, f"features must be finite numbers (the model reads {data['raw_dtype']}: "
                              f"|x| < {torch.finfo(dtype).max:.3g})")
    vocab = (data.get("model_info") or {}).get("vocab_size")
    if not x.is_floating_point() and vocab and (x.min() < 0 or x.max() >= vocab):
        raise BadRequest(422, f"token ids must be in 0..{vocab - 1}")
    return x


def check_shape(x: torch.Tensor, data: dict) -> torch.Tensor:
    """(*raw_shape) -> (1, *raw_shape); (B, *raw_shape) as is; anything else 422."""
    shape = tuple(data["raw_shape"])
    if tuple(x.shape) == shape:
        x = x.unsqueeze(0)
    if x.ndim != len(shape) + 1 or tuple(x.shape[1:]) != shape or len(x) == 0:
        got = list(x.shape[1:]) if x.ndim == len(shape) + 1 else list(x.shape)
        want = f"{shape[0]} features" if len(shape) == 1 else f"shape {list(shape)} (steps, features)"
        raise BadRequest(422, f"wrong feature count: expected {want} per sample, got {got}")
    return x


def encode_text(text, data: dict) -> Warned:
    """A text or a list of texts -> (B, max_len) token ids with the run's training vocabulary, and a warning for
    a text the model cannot read (empty, or no token seen in training), as `trainlab predict` gives."""
    texts = [text] if isinstance(text, str) else text
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise BadRequest(422, "text must be a string or a non-empty list of strings")
    if len(texts) > MAX_SAMPLES:
        raise BadRequest(413, f"too many texts: {len(texts)} (limit {MAX_SAMPLES} per request)")
    # each text tokenized once, and only its first max_len + 1 tokens: a 2 MB text costs what its head costs
    ids, warns = TextCoder(data["meta"]).encode(texts)
    return ids, [warns.get(i) for i in range(len(texts))]
