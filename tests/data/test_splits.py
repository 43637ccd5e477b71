"""Splits: disjoint, covering, stratified, seeded and stable; the test split never reaches training."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.model_selection import train_test_split

from trainlab.data.prepare import load_data
from trainlab.data.splits import make_splits, shuffle_split
from trainlab.run.config import build_config


def labels(n_per_class=(100, 50, 30)) -> torch.Tensor:
    return torch.cat([torch.full((n,), c) for c, n in enumerate(n_per_class)])


def test_disjoint_and_covering():
    s = make_splits(labels(), has_test=False, val_fraction=0.2, test_fraction=0.25, seed=0, stratify=True)
    all_idx = np.concatenate([s.train, s.val, s.test])
    assert len(all_idx) == 180 and len(set(all_idx.tolist())) == 180
    assert len(s.test) == 45 and len(s.val) == 27 and len(s.train) == 108


def test_stratified_class_shares():
    y = labels()
    s = make_splits(y, has_test=False, val_fraction=0.2, test_fraction=0.25, seed=1, stratify=True)
    for part in (s.train, s.val, s.test):
        share = torch.bincount(y[part], minlength=3).float() / len(part)
        assert torch.allclose(share, torch.tensor([100, 50, 30]) / 180.0, atol=0.03)


def test_seeded_and_stable():
    a = make_splits(labels(), False, 0.2, 0.25, seed=5, stratify=True)
    b = make_splits(labels(), False, 0.2, 0.25, seed=5, stratify=True)
    c = make_splits(labels(), False, 0.2, 0.25, seed=6, stratify=True)
    assert np.array_equal(a.test, b.test) and np.array_equal(a.val, b.val)
    assert not np.array_equal(a.test, c.test)


def test_official_test_split_is_not_carved():
    s = make_splits(labels(), has_test=True, val_fraction=0.1, test_fraction=0.25, seed=0, stratify=True)
    assert s.test is None and len(s.train) + len(s.val) == 180


def test_ordered_holds_out_the_tail():
    s = make_splits(torch.zeros(100), False, 0.1, 0.2, seed=0, stratify=False, ordered=True)
    assert s.train.max() < s.val.min() and s.val.max() < s.test.min() and s.test.tolist() == list(range(80, 100))


def test_too_small_split_is_a_clear_error():
    from trainlab.core.errors import UserError

    with pytest.raises(UserError, match="empty split"):
        make_splits(torch.zeros(3), False, 0.1, 0.2, seed=0, stratify=False)


def test_normalization_never_sees_validation_or_test():
    """The fitted mean equals the mean of the training indices only."""
    cfg = build_config({"data": {"name": "digits"}})
    data = load_data(cfg)
    view = data.view(data.splits.train, data.splits.val)
    norm = [s for s in view.eval_pipe.steps if type(s).__name__ == "Normalize"][0]
    x = data.bundle.pool.x.float() / 255
    assert norm.mean.item() == pytest.approx(x[data.splits.train].mean().item(), abs=1e-6)
    assert norm.mean.item() != pytest.approx(x.mean().item(), abs=1e-6)
    assert set(data.splits.test.tolist()).isdisjoint(view.train_idx.tolist() + view.val_idx.tolist())


def _cases():
    rng = np.random.default_rng(0)
    for case in range(60):
        n = int(rng.integers(20, 400))
        n_held = int(rng.integers(1, n // 2))
        kind = case % 4
        if kind == 0:
            labels = None
        elif kind == 1:  # imbalanced classes: remainders tie and are broken by the rng
            labels = rng.choice(int(rng.integers(2, 7)), n, p=None)
        elif kind == 2:  # string classes
            labels = rng.choice(np.array(["cat", "dog", "owl"]), n, p=[0.6, 0.3, 0.1])
        else:  # multi-label rows
            labels = (rng.random((n, 3)) < 0.3).astype(np.int64)
        yield n, n_held, int(rng.integers(0, 10_000)), labels


@pytest.mark.parametrize("n, n_held, seed, y", list(_cases()))
def test_the_holdout_picks_what_scikit_learns_train_test_split_picks(n, n_held, seed, y):
    """Splits written by earlier versions (scikit-learn's) stay the same samples: splits.json, published figures."""
    try:
        want = train_test_split(np.arange(n), test_size=n_held, random_state=seed, shuffle=True, stratify=y)
    except ValueError as e:
        with pytest.raises(ValueError) as ours:
            shuffle_split(n, n_held, seed, y)
        assert str(ours.value) == str(e)
        return
    got = shuffle_split(n, n_held, seed, y)
    assert [sorted(g.tolist()) for g in got] == [sorted(w.tolist()) for w in want]
