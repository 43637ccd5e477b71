"""What a Trainer tells about its run: the pitfalls it sees before training, one line per epoch, a problem the
epoch it appears, and the final diagnosis - the same words from `Trainer.fit` in a notebook and from
`trainlab train` in a terminal, because both go through this Guide (every Trainer has one: `trainer.guide`).

    trainer = Trainer(model, lr=1e-3)            # verbose: auto = speak (a live bar only in a terminal)
    trainer.fit(train, val, epochs=10)           # prints pitfalls, epoch lines, the diagnosis
    trainer.diagnosis                            # the same diagnosis, structured (diagnose/diagnosis.py)

The guide reads nothing of the Trainer: the Trainer hands it plain facts (diagnose/facts.py: a `RunSetup` when
`fit` starts, an `EpochFacts` after every epoch) and the layers above a `Brief` (config facts the remedies name,
class names, content hashes of the raw splits for the leakage check). The checks it runs are the registered
ones (diagnose/catalog.py). Nothing here draws from the Trainer's random generator, so observing never changes
the training.
"""
from __future__ import annotations

import os
import sys

import torch
from tqdm.auto import tqdm

from trainlab.core.errors import DamagedRun, UserError
from trainlab.core.files import Check, a, check_fields, is_count, is_number
from trainlab.diagnose import advice, checks, pitfalls
from trainlab.diagnose.baselines import Baselines, compare
from trainlab.diagnose.checks import Outcome, Probe
from trainlab.diagnose.curves import Signals
from trainlab.diagnose.diagnosis import Diagnosis, diagnose, from_check
from trainlab.diagnose.facts import Brief, EpochFacts, RunSetup
from trainlab.diagnose.finding import Finding, accuracy_interval
from trainlab.diagnose.signals import (
    PROBE_SIZE,
    activation_stats,
    batch_targets,
    constant_prediction_loss,
    dead_relu_fractions,
    gradient_rms,
    has_normalization,
    take_samples,
    update_ratio,
    weight_layers,
)
from trainlab.models.heads import expected_input

STATS_SAMPLES = 1024  # training samples for the input-scale check
_NUMBER = ("a number or null", lambda v: v is None or is_number(v))
STATE: dict[str, Check] = {  # what Guide.state_dict keeps in last.pt, and what load_state_dict checks
    "history": a(list), "grad_rms": a(list), "dead": a(list), "activity": a(list), "step_losses": a(list),
    "best_epoch": ("an epoch number or null", lambda v: v is None or is_count(v)), "stopped_early": a(bool),
    "baseline_loss": _NUMBER, "ratio": _NUMBER, "announced": a(list)}


def resolve_verbose(verbose, progress: bool | None) -> bool:
    """auto: speak wherever fit runs, unless the caller turned progress off (library use). As in Keras, a
    terminal or notebook gets the live bar (tqdm) and the epoch lines, a log file or pipe the epoch lines only
    (tqdm shows no bar there): a script redirected to a log must not stay silent for minutes."""
    if verbose != "auto":
        return bool(verbose)
    return progress is not False


def epoch_line(record: dict, epochs: int, best_epoch: int | None, val_size: int = 0) -> str:
    """'epoch   3/10  train_loss 0.4012  ...  val_accuracy 0.9722 (CI 0.93-0.99)  1.2s  *': accuracy's 95% interval
    shown when the validation split is small enough for it to matter."""
    parts = [f"epoch {record['epoch']:>3}/{epochs}"]
    for key, value in record.items():
        if key.startswith(("train_", "val_")) and key != "train_data_time":
            ci = accuracy_interval(value, val_size, short=True) if key == "val_accuracy" else ""
            parts.append(f"{key} {value:.4f}{ci}")
    parts.append(f"{record['time']:.1f}s")
    if best_epoch == record["epoch"]:
        parts.append("*")
    return "  ".join(parts)


class Guide:
    """The diagnosis of one run. Fed through the seam of diagnose/facts.py only: `start(RunSetup, ...)`,
    `after_epoch(EpochFacts)`, `fail(error)`, `finish()`, and `set_brief(Brief)` from the layers above; read
    back through `diagnose()`, the per-epoch signals (`grad_rms`, `dead`, `activity`, `step_losses`, `ratio`)
    and `state_dict()`, which the Trainer stores in last.pt so a resumed run keeps its diagnosis history."""

    def __init__(self, verbose: bool = False):
        self.verbose = verbose
        self.brief = Brief()
        self.setup: RunSetup | None = None
        self.before: list[Finding] = []
        self.failure: dict | None = None
        self.comparison: dict = {}
        self.baselines: Baselines | None = None
        self.probe = self.initial = self.train_b = self.val_b = None
        self.sizes: dict[str, int] = {}
        self.normalized = False  # the model has normalization layers (gradient sizes per layer do not compare)
        self.num_outputs = 0
        self._clear_history()

    def _clear_history(self) -> None:
        """What the epochs recorded (all of it goes into last.pt: STATE)."""
        self.history: list[dict] = []  # the Trainer's history rows, as handed over
        self.grad_rms: list[dict] = []
        self.dead: list[dict] = []
        self.activity: list[dict] = []  # per epoch: activation_stats of the probe batch
        self.step_losses: list[list[float]] = []
        self.best_epoch: int | None = None
        self.stopped_early = False
        self.baseline_loss: float | None = None
        self.ratio: float | None = None
        self.announced: set[str] = set()

    def set_brief(self, brief: Brief) -> None:
        """What only the layers above know, before `fit` (the one way in besides the Trainer's facts)."""
        self.brief = brief

    def say(self, text: str) -> None:
        if self.verbose:
            tqdm.write(text)
            sys.stdout.flush()  # piped output (CI logs, `| tee`) shows each line as it happens

    # ------------------------------------------------------------------ before training

    def start(self, setup: RunSetup, train_b, val_b) -> None:
        """Before the first epoch: fit checks (one-line errors) and pitfalls (printed), then the probes."""
        self.setup, self.train_b, self.val_b = setup, train_b, val_b
        xb, yb = take_samples(train_b, STATS_SAMPLES)  # fit made sure there is a batch
        out = self._forward_check(setup.model, xb)
        self.num_outputs = out.shape[-1] if out.ndim > 1 else 1
        labels = batch_targets(train_b)
        labels = (labels if labels is not None else yb).cpu()
        self.before = checks.findings("before", self._probe(xb, yb, labels))
        for f in self.before:
            for line in f.lines():
                self.say(line)
        self.sizes = weight_layers(setup.model)
        self.normalized = has_normalization(setup.model)
        probe = take_samples(val_b, PROBE_SIZE, max_batches=1) if val_b is not None else None
        self.probe = probe[0] if probe is not None else None
        if setup.epoch == 0:
            self.initial = {n: p.detach().float().clone() for n, p in setup.model.named_parameters()
                            if p.requires_grad}

    @staticmethod
    def _forward_check(model, xb: torch.Tensor) -> torch.Tensor:
        """The model's output on two samples, or a one-line error saying the model does not fit the data."""
        was_training = model.training
        try:
            model.eval()
            with torch.no_grad(), torch.random.fork_rng(devices=[]):
                return model(xb[:2])
        except (RuntimeError, ValueError, IndexError) as e:
            raise UserError(f"the model does not fit the data: input batch shape {tuple(xb[:2].shape)}"
                            f"{expected_input(model)} ({str(e).splitlines()[0][:150]})") from None
        finally:
            model.train(was_training)

    def _probe(self, xb, yb, labels) -> Probe:
        s, b = self.setup, self.train_b
        balancing = [r for r, on in (("train.class_weights", s.class_weights),
                                     ("data.sampler: balanced", getattr(b, "sample_weights", None) is not None)) if on]
        conflicts = advice.label_conflicts(getattr(b, "x", None), labels)  # identical rows of a table
        return Probe(s.model, xb, yb, labels, self.num_outputs, s.task, s.loss_name, b.num_samples,
                     getattr(b, "batch_size", None) or len(yb), bool(getattr(b, "drop_last", False)), balancing,
                     self.brief.hashes or self._batch_hashes(), self.brief.classes, self.brief.settings, s, conflicts)

    def _batch_hashes(self) -> dict[str, list[bytes]]:
        """Without hashes from above: the in-memory train/val inputs as the model sees them."""
        splits = {name: b for name, b in (("train", self.train_b), ("val", self.val_b)) if hasattr(b, "x")}
        if len(splits) < 2:  # leakage is a sample shared between splits: one split has nothing to compare
            return {}
        return pitfalls.split_digests({name: b.x for name, b in splits.items()})

    # ------------------------------------------------------------------ during training

    def after_epoch(self, facts: EpochFacts) -> None:
        """Record the epoch's signals, print its line and any problem that just appeared."""
        model, epoch = self.setup.model, facts.record["epoch"]
        self.history.append(dict(facts.record))
        self.best_epoch, self.stopped_early = facts.best_epoch, facts.stopped_early
        if self.baseline_loss is None:
            self._baseline_loss(facts.loss_fn)
        with torch.random.fork_rng(devices=[]):  # eval mode draws nothing; this guards the CPU RNG anyway
            stats = activation_stats(model, self.probe) if self.probe is not None else {}
        self.grad_rms.append(gradient_rms(facts.grad_norms, self.sizes))
        self.activity.append(stats)
        self.dead.append(dead_relu_fractions(stats))
        self.step_losses.append([float(v) for v in facts.step_losses])
        if self.initial is not None:  # after the first epoch (not after a resumed later one: its ratio is kept)
            if epoch == 1:
                self.ratio = update_ratio(model, self.initial)
            self.initial = None
        self.say(epoch_line(facts.record, self.setup.epochs, self.best_epoch, self.val_size))
        if self.brief.dry_run:  # two batches: a curve alarm would be noise (a non-finite loss stops fit anyway)
            return
        for f in self.diagnose(final=False).warnings:
            routine = ((f.code == "overfitting" and self.setup.early_stopping)  # early stopping handles it
                       or (f.code == "underfitting" and not f.evidence.get("flat")))  # early epochs: still falling
            if f.stage == "during" and f.code not in self.announced and not routine:
                self.announced.add(f.code)
                self.say(f"diagnosis (epoch {epoch}): {f.cause}")

    @property
    def val_size(self) -> int:
        return self.val_b.num_samples if self.val_b is not None else 0

    def _baseline_loss(self, loss_fn) -> None:
        y = batch_targets(self.train_b)
        if y is None and self.probe is not None:
            y = take_samples(self.val_b, PROBE_SIZE, max_batches=1)[1]
        if y is not None:
            s = self.setup
            self.baseline_loss = constant_prediction_loss(loss_fn, s.loss_name, s.task, y.to(s.device),
                                                          self.num_outputs)

    # ------------------------------------------------------------------ the diagnosis

    def signals(self) -> Signals:
        s = self.setup
        settings = {"early_stopping": s.early_stopping if s else 0, "weight_decay": s.weight_decay if s else 0.0,
                    "device": s.device if s else "cpu", "cpu_count": os.cpu_count() or 2,
                    "normalized": self.normalized, **self.brief.settings}
        return Signals(self.history, self.grad_rms, self.dead, self.step_losses, self.baseline_loss, settings,
                       self.failure, self.stopped_early, self.best_epoch, self.ratio, s.lr if s else None)

    def diagnose(self, final: bool = True) -> Diagnosis:
        """The diagnosis of what was handed over so far (final: with the after-training checks)."""
        if self.brief.dry_run:
            return self.dry_diagnosis()
        outcome = Outcome(self.comparison, self._best_row(), self.val_size, self.history, self.baseline_loss,
                          self.setup)
        after = checks.findings("after", outcome) if final else []
        return diagnose(self.signals(), self.before, after, self.comparison)

    def dry_diagnosis(self) -> Diagnosis:
        """--dry-run: the pitfalls found before training and the divergence check (a finite, not rising loss);
        none of the curve checks that need epochs, no baselines, no after-training checks."""
        divergence = next(c for c in checks.of_stage("during") if c.code == "divergence").measure(self.signals())
        found = [*self.before, *([f] if (f := from_check("divergence", divergence)) else [])]
        found.sort(key=lambda f: f.severity != "warning")  # stable: warnings first, as diagnose() orders them
        return Diagnosis(found, {"divergence": divergence}, {}, dry_run=True)

    def _best_row(self) -> dict:
        return self.history[self.best_epoch - 1] if self.best_epoch and self.history else {}

    def finish(self) -> None:
        """After the last epoch (best weights restored): baselines on validation, then the final diagnosis."""
        if self.setup is not None and self.setup.baselines and self.val_b is not None and self.history \
                and not self.brief.dry_run:
            self.comparison = self.compare_baselines(self.val_b, "validation", self._val_metrics())
        if self.brief.announce_final:
            for line in self.diagnose().lines():
                self.say(line)

    def _val_metrics(self) -> dict:
        best = self.history[(self.best_epoch or len(self.history)) - 1]
        return {k[4:]: v for k, v in best.items() if k.startswith("val_")}

    def compare_baselines(self, batches, split: str, network: dict) -> dict:
        """Fit the baselines once (training split) and score them on `batches` next to the network's `network`."""
        s = self.setup
        if self.baselines is None:
            x, y = self._xy(self.train_b)
            if y is None:
                return {}
            self.baselines = Baselines.fit(x, y, s.task, self.num_outputs, s.seed)
        x, y = self._xy(batches)
        if y is None:
            return {}
        return compare(network, self.baselines.score(x, y, list(s.metrics)), split, len(y))

    def _xy(self, batches):
        """In memory: the inputs and labels as the model sees them; streamed: the labels only."""
        if batches is not None and hasattr(batches, "x"):
            return batches.x, batches.y
        return None, batch_targets(batches) if batches is not None else None

    def fail(self, error) -> None:
        """Training stopped on a non-finite loss (`error` names step, epoch, layer): record it, print the diagnosis."""
        self.failure = {"step": error.step, "epoch": error.epoch, "layer": error.layer, "message": str(error)}
        if self.brief.announce_final:
            for line in self.diagnose(final=False).lines():
                self.say(line)

    # ------------------------------------------------------------------ last.pt

    def state_dict(self) -> dict:
        """The diagnosis history: plain lists, numbers and strings (last.pt is read with weights_only=True)."""
        state = {key: getattr(self, key) for key in STATE}
        state["announced"] = sorted(self.announced)
        return state

    def load_state_dict(self, state: dict | None, history: list[dict], what: str = "last.pt 'diagnosis'") -> None:
        """Continue from last.pt. A checkpoint written before the diagnosis was stored there (None) has only the
        Trainer's history: the earlier epochs' signals are then unknown. A damaged state raises DamagedRun."""
        self._clear_history()
        if state is None:
            self.history = [dict(r) for r in history]
            return
        check_fields(state, STATE, what)
        if not len(state["history"]) == len(state["grad_rms"]) == len(state["step_losses"]) == len(history):
            raise DamagedRun(f"{what} holds signals of {len(state['grad_rms'])} epochs for {len(history)} epochs")
        for key in STATE:
            setattr(self, key, state[key])
        self.announced = set(state["announced"])
