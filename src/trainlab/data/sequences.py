"""Generated sequence tasks: small, seeded, no download, and unsolvable without knowing token order.

`first_marker`: a random string of filler letters in which each marker letter (default a, b, c) appears
exactly once; the label is the marker that comes first. Every text holds the same multiset of markers,
so counting tokens (a bag of words) is at chance: the model must compare positions - what attention with
positional encodings does. Texts have random lengths, so padding masks matter too.

    texts, labels = first_marker_task(2000, seed=0)   # "kqbxwamzc..." -> 1 ("b" comes first)
"""
from __future__ import annotations

import string

import numpy as np

from trainlab.core.errors import UserError


def first_marker_task(n: int, seed: int = 0, markers: str = "abc", min_len: int = 12,
                      max_len: int = 32) -> tuple[list[str], np.ndarray]:
    """-> (n texts, labels (n,) int: index into `markers` of the marker that occurs first)."""
    if len(set(markers)) != len(markers) or not markers or not set(markers) <= set(string.ascii_lowercase):
        raise UserError(f"bad markers {markers!r}: distinct lowercase letters, e.g. abc")
    if not len(markers) <= min_len <= max_len:
        raise UserError(f"text lengths need len(markers)={len(markers)} <= min_len={min_len} <= max_len={max_len}")
    rng = np.random.default_rng(seed)
    filler = np.array([c for c in string.ascii_lowercase if c not in markers])
    texts, labels = [], np.empty(n, dtype=np.int64)
    for i in range(n):
        length = int(rng.integers(min_len, max_len + 1))
        chars = rng.choice(filler, length)
        pos = rng.choice(length, len(markers), replace=False)  # where each marker goes
        chars[pos] = list(markers)
        texts.append("".join(chars))
        labels[i] = int(np.argmin(pos))
    return texts, labels
