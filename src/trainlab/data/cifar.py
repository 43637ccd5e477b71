"""CIFAR-10 read by hand from its python-pickle batch files, as the course builds it.

Layout: ROOT/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}; each batch is a pickled
dict with b"data" (N, 3072) uint8 rows (1024 red, 1024 green, 1024 blue values, row-major 32x32) and
b"labels". tests/data/test_datasets.py proves it yields what torchvision.datasets.CIFAR10 yields.
"""
from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from trainlab.core.errors import UserError

TRAIN_FILES = [f"data_batch_{i}" for i in range(1, 6)]
TEST_FILES = ["test_batch"]
FOLDER = "cifar-10-batches-py"


class _Restricted(pickle.Unpickler):
    """The batches hold only dicts, lists, bytes and numpy arrays; refuse anything that could run code."""

    ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
               ("numpy._core.multiarray", "_reconstruct")}

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _load_batch(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            return _Restricted(f, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError) as e:
        raise UserError(f"cannot read CIFAR-10 batch {path}: {e}") from None


class CIFAR10Pickle(Dataset):
    """`__getitem__(i)` -> (uint8 image tensor (3, 32, 32), int label), after `transform` if given."""

    def __init__(self, root: str | Path, train: bool = True, transform: Callable | None = None):
        folder = Path(root) / FOLDER
        files = TRAIN_FILES if train else TEST_FILES
        missing = [f for f in files if not (folder / f).is_file()]
        if missing:
            raise UserError(f"CIFAR-10 not found: missing {folder / missing[0]}; expected ROOT/{FOLDER}/"
                            f"{{data_batch_1..5,test_batch}}; set data.root or data.download=true")
        batches = [_load_batch(folder / f) for f in files]
        rows = np.concatenate([np.asarray(b["data"], dtype=np.uint8) for b in batches])
        self.data = rows.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # (N, 32, 32, 3) like torchvision
        self.targets = [int(t) for b in batches for t in b.get("labels", b.get("fine_labels", []))]
        self.classes = self._classes(folder)
        self.transform = transform

    @staticmethod
    def _classes(folder: Path) -> list[str]:
        meta = folder / "batches.meta"
        if meta.is_file():
            return [str(c) for c in _load_batch(meta)["label_names"]]
        return ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int):
        img = torch.from_numpy(self.data[i]).permute(2, 0, 1).contiguous()  # (3, 32, 32)
        if self.transform is not None:
            img = self.transform(img)
        return img, self.targets[i]

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """All images (N, 3, 32, 32) uint8 and labels (N,) at once, for the in-memory path."""
        x = torch.from_numpy(np.ascontiguousarray(self.data.transpose(0, 3, 1, 2)))
        return x, torch.tensor(self.targets, dtype=torch.long)
