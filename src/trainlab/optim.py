"""Optimizer and LR-scheduler registries. Schedulers say whether they step per batch or per epoch."""
from __future__ import annotations

import torch
from torch.optim import lr_scheduler

from trainlab.registry import Registry

OPTIMIZERS = Registry("optimizer")
SCHEDULERS = Registry("scheduler")


@OPTIMIZERS.register("sgd")
def _sgd(params, lr, weight_decay=0.0, momentum=0.9, nesterov=False):
    """SGD with momentum (nesterov optional)."""
    return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=nesterov and momentum > 0,
                           weight_decay=weight_decay)


@OPTIMIZERS.register("adam")
def _adam(params, lr, weight_decay=0.0, momentum=0.9, nesterov=False):
    """Adam (weight_decay is an L2 penalty)."""
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)


@OPTIMIZERS.register("adamw")
def _adamw(params, lr, weight_decay=0.0, momentum=0.9, nesterov=False):
    """AdamW (decoupled weight decay)."""
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


@OPTIMIZERS.register("rmsprop")
def _rmsprop(params, lr, weight_decay=0.0, momentum=0.9, nesterov=False):
    """RMSprop."""
    return torch.optim.RMSprop(params, lr=lr, momentum=momentum, weight_decay=weight_decay)


# A scheduler builder returns (scheduler, interval) where interval is "step" or "epoch".
@SCHEDULERS.register("step")
def _step(opt, epochs, steps_per_epoch, step_size=10, gamma=0.1, patience=2, lr=None):
    """Multiply the LR by gamma every step_size epochs."""
    return lr_scheduler.StepLR(opt, step_size=step_size, gamma=gamma), "epoch"


@SCHEDULERS.register("cosine")
def _cosine(opt, epochs, steps_per_epoch, step_size=10, gamma=0.1, patience=2, lr=None):
    """Cosine decay from lr to 0 over the whole run (per step)."""
    return lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs * steps_per_epoch)), "step"


@SCHEDULERS.register("onecycle")
def _onecycle(opt, epochs, steps_per_epoch, step_size=10, gamma=0.1, patience=2, lr=None):
    """One-cycle: warm up to lr, then anneal (per step)."""
    return lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(2, epochs * steps_per_epoch)), "step"


@SCHEDULERS.register("reduce_on_plateau")
def _plateau(opt, epochs, steps_per_epoch, step_size=10, gamma=0.1, patience=2, lr=None):
    """Multiply the LR by gamma when the monitored value stops improving."""
    return lr_scheduler.ReduceLROnPlateau(opt, factor=gamma, patience=patience), "plateau"
