"""The engine's registries: losses, optimizers and LR schedulers by name, each with its own options.

    OPTIMIZERS.get("sgd")(params, lr=0.1, weight_decay=0.0, options=SGDOptions(momentum=0.9, nesterov=True))
    SCHEDULERS.get("step")(optimizer, epochs, steps_per_epoch, lr, StepOptions(step_size=5, gamma=0.5))
        -> (scheduler, interval)   # interval: "step" (per batch), "epoch" or "plateau"

An option belongs to the entry that uses it (momentum to sgd and rmsprop, step_size to step), so the
`train` section accepts it only with that entry, and the docs list it under it. Light: the builders
import torch when called, so config checks and `trainlab list` stay torch-free.
"""
from __future__ import annotations

from dataclasses import dataclass

from trainlab.core.errors import UserError
from trainlab.core.registry import Registry
from trainlab.core.schema import opt

LOSSES = Registry("loss")
OPTIMIZERS = Registry("optimizer")
SCHEDULERS = Registry("scheduler")
CLASSIFICATION_LOSSES = {"cross_entropy", "bce_with_logits"}


# ----------------------------------------------------------------------------- losses

def _loss(name: str):
    def build(label_smoothing: float = 0.0, weight=None):
        from trainlab.engine import losses  # start-up time: torch

        return losses.build(name, label_smoothing, weight)
    return build


for _name, _help in (
    ("cross_entropy", "softmax + negative log likelihood on logits (classification)"),
    ("bce_with_logits", "sigmoid + binary cross entropy per output (binary / multi-label)"),
    ("mse", "mean squared error (regression)"),
    ("l1", "mean absolute error (regression)"),
    ("huber", "squared near 0, absolute far away"),
):
    LOSSES.add(_name, _loss(_name), help=_help)


def loss_for(name: str, task: str) -> str:
    """The loss a `train.loss` value means for a task: `auto` is cross_entropy (classification), bce_with_logits
    (multilabel: one independent yes/no per label) or mse."""
    if task == "multilabel" and name not in ("auto", "bce_with_logits"):
        raise UserError(f"train.loss={name} cannot learn multi-label targets; use bce_with_logits (or auto)")
    if name != "auto":
        return name
    return {"classification": "cross_entropy", "multilabel": "bce_with_logits"}.get(task, "mse")


def task_of_loss(name: str) -> str:
    return "classification" if name in CLASSIFICATION_LOSSES else "regression"


# ----------------------------------------------------------------------------- optimizers

@dataclass
class SGDOptions:
    momentum: float = opt(0.9, help="momentum (0 = plain SGD)", ge=0.0, lt=1.0)
    nesterov: bool = opt(False, help="Nesterov momentum (needs momentum > 0)")


@dataclass
class RMSpropOptions:
    momentum: float = opt(0.9, help="momentum of the RMSprop update", ge=0.0, lt=1.0)


def _fused(cls, params, **kw):
    """The optimizer with one fused kernel per step where torch has one for these parameters (floating point
    on CPU or CUDA), else torch's default. The course MLP's Adam steps at batch 64 took 0.23 s per 300 fused
    against 0.34 s per-parameter on this 2-core CPU; the update is the same formula, applied elementwise."""
    params = list(params)  # param groups (finetune.param_groups) or a generator: read twice below
    try:
        return cls(params, fused=True, **kw)
    except (RuntimeError, ValueError, TypeError):  # no fused kernel here: build it the default way
        return cls(params, **kw)


@OPTIMIZERS.register("sgd", config=SGDOptions)
def _sgd(params, lr: float, weight_decay: float, options: SGDOptions):
    """SGD with momentum (nesterov optional); torch's fused kernel where it has one."""
    import torch  # start-up time

    return _fused(torch.optim.SGD, params, lr=lr, momentum=options.momentum,
                  nesterov=options.nesterov and options.momentum > 0, weight_decay=weight_decay)


@OPTIMIZERS.register("adam")
def _adam(params, lr: float, weight_decay: float, options=None):
    """Adam (weight_decay is an L2 penalty); torch's fused kernel where it has one."""
    import torch  # start-up time

    return _fused(torch.optim.Adam, params, lr=lr, weight_decay=weight_decay)


@OPTIMIZERS.register("adamw")
def _adamw(params, lr: float, weight_decay: float, options=None):
    """AdamW (decoupled weight decay); torch's fused kernel where it has one."""
    import torch  # start-up time

    return _fused(torch.optim.AdamW, params, lr=lr, weight_decay=weight_decay)


@OPTIMIZERS.register("rmsprop", config=RMSpropOptions)
def _rmsprop(params, lr: float, weight_decay: float, options: RMSpropOptions):
    """RMSprop."""
    import torch  # start-up time

    return torch.optim.RMSprop(params, lr=lr, momentum=options.momentum, weight_decay=weight_decay)


# ----------------------------------------------------------------------------- schedulers

@dataclass
class StepOptions:
    step_size: int = opt(10, help="epochs between LR drops", ge=1, le=100_000)
    gamma: float = opt(0.1, help="LR factor at each drop", gt=0.0, le=1.0)


@dataclass
class PlateauOptions:
    gamma: float = opt(0.1, help="LR factor when the monitored value stalls", gt=0.0, le=1.0)
    scheduler_patience: int = opt(2, help="epochs without improvement before the LR drops", ge=0, le=100_000)


@SCHEDULERS.register("step", config=StepOptions, fixed_length=False)
def _step(opt_, epochs: int, steps_per_epoch: int, lr: float, options: StepOptions):
    """Multiply the LR by gamma every step_size epochs."""
    from torch.optim import lr_scheduler  # start-up time

    return lr_scheduler.StepLR(opt_, step_size=options.step_size, gamma=options.gamma), "epoch"


@SCHEDULERS.register("cosine", fixed_length=True)
def _cosine(opt_, epochs: int, steps_per_epoch: int, lr: float, options=None):
    """Cosine decay from lr to 0 over the whole run (per step)."""
    from torch.optim import lr_scheduler  # start-up time

    return lr_scheduler.CosineAnnealingLR(opt_, T_max=max(1, epochs * steps_per_epoch)), "step"


@SCHEDULERS.register("onecycle", fixed_length=True)
def _onecycle(opt_, epochs: int, steps_per_epoch: int, lr: float, options=None):
    """One-cycle: warm up to lr, then anneal (per step)."""
    from torch.optim import lr_scheduler  # start-up time

    peaks = [g["lr"] for g in opt_.param_groups]  # each group's own (train.lr_mult: backbone vs head)
    return lr_scheduler.OneCycleLR(opt_, max_lr=peaks, total_steps=max(2, epochs * steps_per_epoch)), "step"


@SCHEDULERS.register("reduce_on_plateau", config=PlateauOptions, fixed_length=False)
def _plateau(opt_, epochs: int, steps_per_epoch: int, lr: float, options: PlateauOptions):
    """Multiply the LR by gamma when the monitored value stops improving."""
    from torch.optim import lr_scheduler  # start-up time

    return lr_scheduler.ReduceLROnPlateau(opt_, factor=options.gamma, patience=options.scheduler_patience), "plateau"


def check_resume_epochs(scheduler: str | None, planned: int, epochs: int, run_dir) -> None:
    """`train --resume RUN train.epochs=N`: a schedule planned over the whole run (fixed_length: cosine, onecycle)
    cannot change length mid-way (cosine would climb back up, onecycle has no steps past its end); step,
    reduce_on_plateau and no scheduler only count epochs, so they continue for any N."""
    if scheduler is None or epochs == planned or not SCHEDULERS.entry(scheduler).meta["fixed_length"]:
        return
    raise UserError(f"train.epochs={epochs}: {run_dir} has a {scheduler} schedule planned over {planned} epochs, "
                    f"which a resume cannot {'lengthen' if epochs > planned else 'shorten'}; resume with "
                    f"train.epochs={planned}, or start a new run with train.epochs={epochs} (step, "
                    f"reduce_on_plateau or no scheduler can be resumed with more epochs)")
