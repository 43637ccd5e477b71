"""Small files every layer writes or reads: JSON (atomic) and the per-epoch history CSV.

    write_json(run_dir / "result.json", result)     # tmp file + os.replace: never half-written
    read_json(run_dir / "manifest.json")            # one-line UserError when missing or corrupted
"""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path

from trainlab.core.errors import UserError


def write_json(path: Path, obj) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=_json_default) + "\n")
    os.replace(tmp, path)


def _json_default(o):
    if hasattr(o, "tolist"):  # torch tensors, numpy arrays and scalars
        return o.tolist()
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UserError(f"{path} not found; is {Path(path).parent} a trainlab run directory?") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path} is corrupted: {e}") from None
    except RecursionError:
        raise UserError(f"{path} is corrupted: nested too deeply") from None
    except PermissionError:
        raise UserError(f"cannot read {path}: permission denied") from None


def write_history(path: Path, history: list[dict]) -> None:
    keys = list(dict.fromkeys(k for row in history for k in row))
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(history)
