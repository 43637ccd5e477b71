"""What both hand-written MNIST recipes share: reading the raw idx files, the library's 54k split, the one-off
normalization, and the command line. Plain PyTorch (and scikit-learn's split, to match the library's).

    data = prepare(root, 54000, split_seed=0, norm="fit", shape=(784,))   # or (1, 28, 28) for the CNN
    main(__doc__, RECIPE, run, shape, target)                             # each script's command line
"""
from __future__ import annotations

import argparse
import json
import os

import torch

DEFAULT_DATA = "/work/shared/data"


def _read_idx(path: str) -> torch.Tensor:
    with open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return torch.frombuffer(bytearray(raw[4 + 4 * ndim:]), dtype=torch.uint8).reshape(dims)


def load_mnist(root: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """uint8 images (N, 28, 28) and int64 labels of the official train (60k) and test (10k) sets."""
    raw = os.path.join(root, "MNIST", "raw") if os.path.isdir(os.path.join(root, "MNIST")) else root

    def pair(prefix):
        return (_read_idx(os.path.join(raw, f"{prefix}-images-idx3-ubyte")),
                _read_idx(os.path.join(raw, f"{prefix}-labels-idx1-ubyte")).long())

    return (*pair("train"), *pair("t10k"))


def train_subset(y: torch.Tensor, size: int, split_seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train indices, held-out indices). 54000 = the library's split for `seed: split_seed`: scikit-learn's
    stratified train_test_split with random_state=split_seed+1 (trainlab/data/splits.py); falls back to a
    seeded per-class torch.randperm when scikit-learn is missing."""
    n = len(y)
    if size >= n:
        return torch.arange(n), torch.arange(0)
    try:
        import numpy as np
        from sklearn.model_selection import train_test_split
        kept, held = train_test_split(np.arange(n), test_size=n - size, random_state=split_seed + 1,
                                      shuffle=True, stratify=y.numpy())
        return torch.from_numpy(np.sort(kept)), torch.from_numpy(np.sort(held))
    except ImportError:
        g = torch.Generator().manual_seed(split_seed)
        held = []
        for c in range(10):
            idx = (y == c).nonzero().squeeze(1)
            held.append(idx[torch.randperm(len(idx), generator=g)[:round(len(idx) * (n - size) / n)]])
        mask = torch.ones(n, dtype=torch.bool)
        mask[torch.cat(held)] = False
        return mask.nonzero().squeeze(1), (~mask).nonzero().squeeze(1)


def prepare(root: str, train_size: int, split_seed: int, norm: str, shape: tuple = (784,)):
    xtr, ytr, xte, yte = load_mnist(root)
    idx, held = train_subset(ytr, train_size, split_seed)
    xval, yval = xtr[held], ytr[held]
    xtr, ytr = xtr[idx], ytr[idx]
    xtr, xte, xval = (t.float().div_(255.0).reshape(len(t), *shape) for t in (xtr, xte, xval))
    if norm == "fixed":
        mean, std = 0.1307, 0.3081
    elif norm == "pixel":  # per-pixel stats of the training split; constant pixels get std 1
        mean, std = xtr.mean(0), xtr.std(0, unbiased=False)
        std = torch.where(std > 1e-8, std, torch.ones_like(std))
    else:
        mean, std = xtr.double().mean().item(), xtr.double().std(unbiased=False).item()
    xtr, xte, xval = ((t - mean) / std for t in (xtr, xte, xval))
    if norm == "pixel":
        mean, std = mean.mean().item(), std.mean().item()  # only reported (and the CNN's fill value)
    # with one channel, (N, 1, H, W) contiguous is also channels_last: batches need no conversion
    return xtr.contiguous(), ytr, xte.contiguous(), yte, xval.contiguous(), yval, (mean, std)



def parse_set(items: list[str], recipe: dict) -> dict:
    out = {}
    for item in items:
        k, v = item.split("=", 1)
        if k not in recipe:
            raise SystemExit(f"unknown recipe key {k!r}; known: {', '.join(recipe)}")
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    return out


def main(doc: str, recipe: dict, run, shape: tuple, target: float) -> None:
    """The command line of a recipe script: parse, prepare the data, run, print one JSON line."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--data", default=DEFAULT_DATA)
    p.add_argument("--train-size", type=int, default=60000, help="60000 (all) or 54000 (the library's split)")
    p.add_argument("--split-seed", type=int, default=0, help="the library's `seed` that fixes the 54k split")
    p.add_argument("--target", type=float, default=target)
    p.add_argument("--stop-at-target", action="store_true", help="end the run at the first epoch on target")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override recipe keys")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    r = {**recipe, **parse_set(a.set, recipe)}
    data = prepare(a.data, a.train_size, a.split_seed, r["norm"], shape)
    print(json.dumps(run(r, data, a.seed, a.target, a.stop_at_target)))
