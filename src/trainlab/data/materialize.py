"""A user's map-style Dataset on the in-memory path, when that is safe, decided by looking at its samples.

    choice = plan(dataset, memory_limit_mb=4096)   # Choice(in_memory=True, reason="...", x=..., y=...)

The samples are always what `__getitem__` returns: the Dataset is read once, sample by sample, and the
results stacked. That is safe only when reading is deterministic, so a probe reads a few indices twice
and compares the tensors bit for bit; a Dataset that augments inside `__getitem__` (a random crop, a
random flip) differs and stays on the streaming path, which calls `__getitem__` every epoch.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, Dataset

PROBE = 4  # indices read twice: first, last and two in between
CHUNK = 1024  # samples collated at a time while materializing


@dataclass
class Choice:
    in_memory: bool
    reason: str  # one line for the user: what was chosen and why
    x: torch.Tensor | None = None
    y: torch.Tensor | None = None


def _sample(ds: Dataset, i: int) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = ds[i]
    return torch.as_tensor(x), torch.as_tensor(y)


def _probe_indices(n: int) -> list[int]:
    return sorted({0, n - 1, n // 3, (2 * n) // 3})[:PROBE]


def is_deterministic(ds: Dataset) -> bool:
    """Same indices read twice give identical tensors (a random __getitem__ fails this)."""
    for i in _probe_indices(len(ds)):
        (x1, y1), (x2, y2) = _sample(ds, i), _sample(ds, i)
        if not (torch.equal(x1, x2) and torch.equal(y1, y2)):
            return False
    return True


def plan(ds: Dataset, memory_limit_mb: int = 4096, cache: bool | None = None) -> Choice:
    """Decide (and, when in memory, do) the one-off materialization; cache=True/False forces the choice."""
    name, n = type(ds).__name__, len(ds)
    if cache is False:
        return Choice(False, f"streaming: {name} is read by a DataLoader every epoch (cache=False)")
    if n == 0:
        return Choice(False, f"streaming: {name} is empty")
    x0, y0 = _sample(ds, 0)
    size_mb = (x0.element_size() * x0.nelement() + y0.element_size() * max(y0.nelement(), 1)) * n / 2**20
    if cache is None and size_mb > memory_limit_mb:
        return Choice(False, f"streaming: {name} would take {size_mb:.0f} MB in memory, more than "
                             f"memory_limit_mb={memory_limit_mb} (cache=True forces it)")
    if cache is None and not is_deterministic(ds):
        return Choice(False, f"streaming: {name} returns different tensors for the same index (random "
                             f"augmentation inside __getitem__?), so it is read every epoch (cache=True forces "
                             f"one fixed copy)")
    t0 = time.perf_counter()
    xs, ys = [], []
    for xb, yb in DataLoader(ds, batch_size=CHUNK, shuffle=False, num_workers=0):
        xs.append(torch.as_tensor(xb))
        ys.append(torch.as_tensor(yb))
    x, y = torch.cat(xs), torch.cat(ys)
    seconds = time.perf_counter() - t0
    return Choice(True, f"in-memory: {name} read once through __getitem__ ({n} samples, "
                        f"{(x.element_size() * x.nelement()) / 2**20:.0f} MB, {seconds:.1f} s)", x, y)
