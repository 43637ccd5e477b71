"""What the diagnosis is handed - the seam between the Trainer and its guide, as plain values.

The guide reads nothing of the Trainer and nobody writes into the guide's fields: the Trainer hands it a
`RunSetup` when `fit` starts, an `EpochFacts` after every epoch and the error that stopped a run; the layers
above hand it a `Brief` (what only they know: config facts, class names, content hashes of the raw splits).
It hands back findings (`Guide.diagnose()` -> Diagnosis) and its state for last.pt (`state_dict`).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from torch import nn


@dataclass(frozen=True)
class RunSetup:
    """What the Trainer decided before the first epoch of `fit`."""

    model: nn.Module  # probed in eval mode without gradients or random numbers, never trained here
    task: str  # "classification", "regression" or "multilabel"
    loss_name: str
    device: str  # "cpu", "cuda", "mps": the remedies name the data path for it
    seed: int  # the baselines' seed
    metrics: tuple[str, ...]  # what the baselines are scored on
    epochs: int  # planned (the epoch lines' "3/10")
    epoch: int  # epochs completed before this `fit` (0: the update ratio is measured from the start)
    lr: float
    weight_decay: float
    early_stopping: int  # patience (0: off)
    class_weights: bool  # train.class_weights is on (a class-imbalance remedy)
    baselines: bool  # fit the baselines after training
    # fine-tuning settings the off-path checks judge (diagnose/advice.py: an EMA longer than the run, a frozen
    # random backbone, a head-only phase that learned nothing); the defaults are "off"
    ema: float | None = None  # train.ema decay
    freeze: str = "none"  # train.freeze: "none" or "backbone"
    freeze_epochs: int = 0
    lr_mult: float = 1.0  # the backbone's learning rate multiplier
    steps: int = 0  # optimizer steps of the whole planned run (epochs x steps per epoch)


@dataclass(frozen=True)
class EpochFacts:
    """What happened in one epoch, right after the Trainer recorded it."""

    record: dict  # the history row: epoch, train_*, val_*, lr, time
    step_losses: list[float]  # (steps,) training loss of every step
    grad_norms: dict[str, float]  # parameter name -> gradient L2 norm of the epoch's last step
    best_epoch: int | None  # the best epoch so far (train.monitor)
    stopped_early: bool  # early stopping ends the run after this epoch
    loss_fn: Callable  # the loss trained with (class weights included): the constant-prediction yardstick


@dataclass(frozen=True)
class Brief:
    """What the layers above tell the guide before `fit` (observe.monitor.brief for `trainlab train`)."""

    settings: dict = field(default_factory=dict)  # config facts the remedies name (dropout, data path, ...),
    #   among them "pretrained" (the backbone starts from trained weights; absent: not known) and "model" (its name)
    classes: list[str] | None = None  # class names for the class-imbalance finding
    hashes: dict | None = None  # {split: digests} of the raw train/val/test samples (leakage), None: unknown
    hash_names: dict | None = None  # {split: file names} for those digests, when the samples are files
    announce_final: bool = True  # False: the caller prints the diagnosis itself (after the test evaluation)
    dry_run: bool = False  # --dry-run (a couple of batches): judge only what is known before training and whether
    #   the loss stayed finite; the curves, the baselines and the after-training checks need a real run
