"""Config -> loaded dataset -> splits -> fitted transform pipelines -> Batches for train/val/test.

    data = load_data(cfg)                       # DataBundle + Splits (seeded, saved with the run)
    view = data.view(data.splits.train, data.splits.val)   # pipelines fitted on the train indices only
    train = view.batches("train", device)       # in-memory or streaming, chosen here and reported

K-fold CV builds one view per fold, so normalization statistics never see a validation fold.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from trainlab.core.errors import UserError
from trainlab.data.base import ArrayDataset, DataBundle, KnowsSize, targets_of
from trainlab.data.batches import LoaderBatches, TensorBatches, balanced_weights
from trainlab.data.catalog import DATASETS
from trainlab.data.materialize import fits_in_memory
from trainlab.data.splits import Splits, make_splits
from trainlab.data.transforms import Pipeline

STATS_SAMPLE = 10_000  # samples used to fit normalize on streamed datasets


def check_labels(bundle: DataBundle, ds, where: str) -> None:
    if bundle.task != "classification":
        return
    y = targets_of(ds)
    if len(y) and (y.min() < 0 or y.max() >= len(bundle.classes)):
        bad = int(y.max()) if y.max() >= len(bundle.classes) else int(y.min())
        raise UserError(f"label {bad} in {where} is outside the class range 0..{len(bundle.classes) - 1}")


def check_finite(ds, where: str) -> None:
    x = getattr(ds, "x", None)
    if isinstance(x, torch.Tensor) and x.is_floating_point() and not torch.isfinite(x).all():
        row = int((~torch.isfinite(x.reshape(len(x), -1))).any(1).nonzero()[0])
        raise UserError(f"NaN or infinite input value in {where} (sample {row}); clean the data first")


@dataclass
class LoadedData:
    cfg: object  # Config
    bundle: DataBundle
    splits: Splits

    def pool_indices(self) -> np.ndarray:
        """Everything that may be trained or validated on: the pool minus a carved-out test split."""
        return np.sort(np.concatenate([self.splits.train, self.splits.val]))

    def view(self, train_idx: np.ndarray, val_idx: np.ndarray) -> DataView:
        return DataView(self, np.asarray(train_idx), np.asarray(val_idx))


def _subset(ds, idx: np.ndarray):
    return ds.subset(idx) if isinstance(ds, ArrayDataset) else Subset(ds, [int(i) for i in idx])


def load_data(cfg) -> LoadedData:
    bundle = DATASETS.get(cfg.data.name)(cfg.data, cfg.data.params)
    if len(bundle.pool) == 0:
        raise UserError(f"dataset {cfg.data.name!r} is empty")
    check_labels(bundle, bundle.pool, cfg.data.name)
    check_finite(bundle.pool, cfg.data.name)
    if bundle.test is not None:
        check_labels(bundle, bundle.test, f"{cfg.data.name} test split")
        check_finite(bundle.test, f"{cfg.data.name} test split")
    stratify = cfg.data.stratify and bundle.task == "classification"
    splits = make_splits(targets_of(bundle.pool), bundle.test is not None, cfg.data.val_fraction,
                         cfg.data.test_fraction, cfg.seed, stratify, bundle.ordered)
    return LoadedData(cfg, bundle, splits)


def _fit_inputs(ds, limit: int = STATS_SAMPLE) -> torch.Tensor:
    if isinstance(ds, ArrayDataset):
        return ds.x
    n = min(len(ds), limit)
    idx = torch.randperm(len(ds), generator=torch.Generator().manual_seed(0))[:n]
    return torch.stack([ds[int(i)][0] for i in idx])


class DataView:
    """One train/val assignment of the pool with transform pipelines fitted on its training part."""

    def __init__(self, data: LoadedData, train_idx: np.ndarray, val_idx: np.ndarray):
        self.data, self.train_idx, self.val_idx = data, train_idx, val_idx
        dcfg = data.cfg.data
        # e.g. a text vocabulary: fitted on this view's training indices only
        bundle = self.bundle = data.bundle.fit(train_idx) if data.bundle.fit else data.bundle
        uint8 = bundle.kind == "image"
        self.train_pipe = Pipeline(dcfg.transforms.train, uint8)
        self.eval_pipe = Pipeline(dcfg.transforms.eval, uint8)
        fit_x = _fit_inputs(_subset(bundle.pool, train_idx))
        self.eval_pipe.fit(fit_x)
        if self.train_pipe.specs == self.eval_pipe.specs:  # the usual [normalize] twice: fit once
            self.train_pipe.fit_like(self.eval_pipe)
        else:
            self.train_pipe.fit(fit_x)
        self.input_shape = tuple(self.eval_pipe(fit_x[:1]).shape[1:])

    def dataset(self, split: str):
        bundle = self.bundle
        if split == "train":
            return _subset(bundle.pool, self.train_idx)
        if split == "val":
            return _subset(bundle.pool, self.val_idx)
        if split == "test":
            return bundle.test if bundle.test is not None else _subset(bundle.pool, self.data.splits.test)
        raise ValueError(split)

    @property
    def model_info(self) -> dict:
        return self.bundle.model_info

    def batches(self, split: str, device: torch.device):
        """Batches for `split` on `device`: in-memory when it fits (data.in_memory), else streaming."""
        dcfg = self.data.cfg.data
        ds = self.dataset(split)
        if len(ds) == 0:
            return None
        train = split == "train"
        pipe = self.train_pipe if train else self.eval_pipe
        bs = dcfg.batch_size if train else dcfg.eval_batch_size
        if train and dcfg.drop_last and bs > len(ds):
            raise UserError(f"data.batch_size={bs} is larger than the {len(ds)} training samples with "
                            f"data.drop_last=true: no batch would be left; lower batch_size or set drop_last=false")
        weights = self.sample_weights(ds) if train else None
        if self.in_memory(ds):
            x, y = self._materialize(ds)
            x = pipe.prefix(x)  # deterministic preprocessing, once
            rest = pipe.rest if pipe.random else None
            return TensorBatches(x.to(device), y.to(device), bs, train and dcfg.shuffle, train and dcfg.drop_last, rest,
                                 weights)
        pin = dcfg.pin_memory if dcfg.pin_memory != "auto" else device.type == "cuda"
        return LoaderBatches(ds, bs, train and dcfg.shuffle, train and dcfg.drop_last, pipe, device,
                             dcfg.num_workers, pin, dcfg.persistent_workers, weights)

    def sample_weights(self, ds) -> torch.Tensor | None:
        """data.sampler: balanced -> (N,) draw weights 1/class count of the training samples (else None)."""
        if self.data.cfg.data.sampler != "balanced":
            return None
        if self.bundle.task != "classification":
            raise UserError("data.sampler: balanced needs a classification dataset (it balances classes)")
        pool_targets = getattr(self.bundle.pool, "targets", None)
        y = (torch.as_tensor(pool_targets)[torch.as_tensor(self.train_idx, dtype=torch.long)]
             if pool_targets is not None else targets_of(ds))
        return balanced_weights(y)

    def in_memory(self, ds) -> bool:
        """Whether `ds` takes the in-memory path (data.in_memory, or auto: it fits in data.memory_limit_mb)."""
        dcfg = self.data.cfg.data
        if dcfg.in_memory != "auto":
            return bool(dcfg.in_memory)
        if isinstance(ds, ArrayDataset):
            return True
        base = ds.dataset if isinstance(ds, Subset) else ds
        per_item = base.nbytes() / max(len(base), 1) if isinstance(base, KnowsSize) else 0
        # stored as float32 after the prefix: up to 4x the decoded uint8 size
        return fits_in_memory(per_item * len(ds) * 4, dcfg.memory_limit_mb)

    def _materialize(self, ds) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(ds, ArrayDataset):
            return ds.x, ds.y
        dcfg = self.data.cfg.data
        loader = DataLoader(ds, batch_size=256, num_workers=dcfg.num_workers)
        xs, ys = zip(*[(xb, torch.as_tensor(yb)) for xb, yb in loader], strict=False)
        return torch.cat(xs), torch.cat(ys)
