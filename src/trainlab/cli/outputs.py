"""The one check of a command's `--out` before it runs: no command writes over a run's own files.

    check_out(args)    # main() calls it for every command; `trainlab eval R --out R` -> one line, exit 2

`train` and `cv` own their --out (an existing one needs --overwrite, which removes only what its manifest
lists); `tune` may reuse its own study directory; every other command's --out must not be a directory that
holds a run, a K-fold CV, a tuning study or a --seeds result, nor one of the runs the command reads. We
refuse instead of writing into a subfolder: the user named the folder, so a result elsewhere would surprise.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from trainlab.core.errors import UserError
from trainlab.core.files import make_dir, read_json, write_json

OWNS_OUT = {"tune": ("tune",)}  # a command that may write into trainlab output of its own kind
INPUTS = ("run_dir", "runs", "dir", "names")  # the argument names that hold the runs a command reads


def check_out(args: argparse.Namespace) -> None:
    """Refuse `args.out` when it is trainlab output of another kind than the command's own, or an input."""
    out, command = getattr(args, "out", None), getattr(args, "command", None)
    if out is None or command in ("train", "cv", "export"):  # their own --out rules (prepare_run_dir, export)
        return
    kind = _kind(Path(out))
    if kind is not None and kind not in OWNS_OUT.get(command, ()):
        raise UserError(f"--out {out} is a trainlab {_WORDS[kind]} directory; `{command}` never writes over a run's "
                        f"own files: choose a new or empty folder, e.g. {Path(out) / command}")
    for value in _inputs(args):
        if _same(Path(out), value):
            raise UserError(f"--out {out} is the {value} that `{command}` reads; choose a new or empty folder, "
                            f"e.g. {Path(out) / command}")


_WORDS = {"run": "run", "cv": "cross-validation", "tune": "tuning", "seeds": "--seeds"}


def _kind(out: Path) -> str | None:
    try:
        return output_kind(out)
    except OSError:  # unreadable: the command's own checks say so
        return None


def output_kind(folder: Path) -> str | None:
    """'run', 'cv', 'tune' or 'seeds' when `folder` holds trainlab's output of that kind (its own files), else None.

    A manifest says its kind (older ones: inferred); checkpoints without a manifest are a damaged run. Read
    without torch: this runs before every command, `--help` and usage errors included.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return None
    if (folder / "manifest.json").is_file():
        try:
            kind = read_json(folder / "manifest.json").get("kind")
        except (UserError, AttributeError):  # damaged: still a run's own file
            return "run"
        if isinstance(kind, str) and kind:
            return kind
        return "tune" if (folder / "final").is_dir() or (folder / "trials.csv").is_file() \
            else "cv" if any(folder.glob("fold-*")) else "run"
    if (folder / "last.pt").exists() or (folder / "best.pt").exists():
        return "run"
    if any(folder.glob("seed-*/manifest.json")):
        return "seeds"
    return None


def _inputs(args: argparse.Namespace) -> list[Path]:
    values = []
    for name in INPUTS:
        if name == "names" and getattr(args, "what", None) != "curves":  # plot activations: names, not paths
            continue
        v = getattr(args, name, None)
        values += [Path(x) for x in (v if isinstance(v, list) else [v]) if isinstance(x, (str, Path))]
    return values


def _same(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and a.resolve() == b.resolve()
    except (OSError, RuntimeError):  # a symlink loop or a name the OS refuses: not the same folder
        return False


def check_out_is_dir(out: Path | None) -> None:
    """Before any work (a test evaluation counts): --out must be a directory or creatable as one (its first
    existing ancestor a directory we may write to), so no command fails on --out after doing its work."""
    if out is None:
        return
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a directory")
    folder = next((p for p in (out, *out.absolute().parents) if p.exists()), None)
    if folder is not None and not folder.is_dir():
        raise UserError(f"--out {out} cannot be created: {folder} is not a directory")
    if folder is not None and not os.access(folder, os.W_OK | os.X_OK):
        raise UserError(f"--out {out}: {folder} is not writable")


def write_result(out: Path | None, result: dict) -> None:
    if out is None:
        return
    make_dir(out)
    write_json(out / "result.json", result)
