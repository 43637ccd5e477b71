"""`trainlab predict RUN_DIR [INPUT...]`: images, CSV rows or texts through the run's eval preprocessing and best
weights; a forecasting run forecasts the steps after its data (or each given CSV) ends.

    trainlab predict runs/photos photos/new/ 'more/*.jpg' one.png --top 2 --out preds   # folders, globs, files
    rows = predict_files(load_run("runs/photos"), ["photos/new/"])

Every input gets one row: a prediction, or the reason it could not be predicted (its path or row number
and why) while the rest are predicted. A row may carry a warning (an unseen category, an empty text).
"""
from __future__ import annotations

import csv
import glob
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from trainlab.core.errors import UserError
from trainlab.core.files import atomic_file, make_dir, write_json
from trainlab.core.paths import not_utf8, path_kind, shown
from trainlab.data.images import IMAGE_EXTENSIONS, list_folder, load_image
from trainlab.data.tabular import encode_rows, read_table
from trainlab.data.text import encode, predict_texts, text_warnings
from trainlab.data.timeseries import predict_windows
from trainlab.use.inference import load_predictor

CHUNK = 256  # inputs decoded and predicted at a time: a folder of any size fits in memory
GLOB_CHARS = set("*?[")
CSV_COLUMNS = ("input", "prediction", "probability", "top", "warning", "error", "step", "time", "target")


@dataclass
class Entry:
    """One input row: raw sample (*raw_shape) or the reason it could not be read."""
    name: str
    x: torch.Tensor | None = None
    error: str | None = None
    warning: str | None = None


def predict_command(path: Path, files: list[str], top: int = 3, trust_code: bool = False) -> list[dict]:
    """`trainlab predict PATH [INPUT...]`: PATH is a run directory or an exported model file."""
    return predict_files(load_predictor(path, trust_code=trust_code), files, top)


def predict_files(run, files: list[str], top: int = 3) -> list[dict]:
    """One row per input (a Run or a Predictor): prediction, or error; `warning` when the input looks wrong."""
    if "horizon" in run.data["meta"]:  # forecasting: the next horizon steps after the data (or each CSV) ends
        return forecast_rows(run, files)
    if not files:
        raise UserError("predict needs inputs: image files or folders, CSV files or (text runs) texts")
    rows = []
    for chunk in _chunks(read_entries(run.data, files), CHUNK):
        rows += _predict_chunk(run, chunk, top)
    return rows


def _chunks(entries: Iterable[Entry], size: int) -> Iterator[list[Entry]]:
    chunk = []
    for e in entries:
        chunk.append(e)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _predict_chunk(run, chunk: list[Entry], top: int) -> list[dict]:
    ok = [e for e in chunk if e.error is None]
    out = iter(_result_rows(run, torch.stack([e.x for e in ok]), top) if ok else [])
    rows = []
    for e in chunk:
        row = {"input": e.name, "error": e.error} if e.error is not None else {"input": e.name, **next(out)}
        rows.append({**row, "warning": e.warning} if e.warning else row)
    return rows


def _result_rows(run, x: torch.Tensor, top: int) -> list[dict]:
    out = run.predict_outputs(x)
    if run.task != "classification":
        return [{"prediction": v if len(v) > 1 else v[0]} for v in out.reshape(len(out), -1).tolist()]
    p, idx = out.softmax(-1).topk(min(top, out.shape[1]), dim=1)
    classes = run.classes
    return [{"prediction": classes[int(i[0])], "probability": float(pp[0]),
             "top": [{"class": classes[int(c)], "probability": float(q)} for q, c in zip(pp, i, strict=True)]}
            for pp, i in zip(p, idx, strict=True)]


# ----------------------------------------------------------------------------- inputs -> entries

def read_entries(data: dict, items: list[str]) -> Iterator[Entry]:
    """Entries for the run kind: image files, CSV rows or texts; failures become error entries."""
    kind = data["kind"]
    if kind == "image":
        c, h, w = data["raw_shape"]
        for name, error in expand(items, IMAGE_EXTENSIONS, "an image file"):
            yield Entry(name, error=error) if error else _image_entry(name, (h, w), c)
    elif kind == "tabular":
        for name, error in expand(items, {".csv"}, "a CSV file"):
            yield from [Entry(name, error=error)] if error else _table_entries(data["meta"], name)
    elif kind == "text":
        for item in _text_items(items):
            yield from _text_entries(data["meta"], item)
    else:
        raise UserError(f"predict from files is not supported for {kind} runs yet")


def expand(items: list[str], suffixes: set[str], what: str) -> Iterator[tuple[str, str | None]]:
    """(path, None) for every file that files, folders (recursively, hidden files left out) and globs name;
    (item, why) for what names nothing usable."""
    for item in items:
        p, kind = Path(item), path_kind(item)  # None also for a name the OS refuses (too long, a NUL)
        if not item:
            yield item, "empty argument"
        elif kind == "dir":
            files, others = list_folder(p) if suffixes == IMAGE_EXTENSIONS else _files_in(p, suffixes)
            if not files and not others:
                yield item, "empty folder"
            yield from [(str(f), None) for f in files]
            yield from [(str(f), f"not {what} ({f.suffix or 'no extension'})") for f in others]
        elif kind == "file":
            yield item, None
        elif GLOB_CHARS & set(item) and "\0" not in item:
            matches = sorted(glob.glob(item, recursive=True))
            if not matches:
                yield item, "no file matches this pattern"
            yield from expand([m for m in matches if not Path(m).name.startswith(".")], suffixes, what)
        else:
            yield item, "file not found"


def _files_in(folder: Path, suffixes: set[str]) -> tuple[list[Path], list[Path]]:
    files = [p for p in sorted(folder.rglob("*")) if p.is_file() and not p.name.startswith(".")]
    return [p for p in files if p.suffix.lower() in suffixes], [p for p in files if p.suffix.lower() not in suffixes]


def _image_entry(path: str, size: tuple[int, int], channels: int) -> Entry:
    try:
        return Entry(path, load_image(path, size, channels))
    except UserError as e:
        return Entry(path, error=str(e))


def _table_entries(meta: dict, path: str) -> list[Entry]:
    """One entry per CSV row, named FILE:ROW (the header is row 1); the run's missing and category policy."""
    try:
        df = read_table(path)
    except UserError as e:
        return [Entry(path, error=str(e))]
    absent = [c for c in meta["raw_features"] if c not in df.columns]
    if absent:
        return [Entry(path, error=f"no feature column {absent[0]!r}; expected columns: "
                                  f"{', '.join(meta['raw_features'])}")]
    x, errors, warns = encode_rows(df.reset_index(drop=True), meta)
    x = torch.from_numpy(x)
    return [Entry(f"{Path(path).name}:{i + 2}", None if i in errors else x[i], errors.get(i), warns.get(i))
            for i in range(len(df))]


def _text_items(items: list[str]) -> Iterator[str]:
    """Folders -> their .txt/.csv files; globs that match files -> those files; anything else as given."""
    for item in items:
        kind = path_kind(item)  # a text too long to be a file name, or holding a NUL, is a text: never an OS error
        if kind == "dir":
            files, _ = _files_in(Path(item), {".txt", ".csv"})
            yield from (str(f) for f in files)
        elif kind is None and "\0" not in item and GLOB_CHARS & set(item) and glob.glob(item, recursive=True):
            yield from sorted(glob.glob(item, recursive=True))
        else:
            yield item


def _text_entries(meta: dict, item: str) -> list[Entry]:
    """A string, a .txt file (one text per line) or a CSV's text column -> one entry per text."""
    if path_kind(item) is None and not_utf8(item):  # bytes that are not UTF-8: no token of the vocabulary
        return [Entry(shown(item), error="not valid UTF-8 text; give texts as UTF-8")]
    try:
        texts, names = predict_texts(meta, [item])
    except UserError as e:
        return [Entry(item, error=str(e))]
    warns = text_warnings(texts, meta)
    ids = encode(texts, meta)
    return [Entry(n, ids[i], warning=warns.get(i)) for i, n in enumerate(names)]


# ----------------------------------------------------------------------------- forecasting, output files

def forecast_rows(run, files: list[str]) -> list[dict]:
    """`trainlab predict` on a forecasting run: the next `horizon` steps after each input's end, one row per value."""
    meta, rows = run.data["meta"], []
    k = len(meta["targets"])
    for name, window, labels in predict_windows(meta, files):
        x = torch.tensor(window, dtype=torch.float32).unsqueeze(0)  # (1, lookback, F) raw values (a copy)
        pred = run.predict_outputs(x).reshape(meta["horizon"], k)  # step-major, like the training targets
        for h, label in enumerate(labels):
            for j, target in enumerate(meta["targets"]):
                where = f"{name} {label}" + (f" {target}" if k > 1 else "")
                rows.append({"input": where, "prediction": float(pred[h, j]), "step": h + 1, "time": label,
                             "target": target})
    return rows


def write_predictions(out: Path, rows: list[dict]) -> None:
    """OUT/result.json (every row as JSON, and the counts) and OUT/predictions.csv (one line per row)."""
    make_dir(out)
    failed = sum("error" in r for r in rows)
    write_json(out / "result.json", {"predictions": rows, "inputs": len(rows), "predicted": len(rows) - failed,
                                     "failed": failed})
    columns = [c for c in CSV_COLUMNS if any(c in r for r in rows)]
    with atomic_file(out / "predictions.csv", "w", newline="", encoding="utf-8", errors="surrogateescape") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for r in rows:
            top = "; ".join(f"{t['class']} {t['probability']:.4f}" for t in r.get("top", []))
            writer.writerow({**r, "top": top} if top else r)
