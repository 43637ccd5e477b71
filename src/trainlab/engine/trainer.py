"""The Trainer: a hand-written PyTorch loop you can read top to bottom - `fit` calls `train_one_epoch` and
`evaluate` - plus the parts people get wrong by hand: seeding, best-weight restore, early stopping,
atomic checkpoints that resume bit-exactly, and no host-device sync inside the step.

    trainer = Trainer(model, loss="cross_entropy", optimizer="adam", lr=1e-3, metrics=("accuracy", "f1"))
    history = trainer.fit(train_dataset, val_dataset, epochs=10, batch_size=64)
    trainer.evaluate(test_dataset)  # {"loss": ..., "accuracy": ..., "f1": ...}

`train` / `val` can be any torch Dataset or DataLoader; tensor datasets take the in-memory path.
"""
from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from trainlab.core import checkpoint as ckpts
from trainlab.core import distributed
from trainlab.core.checkpoint import atomic_save, load_weights, rng_state, safe_load, seed_everything, set_rng_state
from trainlab.core.device import select_device
from trainlab.core.distributed import DistInfo
from trainlab.core.errors import Interrupted, UserError  # noqa: F401  (Interrupted re-exported)
from trainlab.core.metrics import compute_metrics, default_metrics, higher_is_better
from trainlab.data.batches import as_batches
from trainlab.engine import finetune
from trainlab.engine.catalog import LOSSES, OPTIMIZERS, SCHEDULERS, loss_for, task_of_loss
from trainlab.engine.diagnosis import Diagnosis
from trainlab.engine.guide import Guide, resolve_verbose
from trainlab.engine.losses import class_weights
from trainlab.engine.settings import TrainConfig, with_overrides
from trainlab.engine.signals import batch_targets
from trainlab.engine.tally import autocast, count_correct, grad_norms, stack_losses, stop_on_signals

EpochHook = Callable[["Trainer", dict], None]


class NonFiniteLoss(UserError):
    """The loss became NaN/Inf. Carries where: `step`, `epoch`, `batch` and the first `layer` whose gradients
    went non-finite ("none" if every gradient is finite), so callers need not parse the message."""

    def __init__(self, step: int, epoch: int, batch: int, layer: str):
        self.step, self.epoch, self.batch, self.layer = step, epoch, batch, layer
        super().__init__(f"loss became non-finite at step {step} (epoch {epoch}, batch {batch}); "
                         f"first layer with non-finite gradients: {layer}; lower train.lr or set train.grad_clip")


class Trainer:
    """Trains one model. Settings are one TrainConfig (the `train` section of a config); keyword overrides
    name its fields: `Trainer(model, lr=1e-3, optimizer="sgd", momentum=0.9)` (see `trainlab list` and
    docs/config.md for every setting). `task` resolves `loss: auto` / `metrics: auto` (default: classification).
    `trainer.guide` (engine/guide.py) speaks and diagnoses; `trainer.diagnosis` is its verdict on the run.
    """

    def __init__(self, model: nn.Module, settings: TrainConfig | None = None, *, seed: int = 0,
                 task: str | None = None, run_dir: str | Path | None = None, progress: bool | None = None,
                 hooks: Sequence[EpochHook] = (), dist: DistInfo | None = None, **overrides):
        s = self.settings = with_overrides(settings, overrides)
        self.device = select_device(s.device)
        self.seed = seed
        seed_everything(seed)
        task = task or (task_of_loss(s.loss) if s.loss != "auto" else "classification")
        self.loss_name = loss_for(s.loss, task)
        self.task = task if task == "multilabel" else task_of_loss(self.loss_name)
        self.loss_fn = LOSSES.get(self.loss_name)(label_smoothing=s.label_smoothing)
        self.metrics = default_metrics(self.task) if s.metrics == "auto" else list(s.metrics)
        self.model = model.to(self.device,
                              memory_format=torch.channels_last if s.channels_last else torch.preserve_format)
        # eval_forward skips DDP: every rank evaluates the full split without communication
        self.eval_forward = torch.compile(self.model) if s.compile else self.model
        self.dist = dist
        self.forward = distributed.wrap(self.eval_forward, self.device) if dist else self.eval_forward
        self.monitor = s.monitor
        self.progress = progress
        self.run_dir = Path(run_dir) if run_dir else None
        self.hooks = list(hooks)
        self.guide = Guide(resolve_verbose(s.verbose, progress) and (dist is None or dist.is_main))
        # the one generator behind shuffling and augmentation: its state is checkpointed
        self.generator = torch.Generator().manual_seed(seed)
        self.optimizer = self.scheduler = None
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=s.precision == "fp16")
        self.tricks = finetune.Tricks(self.model, s)  # freeze schedule, warmup, EMA
        self._reset_state()

    stop_signal = False  # set by SIGINT/SIGTERM (engine/tally.stop_on_signals)

    def _reset_state(self) -> None:
        self.epoch = 0  # completed epochs
        self.step = 0  # optimizer steps
        self.history: list[dict] = []
        self.best_value: float | None = None
        self.best_epoch: int | None = None
        self.bad_epochs = 0
        self.best_state: dict | None = None
        self.stop = False  # set by early stopping or a hook (e.g. a tuning pruner)
        self.stopped_early = False
        self._resume_point: dict | None = None
        self.last_grad_norms: dict[str, float] = {}
        self.last_step_losses: list[float] = []

    # ------------------------------------------------------------------ setup

    def _setup_optim(self, epochs: int, steps_per_epoch: int) -> None:
        if self.optimizer is not None:
            return
        s = self.settings
        params = finetune.param_groups(self.model, s.lr, s.lr_mult)  # head at lr, backbone at lr * lr_mult
        self.optimizer = OPTIMIZERS.get(s.optimizer)(params, s.lr, s.weight_decay, s.optimizer_params)
        self.tricks.attach(self.optimizer)
        self.sched_interval = None
        if s.scheduler:
            self.scheduler, self.sched_interval = SCHEDULERS.get(s.scheduler)(
                self.optimizer, epochs, steps_per_epoch, s.lr, s.scheduler_params)

    def _batches(self, data, batch_size: int, shuffle: bool, cache: bool | None = False, memory_limit_mb: int = 4096):
        """Batches for fit (cache None: decide and say which data path) or for one pass (cache False: stream)."""
        say = None if self.progress is False or cache is False else print
        return as_batches(data, batch_size, shuffle, self.device, False, memory_limit_mb, cache, say)

    # ------------------------------------------------------------------ the loop

    def fit(self, train, val=None, epochs: int = 10, batch_size: int = 64, resume: str | Path | None = None,
            eval_batch_size: int | None = None, cache: bool | None = None, memory_limit_mb: int = 4096) -> list[dict]:
        """Train for `epochs` (early stopping may end sooner), restore the best weights, return the history.

        A Dataset of your own is read once into memory when its __getitem__ is deterministic and it fits in
        `memory_limit_mb` (else streamed every epoch); `cache=True/False` forces either.
        """
        train_b = self._batches(train, batch_size, True, cache, memory_limit_mb)
        val_b = (self._batches(val, eval_batch_size or max(batch_size, 256), False, cache, memory_limit_mb)
                 if val is not None else None)
        if len(train_b) == 0:
            raise UserError(f"no training batch: {train_b.num_samples} samples with batch_size={batch_size}")
        self.epochs_planned = epochs
        self.guide.start(self, train_b, val_b)  # one-line errors for a model/labels that cannot work, pitfalls
        self._weigh_classes(train_b)
        self._setup_optim(epochs, finetune.steps_per_epoch(len(train_b), self.settings.accumulate))
        if resume:
            self.load_checkpoint(resume)
        if val_b is None and self.monitor.startswith("val_"):
            self.monitor = "train_loss"
        try:
            with stop_on_signals(self):
                while self.epoch < epochs and not self.stop:
                    record = self._run_epoch(train_b, val_b, epochs)
                    self.guide.after_epoch(self, record)
                    for hook in self.hooks:
                        hook(self, record)
                    if self.stop_signal:  # arrived during evaluation or saving: last.pt is already written
                        raise Interrupted(str(self.run_dir or "(no run directory)"))
        except NonFiniteLoss as e:
            self.guide.fail(self, e)
            raise
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
            self.tricks.load_weights(self.best_state)  # the EMA copy too: best weights are EMA weights with ema
        self.guide.finish(self)
        return self.history

    @property
    def diagnosis(self) -> Diagnosis:
        """What went wrong (or not) and what to change: pitfalls, the curves, baselines (engine/diagnosis.py)."""
        return self.guide.diagnose(self)

    def _weigh_classes(self, batches) -> None:
        """train.class_weights: rebuild the loss with one weight per class (auto: N / (K * count))."""
        spec = self.settings.class_weights
        if spec is None:
            return
        if self.task != "classification":
            raise UserError(f"train.class_weights needs a classification loss, not {self.loss_name}")
        weight = class_weights(spec, batch_targets(batches), self.guide.num_outputs).to(self.device)
        self.loss_fn = LOSSES.get(self.loss_name)(label_smoothing=self.settings.label_smoothing, weight=weight)

    def _run_epoch(self, train_b, val_b, epochs: int) -> dict:
        t0 = time.perf_counter()
        stats = self.train_one_epoch(train_b, epochs)
        record = {"epoch": self.epoch + 1, **{f"train_{k}": v for k, v in stats.items()}, **self.last_samples}
        if val_b is not None:
            record.update({f"val_{k}": v for k, v in self.evaluate(val_b).items()}, samples_val=val_b.num_samples)
        record["lr"] = self.optimizer.param_groups[0]["lr"]
        record["time"] = time.perf_counter() - t0
        self._step_scheduler_epoch(record)
        self.epoch += 1
        self.history.append(record)
        self._track_best(record)
        self.save_checkpoint("last.pt")
        return record

    def train_one_epoch(self, batches, epochs: int = 1) -> dict:
        """One pass over `batches`. Per-step values stay on the device; one sync at the end (and per log_interval)."""
        self.model.train()
        self.tricks.before_epoch(self.model, self.epoch)
        start, order, losses, correct, sizes = self._epoch_start(batches)
        preds, targets = [], []  # per-step argmax and labels, compared once at the end: 1 tensor op per step
        data_time, n_steps = 0.0, len(batches)
        bar = tqdm(total=n_steps, initial=start, desc=f"epoch {self.epoch + 1}/{epochs}", leave=False,
                   disable=None if self.progress is None else not self.progress, unit="batch")
        it = batches.iterate(order, start, self.generator)
        t = time.perf_counter()
        for i in range(start, n_steps):
            xb, yb = next(it)
            data_time += time.perf_counter() - t
            loss, out = self._train_step(xb, yb, i, n_steps)
            losses.append(loss.detach())  # a list: appending costs no tensor op per step
            sizes[i] = len(yb)  # a Python list: no tensor op per step
            if self.task == "classification" and out is not None:
                preds.append(out.argmax(-1))
                targets.append(yb)
            stepped = finetune.window_ends(i, n_steps, self.settings.accumulate)
            self.step += stepped
            if (i + 1) % self.settings.log_interval == 0 or i + 1 == n_steps:
                bar.update(i + 1 - bar.n)
                bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
            if stepped and (self.stop_signal or (self.settings.checkpoint_every
                                                 and self.step % self.settings.checkpoint_every == 0)):
                self._save_mid_epoch(order, i + 1, stack_losses(losses, self.device),
                                     correct + count_correct(preds, targets), sizes)
                if self.stop_signal:
                    bar.close()
                    raise Interrupted(str(self.run_dir or "(no run directory)"))
            t = time.perf_counter()
        bar.close()
        self.last_grad_norms = grad_norms(self.model)
        losses = stack_losses(losses, self.device)  # (n_steps,)
        self.last_step_losses = losses.cpu().tolist()  # per-step losses of this epoch, for diagnostics
        weights = torch.tensor(sizes, dtype=losses.dtype, device=losses.device)
        correct = correct + count_correct(preds, targets)
        loss_sum, n, correct = float((losses * weights).sum()), sum(sizes), float(correct)
        # every rank trained on its own rows: sums over ranks, and the samples each rank trained (for history.csv)
        loss_sum, n, correct, self.last_samples = distributed.epoch_totals(loss_sum, n, correct, self.dist, self.device)
        stats = {"loss": loss_sum / n, "data_time": data_time}  # data_time: seconds spent waiting for batches
        if self.task == "classification":
            stats["accuracy"] = correct / n
        return stats

    def _epoch_start(self, batches):
        """Fresh per-epoch buffers, or the saved ones when resuming in the middle of an epoch."""
        rp, self._resume_point = self._resume_point, None
        if rp is not None:
            losses = list(rp["losses"][:rp["batch"]].to(self.device).unbind(0))
            return rp["batch"], rp["order"], losses, rp["correct"].to(self.device), rp["sizes"]
        order = batches.order(self.generator)
        n = len(batches)
        return 0, order, [], torch.zeros((), device=self.device), [0] * n

    def _train_step(self, xb: torch.Tensor, yb: torch.Tensor, i: int, n_steps: int):
        if self.settings.channels_last and xb.ndim == 4:
            xb = xb.contiguous(memory_format=torch.channels_last)
        with autocast(self.device, self.settings.precision):
            out = self.forward(xb)
            loss = self.loss_fn(out, yb)
        if i % self.settings.accumulate == 0:  # a new accumulation window (every step without accumulation)
            self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(self.tricks.weigh(loss, len(yb), i)).backward()
        if self._must_check_nan(i, n_steps) and not self._loss_is_finite(loss):
            if self.settings.on_nan == "skip":
                self.optimizer.zero_grad(set_to_none=True)
                return loss.detach().nan_to_num(0.0, 0.0, 0.0), None
            self._raise_non_finite(i)
        if not finetune.window_ends(i, n_steps, self.settings.accumulate):
            return loss, out
        self.tricks.average_gradients(self.model)  # accumulation: gradients summed over samples -> their mean
        if self.settings.grad_clip:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.settings.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.tricks.after_step(self.model)  # warmup, EMA: once per optimizer step
        if self.sched_interval == "step":
            self.scheduler.step()
        return loss, out

    def _loss_is_finite(self, loss: torch.Tensor) -> bool:
        # on CPU a Python float is the cheapest test (no extra tensor op); elsewhere keep it on the device
        return math.isfinite(loss.item()) if self.device.type == "cpu" else bool(torch.isfinite(loss))

    def _must_check_nan(self, i: int, n_steps: int) -> bool:
        # on CPU the check costs nothing; on an accelerator it syncs, so check every log_interval steps only
        return (self.device.type == "cpu" or self.settings.on_nan == "skip"
                or (i + 1) % self.settings.log_interval == 0 or i + 1 == n_steps)

    def _raise_non_finite(self, i: int) -> None:
        layer = next((name for name, p in self.model.named_parameters()
                      if p.grad is not None and not torch.isfinite(p.grad).all()), "none")
        raise NonFiniteLoss(self.step + 1, self.epoch + 1, i + 1, layer)

    @torch.no_grad()
    def collect(self, batches) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(outputs (N, K), targets (N, ...), summed loss) over all batches, kept on the device."""
        self.model.eval()
        outs, ys, loss_sum = [], [], torch.zeros((), device=self.device)
        for xb, yb in batches.iterate(None):
            if self.settings.channels_last and xb.ndim == 4:
                xb = xb.contiguous(memory_format=torch.channels_last)
            with autocast(self.device, self.settings.precision):
                out = self.tricks.eval_model(self.eval_forward)(xb)
                loss_sum += self.loss_fn(out, yb).float() * len(yb)
            outs.append(out.float())
            ys.append(yb)
        return torch.cat(outs), torch.cat(ys), loss_sum

    def evaluate(self, data, batch_size: int = 512) -> dict[str, float]:
        """Loss and every metric on `data` (Dataset, DataLoader or Batches): {"loss": ..., "accuracy": ...}."""
        batches = self._batches(data, batch_size, shuffle=False)
        outputs, targets, loss_sum = self.collect(batches)
        values = {"loss": loss_sum / len(targets), **compute_metrics(self.metrics, outputs, targets, self.task)}
        stacked = torch.stack([v.float().reshape(()) for v in values.values()]).cpu().tolist()  # one sync
        return dict(zip(values, stacked, strict=False))

    def predict_outputs(self, data, batch_size: int = 512) -> torch.Tensor:
        """Raw model outputs (logits for classification) for `data`: a Dataset, DataLoader or a tensor of inputs."""
        if isinstance(data, torch.Tensor):
            data = torch.utils.data.TensorDataset(data, torch.zeros(len(data)))
        outputs, _, _ = self.collect(self._batches(data, batch_size, shuffle=False))
        return outputs.cpu()

    def predict(self, data, batch_size: int = 512) -> torch.Tensor:
        """Class indices (classification) or predicted values (regression)."""
        out = self.predict_outputs(data, batch_size)
        return out.argmax(-1) if self.task == "classification" else out.squeeze(-1)

    def predict_proba(self, data, batch_size: int = 512) -> torch.Tensor:
        """Class probabilities (N, K): softmax of the logits."""
        return self.predict_outputs(data, batch_size).softmax(-1)

    # ------------------------------------------------------------------ bookkeeping

    def _step_scheduler_epoch(self, record: dict) -> None:
        if self.sched_interval == "epoch":
            self.scheduler.step()
        elif self.sched_interval == "plateau":
            self.scheduler.step(record.get(self.monitor, record["train_loss"]))

    def _track_best(self, record: dict) -> None:
        if self.monitor not in record:
            raise UserError(f"train.monitor={self.monitor!r} is not in the history; choose from: {', '.join(record)}")
        value = record[self.monitor]
        sign = 1.0 if higher_is_better(self.monitor) else -1.0
        improved = self.best_value is None or (math.isfinite(value)
                                               and sign * (value - self.best_value) > self.settings.min_delta)
        if improved:
            self.best_value, self.best_epoch, self.bad_epochs = value, record["epoch"], 0
            self.best_state = copy.deepcopy(self.tricks.eval_model(self.model).state_dict())
            self.save_checkpoint("best.pt", weights_only=True)
        else:
            self.bad_epochs += 1
            if self.settings.early_stopping and self.bad_epochs >= self.settings.early_stopping:
                self.stop = self.stopped_early = True

    def state_dict(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict() if self.optimizer else None,
            "scheduler": self.scheduler.state_dict() if self.scheduler else None,
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch, "step": self.step, "history": self.history,
            "best": {"value": self.best_value, "epoch": self.best_epoch, "bad_epochs": self.bad_epochs,
                     "state": self.best_state, "stopped_early": self.stopped_early, "stop": self.stop},
            "rng": rng_state(self.generator), "tricks": self.tricks.state_dict(),
            "resume_point": None,
        }

    def save_checkpoint(self, name: str, weights_only: bool = False, state: dict | None = None) -> None:
        if self.run_dir is None or (self.dist and not self.dist.is_main):
            return
        if weights_only:
            atomic_save({"model": self.tricks.eval_model(self.model).state_dict(), "epoch": self.epoch,
                         "monitor": self.monitor, "value": self.best_value}, self.run_dir / name)
        else:
            atomic_save(state or self.state_dict(), self.run_dir / name)

    def _save_mid_epoch(self, order, batch: int, losses, correct, sizes) -> None:
        state = self.state_dict()
        state["resume_point"] = {"batch": batch, "order": order, "losses": losses, "correct": correct, "sizes": sizes}
        self.save_checkpoint("last.pt", state=state)

    def load_checkpoint(self, path: str | Path) -> None:
        """Restore everything from last.pt so training continues exactly where it stopped.
        A file that lacks part of that state, or holds another setup's, is refused as a damaged run (DamagedRun)."""
        ckpt = ckpts.check_resumable(safe_load(path, map_location=self.device), path)
        load_weights(self.model, ckpt["model"], str(path))
        if ckpt["optimizer"] is not None:
            ckpts.load_state(self.optimizer, ckpt["optimizer"], f"{path} optimizer state")
        if ckpt["scheduler"] is not None and self.scheduler is not None:
            ckpts.load_state(self.scheduler, ckpt["scheduler"], f"{path} scheduler state")
        ckpts.load_state(self.scaler, ckpt["scaler"], f"{path} grad-scaler state")
        self.epoch, self.step, self.history = ckpt["epoch"], ckpt["step"], ckpt["history"]
        best = ckpt["best"]
        self.best_value, self.best_epoch, self.bad_epochs = best["value"], best["epoch"], best["bad_epochs"]
        self.best_state, self.stopped_early, self.stop = best["state"], best["stopped_early"], best["stop"]
        set_rng_state(ckpt["rng"], self.generator)
        self.tricks.load_state_dict(ckpt.get("tricks"))
        self._resume_point = ckpt["resume_point"]
