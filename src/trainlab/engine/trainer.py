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
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from trainlab.core import checkpoint as ckpts
from trainlab.core import distributed
from trainlab.core.checkpoint import atomic_save, safe_load, seed_everything
from trainlab.core.device import select_device
from trainlab.core.distributed import DistInfo
from trainlab.core.errors import Interrupted, UserError  # noqa: F401  (Interrupted re-exported)
from trainlab.core.machine import torch_threads
from trainlab.core.metrics import compute_metrics, default_metrics, higher_is_better
from trainlab.data.batches import as_batches
from trainlab.data.config import DataConfig
from trainlab.diagnose.seam import Diagnosis, EpochFacts, Guide, RunSetup, batch_targets, resolve_verbose
from trainlab.engine import finetune, tally
from trainlab.engine.catalog import LOSSES, OPTIMIZERS, SCHEDULERS, loss_for, task_of_loss
from trainlab.engine.losses import class_weights
from trainlab.engine.precision import RunChoice, choose
from trainlab.engine.settings import TrainConfig, with_overrides
from trainlab.engine.state import checkpoint_state, restore
from trainlab.engine.tally import NonFiniteLoss, count_correct, grad_norms, stack_losses, stop_on_signals

EpochHook = Callable[["Trainer", dict], None]


class Trainer:
    """Trains one model. Settings are one TrainConfig (the `train` section of a config); keyword overrides
    name its fields: `Trainer(model, lr=1e-3, optimizer="sgd", momentum=0.9)` (see `trainlab list` and
    docs/config.md for every setting). `task` resolves `loss: auto` / `metrics: auto` (default: classification).
    `trainer.guide` (diagnose/guide.py) speaks and diagnoses from facts; `trainer.diagnosis` is its verdict.
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
        self.model = model.to(self.device)
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
        self.choice: RunChoice | None = None  # precision and layout on this machine: prepare() resolves them once
        self.scaler: torch.amp.GradScaler | None = None
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
        self.resume_point: dict | None = None
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

    def prepare(self, train=None, batch_size: int = 64, choice: dict | None = None) -> RunChoice:
        """Resolve train.precision and train.channels_last for this machine, once per run (engine/precision.py).
        `auto` may time a few steps of a copy of the model on the first training batch; the choice is cached
        per machine and model shape. Called by fit; call it earlier to know the choice (the CLI records it).
        `choice` (a checkpoint's record) is taken as it is: a resumed run keeps its precision."""
        if self.choice is not None:
            return self.choice
        s = self.settings
        batches = self._batches(train, batch_size, False) if train is not None else None
        self.choice = choose(s.precision, s.channels_last, self.model, self.loss_fn, batches, self.device, choice)
        if self.choice.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.scaler = self.choice.precision.grad_scaler()
        if self.guide.verbose:
            for line in self.choice.lines():
                tqdm.write(line)
        for warning in self.choice.warnings if self.progress is not False else ():
            print(f"warning: {warning}", file=sys.stderr)
        return self.choice

    def _batches(self, data, batch_size: int, shuffle: bool, cache: bool | None = False,
                 memory_limit_mb: int | None = None):
        """Batches for fit (cache None: decide and say which data path) or for one pass (cache False: stream)."""
        say = None if self.progress is False or cache is False else print
        return as_batches(data, batch_size, shuffle, self.device, False,
                          memory_limit_mb or DataConfig.memory_limit_mb, cache, say)

    # ------------------------------------------------------------------ the loop

    def fit(self, train, val=None, epochs: int | None = None, batch_size: int | None = None,
            resume: str | Path | None = None, eval_batch_size: int | None = None, cache: bool | None = None,
            memory_limit_mb: int | None = None) -> list[dict]:
        """Train for `epochs` (default: the Trainer's train.epochs; early stopping may end sooner), restore the
        best weights, return the history. `batch_size`, `eval_batch_size` and `memory_limit_mb` default to the
        `data` section's declarations (data/config.py), as in a config.

        A Dataset of your own is read once into memory when its __getitem__ is deterministic and it fits in
        `memory_limit_mb` (else streamed every epoch); `cache=True/False` forces either.
        """
        with torch_threads(self.settings.num_threads, self.settings.deterministic):
            return self._fit(train, val, epochs or self.settings.epochs, batch_size or DataConfig.batch_size,
                             resume, eval_batch_size or DataConfig.eval_batch_size, cache, memory_limit_mb)

    def _fit(self, train, val, epochs: int, batch_size: int, resume, eval_batch_size: int, cache,
             memory_limit_mb) -> list[dict]:
        train_b = self._batches(train, batch_size, True, cache, memory_limit_mb)
        val_b = self._batches(val, eval_batch_size, False, cache, memory_limit_mb) if val is not None else None
        if len(train_b) == 0:
            raise UserError(f"no training batch: {train_b.num_samples} samples with batch_size={batch_size}")
        s = self.settings  # the guide is handed plain facts (diagnose/facts.py): one-line errors, then pitfalls
        self.guide.start(RunSetup(self.model, self.task, self.loss_name, self.device.type, self.seed, tuple(
            self.metrics), epochs, self.epoch, s.lr, s.weight_decay, s.early_stopping, s.class_weights is not None,
            s.baselines, s.ema, s.freeze, s.freeze_epochs, s.lr_mult,
            epochs * finetune.steps_per_epoch(len(train_b), s.accumulate)), train_b, val_b)
        ckpt = self._read_checkpoint(resume) if resume else None
        self.prepare(train_b, batch_size, choice=ckpt.get("choice") if ckpt else None)
        self._weigh_classes(train_b)
        self._setup_optim(epochs, finetune.steps_per_epoch(len(train_b), self.settings.accumulate))
        if ckpt is not None:
            self._restore(ckpt, resume)
        if val_b is None and self.monitor.startswith("val_"):
            self.monitor = "train_loss"
        try:
            with stop_on_signals(self):
                while self.epoch < epochs and not self.stop:
                    record = self._run_epoch(train_b, val_b, epochs)
                    for hook in self.hooks:
                        hook(self, record)
                    if self.stop_signal:  # arrived during evaluation or saving: last.pt is already written
                        raise Interrupted(str(self.run_dir or "(no run directory)"))
        except NonFiniteLoss as e:
            self.guide.fail(e)
            raise
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
            self.tricks.load_weights(self.best_state)  # the EMA copy too: best weights are EMA weights with ema
        self.guide.finish()
        return self.history

    @property
    def diagnosis(self) -> Diagnosis:
        """What went wrong (or not) and what to change: pitfalls, the curves, baselines (diagnose/diagnosis.py)."""
        return self.guide.diagnose()

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
        self.guide.after_epoch(EpochFacts(record, self.last_step_losses, self.last_grad_norms, self.best_epoch,
                                          self.stopped_early, self.loss_fn))  # before last.pt, which keeps its state
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
        rp, self.resume_point = self.resume_point, None
        if rp is not None:
            losses = list(rp["losses"][:rp["batch"]].to(self.device).unbind(0))
            return rp["batch"], rp["order"], losses, rp["correct"].to(self.device), rp["sizes"]
        order = batches.order(self.generator)
        n = len(batches)
        return 0, order, [], torch.zeros((), device=self.device), [0] * n

    def _train_step(self, xb: torch.Tensor, yb: torch.Tensor, i: int, n_steps: int):
        xb = self.choice.inputs(xb)
        with self.choice.precision.autocast():
            out = self.forward(xb)
            loss = self.loss_fn(out, yb)
        if i % self.settings.accumulate == 0:  # a new accumulation window (every step without accumulation)
            self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(self.tricks.weigh(loss, len(yb), i)).backward()
        if tally.must_check_nan(self.device, self.settings, i, n_steps) and not tally.loss_is_finite(loss, self.device):
            if self.settings.on_nan == "skip":
                self.optimizer.zero_grad(set_to_none=True)
                return loss.detach().nan_to_num(0.0, 0.0, 0.0), None
            raise NonFiniteLoss(self.step + 1, self.epoch + 1, i + 1, tally.non_finite_layer(self.model))
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

    @torch.no_grad()
    def collect(self, batches) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(outputs (N, K), targets (N, ...), summed loss) over all batches, kept on the device."""
        self.model.eval()
        self.prepare()  # evaluation without fit: decided without measuring
        outs, ys, loss_sum = [], [], torch.zeros((), device=self.device)
        for xb, yb in batches.iterate(None):
            xb = self.choice.inputs(xb)
            with self.choice.precision.autocast():
                out = self.tricks.eval_model(self.eval_forward)(xb)
                loss_sum += self.loss_fn(out, yb).float() * len(yb)
            outs.append(out.float())
            ys.append(yb)
        return torch.cat(outs), torch.cat(ys), loss_sum

    def evaluate(self, data, batch_size: int | None = None) -> dict[str, float]:
        """Loss and every metric on `data` (Dataset, DataLoader or Batches): {"loss": ..., "accuracy": ...}."""
        batches = self._batches(data, batch_size or DataConfig.eval_batch_size, shuffle=False)
        outputs, targets, loss_sum = self.collect(batches)
        values = {"loss": loss_sum / len(targets), **compute_metrics(self.metrics, outputs, targets, self.task)}
        stacked = torch.stack([v.float().reshape(()) for v in values.values()]).cpu().tolist()  # one sync
        return dict(zip(values, stacked, strict=False))

    def predict_outputs(self, data, batch_size: int | None = None) -> torch.Tensor:
        """Raw model outputs (logits for classification) for `data`: a Dataset, DataLoader or a tensor of inputs."""
        if isinstance(data, torch.Tensor):
            data = torch.utils.data.TensorDataset(data, torch.zeros(len(data)))
        outputs, _, _ = self.collect(self._batches(data, batch_size or DataConfig.eval_batch_size, shuffle=False))
        return outputs.cpu()

    def predict(self, data, batch_size: int | None = None) -> torch.Tensor:
        """Class indices (classification) or predicted values (regression)."""
        out = self.predict_outputs(data, batch_size)
        return out.argmax(-1) if self.task == "classification" else out.squeeze(-1)

    def predict_proba(self, data, batch_size: int | None = None) -> torch.Tensor:
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
        value, best = record[self.monitor], self.history[(self.best_epoch or 1) - 1]
        if tally.improves(value, self.best_value, higher_is_better(self.monitor), self.settings.min_delta,
                          record.get("val_loss", 0), best.get("val_loss", 0)):  # a tie goes to the lower val_loss
            self.best_value, self.best_epoch, self.bad_epochs = value, record["epoch"], 0
            self.best_state = copy.deepcopy(self.tricks.eval_model(self.model).state_dict())
            self.save_checkpoint("best.pt", weights_only=True)
        else:
            self.bad_epochs += 1
            if self.settings.early_stopping and self.bad_epochs >= self.settings.early_stopping:
                self.stop = self.stopped_early = True

    def state_dict(self) -> dict:
        """Everything last.pt holds to continue exactly here (engine/state.py)."""
        return checkpoint_state(self)

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
        self._restore(self._read_checkpoint(path), path)

    def _read_checkpoint(self, path: str | Path) -> dict:
        return ckpts.check_resumable(safe_load(path, map_location=self.device), path)

    def _restore(self, ckpt: dict, path: str | Path) -> None:
        self.prepare(choice=ckpt.get("choice"))  # load_checkpoint without fit: the scaler must exist
        restore(self, ckpt, path)
