"""`trainlab predict RUN_DIR [INPUT...]`: images, CSV rows or texts through the run's eval preprocessing and best
weights; a forecasting run forecasts the steps after its data (or each given CSV) ends.

    trainlab predict runs/photos photos/new/ 'more/*.jpg' one.png --top 2 --out preds   # folders, globs, files
    rows = predict_files(load_run("runs/photos"), ["photos/new/"])
    counts = save_predictions(predict_stream("runs/texts", ["big.txt"]), Path("preds"), show=print)

Every input gets one row: a prediction, or the reason it could not be predicted (its path or row number
and why) while the rest are predicted. A row may carry a warning (an unseen category, an empty text, a text
longer than the model reads). Inputs stream through: files are read in pieces, CHUNK inputs are decoded and
predicted at a time, rows are written as they come, so memory stays flat whatever the input's size; progress
(inputs done of the total) goes to stderr.
"""
from __future__ import annotations

import contextlib
import csv
import glob
import itertools
import json
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from trainlab.core.errors import UserError
from trainlab.core.files import atomic_file, json_default, make_dir
from trainlab.core.paths import not_utf8, path_kind, shown
from trainlab.data.images import IMAGE_EXTENSIONS, list_folder, load_image
from trainlab.data.tabular import encode_rows, read_table
from trainlab.data.text import TextCoder, iter_texts
from trainlab.data.timeseries import predict_windows
from trainlab.use.inference import load_predictor

CHUNK = 256  # inputs decoded and predicted at a time: a folder or file of any size fits in memory
PROGRESS_SECONDS = 10.0  # without a terminal: one progress line on stderr this often
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


def predict_stream(path: Path, files: list[str], top: int = 3, trust_code: bool = False,
                   progress: bool = True) -> Iterator[dict]:
    """predict_command's rows one at a time, as they are predicted, with progress on stderr."""
    return iter_predictions(load_predictor(path, trust_code=trust_code), files, top, progress)


def predict_files(run, files: list[str], top: int = 3) -> list[dict]:
    """One row per input (a Run or a Predictor): prediction, or error; `warning` when the input looks wrong."""
    return list(iter_predictions(run, files, top, progress=False))


def iter_predictions(run, files: list[str], top: int = 3, progress: bool = False) -> Iterator[dict]:
    """predict_files' rows as a generator: at most CHUNK inputs (plus one reader's CHUNK of texts) are decoded
    at any time."""
    if "horizon" in run.data["meta"]:  # forecasting: the next horizon steps after the data (or each CSV) ends
        yield from forecast_rows(run, files)
        return
    if not files:
        raise UserError("predict needs inputs: image files or folders, CSV files or (text runs) texts")
    bar = Progress(count_inputs(run.data, files) if progress else None, progress)
    try:
        for chunk in _chunks(read_entries(run.data, files), CHUNK):
            yield from _predict_chunk(run, chunk, top)
            bar.update(len(chunk))
    finally:
        bar.close()


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
    p, idx = out.softmax(-1).topk(min(top, out.shape[1]), dim=1)  # (B, top) each
    classes = run.classes
    # Python lists once per chunk: indexing tensors row by row cost more than the model itself
    return [{"prediction": classes[i[0]], "probability": pp[0],
             "top": [{"class": classes[c], "probability": q} for q, c in zip(pp, i, strict=True)]}
            for pp, i in zip(p.tolist(), idx.tolist(), strict=True)]


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
        coder = TextCoder(data["meta"])  # the vocabulary's lookups, built once
        for item in _text_items(items):
            yield from _text_entries(coder, item)
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


def _text_entries(coder: TextCoder, item: str) -> Iterator[Entry]:
    """A string, a .txt file (one text per line) or a CSV's text column -> one entry per text, CHUNK texts
    tokenized at a time; a file that cannot be read (or breaks midway) ends with an error entry naming it."""
    if path_kind(item) is None and not_utf8(item):  # bytes that are not UTF-8: no token of the vocabulary
        yield Entry(shown(item), error="not valid UTF-8 text; give texts as UTF-8")
        return
    pairs = iter_texts(coder.meta, item)
    try:
        while chunk := list(itertools.islice(pairs, CHUNK)):
            ids, warns = coder.encode([text for _, text in chunk])  # (n, max_len) token ids
            yield from (Entry(name, ids[i], warning=warns.get(i)) for i, (name, _) in enumerate(chunk))
    except UserError as e:
        yield Entry(item, error=str(e))


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
    save_predictions(rows, out, show=lambda row: None, refuse_all_failed=False)


def save_predictions(rows: Iterable[dict], out: Path | None, show: Callable[[dict], None],
                     refuse_all_failed: bool = True) -> dict:
    """Consume `rows` as they come: `show` each, and (with `out`) write OUT/result.json and OUT/predictions.csv
    under temporary names, renamed when the last row is in. -> {"inputs", "predicted", "failed"}.

    When no input could be predicted: UserError naming the first failure, nothing written, and nothing shown
    (failures are held back until the first prediction, at most CHUNK of them)."""
    counts, held, first_failure = {"inputs": 0, "predicted": 0, "failed": 0}, [], None
    made = out is not None and not Path(out).exists()
    with contextlib.ExitStack() as stack:
        if made:  # a refusal below leaves no empty folder behind
            stack.callback(lambda: next(Path(out).iterdir(), None) is None and Path(out).rmdir())
        sink = _Sink(stack, out) if out is not None else None
        for row in rows:
            counts["inputs"] += 1
            if "error" in row:
                counts["failed"] += 1
                first_failure = first_failure or row
            if sink:
                sink.add(row)
            if held is not None and "error" in row and len(held) < CHUNK:
                held.append(row)
                continue
            for h in held or ():
                show(h)
            held = None
            show(row)
        counts["predicted"] = counts["inputs"] - counts["failed"]
        if refuse_all_failed and first_failure and not counts["predicted"]:
            raise UserError(f"no input could be predicted ({counts['failed']} failed); first: "
                            f"{first_failure['input']}: {first_failure['error']}")
        for h in held or ():
            show(h)
        if sink:
            sink.finish(counts)
    return counts


class _Sink:
    """result.json written row by row; predictions.csv spooled (all columns) to a temporary file beside it and
    copied with only the columns some row used, since those are known only at the end."""

    def __init__(self, stack: contextlib.ExitStack, out: Path):
        make_dir(out)
        kw = {"encoding": "utf-8", "errors": "surrogateescape"}  # undecodable file names are written back as-is
        self.json = stack.enter_context(atomic_file(out / "result.json", "w", **kw))
        self.csv = stack.enter_context(atomic_file(out / "predictions.csv", "w", newline="", **kw))
        self.spool = stack.enter_context(tempfile.TemporaryFile("w+", dir=out, newline="", **kw))
        self.writer = csv.DictWriter(self.spool, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        self.used: set[str] = set()
        self.json.write('{"predictions": [')
        self.first = True

    def add(self, row: dict) -> None:
        self.json.write(("\n  " if self.first else ",\n  ") + json.dumps(row, default=json_default))
        self.first = False
        self.used.update(row)
        top = "; ".join(f"{t['class']} {t['probability']:.4f}" for t in row.get("top", []))
        self.writer.writerow({**row, "top": top} if top else row)

    def finish(self, counts: dict) -> None:
        self.json.write("\n], " + json.dumps(counts)[1:] + "\n")
        self.spool.seek(0)
        columns = [c for c in CSV_COLUMNS if c in self.used]
        writer = csv.DictWriter(self.csv, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(csv.DictReader(self.spool, fieldnames=CSV_COLUMNS))


# ----------------------------------------------------------------------------- progress

def count_inputs(data: dict, items: list[str]) -> int | None:
    """How many rows the inputs will give, counted cheaply (lines of .txt and .csv files, files of a folder):
    the total of the progress bar, near enough; None when counting would cost a read of its own."""
    if data["kind"] == "text":
        return sum(_rows_in(item) for item in _text_items(items))
    if data["kind"] == "image":
        return sum(1 for _ in expand(items, IMAGE_EXTENSIONS, "an image file"))
    if data["kind"] == "tabular":
        return sum(_rows_in(name) if error is None else 1 for name, error in expand(items, {".csv"}, "a CSV file"))
    return None


def _rows_in(item: str) -> int:
    """Lines of a .txt file, lines after the header of a .csv file (quoted newlines make it an upper bound),
    1 for a text; counted in binary blocks, nothing decoded."""
    suffix = Path(item).suffix.lower()
    if suffix not in (".txt", ".csv") or path_kind(item) != "file":
        return 1
    lines, last = 0, b"\n"
    try:
        with open(item, "rb") as f:
            while block := f.read(1 << 20):
                lines, last = lines + block.count(b"\n"), block[-1:]
    except OSError:
        return 1
    lines += last != b"\n"  # a last line without its newline
    return max(lines - (suffix == ".csv"), 1)


class Progress:
    """Inputs done of `total` on stderr: a tqdm bar on a terminal, else a line every PROGRESS_SECONDS."""

    def __init__(self, total: int | None, enabled: bool):
        self.total, self.enabled, self.done = total, enabled, 0
        self.start = self.last = time.monotonic()
        terminal = enabled and sys.stderr.isatty()
        self.bar = tqdm(total=total, unit="input", file=sys.stderr, leave=False) if terminal else None

    def update(self, n: int) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        elif self.enabled and time.monotonic() - self.last >= PROGRESS_SECONDS:
            self.last = time.monotonic()
            print(f"predict: {self.line()}", file=sys.stderr, flush=True)

    def line(self) -> str:
        rate = self.done / max(time.monotonic() - self.start, 1e-9)
        if not self.total:
            return f"{self.done:,} inputs, {rate:,.0f}/s"
        return f"{self.done:,} of {self.total:,} inputs ({min(self.done / self.total, 1):.0%}), {rate:,.0f}/s"

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
