"""What a run shows while and after it trains: TensorBoard, plots, diagnosis, report (issue 5).

train.py calls exactly these three functions; everything else about observation lives behind them:
- `epoch_hooks` -> [Monitor]: after every epoch, log TensorBoard scalars, record per-layer gradient RMS,
  probe dead ReLU units on one fixed validation batch, and print a diagnosis as soon as one appears;
- `finalize`: the final diagnosis (result["diagnosis"]), PNG plots, TensorBoard hparams, report.html;
- `on_failure`: a NaN/Inf loss stopped training: diagnose divergence, write result.json and the report.

Nothing here consumes random numbers or touches the training data order, so resumed runs stay bit-exact.
"""
from __future__ import annotations

import json
import math
import os
import re
import sys
from pathlib import Path

import numpy as np
import torch
import yaml
from torch import nn
from tqdm.auto import tqdm

from trainlab.core.files import write_history, write_json
from trainlab.core.metrics import confusion_matrix
from trainlab.data.base import ArrayDataset
from trainlab.observe import diagnose as dg
from trainlab.observe import plots, report, tb

PROBE_SIZE = 256  # validation samples pushed through the model once per epoch to find dead units
SIGNALS_FILE = "diagnostics.jsonl"  # one line per epoch: gradient RMS, dead units, step losses (for resume)


# ----------------------------------------------------------------------------- per-epoch signals

def weight_layers(model: nn.Module) -> dict[str, int]:
    """Trainable weight matrices / kernels in forward order -> element count. Embeddings are left out:
    only the looked-up rows get gradients, which would read as 'vanishing'."""
    out = {}
    for mod_name, mod in model.named_modules():
        if isinstance(mod, nn.Embedding):
            continue
        for p_name, p in mod.named_parameters(recurse=False):
            if p.requires_grad and p.ndim >= 2:
                out[f"{mod_name}.{p_name}" if mod_name else p_name] = p.numel()
    order = [n for n, _ in model.named_parameters()]
    return {n: out[n] for n in order if n in out}


def gradient_rms(norms: dict[str, float], sizes: dict[str, int]) -> dict[str, float]:
    """L2 norm -> root-mean-square per element, so layers of different sizes compare."""
    return {n: norms[n] / math.sqrt(sizes[n]) for n in sizes if n in norms}


def probe_batch(view, n: int = PROBE_SIZE):
    """(x, y) of the first `n` validation samples through the eval pipeline (no augmentation, no RNG)."""
    ds = view.dataset("val")
    if len(ds) == 0:
        return None
    k = min(n, len(ds))
    with torch.random.fork_rng(devices=[]):
        if isinstance(ds, ArrayDataset):
            x, y = ds.x[:k], ds.y[:k]
        else:
            items = [ds[i] for i in range(k)]
            x, y = torch.stack([torch.as_tensor(a) for a, _ in items]), torch.as_tensor([b for _, b in items])
        return view.eval_pipe(x), y


def _unit_alive(out: torch.Tensor) -> torch.Tensor:
    """(B, F) / (B, T, F) -> (F,), (B, C, H, W) -> (C,): does the unit output > 0 for some sample?"""
    if out.ndim == 2:
        return (out > 0).any(0)
    if out.ndim == 3:
        return (out > 0).flatten(0, 1).any(0)
    return (out > 0).transpose(0, 1).flatten(1).any(1)


@torch.no_grad()
def dead_relu_fractions(model: nn.Module, x: torch.Tensor) -> dict[str, float]:
    """Share of units of every ReLU module that stay at 0 for all of `x`, in eval mode (no dropout, no RNG)."""
    relus = [(name, m) for name, m in model.named_modules() if isinstance(m, (nn.ReLU, nn.ReLU6))]
    if not relus:
        return {}
    alive: dict[str, torch.Tensor] = {}

    def hook_for(name):
        def hook(module, inputs, out):
            key = name if name not in alive else f"{name}#{sum(k.startswith(name) for k in alive) + 1}"
            alive[key] = _unit_alive(out).float().mean()
        return hook

    handles = [m.register_forward_hook(hook_for(name)) for name, m in relus]
    was_training = model.training
    try:
        model.eval()
        model(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    if not alive:
        return {}
    values = (1 - torch.stack(list(alive.values()))).cpu().tolist()  # one sync per epoch
    return dict(zip(alive, values, strict=True))


def constant_prediction_loss(loss_fn: nn.Module, loss_name: str, task: str, y: torch.Tensor,
                             num_outputs: int) -> float | None:
    """Loss of the best constant guess (class priors / mean target): the yardstick for 'learned little'."""
    if len(y) == 0:
        return None
    with torch.no_grad():
        if task == "multilabel":  # each label's base rate, as a logit
            out = torch.logit(y.float().mean(0, keepdim=True).clamp(0.01, 0.99)).expand_as(y)
        elif task == "classification":
            prior = torch.bincount(y.long().reshape(-1), minlength=num_outputs).float().clamp_min(0.5)
            prior = prior / prior.sum()  # (K,)
            row = torch.logit(prior) if loss_name == "bce_with_logits" else prior.log()
            out = row.expand(len(y), -1)  # (N, K)
        else:
            y = y.float()
            out = y.mean(0, keepdim=True).expand_as(y)
        value = float(loss_fn(out, y))
    return value if math.isfinite(value) else None


class Monitor:
    """The per-epoch hook: TensorBoard, gradient and dead-unit signals, live diagnosis (printed once per kind)."""
    def __init__(self, cfg, out: Path, view):
        self.out, self.view = Path(out), view
        self.probe = probe_batch(view)
        self.settings = remedy_settings(cfg, view)
        self.grad_rms: list[dict] = []
        self.dead: list[dict] = []
        self.step_losses: list[list[float]] = []
        self.baseline: float | None = None
        self.writer = None
        self.sizes: dict[str, int] = {}
        self.announced: set[str] = set()

    def _start(self, trainer) -> None:
        self.writer = tb.open_writer(self.out / "tb")
        self.sizes = weight_layers(trainer.model)
        self.settings["device"] = trainer.device.type
        if self.probe is not None:
            self.probe = (self.probe[0].to(trainer.device), self.probe[1])
        y = train_targets(self.view)
        if y is None:  # a streamed pool without .targets: the probe's labels are a fair estimate
            y = self.probe[1] if self.probe is not None else torch.zeros(0)
        self.baseline = constant_prediction_loss(trainer.loss_fn, trainer.loss_name, trainer.task,
                                                 y.to(trainer.device), self.view.bundle.num_outputs)
        self._load_previous(trainer.epoch)

    def __call__(self, trainer, record: dict) -> None:
        if self.writer is None:
            self._start(trainer)
        rms = gradient_rms(trainer.last_grad_norms, self.sizes)
        with torch.random.fork_rng(devices=[]):  # eval mode draws nothing; this guards the CPU RNG anyway
            dead = dead_relu_fractions(trainer.model, self.probe[0]) if self.probe is not None else {}
        steps = [float(v) for v in trainer.last_step_losses]
        self.grad_rms.append(rms)
        self.dead.append(dead)
        self.step_losses.append(steps)
        norms = {n: trainer.last_grad_norms[n] for n in self.sizes if n in trainer.last_grad_norms}
        tb.log_epoch(self.writer, record, norms, dead, steps, trainer.step - len(steps) + 1)
        self._save_line(record["epoch"], rms, dead, steps)
        self._announce(trainer)

    def signals(self, trainer, failure: dict | None = None) -> dg.Signals:
        return dg.Signals(trainer.history, self.grad_rms, self.dead, self.step_losses, self.baseline,
                          self.settings, failure, trainer.stopped_early, trainer.best_epoch)

    def _announce(self, trainer) -> None:
        """Print a diagnosis the first epoch it appears, so a learner can stop a hopeless run early."""
        diag = dg.diagnose(self.signals(trainer))
        for name in diag["problems"]:
            if name == "overfitting" and self.settings.get("early_stopping"):
                continue  # early stopping is there to handle it; the final diagnosis says whether it did
            if name not in self.announced:
                self.announced.add(name)
                _say(trainer, f"diagnosis (epoch {trainer.epoch}): {diag['checks'][name]['message']}")

    def _save_line(self, epoch: int, rms: dict, dead: dict, steps: list[float]) -> None:
        line = {"epoch": epoch, "grad_rms": rms, "dead": dead, "step_losses": [float(f"{v:.6g}") for v in steps]}
        with open(self.out / SIGNALS_FILE, "a") as f:
            f.write(json.dumps(line) + "\n")

    def _load_previous(self, epoch: int) -> None:
        """After --resume: the signals of the epochs before the interruption (the last line per epoch wins)."""
        path = self.out / SIGNALS_FILE
        if epoch <= 1 or not path.is_file():
            return
        rows = {}
        for text in path.read_text().splitlines():
            row = json.loads(text)
            if row["epoch"] < epoch:
                rows[row["epoch"]] = row
        for e in sorted(rows):
            self.grad_rms.append(rows[e]["grad_rms"])
            self.dead.append(rows[e]["dead"])
            self.step_losses.append(rows[e]["step_losses"])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def train_targets(view) -> torch.Tensor | None:
    """Training targets without decoding inputs, when the pool exposes them (else None)."""
    t = getattr(view.bundle.pool, "targets", None)
    return torch.as_tensor(t)[torch.as_tensor(view.train_idx, dtype=torch.long)] if t is not None else None


def remedy_settings(cfg, view) -> dict:
    """The config facts the remedies depend on (what is already on, which data path is used)."""
    params = cfg.model.params
    ds = view.dataset("train")
    return {"early_stopping": cfg.train.early_stopping, "weight_decay": cfg.train.weight_decay,
            "dropout": getattr(params, "dropout", 0.0), "has_dropout": hasattr(params, "dropout"),
            "kind": view.bundle.kind, "augment": view.train_pipe.random,
            "data_path": "in-memory" if view.in_memory(ds) else "streaming",
            "num_workers": cfg.data.num_workers, "pin_memory": cfg.data.pin_memory, "cpu_count": os.cpu_count() or 2}


def _say(trainer, text: str) -> None:
    if trainer.progress is not False:  # train_run(quiet=True) builds the Trainer with progress=False
        tqdm.write(text)


def _monitor(trainer) -> Monitor | None:
    return next((h for h in trainer.hooks if isinstance(h, Monitor)), None)


# ----------------------------------------------------------------------------- the three entry points

def epoch_hooks(cfg, out: Path, view) -> list:
    """Hooks `fn(trainer, record)` run after every epoch (TensorBoard logging, live diagnostics)."""
    return [Monitor(cfg, out, view)]


def finalize(out: Path, trainer, view, result: dict) -> None:
    """After the test evaluation: write plots/report; may add keys (e.g. `diagnosis`) to `result`."""
    out = Path(out)
    mon = _monitor(trainer)
    diag = dg.diagnose(mon.signals(trainer) if mon else dg.Signals(trainer.history))
    result["diagnosis"] = diag
    result.update(test_breakdown(trainer, view, out))
    result["plots"] = run_plots(out, trainer.history, result, mon)
    if mon is not None:
        if mon.writer is not None:  # None when no epoch ran in this process (a resumed, finished run)
            _log_final(mon, out, result)
        mon.close()
    report.write_report(out, result)
    for line in dg.summary_lines(diag):
        _say(trainer, line)
    _say(trainer, f"report: {out / 'report.html'}")


def on_failure(out: Path, trainer, error: Exception) -> None:
    """Training stopped with an error (e.g. a non-finite loss): record what can be diagnosed."""
    try:
        _record_failure(Path(out), trainer, error)
    except Exception as e:  # the training error is what the user must see, not this one
        print(f"warning: could not write the failure diagnosis: {type(e).__name__}: {e}", file=sys.stderr)


def _record_failure(out: Path, trainer, error: Exception) -> None:

    msg = str(error)
    found = {k: re.search(p, msg) for k, p in (("step", r"at step (\d+)"), ("epoch", r"\(epoch (\d+)"),
                                                ("layer", r"non-finite gradients: ([^;]+)"))}
    failure = {"step": int(found["step"][1]) if found["step"] else trainer.step + 1,
               "epoch": int(found["epoch"][1]) if found["epoch"] else trainer.epoch + 1,
               "layer": found["layer"][1] if found["layer"] else None, "message": msg}
    mon = _monitor(trainer)
    diag = dg.diagnose(mon.signals(trainer, failure) if mon else dg.Signals(trainer.history, failure=failure))
    history = trainer.history
    if history:
        write_history(out / "history.csv", history)
    result = {"error": msg, "test": {}, "diagnosis": diag, "best_epoch": trainer.best_epoch,
              "epochs_run": len(history), "monitor": trainer.monitor, "best_value": trainer.best_value,
              "stopped_early": False, "final": history[-1] if history else {}, "run_dir": str(out)}
    result["plots"] = run_plots(out, history, result, mon)
    if mon is not None:
        mon.close()
    report.write_report(out, result)
    write_json(out / "result.json", result)
    for line in dg.summary_lines(diag):
        _say(trainer, line)


# ----------------------------------------------------------------------------- finalize helpers

def test_breakdown(trainer, view, out: Path) -> dict:
    """Per-class metrics + confusion matrix (classification) or predictions-vs-actual (regression) on the
    test split, from one more pass over the same batches the test evaluation used (best weights)."""
    batches = view.batches("test", trainer.device)
    if batches is None:
        return {}
    outputs, targets, _ = trainer.collect(batches)
    outputs, targets = outputs.cpu(), targets.cpu()
    bundle, plots = view.bundle, _plots()
    if trainer.task == "multilabel":
        return multilabel_breakdown(trainer, view, outputs.sigmoid().numpy(), targets.numpy(), out)
    if trainer.task != "classification" or targets.ndim != 1:
        plots.predictions_vs_actual(outputs, targets, out / "predictions.png", bool(bundle.ordered))
        return {}
    from sklearn.metrics import precision_recall_fscore_support  # optional heavy dependency: imported on use


    classes = bundle.classes or [str(i) for i in range(outputs.shape[-1])]
    pred = outputs.argmax(-1)
    p, r, f, n = precision_recall_fscore_support(targets.numpy(), pred.numpy(), labels=list(range(len(classes))),
                                                 zero_division=0)
    per_class = {c: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(n[i])}
                 for i, c in enumerate(classes)}
    cm = confusion_matrix(outputs, targets).cpu()
    plots.confusion_matrix(cm, classes, out / "confusion_matrix.png")
    plots.per_class(per_class, out / "per_class.png")
    return {"per_class": per_class, "confusion_matrix": cm.tolist()}


def multilabel_breakdown(trainer, view, probs, targets, out: Path) -> dict:
    """Per-label metrics on the test split at thresholds chosen on the validation split (0.5 without one)."""
    from trainlab.core.multilabel import best_thresholds, per_label  # optional heavy dependency: scikit-learn

    val = view.batches("val", trainer.device)
    thresholds = np.full(probs.shape[1], 0.5)
    if val is not None:
        val_out, val_y, _ = trainer.collect(val)
        thresholds = best_thresholds(val_out.sigmoid().cpu().numpy(), val_y.cpu().numpy())
    per_class = per_label(probs, targets, thresholds, view.bundle.classes)
    _plots().per_class(per_class, out / "per_class.png")
    macro = float(np.mean([m["f1"] for m in per_class.values()]))
    return {"per_class": per_class, "thresholds": "chosen on the validation split" if val is not None else "0.5",
            "test_f1_at_thresholds": macro}


def run_plots(out: Path, history: list[dict], result: dict, mon: Monitor | None) -> list[str]:
    """Learning curves and gradient norms; returns every PNG in the run directory (incl. test plots)."""
    plots = _plots()
    over = result.get("diagnosis", {}).get("checks", {}).get("overfitting", {})
    if history:
        plots.learning_curves(history, out / "curves.png", result.get("monitor") or "val_loss",
                              result.get("best_epoch"), bool(result.get("stopped_early")), over.get("since_epoch"),
                              title=out.name)
    if mon is not None and any(mon.grad_rms):
        plots.gradient_norms(mon.grad_rms, out / "gradients.png")
    return sorted(p.name for p in out.glob("*.png"))


def _log_final(mon: Monitor, out: Path, result: dict) -> None:
    """Config + final metrics to TensorBoard's HPARAMS tab, so runs under one directory compare there."""
    cfg_path = out / "config.yaml"
    hparams = yaml.safe_load(cfg_path.read_text()) if cfg_path.is_file() else {}
    metrics = {f"test_{k}": v for k, v in result.get("test", {}).items()}
    if result.get("best_value") is not None:
        metrics[f"best_{result.get('monitor', 'value')}"] = result["best_value"]
    tb.log_hparams(mon.writer, hparams, metrics)


def _plots():

    return plots
