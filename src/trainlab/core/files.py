"""Every file trainlab writes goes through here: a temporary name in the same folder, fsync, rename.

    write_json(run_dir / "result.json", result)     # never half-written; a full disk -> DiskFull (one line)
    with atomic_file(out / "plot.png", "wb") as f:  # any writer that takes a file object (savefig, PIL, torch)
        fig.savefig(f, format="png")
    read_json(run_dir / "manifest.json")            # one-line UserError when missing or corrupted
    read_run_json(run_dir / "data.json", {"input_shape": SHAPE, "num_outputs": COUNT})   # checked: DamagedRun
"""
from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from trainlab.core.errors import DamagedRun, UserError

# what a write returns when the file system has no room for it: no space, over quota, over the file-size limit
DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
TEMP_SUFFIX = ".tmp"  # temporary names are ".NAME.<random>.tmp" in the final file's folder
MARGIN = 64 * 1024  # room kept beyond a file's own bytes: the file system's blocks and metadata

Check = tuple[str, Callable[[Any], bool]]  # (what a value must be, in words; the test)


def write_json(path: Path, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, default=json_default) + "\n")


def write_text(path: Path, text: str, encoding: str = "utf-8") -> None:
    """Write `text` to a temporary name, fsync, rename over `path`: a reader (or a kill) never sees half a file."""
    data = text.encode(encoding, "surrogateescape")  # undecodable file names in the text are written back as-is
    write_bytes(path, data)


def write_bytes(path: Path, data: bytes) -> None:
    with atomic_file(path, "wb", needed=len(data)) as f:
        f.write(data)


class DiskFull(UserError):
    """The file system had no room (or quota, or file-size limit) for a file; nothing was left under its name."""

    def __init__(self, path: Path, needed: int | None = None):
        self.path = Path(path)
        free = free_bytes(self.path.parent)
        size = f"needs about {_mb(needed)}" if needed else "needs more room"
        where = f"{_mb(free)} free there" if free is not None else "no free space there"
        super().__init__(f"disk full: cannot write {_shown_path(self.path)} ({size}, {where}); free some space or "
                         f"choose another output folder; files written before are unchanged")


def make_dir(folder: Path) -> Path:
    """mkdir -p, with a folder that cannot be made (under a regular file, in /proc, read-only, not ours) as one
    UserError line naming it and why."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        if is_disk_full(e):
            raise DiskFull(folder) from None
        blocker = next((p for p in [folder, *folder.parents] if p.exists() and not p.is_dir()), None)
        why = f"{_shown_path(blocker)} is a file, not a folder" if blocker else (e.strerror or type(e).__name__)
        raise UserError(f"cannot create the folder {_shown_path(folder)}: {why}; choose another --out") from None
    return folder


def disk_full(e: OSError) -> DiskFull:
    """The DiskFull for an OSError raised outside atomic_file (a folder made, a library's own file)."""
    return DiskFull(Path(os.fsdecode(e.filename)) if e.filename else Path("output"), None)


def is_disk_full(e: BaseException) -> bool:
    return isinstance(e, OSError) and e.errno in DISK_FULL


def free_bytes(folder: Path) -> int | None:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def check_space(path: Path, needed: int | None) -> None:
    """Refuse before writing when the folder of `path` visibly lacks `needed` bytes (plus MARGIN); sizes a file
    system does not report (network, FUSE) are found out by writing."""
    free = free_bytes(Path(path).parent)
    if needed and free is not None and free < needed + MARGIN:
        raise DiskFull(path, needed + MARGIN)


@contextlib.contextmanager
def atomic_file(path: Path, mode: str = "w", needed: int | None = None, **open_kw) -> Iterator[io.IOBase]:
    """An open file on a temporary name in the folder of `path`; on success it is fsync'd and renamed over `path`.

    On any failure the temporary file is removed and `path` keeps what it held; a full disk (or quota, or
    file-size limit) becomes DiskFull naming `path` and the room needed. `needed` (bytes), when known, is
    checked against the free space first."""
    path = Path(path)
    check_space(path, needed)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    except OSError as e:
        if is_disk_full(e):
            raise DiskFull(path, needed) from None
        raise UserError(f"cannot write {_shown_path(path)}: {e.strerror or type(e).__name__}; choose another "
                        f"output folder") from None
    written = 0
    try:
        with os.fdopen(fd, mode, **open_kw) as f:
            yield f
            f.flush()
            written = os.fstat(f.fileno()).st_size
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException as e:
        written = written or _size(tmp)
        Path(tmp).unlink(missing_ok=True)
        if is_disk_full(e) or is_disk_full(e.__context__):
            raise DiskFull(path, max(needed or 0, written + MARGIN)) from None
        raise


@contextlib.contextmanager
def atomic_path(path: Path, needed: int | None = None) -> Iterator[Path]:
    """A temporary path beside `path` for a library that writes by name (ONNX); renamed over `path` on success."""
    path = Path(path)
    check_space(path, needed)
    tmp = path.with_name(f".{path.name}.{os.getpid()}{TEMP_SUFFIX}")
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException as e:
        written = _size(tmp)
        tmp.unlink(missing_ok=True)
        if is_disk_full(e) or is_disk_full(e.__context__):
            raise DiskFull(path, max(needed or 0, written + MARGIN)) from None
        raise


def append_line(path: Path, line: str) -> None:
    """Append one line to a log; a full disk cuts the file back to its last whole line and raises DiskFull."""
    path = Path(path)
    before = _size(path)
    try:
        with open(path, "a", encoding="utf-8", errors="surrogateescape") as f:
            f.write(line.rstrip("\n") + "\n")
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        if not is_disk_full(e):
            raise
        with contextlib.suppress(OSError):
            os.truncate(path, before)
        raise DiskFull(path, len(line.encode("utf-8", "surrogateescape")) + MARGIN) from None


def fsync_dir(folder: Path) -> None:
    """Make a rename durable; not every platform can open a folder (Windows), nor every file system sync one."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _size(path) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def _mb(n: int) -> str:
    return f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{max(n, 0) / 1024:.0f} KB"


def printable(text: str | Path) -> str:
    """A name as a person should see it: bytes of a file name that are not UTF-8 (kept by Python as lone
    surrogates, which no UTF-8 stream, JSON reader or font takes) shown as U+FFFD replacement characters."""
    text = os.fspath(text)
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:  # a surrogate that did not come from a file name (\ud800 typed in)
        return text.encode("utf-8", "replace").decode("utf-8")


def _shown_path(path: Path) -> str:
    """A path for a one-line message: undecodable bytes as replacement characters, long ones shortened."""
    text = printable(path)
    return text if len(text) <= 160 else "..." + text[-157:]


def json_default(o):
    if hasattr(o, "tolist"):  # torch tensors, numpy arrays and scalars
        return o.tolist()
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


class CorruptJSON(UserError):
    """A JSON file that does not parse."""


def read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UserError(f"{path} not found; is {Path(path).parent} a trainlab run directory?") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CorruptJSON(f"{path} is corrupted: {e}") from None
    except RecursionError:
        raise CorruptJSON(f"{path} is corrupted: nested too deeply") from None
    except PermissionError:
        raise UserError(f"cannot read {path}: permission denied") from None


# ----------------------------------------------------------------------------- checking what a run directory holds

def is_count(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def a(*types: type) -> Check:
    """The check `isinstance(value, types)`, booleans not counting as numbers: a(dict), a(list, type(None))."""
    names = " or ".join("null" if t is type(None) else t.__name__ for t in types)
    return f"a {names}", lambda v: isinstance(v, types) and (bool in types or not isinstance(v, bool))


COUNT: Check = ("a count (an integer >= 0)", is_count)
NUMBER: Check = ("a number", is_number)
SHAPE: Check = ("a list of positive integers",
                lambda v: isinstance(v, list) and len(v) > 0 and all(is_count(i) and i > 0 for i in v))


def check_fields(obj, fields: dict[str, Check], what: str, optional: tuple[str, ...] = ()) -> dict:
    """`obj` must be a mapping whose `fields` pass their checks (keys in `optional` may be absent);
    else DamagedRun naming `what` (a file, or a file and a key) and the first problem."""
    if not isinstance(obj, dict):
        raise DamagedRun(f"{what} holds a {type(obj).__name__}, not a mapping")
    for key, (wanted, ok) in fields.items():
        if key not in obj:
            if key in optional:
                continue
            raise DamagedRun(f"{what} has no {key!r}")
        if not ok(obj[key]):
            raise DamagedRun(f"{what}: {key!r} is {_shown(obj[key])}, not {wanted}")
    return obj


def _shown(value) -> str:
    text = repr(value) if isinstance(value, (str, int, float, bool, type(None))) else f"a {type(value).__name__}"
    return text if len(text) <= 60 else text[:57] + "..."


def read_run_json(path: Path, fields: dict[str, Check] | None = None, optional: tuple[str, ...] = ()) -> dict:
    """read_json for a file trainlab wrote into a run directory: unparsable or lacking `fields` -> DamagedRun."""
    try:
        obj = read_json(path)
    except CorruptJSON:
        raise DamagedRun(f"{path} is not valid JSON") from None
    return check_fields(obj, fields or {}, str(path), optional)


def write_history(path: Path, history: list[dict]) -> None:
    keys = list(dict.fromkeys(k for row in history for k in row))
    with atomic_file(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(history)
