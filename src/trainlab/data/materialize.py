"""A user's map-style Dataset on the in-memory path, when that is safe, decided by looking at its samples.

    choice = plan(dataset, memory_limit_mb=4096)   # Choice(in_memory=True, reason="...", x=..., y=...)

The samples are always what `__getitem__` returns: the Dataset is read once and the results stacked. That
is safe only when reading is deterministic, so a probe reads a few indices twice and compares the tensors
bit for bit; a Dataset that augments inside `__getitem__` (a random crop, a random flip) differs and stays
on the streaming path, which calls `__getitem__` every epoch.

Reading 60,000 samples one by one costs about 14 us each in Python (0.8 s), more than an MLP's epoch. When
`__getitem__` is plain tensor code (index, `.float()`, `.div`, `.unsqueeze`...), `torch.func.vmap` runs it
once per chunk of indices with per-sample semantics, about 7x faster. That read is used only when it gives
bit-identical tensors to one-by-one reads on `CHECK` indices spread over the Dataset; anything vmap cannot
run (`int(...)`, `.item()`, a Python list, numpy, random ops) raises and falls back to one-by-one reading.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, Dataset, Subset

from trainlab.data.config import DataConfig

PROBE = 4  # indices read twice: first, last and two in between
CHECK = 64  # indices where the vectorized read must equal one-by-one reads
CHUNK_MB = 6  # output read per vectorized call: keeps the temporaries in cache (MNIST: 2,000 samples)


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


def _unwrap(ds: Dataset, idx: torch.Tensor) -> tuple[Dataset, torch.Tensor]:
    """torch's Subset (what random_split returns) -> the Dataset underneath and the indices into it."""
    while isinstance(ds, Subset):
        idx = torch.as_tensor(ds.indices, dtype=torch.long)[idx]
        ds = ds.dataset
    return ds, idx


def _read_vectorized(ds: Dataset, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(k,) indices -> (x (k, ...), y (k, ...)), running __getitem__ once with per-sample semantics."""
    base, idx = _unwrap(ds, idx)
    x, y = torch.func.vmap(base.__getitem__)(idx)  # vmap's default randomness="error" refuses random ops
    return x, y


def _vectorizable(ds: Dataset, n: int) -> bool:
    """The vectorized read equals one-by-one reads, bit for bit, on CHECK indices spread over the Dataset."""
    idx = torch.linspace(0, n - 1, min(CHECK, n)).long().unique()
    try:
        x, y = _read_vectorized(ds, idx)
    except Exception:  # noqa: BLE001 - any failure means "not plain tensor code": read one by one
        return False
    one = [_sample(ds, int(i)) for i in idx]
    xs, ys = torch.stack([a for a, _ in one]), torch.stack([b for _, b in one])
    return (x.dtype == xs.dtype and y.dtype == ys.dtype and torch.equal(x, xs) and torch.equal(y, ys))


def _read_all(ds: Dataset, n: int, sample_bytes: int) -> tuple[torch.Tensor, torch.Tensor, str]:
    if _vectorizable(ds, n):
        # chunks of a few MB written into one preallocated tensor: the temporaries stay in cache (MNIST, 20,000
        # samples: 0.03 s, against 0.05 s for one call over every index)
        chunk = max(256, CHUNK_MB * 2**20 // max(sample_bytes, 1))
        ds, idx = _unwrap(ds, torch.arange(n))  # once, not per chunk: a Subset's index list is long
        x0, y0 = _read_vectorized(ds, idx[:chunk])
        x = torch.empty((n, *x0.shape[1:]), dtype=x0.dtype)
        y = torch.empty((n, *y0.shape[1:]), dtype=y0.dtype)
        x[:len(x0)], y[:len(y0)] = x0, y0
        for s in range(len(x0), n, chunk):
            xb, yb = _read_vectorized(ds, idx[s:s + chunk])
            x[s:s + len(xb)], y[s:s + len(yb)] = xb, yb
        return x, y, "vectorized with vmap"
    xs, ys = [], []
    for xb, yb in DataLoader(ds, batch_size=1024, shuffle=False, num_workers=0):
        xs.append(torch.as_tensor(xb))
        ys.append(torch.as_tensor(yb))
    return torch.cat(xs), torch.cat(ys), "one by one"


def fits_in_memory(nbytes: float, memory_limit_mb: int) -> bool:
    """The one rule of the data path: a split takes the in-memory path when its tensors fit in
    data.memory_limit_mb (trainlab's own datasets estimate their decoded size, a Dataset of yours is measured
    from its first sample); above it, it is streamed through a DataLoader every epoch."""
    return nbytes <= memory_limit_mb * 2**20


def plan(ds: Dataset, memory_limit_mb: int | None = None, cache: bool | None = None) -> Choice:
    """Decide (and, when in memory, do) the one-off materialization; cache=True/False forces the choice.
    `memory_limit_mb` defaults to data.memory_limit_mb's declaration (data/config.py)."""
    memory_limit_mb = DataConfig.memory_limit_mb if memory_limit_mb is None else memory_limit_mb
    name, n = type(ds).__name__, len(ds)
    if cache is False:
        return Choice(False, f"streaming: {name} is read by a DataLoader every epoch (cache=False)")
    if n == 0:
        return Choice(False, f"streaming: {name} is empty")
    x0, y0 = _sample(ds, 0)
    sample_bytes = x0.element_size() * x0.nelement() + y0.element_size() * max(y0.nelement(), 1)
    size_mb = sample_bytes * n / 2**20
    if cache is None and not fits_in_memory(sample_bytes * n, memory_limit_mb):
        return Choice(False, f"streaming: {name} would take {size_mb:.0f} MB in memory, more than "
                             f"memory_limit_mb={memory_limit_mb} (cache=True forces it)")
    if cache is None and not is_deterministic(ds):
        return Choice(False, f"streaming: {name} returns different tensors for the same index (random "
                             f"augmentation inside __getitem__?), so it is read every epoch (cache=True forces "
                             f"one fixed copy)")
    t0 = time.perf_counter()
    x, y, how = _read_all(ds, n, sample_bytes)
    seconds = time.perf_counter() - t0
    return Choice(True, f"in-memory: {name} read once through __getitem__ ({how}; {n} samples, "
                        f"{(x.element_size() * x.nelement()) / 2**20:.0f} MB, {seconds:.2f} s)", x, y)
