"""Checkpoints: atomic writes, `weights_only=True` loads, and every RNG state needed for bit-exact resume.

A checkpoint is a dict of tensors and plain Python values only, so `torch.load(weights_only=True)`
can read it and a crafted pickle that would run code is refused.
"""
from __future__ import annotations

import os
import pickle
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from trainlab.core.errors import UserError


def atomic_save(obj: Any, path: str | Path) -> None:
    """torch.save to a temporary file in the same folder, fsync, then rename: a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # not supported on every platform (Windows)
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def safe_load(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Load with weights_only=True; corrupt, truncated or code-carrying files give a one-line UserError."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise UserError(f"refusing to load {path}: it is not a plain trainlab checkpoint "
                        f"({_first_line(e)[:160]})") from None
    except Exception as e:  # noqa: BLE001  random bytes reach the unpickler's internals (IndexError, KeyError, ...)
        raise UserError(f"cannot read checkpoint {path}: truncated or corrupted ({_first_line(e)[:120]})") from None
    if not isinstance(obj, dict) or "model" not in obj:
        raise UserError(f"{path} is not a trainlab checkpoint (no model weights inside)")
    return obj


def _first_line(e: Exception) -> str:
    lines = [line for line in str(e).splitlines() if line.strip()]
    return lines[0] if lines else type(e).__name__


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
