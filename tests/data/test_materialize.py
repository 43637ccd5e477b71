"""A user's own Dataset: trained on what __getitem__ returns, in memory when deterministic, streamed when not."""
from __future__ import annotations

import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import Dataset

from trainlab import Trainer
from trainlab.data.batches import LoaderBatches, TensorBatches, as_batches
from trainlab.data.materialize import is_deterministic, plan


class CourseDataset(Dataset):
    """The course's pattern: raw uint8 pixels and string labels kept as attributes, converted in __getitem__.

    `x` and `y` are deliberately decoys for any code that reads attributes instead of calling __getitem__:
    `x` is uint8 0..255 (unscaled) and `y` holds labels shifted by 3 (mapped back in __getitem__).
    """

    def __init__(self):
        d = load_digits()
        self.x = torch.from_numpy((d.images * 255 / 16).round().astype("uint8"))  # (N, 8, 8) uint8
        self.y = torch.from_numpy((d.target + 3) % 10)  # a label map only __getitem__ undoes

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i].float().div(255.0).flatten(), int((self.y[i] - 3) % 10)


class Augmented(CourseDataset):
    def __getitem__(self, i):
        x, y = super().__getitem__(i)
        return x + 0.01 * torch.randn_like(x), y  # noise per read: not deterministic


def test_a_deterministic_dataset_is_read_once_into_memory_through_getitem():
    ds = CourseDataset()
    choice = plan(ds)
    assert choice.in_memory and "read once through __getitem__" in choice.reason
    x0, y0 = ds[0]
    assert torch.equal(choice.x[0], x0) and int(choice.y[0]) == y0  # __getitem__'s values, not ds.x / ds.y
    assert choice.x.dtype == torch.float32 and float(choice.x.max()) <= 1.0
    assert isinstance(as_batches(ds, 64, True, cache=None), TensorBatches)


def test_training_uses_getitem_not_the_attributes(capsys):
    ds = CourseDataset()
    n = len(ds)
    train, val = torch.utils.data.Subset(ds, range(0, n - 300)), torch.utils.data.Subset(ds, range(n - 300, n))
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    t = Trainer(model, lr=3e-3, metrics=["accuracy"], seed=0)
    hist = t.fit(train, val, epochs=8, batch_size=64)
    # trained on the decoy attributes the labels would be shifted by 3 and accuracy near 0
    assert max(h["val_accuracy"] for h in hist) > 0.85, hist[-1]
    assert "data path: in-memory: Subset read once" in capsys.readouterr().out


def test_a_random_getitem_stays_on_the_streaming_path_and_says_why():
    ds = Augmented()
    assert not is_deterministic(ds)
    choice = plan(ds)
    assert not choice.in_memory and "different tensors for the same index" in choice.reason
    assert isinstance(as_batches(ds, 64, True, cache=None), LoaderBatches)
    assert isinstance(as_batches(ds, 64, True, cache=True), TensorBatches)  # forced: one fixed copy
    assert isinstance(as_batches(CourseDataset(), 64, True, cache=False), LoaderBatches)


def test_a_dataset_over_the_memory_limit_is_streamed():
    choice = plan(CourseDataset(), memory_limit_mb=0)
    assert not choice.in_memory and "more than memory_limit_mb=0" in choice.reason


class TensorCode(CourseDataset):
    """The same Dataset written as plain tensor code (no int(...)): vmap can run it on many indices at once."""

    def __getitem__(self, i):
        return self.x[i].float().div(255.0).unsqueeze(0), (self.y[i] - 3) % 10


def test_plain_tensor_code_is_read_vectorized_and_equals_one_by_one_reads():
    ds = TensorCode()
    choice = plan(ds)
    assert choice.in_memory and "vectorized with vmap" in choice.reason, choice.reason
    one_by_one = torch.stack([ds[i][0] for i in range(len(ds))])
    assert choice.x.shape == (len(ds), 1, 8, 8)  # __getitem__'s unsqueeze(0) is per sample, not per chunk
    assert torch.equal(choice.x, one_by_one)
    assert torch.equal(choice.y, torch.stack([ds[i][1] for i in range(len(ds))]))
    assert set(choice.y.tolist()) == set(range(10))


def test_a_subset_of_tensor_code_reads_its_own_indices():
    ds = TensorCode()
    idx = torch.randperm(len(ds), generator=torch.Generator().manual_seed(0))[:500].tolist()
    sub = torch.utils.data.Subset(torch.utils.data.Subset(ds, idx), range(100, 400))
    choice = plan(sub)
    assert "vectorized" in choice.reason and choice.x.shape[0] == 300
    assert torch.equal(choice.x[7], ds[idx[107]][0]) and int(choice.y[299]) == int(ds[idx[399]][1])


def test_code_vmap_cannot_run_is_read_one_by_one():
    choice = plan(CourseDataset())  # int(...) on a label: vmap refuses it
    assert choice.in_memory and "one by one" in choice.reason


def test_a_vectorized_read_that_differs_from_one_by_one_reads_is_not_used(monkeypatch):
    from trainlab.data import materialize

    real = materialize._read_vectorized
    monkeypatch.setattr(materialize, "_read_vectorized", lambda ds, idx: (real(ds, idx)[0] + 1e-7, real(ds, idx)[1]))
    ds = TensorCode()
    choice = plan(ds)
    assert "one by one" in choice.reason
    assert torch.equal(choice.x[5], ds[5][0])
