"""The `train` section of a config, which is also what a Trainer takes: one declaration per setting.

    settings = train_settings({"optimizer": "sgd", "lr": 0.1, "momentum": 0.9})   # validated TrainConfig
    Trainer(model, settings)                   # or Trainer(model, optimizer="sgd", lr=0.1, momentum=0.9)

A new setting is one field here (with its help text and range): the YAML, the CLI overrides, the
config docs, the tuner and Trainer's keyword arguments all read it. Optimizer and scheduler options
belong to their catalog entries (engine/catalog.py) and appear here only for the chosen ones.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from trainlab.core.errors import UserError
from trainlab.core.metrics import METRICS
from trainlab.core.schema import opt, section_with_params, to_dict
from trainlab.engine.catalog import LOSSES, OPTIMIZERS, SCHEDULERS

MONITOR = re.compile(r"^(train|val)_(\w+)$")


MAX_EPOCHS = 100_000  # any epoch count (epochs, early stopping, frozen epochs): far past a course run


@dataclass
class TrainConfig:
    epochs: int = opt(10, help="passes over the training set", ge=1, le=MAX_EPOCHS)
    optimizer: str = opt("adam", help="optimizer (trainlab list optimizers)")
    lr: float = opt(1e-3, help="learning rate", gt=0.0)
    weight_decay: float = opt(0.0, help="L2 penalty / decoupled decay (adamw)", ge=0.0)
    loss: str = opt("auto", help="loss (trainlab list losses); auto = cross_entropy or mse by task")
    label_smoothing: float = opt(0.0, help="label smoothing for cross_entropy", ge=0.0, lt=1.0)
    scheduler: str | None = opt(None, help="LR scheduler (trainlab list schedulers)")
    grad_clip: float | None = opt(None, help="clip the global gradient norm to this value", gt=0.0)
    metrics: Literal["auto"] | list[str] = opt("auto", help="evaluation metrics; auto = accuracy,f1 or mae,rmse,r2")
    monitor: str = opt("val_loss", help="history key that picks the best epoch (val_loss, val_accuracy, ...)")
    early_stopping: int | None = opt(None, help="stop after this many epochs without improvement", ge=1,
                                     le=MAX_EPOCHS)
    min_delta: float = opt(0.0, help="smallest change of monitor that counts as improvement", ge=0.0)
    device: str = opt("auto", help="auto (cuda > mps > cpu), cpu, cuda, cuda:1, mps")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = opt(
        "auto", help="autocast precision; auto = the fastest that trains correctly on this machine: bf16 on a CPU "
                     "only where it runs natively and measures faster for the model, bf16 on CUDA where supported")
    compile: bool = opt(False, help="torch.compile the model")
    channels_last: bool | Literal["auto"] = opt(
        "auto", help="channels_last (NHWC) memory format for 4-D inputs; auto = where it measures faster (CPU) or "
                     "with mixed precision on CUDA, never for a model without 2-D convolutions")
    checkpoint_every: int = opt(0, help="also write last.pt every N steps (0 = end of each epoch only)", ge=0,
                                le=10**9)
    on_nan: Literal["stop", "skip"] = opt("stop", help="on a non-finite loss: stop the run or skip the step")
    deterministic: bool = opt(False, help="torch.use_deterministic_algorithms")
    num_threads: int | Literal["auto"] = opt("auto", help="CPU threads for torch; auto = one per physical core this "
                                                         "process may use", ge=1, le=1024)
    log_interval: int = opt(50, help="steps between progress-bar refreshes (each one syncs the device)", ge=1,
                            le=10**9)
    # fine-tuning and the tricks around the optimizer step (engine/finetune.py)
    freeze: Literal["none", "backbone"] = opt("none", help="backbone = train only the head (BatchNorm statistics "
                                              "kept too) for the first freeze_epochs, then the whole network")
    freeze_epochs: int = opt(1, help="epochs with the backbone frozen (train.freeze: backbone)", ge=0, le=MAX_EPOCHS)
    lr_mult: float = opt(1.0, help="backbone learning rate = lr x lr_mult, the head's = lr (e.g. 0.1 to fine-tune "
                                   "pretrained layers gently)", gt=0.0)
    accumulate: int = opt(1, help="micro-batches per optimizer step (gradient accumulation): steps see "
                                  "batch_size x accumulate samples", ge=1, le=65_536)
    warmup: int = opt(0, help="optimizer steps of linear LR warmup (lr x (k+1)/(warmup+1) at step k), times the "
                              "scheduler's own LR", ge=0, le=10**9)
    ema: float | None = opt(None, help="decay of an exponential moving average of the weights (e.g. 0.999), "
                                       "updated every optimizer step; validation, best.pt and test use it",
                            gt=0.0, lt=1.0)
    class_weights: Literal["auto"] | list[float] | None = opt(
        None, help="weigh the loss per class against imbalance: auto = N / (K * count) from the training labels, "
                   "or one weight per class")
    verbose: bool | Literal["auto"] = opt(
        "auto", help="print pitfalls, epoch lines and the diagnosis; auto = yes (with a live bar in a terminal "
                     "or notebook, one line per epoch in a log), unless the Trainer was made with progress=False")
    baselines: bool = opt(True, help="fit a majority-class / mean and a linear model (scikit-learn) on the "
                                     "training split and say whether the network beats them")
    # the chosen optimizer's and scheduler's own options (engine/catalog.py), flattened into the section
    optimizer_params: Any = None
    scheduler_params: Any = None




def train_settings(values: dict) -> TrainConfig:
    """Validate a `train` section (or Trainer keyword arguments): names, types, ranges and the monitor key."""
    cfg = section_with_params(TrainConfig, values, "train", {"optimizer_params": (OPTIMIZERS, "optimizer"),
                                                             "scheduler_params": (SCHEDULERS, "scheduler")})
    if cfg.loss != "auto":
        LOSSES.entry(cfg.loss)
    for name in [] if cfg.metrics == "auto" else cfg.metrics:
        METRICS.entry(name)
    _check_monitor(cfg.monitor)
    if cfg.warmup and cfg.scheduler == "onecycle":
        raise UserError("train.warmup with scheduler onecycle: onecycle warms up by itself; set train.warmup=0")
    if isinstance(cfg.class_weights, list) and (not cfg.class_weights or min(cfg.class_weights) < 0):
        raise UserError(f"bad value for train.class_weights: {cfg.class_weights}; expected auto or a list of "
                        f"weights >= 0, one per class")
    return cfg


def _check_monitor(monitor: str) -> None:
    """`val_loss`, `train_loss`, `train_accuracy` or `val_<metric>`: known before any work starts."""
    m = MONITOR.match(monitor)
    ok = m is not None and (m.group(2) in ("loss", "accuracy") or (m.group(1) == "val" and m.group(2) in METRICS))
    if not ok:
        raise UserError(f"bad value for train.monitor: {monitor!r}; expected val_loss, train_loss, train_accuracy "
                        f"or val_<metric> with a metric from: {', '.join(METRICS.names())}")


def with_overrides(settings: TrainConfig | None, overrides: dict) -> TrainConfig:
    """settings (or the defaults) with keyword overrides applied, validated like the YAML `train` section."""
    if settings is not None and not overrides:
        return settings
    values = to_dict(settings) if settings is not None else {}
    # a newly chosen optimizer or scheduler does not inherit the options of the one it replaces
    for key, params in (("optimizer", "optimizer_params"), ("scheduler", "scheduler_params")):
        if key in overrides and settings is not None and getattr(settings, params) is not None:
            for old in to_dict(getattr(settings, params)):
                values.pop(old, None)
    if overrides.get("metrics", "auto") is None:  # the Python API's "no metrics" -> the defaults of the task
        overrides = {**overrides, "metrics": "auto"}
    return train_settings({**values, **{k: list(v) if isinstance(v, tuple) else v for k, v in overrides.items()}})
