"""What last.pt holds and how a Trainer continues from it: model, optimizer, scheduler, grad scaler, the
epoch and step counters, the history, the best epoch, every random generator, the fine-tuning tricks, the
run's precision choice and the diagnosis so far. A resumed run continues bit-exactly.

    state = checkpoint_state(trainer)        # torch.save-able dict (engine/trainer.py writes it atomically)
    restore(trainer, check_resumable(state), "last.pt")
"""
from __future__ import annotations

from pathlib import Path

from trainlab.core import checkpoint as ckpts
from trainlab.core.checkpoint import load_weights, rng_state, set_rng_state


def checkpoint_state(t) -> dict:
    """The whole state of Trainer `t` (plain tensors and Python values: torch.load(weights_only=True) reads it)."""
    return {
        "model": t.model.state_dict(),
        "optimizer": t.optimizer.state_dict() if t.optimizer else None,
        "scheduler": t.scheduler.state_dict() if t.scheduler else None,
        "scaler": t.scaler.state_dict() if t.scaler is not None else {},
        "epoch": t.epoch, "step": t.step, "history": t.history,
        "best": {"value": t.best_value, "epoch": t.best_epoch, "bad_epochs": t.bad_epochs,
                 "state": t.best_state, "stopped_early": t.stopped_early, "stop": t.stop},
        "rng": rng_state(t.generator), "tricks": t.tricks.state_dict(),
        "resume_point": None, "choice": t.choice.to_dict() if t.choice else None,
        "diagnosis": t.guide.state_dict(),  # the signals and findings so far: a resumed run keeps them
    }


def restore(t, ckpt: dict, path: str | Path) -> None:
    """Trainer `t` (optimizer and scaler built) continues from `ckpt`, a checked last.pt; a part from another
    setup is refused as a damaged run (DamagedRun) naming `path`."""
    load_weights(t.model, ckpt["model"], str(path))
    if ckpt["optimizer"] is not None:
        ckpts.load_state(t.optimizer, ckpt["optimizer"], f"{path} optimizer state")
    if ckpt["scheduler"] is not None and t.scheduler is not None:
        ckpts.load_state(t.scheduler, ckpt["scheduler"], f"{path} scheduler state")
    ckpts.load_state(t.scaler, ckpt["scaler"], f"{path} grad-scaler state")
    t.epoch, t.step, t.history = ckpt["epoch"], ckpt["step"], ckpt["history"]
    best = ckpt["best"]
    t.best_value, t.best_epoch, t.bad_epochs = best["value"], best["epoch"], best["bad_epochs"]
    t.best_state, t.stopped_early, t.stop = best["state"], best["stopped_early"], best["stop"]
    set_rng_state(ckpt["rng"], t.generator)
    t.tricks.load_state_dict(ckpt.get("tricks"))
    t.guide.load_state_dict(ckpt.get("diagnosis"), t.history, f"{path} 'diagnosis'")
    t.resume_point = ckpt["resume_point"]
