"""Seeded, stable train/val/test splits (stratified for classification, time-ordered for series).

The test split is either the dataset's official one or carved from the pool first; validation is then
carved from what remains. The indices are saved in the run directory (splits.json) so a run can be
audited and `trainlab eval` uses exactly the same samples.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from trainlab.core.errors import UserError
from trainlab.data.options import FOLD_SPLITTERS


@dataclass
class Splits:
    """Indices into the pool. `test` is None when the dataset has an official test split."""
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray | None

    def to_json(self) -> dict:
        return {k: (None if v is None else [int(i) for i in v]) for k, v in self.__dict__.items()}

    @classmethod
    def from_json(cls, d: dict) -> Splits:
        return cls(*(None if d.get(k) is None else np.asarray(d[k], dtype=np.int64) for k in ("train", "val", "test")))


def holdout(idx: np.ndarray, labels: np.ndarray | None, fraction: float, seed: int,
            ordered: bool = False, what: str = "validation") -> tuple[np.ndarray, np.ndarray]:
    """Split `idx` into (kept, held out); `labels` (aligned with idx) stratify, `ordered` holds out the tail."""
    if fraction <= 0:
        return idx, idx[:0]
    n_held = int(round(len(idx) * fraction))
    if n_held < 1 or n_held >= len(idx):
        raise UserError(f"cannot hold out {fraction:g} of {len(idx)} samples for {what}: "
                        f"it leaves an empty split; change the fraction or use more data")
    if ordered:
        return idx[:-n_held], idx[-n_held:]
    try:
        kept, held = shuffle_split(len(idx), n_held, seed, labels)
    except ValueError as e:
        raise UserError(f"cannot stratify the {what} split: {e}; set data.stratify=false") from None
    return np.sort(idx[kept]), np.sort(idx[held])


def shuffle_split(n: int, n_held: int, seed: int, labels: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Positions (kept, held out) of n samples, the same sets scikit-learn's `train_test_split(range(n),
    test_size=n_held, random_state=seed, shuffle=True, stratify=labels)` picks (ShuffleSplit, or
    StratifiedShuffleSplit with its `_approximate_mode`; tests/data/test_splits.py compares the two), written out
    because importing scikit-learn took 1.1 s of every run's start. Unsorted."""
    rng = np.random.RandomState(seed)  # scikit-learn's check_random_state(int)
    if labels is None:
        perm = rng.permutation(n)
        return perm[n_held:], perm[:n_held]
    y = np.asarray(labels)
    if y.ndim == 2:  # multi-label: each distinct row is a class, as scikit-learn writes it
        y = np.array([" ".join(row.astype("str")) for row in y])
    classes, y_indices, counts = np.unique(y, return_inverse=True, return_counts=True)
    y_indices = y_indices.reshape(-1)
    if counts.min() < 2:
        raise ValueError("The least populated classes in y have only 1 member, which is too few. The minimum "
                         "number of groups for any class cannot be less than 2. Classes with too few members are: "
                         f"{classes[counts < 2].tolist()}")
    for name, size in (("train_size", n - n_held), ("test_size", n_held)):
        if size < len(classes):
            raise ValueError(f"The {name} = {size} should be greater or equal to the number of classes = "
                             f"{len(classes)}")
    members = np.split(np.argsort(y_indices, kind="stable"), np.cumsum(counts)[:-1])  # positions per class
    n_kept = approximate_mode(counts, n - n_held, rng)
    n_out = approximate_mode(counts - n_kept, n_held, rng)
    kept, held = [], []
    for i in range(len(classes)):
        perm = members[i].take(rng.permutation(counts[i]), mode="clip")
        kept.append(perm[:n_kept[i]])
        held.append(perm[n_kept[i]:n_kept[i] + n_out[i]])
    return np.concatenate(kept), np.concatenate(held)


def approximate_mode(class_counts: np.ndarray, n_draws: int, rng: np.random.RandomState) -> np.ndarray:
    """Samples per class for `n_draws` in proportion to `class_counts`: floored shares, then one more for the
    largest remainders, ties broken by `rng` (scikit-learn's utils.extmath._approximate_mode, draw for draw)."""
    continuous = class_counts / class_counts.sum() * n_draws
    floored = np.floor(continuous)
    need = int(n_draws - floored.sum())
    if need > 0:
        remainder = continuous - floored
        for value in np.sort(np.unique(remainder))[::-1]:
            (inds,) = np.where(remainder == value)
            add_now = min(len(inds), need)
            floored[rng.choice(inds, size=add_now, replace=False)] += 1
            need -= add_now
            if need == 0:
                break
    return floored.astype(int)


def make_splits(targets: torch.Tensor, has_test: bool, val_fraction: float, test_fraction: float,
                seed: int, stratify: bool, ordered: bool = False) -> Splits:
    n = len(targets)
    if n == 0:
        raise UserError("the dataset is empty")
    idx = np.arange(n)
    labels = targets.numpy() if stratify and not ordered else None
    test = None
    if not has_test:
        idx, test = holdout(idx, labels, test_fraction, seed, ordered, "test")
    sub = labels[idx] if labels is not None else None
    train, val = holdout(idx, sub, val_fraction, seed + 1, ordered, "validation")
    return Splits(train, val, test)


# ----------------------------------------------------------------------------- K-fold (trainlab cv / tune --cv)



def fold_splits(idx: np.ndarray, k: int, method: str, seed: int, labels: np.ndarray | None = None,
                groups: np.ndarray | None = None, gap: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """K (train, val) pairs of pool indices from scikit-learn's splitters; `labels`/`groups` align with `idx`.

    stratified/kfold/group: the K validation folds are disjoint and cover `idx`. time: TimeSeriesSplit, every
    validation fold lies after its training part with `gap` samples dropped between them (windows whose targets
    would overlap the fold's), and the first chunk of the series is never validated.
    """
    from sklearn.model_selection import (  # optional heavy dependency: imported on use
        GroupKFold,
        KFold,
        StratifiedKFold,
        TimeSeriesSplit,
    )

    if method not in FOLD_SPLITTERS:
        raise UserError(f"unknown fold splitter {method!r}; choose from: {', '.join(FOLD_SPLITTERS)}")
    if k < 2:
        raise UserError(f"--folds must be >= 2, got {k}")
    n = len(idx) if method != "group" else len(np.unique(groups))
    if k > n - (method == "time"):
        what = "groups" if method == "group" else "samples"
        raise UserError(f"cannot make {k} folds from {n} {what} in the training pool; use fewer folds")
    if method == "stratified":
        counts = np.bincount(labels)
        if counts[counts > 0].min() < k:
            raise UserError(f"cannot stratify {k} folds: the rarest class has {counts[counts > 0].min()} samples "
                            f"in the training pool; use fewer folds or --split kfold")
        splitter, args = StratifiedKFold(k, shuffle=True, random_state=seed), (idx, labels)
    elif method == "kfold":
        splitter, args = KFold(k, shuffle=True, random_state=seed), (idx,)
    elif method == "group":
        splitter, args = GroupKFold(k, shuffle=True, random_state=seed), (idx, None, groups)
    else:
        splitter, args = TimeSeriesSplit(k, gap=gap), (idx,)
    try:
        return [(idx[tr], idx[va]) for tr, va in splitter.split(*args)]
    except ValueError as e:  # e.g. too few samples left once the gap is dropped
        raise UserError(f"cannot make {k} {method} folds: {e}") from None
