"""Small files every layer writes or reads: JSON (atomic) and the per-epoch history CSV.

    write_json(run_dir / "result.json", result)     # tmp file + os.replace: never half-written
    read_json(run_dir / "manifest.json")            # one-line UserError when missing or corrupted
    read_run_json(run_dir / "data.json", {"input_shape": SHAPE, "num_outputs": COUNT})   # checked: DamagedRun
"""
from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from trainlab.core.errors import DamagedRun, UserError

Check = tuple[str, Callable[[Any], bool]]  # (what a value must be, in words; the test)


def write_json(path: Path, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, default=_json_default) + "\n")


def write_text(path: Path, text: str) -> None:
    """Write PATH.tmp, then rename it over `path`: a reader (or a kill) never sees half a file."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _json_default(o):
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
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(history)
