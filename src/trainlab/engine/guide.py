"""What a Trainer tells about its run: the pitfalls it sees before training, one line per epoch, a problem the
epoch it appears, and the final diagnosis - the same words from `Trainer.fit` in a notebook and from
`trainlab train` in a terminal, because both go through this Guide (every Trainer has one: `trainer.guide`).

    trainer = Trainer(model, lr=1e-3)            # verbose: auto = speak (a live bar only in a terminal)
    trainer.fit(train, val, epochs=10)           # prints pitfalls, epoch lines, the diagnosis
    trainer.diagnosis                            # the same diagnosis, structured (engine/diagnosis.py)

The layers above add what only they know before `fit`: `guide.settings` (config facts the remedies name),
`guide.hashes` (content hashes of the raw splits, test included, for the leakage check), `guide.classes`.
Nothing here draws from the Trainer's random generator, so observing never changes the training.
"""
from __future__ import annotations

import os
import sys

import torch
from tqdm.auto import tqdm

from trainlab.core.errors import UserError
from trainlab.engine import advice, pitfalls
from trainlab.engine.baselines import Baselines, compare, sentence
from trainlab.engine.curves import Signals
from trainlab.engine.diagnosis import Diagnosis, Finding, diagnose, wilson
from trainlab.engine.signals import (
    PROBE_SIZE,
    activation_stats,
    batch_targets,
    constant_prediction_loss,
    dead_relu_fractions,
    gradient_rms,
    take_samples,
    update_ratio,
    weight_layers,
)
from trainlab.engine.tally import expected_input

CI_SHOWN_BELOW = 1000  # show accuracy's 95% interval next to it for fewer samples (at 50%: wider than +-3 points)
STATS_SAMPLES = 1024  # training samples for the input-scale check


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


def accuracy_interval(accuracy: float, n: int, always: bool = False, short: bool = False) -> str:
    """' (95% CI 0.93-0.99, n=144)' when n samples leave accuracy uncertain (or `always`), else ''."""
    if n <= 0 or not (always or n < CI_SHOWN_BELOW):
        return ""
    lo, hi = wilson(accuracy * n, n)
    return f" (CI {lo:.2f}-{hi:.2f})" if short else f" (95% CI {lo:.3f}-{hi:.3f}, n={n})"


class Guide:
    def __init__(self, verbose: bool = False):
        self.verbose = verbose
        self.announce_final = True  # trainlab train prints the diagnosis itself, after the test evaluation
        self.settings: dict = {}
        self.hashes: dict[str, list[bytes]] | None = None
        self.hash_names: dict[str, list[str]] | None = None
        self.classes: list[str] | None = None
        self.before: list[Finding] = []
        self.grad_rms: list[dict] = []
        self.dead: list[dict] = []
        self.activity: list[dict] = []  # per epoch: activation_stats of the probe batch
        self.step_losses: list[list[float]] = []
        self.baseline_loss: float | None = None
        self.ratio: float | None = None
        self.failure: dict | None = None
        self.comparison: dict = {}
        self.baselines: Baselines | None = None
        self.announced: set[str] = set()
        self.probe = self.initial = self.train_b = self.val_b = None
        self.sizes: dict[str, int] = {}
        self.num_outputs = 0

    def say(self, text: str) -> None:
        if self.verbose:
            tqdm.write(text)
            sys.stdout.flush()  # piped output (CI logs, `| tee`) shows each line as it happens

    # ------------------------------------------------------------------ before training

    def start(self, trainer, train_b, val_b) -> None:
        """Before the first epoch: fit checks (one-line errors) and pitfalls (printed), then the probes."""
        self.train_b, self.val_b = train_b, val_b
        xb, yb = take_samples(train_b, STATS_SAMPLES)  # fit made sure there is a batch
        out = self._forward_check(trainer, xb)
        self.num_outputs = out.shape[-1] if out.ndim > 1 else 1
        labels = batch_targets(train_b)
        labels = (labels if labels is not None else yb).cpu()
        self.before = self._pitfalls(trainer, xb, yb, labels, out)
        for f in self.before:
            for line in f.lines():
                self.say(line)
        self.sizes = weight_layers(trainer.model)
        probe = take_samples(val_b, PROBE_SIZE, max_batches=1) if val_b is not None else None
        self.probe = probe[0] if probe is not None else None
        if trainer.epoch == 0:
            self.initial = {n: p.detach().float().clone() for n, p in trainer.model.named_parameters()
                            if p.requires_grad}

    def _forward_check(self, trainer, xb: torch.Tensor) -> torch.Tensor:
        """The model's output on two samples, or a one-line error saying the model does not fit the data."""
        model = trainer.model
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

    def _pitfalls(self, trainer, xb, yb, labels, out) -> list[Finding]:
        k, loss, s = self.num_outputs, trainer.loss_name, trainer.settings
        pitfalls.check_labels(yb, k, loss)
        if trainer.task == "classification" and not labels.is_floating_point():
            pitfalls.labels_outside(labels, k)
        module, probe_out = pitfalls.final_module(trainer.model, xb[:64])
        remedies = [r for r, on in (("train.class_weights", s.class_weights is not None),
                                    ("data.sampler: balanced", getattr(self.train_b, "sample_weights", None)
                                     is not None)) if on]
        n, bs = self.train_b.num_samples, getattr(self.train_b, "batch_size", None) or len(yb)
        drop = bool(getattr(self.train_b, "drop_last", False))
        conflicts = advice.label_conflicts(getattr(self.train_b, "x", None), labels)  # identical rows of a table
        hashes = self.hashes or self._batch_hashes()
        found = [pitfalls.output_activation(module, probe_out, loss, yb, bool(self.settings.get("output_activation"))),
                 pitfalls.input_scale(xb),
                 pitfalls.class_imbalance(labels, k, remedies, self.classes) if trainer.task == "classification"
                 else None,
                 advice.expected_duplicates(pitfalls.duplicates(hashes), conflicts, hashes),
                 pitfalls.batch_norm(trainer.model, n, bs, drop), pitfalls.drop_last_waste(n, bs, drop),
                 *advice.before_training(s, self.settings, trainer.epochs_planned, len(self.train_b), conflicts,
                                         trainer.task, labels, trainer.model)]
        return [f for f in found if f is not None]

    def _batch_hashes(self) -> dict[str, list[bytes]]:
        """Without hashes from above: the in-memory train/val inputs as the model sees them."""
        splits = {name: b for name, b in (("train", self.train_b), ("val", self.val_b)) if hasattr(b, "x")}
        if len(splits) < 2:  # leakage is a sample shared between splits: one split has nothing to compare
            return {}
        return pitfalls.split_digests({name: b.x for name, b in splits.items()})

    # ------------------------------------------------------------------ during training

    def after_epoch(self, trainer, record: dict) -> None:
        """Record the epoch's signals, print its line and any problem that just appeared."""
        if self.baseline_loss is None:
            self._baseline_loss(trainer)
        with torch.random.fork_rng(devices=[]):  # eval mode draws nothing; this guards the CPU RNG anyway
            stats = activation_stats(trainer.model, self.probe) if self.probe is not None else {}
        self.grad_rms.append(gradient_rms(trainer.last_grad_norms, self.sizes))
        self.activity.append(stats)
        self.dead.append(dead_relu_fractions(stats))
        self.step_losses.append([float(v) for v in trainer.last_step_losses])
        if self.initial is not None:  # after the first epoch (not after a resumed later one)
            ratio = update_ratio(trainer.model, self.initial) if trainer.epoch == 1 else None
            self.ratio, self.initial = ratio, None
        self.say(epoch_line(record, trainer.epochs_planned, trainer.best_epoch, self.val_size))
        diag = self.diagnose(trainer, final=False)
        for f in diag.warnings:
            routine = ((f.code == "overfitting" and trainer.settings.early_stopping)  # early stopping handles it
                       or (f.code == "underfitting" and not f.evidence.get("flat")))  # early epochs: still falling
            if f.stage == "during" and f.code not in self.announced and not routine:
                self.announced.add(f.code)
                self.say(f"diagnosis (epoch {trainer.epoch}): {f.cause}")

    @property
    def val_size(self) -> int:
        return self.val_b.num_samples if self.val_b is not None else 0

    def _baseline_loss(self, trainer) -> None:
        y = batch_targets(self.train_b)
        if y is None and self.probe is not None:
            y = take_samples(self.val_b, PROBE_SIZE, max_batches=1)[1]
        if y is not None:
            self.baseline_loss = constant_prediction_loss(trainer.loss_fn, trainer.loss_name, trainer.task,
                                                          y.to(trainer.device), self.num_outputs)

    # ------------------------------------------------------------------ the diagnosis

    def signals(self, trainer) -> Signals:
        settings = {"early_stopping": trainer.settings.early_stopping, "weight_decay": trainer.settings.weight_decay,
                    "device": trainer.device.type, "cpu_count": os.cpu_count() or 2, **self.settings}
        return Signals(trainer.history, self.grad_rms, self.dead, self.step_losses, self.baseline_loss, settings,
                       self.failure, trainer.stopped_early, trainer.best_epoch, self.ratio, trainer.settings.lr)

    def diagnose(self, trainer, final: bool = True) -> Diagnosis:
        after = self._after_findings(trainer) if final else []
        return advice.revise(diagnose(self.signals(trainer), self.before, after, self.comparison), self.comparison,
                             self.settings)

    def _after_findings(self, trainer) -> list[Finding]:
        out = []
        if self.comparison:
            beats = self.comparison["beats"]
            lost = [name for name, beat in beats.items() if not beat]
            text = sentence(self.comparison)
            if not beats[next(iter(beats))]:  # not even the majority class / mean predictor
                out.append(Finding("baselines", "warning", f"{text}: the network has learned nothing useful yet",
                                   ["train longer or with a better learning rate (trainlab lr-find)",
                                    "check the pitfalls above: labels, inputs, the output activation"],
                                   self.comparison, "after"))
            else:
                hint = "; the simple model may be enough here, or the network needs tuning" if lost else ""
                out.append(Finding("baselines", "note", text + hint, [], self.comparison, "after"))
        out += advice.after_training(trainer.settings, trainer.history, self.baseline_loss)
        best = trainer.history[trainer.best_epoch - 1] if trainer.best_epoch and trainer.history else {}
        if "val_accuracy" in best and accuracy_interval(best["val_accuracy"], self.val_size, short=True):
            lo, hi = wilson(best["val_accuracy"] * self.val_size, self.val_size)
            out.append(Finding("small_validation", "note", f"the validation split has {self.val_size} samples: "
                               f"accuracy {best['val_accuracy']:.4f} is known only to 95% CI {lo:.3f}-{hi:.3f}; "
                               f"differences smaller than that between epochs or runs are noise", [],
                               {"n": self.val_size, "low": lo, "high": hi}, "after"))
        return out

    def finish(self, trainer) -> None:
        """After the last epoch (best weights restored): baselines on validation, then the final diagnosis."""
        if trainer.settings.baselines and self.val_b is not None and trainer.history:
            self.comparison = self.compare_baselines(trainer, self.val_b, "validation",
                                                     self._val_metrics(trainer))
        if self.announce_final:
            for line in self.diagnose(trainer).lines():
                self.say(line)

    def _val_metrics(self, trainer) -> dict:
        best = trainer.history[(trainer.best_epoch or len(trainer.history)) - 1]
        return {k[4:]: v for k, v in best.items() if k.startswith("val_")}

    def compare_baselines(self, trainer, batches, split: str, network: dict) -> dict:
        """Fit the baselines once (training split) and score them on `batches` next to the network's `network`."""
        if self.baselines is None:
            x, y = self._xy(self.train_b)
            if y is None:
                return {}
            self.baselines = Baselines.fit(x, y, trainer.task, self.num_outputs, trainer.seed)
        x, y = self._xy(batches)
        if y is None:
            return {}
        return compare(network, self.baselines.score(x, y, trainer.metrics), split, len(y))

    def _xy(self, batches):
        """In memory: the inputs and labels as the model sees them; streamed: the labels only."""
        if batches is not None and hasattr(batches, "x"):
            return batches.x, batches.y
        return None, batch_targets(batches) if batches is not None else None

    def fail(self, trainer, error) -> None:
        """Training stopped on a non-finite loss: record where, and print the diagnosis."""
        self.failure = {"step": error.step, "epoch": error.epoch, "layer": error.layer, "message": str(error)}
        if self.announce_final:
            for line in self.diagnose(trainer, final=False).lines():
                self.say(line)
