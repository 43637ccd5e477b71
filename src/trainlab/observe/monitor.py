"""What a run shows while and after it trains: TensorBoard, plots, the diagnosis in result.json and the report.

train.py calls these functions; everything else about observation lives behind them:
- `brief(cfg, view)` -> Brief: what only the run knows - config facts, class names, split hashes - for the
  Trainer's guide (diagnose/guide.py, which records the signals, checks the pitfalls and diagnoses);
- `epoch_hooks` -> [Monitor]: after every epoch, log TensorBoard scalars and the guide's signals
  (diagnostics.jsonl; a resumed run's guide has them back from last.pt);
- `finalize`: the guide's diagnosis into result["diagnosis"], printed once; the data's class counts per split
  (result["data"]); PNG plots, TensorBoard hparams, report.html - all rendering the same structured diagnosis;
- `on_failure`: a NaN/Inf loss stopped training: the divergence diagnosis, result.json and the report.

Nothing here consumes random numbers or touches the training data order, so resumed runs stay bit-exact.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch
import yaml
from torch.utils.data import Subset

from trainlab.core import forked
from trainlab.core.files import append_line, write_history, write_json
from trainlab.core.metrics import confusion_matrix, per_class_scores
from trainlab.core.report import print_progress
from trainlab.data import preview
from trainlab.data.base import ArrayDataset
from trainlab.diagnose.facts import Brief
from trainlab.diagnose.pitfalls import split_digests
from trainlab.diagnose.signals import layer_labels
from trainlab.observe import data_page, mistakes, plots, report, tb

SIGNALS_FILE = "diagnostics.jsonl"  # one line per epoch: gradient RMS, dead units, activity, step losses


# ----------------------------------------------------------------------------- per-epoch signals

class Monitor:
    """The per-epoch hook of `trainlab train`: TensorBoard and diagnostics.jsonl from the signals the Trainer's
    guide records (diagnose/guide.py); it only reads them."""

    def __init__(self, cfg, out: Path, view):
        self.out = Path(out)
        self.writer = None

    def __call__(self, trainer, record: dict) -> None:
        g = trainer.guide
        if self.writer is None:
            self.writer = tb.open_writer(self.out / "tb")
        rms, dead, steps = g.grad_rms[-1], g.dead[-1], g.step_losses[-1]
        norms = {n: trainer.last_grad_norms[n] for n in g.sizes if n in trainer.last_grad_norms}
        tb.log_epoch(self.writer, record, norms, dead, steps, trainer.step - len(steps) + 1)
        line = {"epoch": record["epoch"], "grad_rms": rms, "dead": dead, "activity": rounded(g.activity[-1]),
                "step_losses": [float(f"{v:.6g}") for v in steps]}
        if record["epoch"] == 1 and g.ratio is not None:
            line["update_ratio"] = g.ratio
        append_line(self.out / SIGNALS_FILE, json.dumps(line))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def brief(cfg, view) -> Brief:
    """What only the run knows, for the Trainer's guide (`trainer.guide.set_brief`): config facts for the
    remedies, class names, content hashes of the raw train/val/test samples (leakage), and that the diagnosis
    is printed after the test."""
    hashes, names = split_hashes(view)
    return Brief(remedy_settings(cfg, view), view.bundle.classes, hashes, names, announce_final=False)


def split_hashes(view, max_files: int = 20_000) -> tuple[dict, dict | None]:
    """{split: digests} of the raw samples (tensor rows, or image files' bytes with their paths as names)."""
    hashes, names, rows = {}, {}, {}
    for split in ("train", "val", "test"):
        ds = view.dataset(split)
        if isinstance(ds, ArrayDataset) and isinstance(ds.x, torch.Tensor):
            rows[split] = ds.x
            continue
        base, idx = (ds.dataset, list(ds.indices)) if isinstance(ds, Subset) else (ds, range(len(ds)))
        paths = getattr(base, "paths", None)
        if paths is None or len(idx) > max_files:
            return {}, None  # a split that cannot be hashed cheaply: no leakage check rather than half a one
        names[split] = [str(paths[i]) for i in idx]
        hashes[split] = [hashlib.blake2b(Path(p).read_bytes(), digest_size=16).digest() for p in names[split]]
    hashes.update(split_digests(rows) if rows else {})
    return {split: hashes[split] for split in ("train", "val", "test") if split in hashes}, names or None


def remedy_settings(cfg, view) -> dict:
    """The config facts the remedies depend on (what is already on, which data path is used)."""
    params = cfg.model.params
    ds = view.dataset("train")
    return {"early_stopping": cfg.train.early_stopping, "weight_decay": cfg.train.weight_decay,
            "dropout": getattr(params, "dropout", 0.0), "has_dropout": hasattr(params, "dropout"),
            "kind": view.bundle.kind, "augment": view.train_pipe.random,
            "data_path": "in-memory" if view.in_memory(ds) else "streaming",
            "num_workers": cfg.data.num_workers, "pin_memory": cfg.data.pin_memory, "cpu_count": os.cpu_count() or 2,
            "output_activation": getattr(params, "output_activation", None),
            "pretrained": bool(getattr(params, "pretrained", False) or getattr(params, "weights", None)),
            "model": cfg.model.name}


def _monitor(trainer) -> Monitor | None:
    return next((h for h in trainer.hooks if isinstance(h, Monitor)), None)


# ----------------------------------------------------------------------------- the three entry points

def epoch_hooks(cfg, out: Path, view) -> list:
    """Hooks `fn(trainer, record)` run after every epoch (TensorBoard logging, live diagnostics)."""
    return [Monitor(cfg, out, view)]


def plot_helpers() -> forked.Helpers:
    """Two processes that import matplotlib now, while the run loads its data on one core, and draw its plots at
    the end (`finalize`)."""
    return forked.Helpers(2, warm=_plots().warm_up)


def finalize(out: Path, trainer, view, result: dict, helpers: forked.Helpers | None = None) -> None:
    """After the test evaluation: the diagnosis into `result` (and the console), plots, report.html."""
    out = Path(out)
    mon = _monitor(trainer)
    diag = trainer.diagnosis
    result["diagnosis"] = diag.to_dict()
    jobs = run_plot_jobs(out, trainer.history, result, trainer.guide.grad_rms, layer_labels(trainer.model),
                         trainer.guide.activity)  # (function, *args), drawn below
    result.update(test_breakdown(trainer, view, out, jobs))
    result["activity"] = rounded(trainer.guide.activity[-1]) if trainer.guide.activity else {}
    result["data"] = data_overview(view, out)
    if trainer.task == "classification":
        result["mistakes"] = val_mistakes(trainer, view, out)
    # every torch pass is done: two helpers now draw half the plots each, one core each
    helpers = helpers if helpers is not None else plot_helpers()  # (torchrun's main rank: forked only now)
    helpers.run([jobs[::2], jobs[1::2]])  # alternate: the two halves take about as long
    result["plots"] = sorted(p.name for p in out.glob("*.png"))
    if mon is not None:
        if mon.writer is not None:  # None when no epoch ran in this process (a resumed, finished run)
            _log_final(mon, out, result)
        mon.close()
    report.write_report(out, result)
    for line in diag.lines():
        trainer.guide.say(line)
    trainer.guide.say(f"report: {out / 'report.html'}")


def on_failure(out: Path, trainer, error: Exception) -> None:
    """Training stopped with an error (e.g. a non-finite loss): record what can be diagnosed."""
    try:
        _record_failure(Path(out), trainer, error)
    except Exception as e:  # the training error is what the user must see, not this one
        print_progress(f"warning: could not write the failure diagnosis: {type(e).__name__}: {e}", warning=True)


def _record_failure(out: Path, trainer, error: Exception) -> None:
    diag = trainer.diagnosis  # the guide recorded the failure (step, epoch, layer) when fit stopped
    history = trainer.history
    if history:
        write_history(out / "history.csv", history)
    result = {"error": str(error), "test": {}, "diagnosis": diag.to_dict(), "best_epoch": trainer.best_epoch,
              "epochs_run": len(history), "monitor": trainer.monitor, "best_value": trainer.best_value,
              "stopped_early": False, "final": history[-1] if history else {}, "run_dir": str(out)}
    mon = _monitor(trainer)
    result["plots"] = run_plots(out, history, result, trainer.guide.grad_rms, layer_labels(trainer.model))
    if mon is not None:
        mon.close()
    report.write_report(out, result)
    write_json(out / "result.json", result)
    for line in diag.lines():
        trainer.guide.say(line)


# ----------------------------------------------------------------------------- finalize helpers

def test_breakdown(trainer, view, out: Path, later: list) -> dict:
    """Per-class metrics + confusion matrix (classification) or predictions-vs-actual (regression) on the
    test split, from one more pass over the same batches the test evaluation used (best weights). Its plots
    are appended to `later` as (function, *args), for the caller to draw."""
    batches = view.batches("test", trainer.device)
    if batches is None:
        return {}
    outputs, targets, _ = trainer.collect(batches)
    outputs, targets = outputs.cpu(), targets.cpu()
    bundle, plots = view.bundle, _plots()
    if trainer.task == "multilabel":
        return multilabel_breakdown(trainer, view, outputs.sigmoid().numpy(), targets.numpy(), out, later)
    if trainer.task != "classification" or targets.ndim != 1:
        later.append((plots.predictions_vs_actual, outputs, targets, out / "predictions.png", bool(bundle.ordered)))
        return {}
    classes = bundle.classes or [str(i) for i in range(outputs.shape[-1])]
    cm = confusion_matrix(outputs, targets).cpu()
    s = per_class_scores(cm)
    per_class = {c: {"precision": s["precision"][i], "recall": s["recall"][i], "f1": s["f1"][i],
                     "support": s["support"][i]} for i, c in enumerate(classes)}
    later += [(plots.confusion_matrix, cm, classes, out / "confusion_matrix.png"),
              (plots.per_class, per_class, out / "per_class.png")]
    return {"per_class": per_class, "confusion_matrix": cm.tolist()}


def data_overview(view, out: Path, samples: int = 8) -> dict:
    """The report's Data section: samples per split and class; for images with a random training pipeline,
    augmentation.png (the same training samples stored, in two draws of the pipeline, and evaluated)."""
    overview = {"sizes": preview.split_sizes(view), "class_counts": preview.split_counts(view)}
    if view.bundle.kind == "image":
        overview["augmentation"] = "augmentation.png" if view.train_pipe.random else "none"
        if view.train_pipe.random:
            data_page.strip_png(preview.augmentation_preview(view, samples), out / "augmentation.png")
    return overview


def val_mistakes(trainer, view, out: Path, k: int = 8) -> dict:
    """The report's Mistakes section: the validation split's top-k losses (mistakes.png for images) and most
    confused class pairs, from one more pass over the validation batches (best weights, no random numbers)."""
    batches = view.batches("val", trainer.device)
    if batches is None:
        return {}
    outputs, targets, _ = trainer.collect(batches)
    if targets.ndim != 1:
        return {}
    labels = targets.long().cpu()
    losses = torch.nn.functional.cross_entropy(outputs.cpu(), labels, reduction="none")
    p = mistakes.SplitPredictions(view.data, "pool", np.asarray(view.val_idx), labels.numpy(),
                                  outputs.cpu().softmax(-1).numpy(), losses.numpy())
    classes = view.bundle.classes or [str(i) for i in range(outputs.shape[-1])]
    found, top = mistakes.summary(p, classes, k)
    if mistakes.mistakes_png(top, out / "mistakes.png") is not None:
        found["image"] = "mistakes.png"
    return found


def multilabel_breakdown(trainer, view, probs, targets, out: Path, later: list) -> dict:
    """Per-label metrics on the test split at thresholds chosen on the validation split (0.5 without one)."""
    from trainlab.core.multilabel import best_thresholds, per_label  # optional heavy dependency: scikit-learn

    val = view.batches("val", trainer.device)
    thresholds = np.full(probs.shape[1], 0.5)
    if val is not None:
        val_out, val_y, _ = trainer.collect(val)
        thresholds = best_thresholds(val_out.sigmoid().cpu().numpy(), val_y.cpu().numpy())
    per_class = per_label(probs, targets, thresholds, view.bundle.classes)
    later.append((_plots().per_class, per_class, out / "per_class.png"))
    macro = float(np.mean([m["f1"] for m in per_class.values()]))
    return {"per_class": per_class, "thresholds": "chosen on the validation split" if val is not None else "0.5",
            "test_f1_at_thresholds": macro}


def run_plot_jobs(out: Path, history: list[dict], result: dict, grad_rms: list[dict],
                  labels: dict[str, str] | None = None, activity: list[dict] | None = None) -> list[tuple]:
    """Learning curves, gradient norms and activation distributions, as (function, *args) to draw."""
    plots = _plots()
    over = result.get("diagnosis", {}).get("checks", {}).get("overfitting", {})
    jobs = []
    if history:
        jobs.append((plots.learning_curves, history, out / "curves.png", result.get("monitor") or "val_loss",
                     result.get("best_epoch"), bool(result.get("stopped_early")), over.get("since_epoch"), out.name))
    if any(grad_rms):
        jobs.append((plots.gradient_norms, grad_rms, out / "gradients.png", labels))
    if activity and activity[-1]:
        jobs.append((plots.activation_distributions, activity, out / "activations.png"))
    return jobs


def draw_all(jobs: list[tuple]) -> None:
    for draw, *args in jobs:
        draw(*args)


def run_plots(out: Path, history: list[dict], result: dict, grad_rms: list[dict],
              labels: dict[str, str] | None = None, activity: list[dict] | None = None) -> list[str]:
    """Draw the run_plot_jobs here; returns every PNG in the run directory."""
    draw_all(run_plot_jobs(out, history, result, grad_rms, labels, activity))
    return sorted(p.name for p in out.glob("*.png"))


def rounded(stats: dict[str, dict]) -> dict[str, dict]:
    """activation_stats with 4 significant digits: diagnostics.jsonl and result.json stay small and readable."""
    def r(v):
        return float(f"{v:.4g}") if isinstance(v, float) else [r(x) for x in v] if isinstance(v, list) else v
    return {name: {k: r(v) for k, v in row.items()} for name, row in stats.items()}


def _log_final(mon: Monitor, out: Path, result: dict) -> None:
    """Config + final metrics to TensorBoard's HPARAMS tab, so runs under one directory compare there."""
    cfg_path = out / "config.yaml"
    hparams = yaml.safe_load(cfg_path.read_text()) if cfg_path.is_file() else {}
    metrics = {f"test_{k}": v for k, v in result.get("test", {}).items()}
    if result.get("best_value") is not None:
        metrics[f"best_{result.get('monitor', 'value')}"] = result["best_value"]
    if mon.writer is None:  # --resume of a run whose epochs were all done: no epoch opened the writer
        mon.writer = tb.open_writer(out / "tb")
    tb.log_hparams(mon.writer, hparams, metrics)


def _plots():

    return plots
