"""Checkpoints: atomic writes, `weights_only=True` loads, and every RNG state needed for bit-exact resume.

A checkpoint is a dict of tensors and plain Python values only, so `torch.load(weights_only=True)`
can read it and a crafted pickle that would run code is refused.
"""
from __future__ import annotations

import os
import pickle
import random
import stat
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from trainlab.core.errors import DamagedRun, UserError
from trainlab.core.files import (
    COUNT,
    TEMP_SUFFIX,
    Check,
    DiskFull,
    a,
    atomic_file,
    check_fields,
    is_count,
    is_number,
    make_dir,
)


def atomic_save(obj: Any, path: str | Path) -> None:
    """torch.save to a temporary file in the same folder, fsync, then rename: a crash never leaves half a file,
    and a full disk is DiskFull (one line naming the file and the room it needs), the previous file intact."""
    path = Path(path)
    make_dir(path.parent)
    needed = tensor_bytes(obj) + 2**16  # the tensors' bytes plus the pickled structure around them
    try:
        with atomic_file(path, "wb", needed=needed) as f:
            torch.save(obj, f)
    except RuntimeError as e:  # torch's zip writer reports a failed write as "unexpected pos" / "file write failed"
        if any(words in str(e) for words in ("unexpected pos", "file write failed", "No space left")):
            raise DiskFull(path, needed) from None
        raise


def tensor_bytes(obj: Any) -> int:
    """Bytes of the distinct tensor storages inside nested dicts/lists/tuples: about what torch.save writes."""
    seen, total, stack = set(), 0, [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, torch.Tensor):
            storage = item.untyped_storage()
            if storage.data_ptr() not in seen or storage.data_ptr() == 0:
                seen.add(storage.data_ptr())
                total += storage.nbytes()
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return total


def safe_load(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Load with weights_only=True; corrupt, truncated or code-carrying files give a one-line UserError."""
    path = Path(path)
    _check_readable(path)
    other = _not_torch_save(path)
    if other:
        raise UserError(f"cannot read checkpoint {path}: {other}")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols before refusing: the refusal says it
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise UserError(f"refusing to load {path}: {unpickling_refusal(e)}; it is not a plain trainlab checkpoint "
                        f"(loading it could run code)") from None
    except OSError as e:
        raise UserError(f"cannot read checkpoint {path}: {e.strerror or type(e).__name__}") from None
    except Exception as e:  # noqa: BLE001  damaged bytes reach the unpickler's internals (IndexError, KeyError, ...)
        raise UserError(f"cannot read checkpoint {path}: truncated or corrupted ({_first_line(e)[:120]})") from None
    check_fields(obj, {"model": WEIGHTS}, str(path))
    return obj


# ----------------------------------------------------------------------------- what a checkpoint must hold

def _is_weights(v) -> bool:
    return isinstance(v, dict) and all(isinstance(k, str) and isinstance(t, torch.Tensor) for k, t in v.items())


WEIGHTS: Check = ("a mapping of tensor names to tensors", _is_weights)
_MAYBE_DICT, _SEQ, _TENSOR = a(dict, type(None)), a(list, tuple), a(torch.Tensor)
RESUMABLE: dict[str, Check] = {  # last.pt, as Trainer.state_dict writes it
    "model": WEIGHTS, "optimizer": _MAYBE_DICT, "scheduler": _MAYBE_DICT, "scaler": a(dict), "epoch": COUNT,
    "step": COUNT, "history": ("a list of per-epoch records", lambda v: isinstance(v, list)
                               and all(isinstance(r, dict) for r in v)),
    "best": a(dict), "rng": a(dict), "resume_point": _MAYBE_DICT}
BEST: dict[str, Check] = {"value": ("a number or null", lambda v: v is None or is_number(v)),
                          "epoch": ("an epoch number or null", lambda v: v is None or is_count(v)),
                          "bad_epochs": COUNT, "state": ("weights or null", lambda v: v is None or _is_weights(v)),
                          "stopped_early": a(bool), "stop": a(bool)}
RNG: dict[str, Check] = {"python": _SEQ, "numpy": _SEQ, "torch": _TENSOR, "cuda": _SEQ, "generator": _TENSOR}
RESUME_POINT: dict[str, Check] = {"batch": COUNT, "order": a(torch.Tensor, type(None)),
                                  "losses": _TENSOR, "correct": _TENSOR, "sizes": a(list)}


def check_resumable(ckpt: dict, path: str | Path) -> dict:
    """Everything `Trainer.load_checkpoint` reads from last.pt is there, with the right types (else DamagedRun)."""
    check_fields(ckpt, RESUMABLE, str(path))
    check_fields(ckpt["best"], BEST, f"{path} 'best'")
    check_fields(ckpt["rng"], RNG, f"{path} 'rng'", optional=("generator",))
    if ckpt["resume_point"] is not None:
        check_fields(ckpt["resume_point"], RESUME_POINT, f"{path} 'resume_point'")
    if len(ckpt["history"]) != ckpt["epoch"]:
        raise DamagedRun(f"{path} holds {len(ckpt['history'])} history records for {ckpt['epoch']} epochs")
    return ckpt


def load_state(target, state: dict, what: str) -> None:
    """`target.load_state_dict(state)` (optimizer, scheduler, grad scaler) with a state from another setup
    (other parameter groups, other shapes) reported as DamagedRun instead of a traceback."""
    try:
        target.load_state_dict(state)
    except (ValueError, KeyError, TypeError, RuntimeError, AttributeError, IndexError) as e:
        raise DamagedRun(f"{what} does not fit this run's setup ({_first_line(e)[:120]})") from None
    if isinstance(target, torch.optim.Optimizer):
        _check_optimizer_shapes(target, what)


def _check_optimizer_shapes(optimizer: torch.optim.Optimizer, what: str) -> None:
    """load_state_dict checks group sizes only; a moment tensor of another shape would fail at the first step.
    Every registered optimizer (sgd, adam, adamw, rmsprop) keeps per-element state shaped like its parameter."""
    for p, st in optimizer.state.items():
        for key, value in st.items():
            if isinstance(value, torch.Tensor) and value.ndim > 0 and value.shape != p.shape:
                raise DamagedRun(f"{what}: state {key!r} has shape {tuple(value.shape)} "
                                 f"for a parameter of shape {tuple(p.shape)}")


def remove_orphan_temps(folder: str | Path) -> list[Path]:
    """Delete the temporary files a kill during `atomic_save` (or files.atomic_file) left in `folder`; returns them.
    Call only where no other process writes into `folder` (a run directory being resumed or replaced)."""
    folder = Path(folder)
    patterns = (f".*{TEMP_SUFFIX}", "*.json.tmp", "*.yaml.tmp") if folder.is_dir() else ()
    stale = [p for pattern in patterns for p in folder.glob(pattern)]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def _first_line(e: Exception) -> str:
    lines = [line for line in str(e).splitlines() if line.strip()]
    return lines[0] if lines else type(e).__name__


def _check_readable(path: Path) -> None:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise UserError(f"checkpoint not found: {path}") from None
    except OSError as e:  # a name too long, a loop of links, a folder we may not enter
        raise UserError(f"cannot read checkpoint {str(path)[:80]}: {e.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        raise UserError(f"checkpoint {path} is a folder, not a .pt file")
    if not stat.S_ISREG(st.st_mode):
        raise UserError(f"checkpoint {path} is not a regular file")
    if not os.access(path, os.R_OK):
        raise UserError(f"cannot read checkpoint {path}: permission denied")


def unpickling_refusal(e: Exception) -> str:
    """The line of torch's refusal that names the offending global or opcode, not its general advice."""
    for line in str(e).splitlines():
        line = line.strip()
        if "GLOBAL" in line or line.startswith(("Unsupported", "Trying to")):
            return line.rstrip(".")[:200]
        if line.startswith("WeightsUnpickler error:") and line.split(":", 1)[1].strip():
            return line.split(":", 1)[1].strip().rstrip(".")[:200]
    return _first_line(e)[:160]


def _not_torch_save(path: Path) -> str | None:
    """What a file holds when it is not torch.save output (a zip archive, or a pickle in the old format); else None."""
    with open(path, "rb") as f:
        head = f.read(16)
    if not head:
        return "the file is empty"
    if head.startswith(b"\x80"):  # a pickle: torch.load decides (and refuses code)
        return None
    if head.startswith(b"PK"):
        try:
            with zipfile.ZipFile(path) as z:
                names = z.namelist()
        except (zipfile.BadZipFile, OSError, ValueError):
            return "truncated or damaged (an incomplete zip archive)"
        if any(n.endswith("constants.pkl") or "/code/" in n for n in names):
            return "a TorchScript archive, not a checkpoint (it carries code; use the run directory or an .onnx file)"
        return None if any(n.endswith("data.pkl") for n in names) else "a zip archive without a checkpoint inside"
    for magic, kind in ((b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"\x08", "an ONNX model?")):
        if head.startswith(magic):
            return f"{kind}, not a checkpoint"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return "not a checkpoint (unknown binary format; truncated or corrupted?)"
    return "a text file, not a checkpoint"


def load_weights(model: nn.Module, state: dict, source: str = "checkpoint") -> None:
    """load_state_dict that names the first missing, unexpected or mismatching tensor."""
    own = model.state_dict()
    for name, tensor in state.items():
        if name not in own:
            raise UserError(f"{source} has tensor {name!r} that the model does not have; wrong model config?")
        if tuple(own[name].shape) != tuple(tensor.shape):
            raise UserError(f"{source} tensor {name!r} has shape {tuple(tensor.shape)} "
                            f"but the model expects {tuple(own[name].shape)}")
    missing = [n for n in own if n not in state]
    if missing:
        raise UserError(f"{source} lacks tensor {missing[0]!r} that the model needs; wrong model config?")
    model.load_state_dict(state)


def rng_state(generator: torch.Generator | None = None) -> dict:
    """Every RNG that training touches: python, numpy, torch CPU, CUDA, and trainlab's data generator."""
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].copy()), *np_state[2:]],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    if generator is not None:
        state["generator"] = generator.get_state()
    return state


def set_rng_state(state: dict, generator: torch.Generator | None = None) -> None:
    """Restore what `rng_state` saved; a state of another shape or version -> DamagedRun."""
    try:
        _set_rng_state(state, generator)
    except (ValueError, TypeError, RuntimeError, IndexError, KeyError, AttributeError) as e:
        raise DamagedRun(f"the saved random-number state cannot be restored ({_first_line(e)[:120]})") from None


def _set_rng_state(state: dict, generator: torch.Generator | None) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if generator is not None and "generator" in state:
        generator.set_state(state["generator"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
