"""Small pieces of the training loop kept out of trainer.py: per-step tallies, signals."""
from __future__ import annotations

import contextlib
import math
import signal
import threading

import torch
from torch import nn

from trainlab.core.errors import UserError


def stack_losses(losses: list[torch.Tensor], device: torch.device) -> torch.Tensor:
    """Per-step loss scalars -> (n,) float32 on `device` (empty when no step ran)."""
    return torch.stack(losses).float() if losses else torch.zeros(0, device=device)


def count_correct(preds: list[torch.Tensor], targets: list[torch.Tensor]) -> torch.Tensor | int:
    """How many predicted classes equal the labels, over the steps so far (0 when there are none)."""
    if not preds:
        return 0
    return (torch.cat([p.reshape(-1) for p in preds]) == torch.cat([t.reshape(-1) for t in targets])).sum()


@contextlib.contextmanager
def stop_on_signals(trainer):
    """SIGINT/SIGTERM set trainer.stop_signal; the loop saves last.pt at the next step boundary and raises
    Interrupted. Only the main thread may install handlers (a Trainer in a worker thread just runs)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    trainer.stop_signal = False

    def handler(signum, frame):
        trainer.stop_signal = True

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def autocast(device: torch.device, precision: str):
    """The autocast context for `train.precision` (fp32: none)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


def grad_norms(model: nn.Module) -> dict[str, float]:
    """Per-parameter gradient L2 norms of the last step (one sync), for diagnostics."""
    named = [(n, p.grad) for n, p in model.named_parameters() if p.grad is not None]
    if not named:
        return {}
    norms = torch.stack(torch._foreach_norm([g for _, g in named])).float().cpu().tolist()
    return {n: v for (n, _), v in zip(named, norms, strict=False)}


class NonFiniteLoss(UserError):
    """The loss became NaN/Inf. Carries where: `step`, `epoch`, `batch` and the first `layer` whose gradients
    went non-finite ("none" if every gradient is finite), so callers need not parse the message."""

    def __init__(self, step: int, epoch: int, batch: int, layer: str):
        self.step, self.epoch, self.batch, self.layer = step, epoch, batch, layer
        super().__init__(f"loss became non-finite at step {step} (epoch {epoch}, batch {batch}); "
                         f"first layer with non-finite gradients: {layer}; lower train.lr or set train.grad_clip")


def loss_is_finite(loss: torch.Tensor, device: torch.device) -> bool:
    # on CPU a Python float is the cheapest test (no extra tensor op); elsewhere keep it on the device
    return math.isfinite(loss.item()) if device.type == "cpu" else bool(torch.isfinite(loss))


def must_check_nan(device: torch.device, settings, i: int, n_steps: int) -> bool:
    # on CPU the check costs nothing; on an accelerator it syncs, so check every log_interval steps only
    return (device.type == "cpu" or settings.on_nan == "skip"
            or (i + 1) % settings.log_interval == 0 or i + 1 == n_steps)


def non_finite_layer(model: nn.Module) -> str:
    """The first parameter whose gradient holds NaN/Inf, or "none"."""
    return next((name for name, p in model.named_parameters()
                 if p.grad is not None and not torch.isfinite(p.grad).all()), "none")


def improves(value: float, best_value: float | None, higher: bool, min_delta: float, val_loss: float,
             best_val_loss: float) -> bool:
    """Whether an epoch's monitored `value` beats the best so far by more than `min_delta`. A tie (accuracy 1.0
    on a small validation split, reached early) goes to the lower validation loss, so the kept epoch is not
    the first that happened to reach it."""
    if best_value is None:
        return True
    if not math.isfinite(value):
        return False
    sign = 1.0 if higher else -1.0
    return sign * (value - best_value) > min_delta or (value == best_value and val_loss < best_val_loss)
