"""One stored sample as a person would look at it: the image, the text, the table row, with its index and file.

    from trainlab.data.describe import describe_sample
    describe_sample(data.bundle, "pool", 17)   # -> {"index": 17, "path": "photos/cat/3.jpg", "image": (C, H, W) uint8}

The bundle is the one `load_data` returns (before a vocabulary is fitted), so texts come back as written.
`where` is "pool" (training pool, also a test split carved out of it) or "test" (a separate test set).
"""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Subset

from trainlab.data.base import DataBundle
from trainlab.data.tabular import decode_row

MAX_VALUES = 12  # a series window or a wide row: the first values are enough to recognise it


def _base(ds):
    """The dataset under Subset wrappers and the index map into it."""
    return ds.dataset if isinstance(ds, Subset) else ds


def describe_sample(bundle: DataBundle, where: str, index: int) -> dict:
    """{"index", "path"?, "image"?, "text"?, "values"?} of sample `index` of the pool or the test set."""
    ds = bundle.pool if where == "pool" else bundle.test
    out: dict = {"index": int(index), "split_source": where}
    base = _base(ds)
    j = int(ds.indices[index]) if isinstance(ds, Subset) else int(index)
    paths = getattr(base, "paths", None)
    if paths is not None:
        out["path"] = str(paths[j])
    texts = getattr(base, "texts", None)
    if texts is not None:
        out["text"] = str(texts[j])
        return out
    x = ds[int(index)][0]
    if bundle.kind == "image":
        out["image"] = torch.as_tensor(x).to(torch.uint8).numpy()  # (C, H, W)
    else:
        out["values"] = _values(np.asarray(x, dtype=float), bundle.meta)
    return out


def _values(x: np.ndarray, meta: dict) -> dict:
    """A table row by its CSV columns (categories as text, never one-hot); a series window as its first values,
    with how many more there are."""
    names = meta.get("features")
    flat = x.reshape(-1)
    if x.ndim == 1 and meta.get("raw_features") and names and len(names) == len(flat):
        return decode_row(flat, meta)  # every column: a row cut short would hide the one that matters
    if x.ndim == 1 and names and len(names) == len(flat):
        shown = {str(n): round(float(v), 4) for n, v in zip(names, flat, strict=True)}
    else:
        shown = {f"x[{i}]": round(float(v), 4) for i, v in enumerate(flat)}
    if len(shown) <= MAX_VALUES:
        return shown
    cut = dict(list(shown.items())[:MAX_VALUES])
    cut["..."] = f"{len(shown) - MAX_VALUES} more values not shown ({len(shown)} in all)"
    return cut
