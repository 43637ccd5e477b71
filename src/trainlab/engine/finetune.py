"""What fine-tuning adds around the optimizer step, kept out of trainer.py: a frozen backbone, a smaller
backbone learning rate, warmup, an average of the weights, and gradient accumulation.

    groups = param_groups(model, lr=1e-3, lr_mult=0.1)   # [head at 1e-3, backbone at 1e-4] for the optimizer
    tricks = Tricks(model, settings)        # train.freeze / freeze_epochs, warmup, ema
    tricks.before_epoch(model, epoch)       # backbone frozen (no gradients, BatchNorm statistics kept) or not
    tricks.after_step(model)                # once per optimizer step: warmup LR, EMA update

fastai's `fine_tune(epochs, freeze_epochs=1)` is `train.freeze: backbone`, `train.freeze_epochs: 1` with a
one-cycle schedule and `train.lr_mult` < 1 for the backbone. Gradient accumulation (`train.accumulate: K`)
weights each micro-batch's mean loss by its sample count n_i and divides the window's summed gradient by
N = sum n_i: the gradient of the mean loss over all N samples, exactly as one batch of N would give, also
for a short last micro-batch or window (scaling each loss by 1/K instead overweights a short micro-batch:
the bug fixed in Hugging Face transformers #34191).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.optim import lr_scheduler
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from trainlab.models.heads import head_names

BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


def in_head(name: str, heads: tuple[str, ...]) -> bool:
    return any(name == h or name.startswith(f"{h}.") for h in heads)


def param_groups(model: nn.Module, lr: float, lr_mult: float) -> list[dict]:
    """Trainable parameters as [head at lr, backbone at lr * lr_mult] (one group when lr_mult is 1)."""
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if lr_mult == 1.0:
        return [{"params": [p for _, p in params], "lr": lr}]
    heads = head_names(model)
    head = [p for n, p in params if in_head(n, heads)]
    backbone = [p for n, p in params if not in_head(n, heads)]
    return [g for g in ({"params": head, "lr": lr}, {"params": backbone, "lr": lr * lr_mult}) if g["params"]]


def set_backbone_frozen(model: nn.Module, frozen: bool) -> None:
    """Frozen: every parameter outside the head gets no gradient (so no update, no weight decay, no momentum)
    and every BatchNorm outside it runs in eval mode (its running statistics stay as they are). Call after
    model.train(), since that puts BatchNorm back into training mode."""
    heads = head_names(model)
    for name, p in model.named_parameters():
        if not in_head(name, heads):
            p.requires_grad_(not frozen)
    if frozen:
        for name, m in model.named_modules():
            if isinstance(m, BATCHNORMS) and not in_head(name, heads):
                m.eval()


def steps_per_epoch(batches: int, accumulate: int) -> int:
    """Optimizer steps in an epoch of `batches` micro-batches: one per window of `accumulate`, the last may be short."""
    return -(-batches // accumulate)


def window_ends(i: int, n_steps: int, accumulate: int) -> bool:
    """Whether micro-batch i (0-based, windows aligned to the epoch's first batch) closes a window."""
    return (i + 1) % accumulate == 0 or i + 1 == n_steps


class Tricks:
    """The freeze schedule, LR warmup and EMA of one Trainer; its state travels in the checkpoint."""

    def __init__(self, model: nn.Module, settings):
        self.settings = settings
        # EMA of parameters and buffers (BatchNorm statistics), torch's own AveragedModel
        self.ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(settings.ema), use_buffers=True) \
            if settings.ema else None
        self.warmup = None
        self.window_samples = 0  # samples in the current accumulation window

    def weigh(self, loss: torch.Tensor, n: int, i: int) -> torch.Tensor:
        """The loss to backpropagate for micro-batch i of n samples: with accumulation, its mean loss times n
        (the window's gradients add up to a sum over samples; average_gradients divides by their count)."""
        if self.settings.accumulate == 1:
            return loss
        self.window_samples = n if i % self.settings.accumulate == 0 else self.window_samples + n
        return loss * n

    @torch.no_grad()
    def average_gradients(self, model: nn.Module) -> None:
        """At the end of a window: summed per-sample gradients -> their mean over the window's samples."""
        if self.settings.accumulate == 1:  # called every optimizer step: without accumulation, no work at all
            return
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        if grads:
            torch._foreach_div_(grads, float(self.window_samples))

    def attach(self, optimizer: torch.optim.Optimizer) -> None:
        """Before the scheduler is built: warm up over the first `warmup` steps, lr * (k + 1) / (warmup + 1) at
        step k. LinearLR multiplies the current LR, so it composes with step, cosine and plateau schedules."""
        n = self.settings.warmup
        if n:
            self.warmup = lr_scheduler.LinearLR(optimizer, start_factor=1.0 / (n + 1), total_iters=n)

    def before_epoch(self, model: nn.Module, epoch: int) -> None:
        """`epoch` is the number of completed epochs; the backbone is frozen while it is < freeze_epochs."""
        if self.settings.freeze == "backbone":
            set_backbone_frozen(model, epoch < self.settings.freeze_epochs)

    def after_step(self, model: nn.Module) -> None:
        """Once per optimizer step (never per micro-batch)."""
        if self.warmup is not None:
            self.warmup.step()
        if self.ema is not None:
            self.ema.update_parameters(model)

    def eval_model(self, model: nn.Module) -> nn.Module:
        """What validation and prediction run: the EMA weights when train.ema is set."""
        return self.ema.module.eval() if self.ema is not None else model  # (BatchNorm: running statistics)

    def load_weights(self, state: dict) -> None:
        """Best weights restored at the end of fit: the EMA copy gets them too (they are EMA weights)."""
        if self.ema is not None:
            self.ema.module.load_state_dict(state)

    def state_dict(self) -> dict:
        return {"ema": self.ema.state_dict() if self.ema is not None else None,
                "warmup": self.warmup.state_dict() if self.warmup is not None else None}

    def load_state_dict(self, state: dict | None) -> None:
        if state is None:
            return
        if self.ema is not None and state.get("ema") is not None:
            self.ema.load_state_dict(state["ema"])
        if self.warmup is not None and state.get("warmup") is not None:
            self.warmup.load_state_dict(state["warmup"])
