"""The `data` section of a config: common keys here, each dataset's own options in its catalog entry.

    data_settings({"name": "csv", "path": "t.csv", "batch_size": 128})  # -> DataConfig, params = CSVParams(...)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from trainlab.core.errors import UserError
from trainlab.core.schema import opt, section_with_params
from trainlab.data.catalog import DATASETS, TRANSFORMS


@dataclass
class TransformsConfig:
    train: list[dict] = opt(lambda: [{"name": "normalize"}],
                            help="pipeline for training samples (augmentations + preprocessing)")
    eval: list[dict] = opt(lambda: [{"name": "normalize"}],
                           help="deterministic pipeline for validation, test and predict")


@dataclass
class DataConfig:
    name: str = opt("digits", help="dataset (trainlab list datasets)")
    root: str = opt("data", help="folder holding downloaded datasets")
    download: bool = opt(False, help="download the dataset into root if missing")
    val_fraction: float = opt(0.1, help="share of the training pool held out for validation", ge=0.0, lt=1.0)
    test_fraction: float = opt(0.2, help="share held out for test when the dataset has no official test split",
                               gt=0.0, lt=1.0)
    stratify: bool = opt(True, help="stratify splits by class (classification only)")
    batch_size: int = opt(64, help="training batch size", ge=1, le=2**20)
    eval_batch_size: int = opt(512, help="batch size for validation/test/predict", ge=1, le=2**20)
    shuffle: bool = opt(True, help="reshuffle the training set every epoch")
    sampler: Literal["uniform", "balanced"] = opt(
        "uniform", help="balanced: draw training samples with probability 1/(their class's count), with "
                        "replacement, so every class is seen equally often (imbalanced classification)")
    drop_last: bool = opt(False, help="drop the last incomplete training batch")
    num_workers: int = opt(0, help="DataLoader worker processes (streaming path)", ge=0, le=256)
    pin_memory: bool | Literal["auto"] = opt("auto", help="pinned host memory; auto = on with CUDA")
    persistent_workers: bool = opt(False, help="keep DataLoader workers alive between epochs")
    in_memory: bool | Literal["auto"] = opt("auto",
                                            help="decode once into tensors and slice batches; auto = if it fits")
    memory_limit_mb: int = opt(4096, help="largest dataset the in-memory path takes (auto mode)", ge=1, le=2**24)
    transforms: TransformsConfig = opt(TransformsConfig, help="transform pipelines (trainlab list transforms)")
    params: Any = None  # the dataset's own options (its registry dataclass), flattened into the YAML section




def data_settings(values: dict) -> DataConfig:
    """Validate the `data` section: common keys, the dataset's own options and the transform names."""
    cfg = section_with_params(DataConfig, values, "data", {"params": (DATASETS, "name")})
    for which in ("train", "eval"):
        for i, spec in enumerate(getattr(cfg.transforms, which)):
            name = spec.get("name") if isinstance(spec, dict) else spec
            if not isinstance(name, str):
                raise UserError(f"data.transforms.{which}[{i}] needs a name, e.g. {{name: normalize}}; got {spec!r}")
            if TRANSFORMS.entry(name).meta["random"] and which == "eval":
                raise UserError(f"data.transforms.eval[{i}]: {name} is a random augmentation; the eval pipeline "
                                f"(validation, test, predict) must be deterministic: move it to data.transforms.train")
    return cfg
