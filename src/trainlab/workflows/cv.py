"""`trainlab cv CONFIG --folds K`: K-fold cross-validation on the training pool; the test split is never touched.

    trainlab cv examples/digits-mlp.yaml --folds 5 --out runs/digits-cv
    trainlab cv my-table.yaml --folds 5 --group patient_id     # csv: one patient's rows stay in one fold
    trainlab cv examples/digits-mlp.yaml --folds 5 --jobs 2    # folds in parallel processes

The pool is everything but the test split. Each fold trains a fresh model, optimizer and scheduler seeded
with seed + fold, fits normalization on that fold's training part only and keeps its own history; the
fold's score is its validation part evaluated with the fold's best weights. result.json holds `folds`
(metrics and validation indices of each) plus `mean` and `std` (sample std, ddof=1) of every metric.
"""
from __future__ import annotations

import dataclasses
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np

from trainlab.core.checkpoint import seed_everything
from trainlab.core.device import select_device
from trainlab.core.errors import UserError
from trainlab.core.files import make_dir, write_history, write_json, write_text
from trainlab.core.machine import physical_cores
from trainlab.core.report import Reporter, print_progress
from trainlab.core.schema import to_dict
from trainlab.data.base import targets_of
from trainlab.data.images import skipped_said_once
from trainlab.data.options import FOLD_SPLITTERS
from trainlab.data.prepare import load_data
from trainlab.data.splits import fold_splits
from trainlab.data.tabular import read_table
from trainlab.engine.trainer import Trainer
from trainlab.models.catalog import build_model
from trainlab.observe.tracking import Tracking, open_tracker
from trainlab.run.config import Config, TrackConfig, build_config, dump_config
from trainlab.run.directory import manifest, prepare_run_dir
from trainlab.workflows.checks import check_fit
from trainlab.workflows.label_issues import label_issues, out_of_fold, val_probabilities, write_label_issues
from trainlab.workflows.track import cv_metrics, fold_logger
from trainlab.workflows.train import configure_torch, dry_run_view, epoch_line

CV_FILES = ("config.yaml", "manifest.json", "result.json", "oof.npz", "label_issues.html")
SPLITS = ("auto", *FOLD_SPLITTERS)
MAX_FOLDS, MAX_JOBS = 1000, 256  # = the CLI's bounds on --folds and --jobs (cli/arguments.py)


def run_cv(cfg: Config, out: Path, folds: int, split: str = "auto", group: str | None = None, jobs: int = 1,
           overwrite: bool = False, verbose: bool = False, dry_run: bool = False, argv: list[str] | None = None,
           report: Reporter = print_progress, keep: tuple[Path, ...] = (), track: TrackConfig | None = None) -> dict:
    """`trainlab cv`: K folds into `out` (config.yaml, manifest.json, fold-<k>/, label_issues.html); the result
    that the CLI prints and writes to out/result.json. `keep`: files --overwrite must never remove (the config
    file being used; the data paths are added). `track`: where the CV is logged besides `out` (MLflow: a
    parent run with a child per fold; its `mlflow` entry says where); None: the config's track section."""
    if not 2 <= folds <= MAX_FOLDS or not 1 <= jobs <= MAX_JOBS:  # before anything is read or written
        raise UserError(f"--folds must be 2..{MAX_FOLDS} and --jobs 1..{MAX_JOBS}, got {folds} and {jobs}")
    cfg.track = track or cfg.track  # config.yaml records it: `trainlab track` and a rerun log to the same place
    if group:
        exclude_group_feature(cfg, group)  # before the config is saved: config.yaml shows the features used
    data = load_data(cfg)
    check_fit(cfg, data.view(data.splits.train, data.splits.val))  # before anything is written to --out
    prepare_out(out, cfg, overwrite, keep)
    own = (*CV_FILES, *(f"fold-{i + 1}" for i in range(folds)))  # what --overwrite may remove later
    write_json(out / "manifest.json", manifest(cfg, select_device(cfg.train.device), argv or [], "cv", own))
    tracked = Tracking(cfg, out, tracker=open_tracker(cfg.track),  # MLflow (track.mlflow): a child run per fold
                       params={"cv.folds": folds, "cv.split": split})
    with tracked.failing():
        result = cross_validate(cfg, folds, split, group, jobs, out, verbose=verbose, dry_run=dry_run,
                                report=report, keep_oof=True, data=data, on_fold=fold_logger(tracked.run, out),
                                live=True)
        oof, bundle = result.pop("oof", None), result.pop("bundle")
        if oof is not None:  # classification: every pool sample scored by the fold that did not train on it
            result["label_issues"] = label_issues(bundle, oof)
            write_label_issues(out, bundle, oof, result["label_issues"])
        if tracked.run:  # MLflow logs out/result.json as an artifact; the CLI rewrites it with where it was logged
            write_json(out / "result.json", result)
    return tracked.finish(result, cv_metrics(result))


def prepare_out(out: Path, cfg, overwrite: bool, keep: tuple[Path, ...] = ()) -> None:
    """A fresh output directory holding config.yaml; an existing non-empty one needs --overwrite (which removes
    only what its manifest lists, never `keep`)."""
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise UserError(f"--out {out} is not empty; pass --overwrite to replace it")
    prepare_run_dir(out, cfg, overwrite=True, keep=keep)
    write_text(out / "config.yaml", dump_config(cfg))


# ----------------------------------------------------------------------------- fold assignment

def exclude_group_feature(cfg, column: str) -> None:
    """--group COLUMN: csv only; the group id identifies rows and must not become an input feature."""
    if cfg.data.name != "csv":
        raise UserError(f"--group needs csv data (data.name: csv), not {cfg.data.name!r}")
    p = cfg.data.params
    columns = list(read_table(p.path).columns)
    target = p.target or columns[-1]
    if column not in columns or column == target:
        raise UserError(f"--group {column!r} is not a feature column of {p.path}; columns: {', '.join(columns)}")
    if p.features is None:
        p.features = [c for c in columns if c not in (target, column)]
    elif column in p.features:
        raise UserError(f"--group {column!r} is also listed in data.features; a group id must not be a feature")


def group_codes(cfg, column: str, n_rows: int) -> np.ndarray:
    """Integer group id (n_rows,) of every pool row, read from the CSV with the loader's row filtering."""
    import pandas as pd  # optional heavy dependency: imported on use


    p = cfg.data.params
    df = read_table(p.path)
    if p.missing == "drop":  # the csv loader drops these rows too, so positions stay aligned
        df = df.dropna(subset=[*p.features, p.target or df.columns[-1]])
    if df[column].isna().any():
        raise UserError(f"missing value in group column {column!r} of {p.path}")
    if len(df) != n_rows:
        raise UserError(f"{p.path} has {len(df)} usable rows but the dataset has {n_rows}; cannot align --group")
    return pd.factorize(df[column])[0]


def choose_method(bundle, cfg, split: str, group: str | None) -> str:
    """--split auto: time order for sequences, groups when given, stratified for classification, else kfold."""
    if split == "auto":
        if bundle.ordered:
            return "time"
        if group:
            return "group"
        return "stratified" if bundle.task == "classification" and cfg.data.stratify else "kfold"
    if split == "group" and not group:
        raise UserError("--split group needs --group COLUMN")
    if bundle.ordered and split != "time":
        raise UserError(f"--split {split} would validate on the past with a model trained on the future; "
                        f"this dataset is a time series: use --split time")
    if split == "stratified" and bundle.task != "classification":
        raise UserError("--split stratified needs a classification dataset; use --split kfold")
    return split


def plan_folds(data, k: int, split: str = "auto", group: str | None = None,
               report: Reporter = print_progress) -> tuple[str, list[tuple[np.ndarray, np.ndarray]]]:
    """(method, [(train_idx, val_idx)] * k) over `data.pool_indices()`."""
    cfg, bundle, pool = data.cfg, data.bundle, data.pool_indices()
    method = choose_method(bundle, cfg, split, group)
    labels = targets_of(bundle.pool).numpy()[pool] if method == "stratified" else None
    groups = None
    if group:
        codes = group_codes(cfg, group, len(bundle.pool))
        groups = codes[pool]
        test = data.splits.test
        shared = len(np.intersect1d(codes[test], groups)) if test is not None else 0
        if shared:
            report(f"warning: {shared} groups of {group!r} have rows in both the test split and the pool; give a "
                f"group-disjoint test file as data.test_path for an honest test score")
    # windowed series: a training window whose targets reach into the validation fold's targets would leak them
    meta = bundle.meta
    gap = (meta.get("horizon", 1) - 1) // meta.get("stride", 1) if method == "time" else 0
    return method, fold_splits(pool, k, method, cfg.seed, labels, groups, gap)


# ----------------------------------------------------------------------------- one fold

def fit_view(cfg, view, seed: int, device, hooks=(), run_dir: Path | None = None, bar: bool = False):
    """A fresh model and Trainer (seeded with `seed`) fitted on the view's train part; returns the trainer.
    `bar`: the Trainer's live bar of the epoch's batches (shown in a terminal only); its guide stays quiet either
    way (K folds or trials would repeat its pitfalls and diagnosis K times)."""
    check_fit(cfg, view)  # per fold: a tuning trial's settings meet the data here
    seed_everything(seed)
    model = build_model(cfg.model, view.input_shape, view.bundle.num_outputs, **view.model_info)
    settings = dataclasses.replace(cfg.train, verbose=False)
    trainer = Trainer(model, settings, seed=seed, task=view.bundle.task, run_dir=run_dir, hooks=hooks,
                      progress=None if bar else False)
    trainer.fit(view.batches("train", device), view.batches("val", device), cfg.train.epochs)
    return trainer


def run_fold(data, fold: int, train_idx: np.ndarray, val_idx: np.ndarray, fold_dir: Path | None = None,
             hooks=(), verbose: bool = False, dry_run: bool = False, report: Reporter = print_progress,
             k: int | None = None, bar: bool = False) -> dict:
    """Train fold `fold` (seed = seed + fold) and score its validation part with the best weights.
    `verbose`: report each epoch's line ("fold 2/5  epoch 3/10 ..."); `bar`: the live bar of each epoch."""
    cfg, t0 = data.cfg, time.perf_counter()
    view = data.view(train_idx, val_idx)  # normalization fitted on train_idx only
    if dry_run:
        view = dry_run_view(view, cfg)
    if verbose:
        name = f"fold {fold + 1}/{k}" if k else f"fold {fold + 1}"
        hooks = [*hooks, lambda tr, rec: report(f"{name}  " + epoch_line(tr, rec, cfg.train.epochs))]
    device = select_device(cfg.train.device)
    trainer = fit_view(cfg, view, cfg.seed + fold, device, hooks, bar=bar)
    metrics = {f"val_{k}": v for k, v in trainer.evaluate(view.batches("val", device)).items()}
    probs = val_probabilities(trainer.model, view.batches("val", device)) if view.bundle.task == "classification" \
        else None
    if fold_dir is not None:
        make_dir(fold_dir)
        write_history(fold_dir / "history.csv", trainer.history)
    return {"fold": fold, "train_size": len(view.train_idx), "val_size": len(view.val_idx), "metrics": metrics,
            "best_epoch": trainer.best_epoch, "epochs_run": len(trainer.history),
            "stopped_early": trainer.stopped_early, "time": time.perf_counter() - t0,
            "val_indices": [int(i) for i in view.val_idx], "eval_transforms": view.eval_pipe.state(),
            "val_probs": probs}


def _fold_job(job: dict) -> dict:
    """One fold in a worker process: it rebuilds config and data (cheap next to training) from plain values."""


    cfg = build_config(job["config"])
    cfg.train.num_threads = job["threads"]  # N workers share the cores instead of each taking all of them
    configure_torch(cfg)
    with skipped_said_once(muted=True):  # the parent said what an image folder's listing skipped
        data = load_data(cfg)
    return run_fold(data, job["fold"], job["train"], job["val"], job["dir"], dry_run=job["dry_run"])


# ----------------------------------------------------------------------------- all folds

def cross_validate(cfg, k: int, split: str = "auto", group: str | None = None, jobs: int = 1,
                   out: Path | None = None, on_fold=None, verbose: bool = False, dry_run: bool = False,
                   report: Reporter = print_progress, keep_oof: bool = False, data=None, live: bool = False) -> dict:
    """Run K folds (in `jobs` processes) and return {method, folds, mean, std, time}.

    A line as each fold ends; with `live` (trainlab cv) also each epoch as train reports it: in a terminal the
    live bar of its batches, in a log or pipe one line per epoch ("fold 2/5  epoch 3/10 ..."), as Keras'
    verbose="auto" does, so a redirected cv is not silent for a whole fold. `verbose`: epoch lines everywhere.

    keep_oof: also return "oof" (classification: out-of-fold probabilities of every pool sample, see
    workflows.label_issues.out_of_fold; None otherwise) and "bundle" (the data, to describe samples).
    `data`: the config's loaded data when the caller already has it (loaded here otherwise).

    `on_fold(entry, done)` runs as each fold finishes (tuning reports the running mean; it may raise to stop).
    """

    t0 = time.perf_counter()
    configure_torch(cfg)
    data = data or load_data(cfg)
    method, folds = plan_folds(data, k, split, group, report)
    dirs = [out / f"fold-{i + 1}" if out else None for i in range(len(folds))]
    done: list[dict] = []

    def finished(entry: dict) -> None:
        done.append(entry)
        report(fold_line(entry, len(folds)))
        if on_fold is not None:
            on_fold(entry, done)

    if jobs == 1:
        lines = verbose or (live and not sys.stdout.isatty())
        for i, (tr, va) in enumerate(folds):
            finished(run_fold(data, i, tr, va, dirs[i], verbose=lines, dry_run=dry_run, report=report, k=len(folds),
                              bar=live))
    else:
        _parallel(cfg, folds, dirs, jobs, dry_run, finished)
    done.sort(key=lambda e: e["fold"])
    mean, std = summarize(done)
    result = {"method": method, "k": len(folds), "pool_size": len(data.pool_indices()), "folds": done,
              "mean": mean, "std": std, "time": time.perf_counter() - t0}
    if keep_oof:
        result["bundle"] = data.bundle
        result["oof"] = out_of_fold(done, targets_of(data.bundle.pool).numpy()) \
            if data.bundle.task == "classification" else None
    for entry in done:  # arrays stay out of result.json
        del entry["val_probs"]
    return result


def _parallel(cfg, folds, dirs, jobs: int, dry_run: bool, finished) -> None:
    """Folds in `jobs` spawned processes (fork after torch started its thread pool can hang)."""



    # N workers share the physical cores instead of each taking all of them
    threads = physical_cores() // jobs if cfg.train.num_threads == "auto" else cfg.train.num_threads
    threads = max(1, threads)
    raw = to_dict(cfg)
    pool = ProcessPoolExecutor(min(jobs, len(folds)), mp_context=multiprocessing.get_context("spawn"))
    try:
        futures = [pool.submit(_fold_job, {"config": raw, "fold": i, "train": tr, "val": va, "dir": dirs[i],
                                           "threads": threads, "dry_run": dry_run})
                   for i, (tr, va) in enumerate(folds)]
        for future in as_completed(futures):
            finished(future.result())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def summarize(folds: list[dict]) -> tuple[dict, dict]:
    """Mean and sample standard deviation (ddof=1) of every metric over the folds."""
    keys = list(folds[0]["metrics"])
    values = {key: np.array([f["metrics"][key] for f in folds], dtype=float) for key in keys}
    mean = {key: float(v.mean()) for key, v in values.items()}
    std = {key: float(v.std(ddof=1)) if len(v) > 1 else 0.0 for key, v in values.items()}
    return mean, std


def fold_line(entry: dict, k: int) -> str:
    metrics = "  ".join(f"{key} {v:.4f}" for key, v in entry["metrics"].items())
    return (f"fold {entry['fold'] + 1}/{k}  {metrics}  best epoch {entry['best_epoch']}/{entry['epochs_run']}  "
            f"{entry['time']:.1f}s")


def format_table(result: dict) -> str:
    """Per-fold table plus a `mean ± std` row, one column per metric."""
    width = {k: max(len(k), 15) for k in result["mean"]}

    def row(first: str, train: str, val: str, best: str, cells: dict) -> str:
        return f"{first:>10} {train:>6} {val:>5} {best:>5}  " + "  ".join(c.rjust(width[k]) for k, c in cells.items())

    rows = [row("fold", "train", "val", "best", {k: k for k in width})]
    for f in result["folds"]:
        rows.append(row(str(f["fold"] + 1), str(f["train_size"]), str(f["val_size"]), str(f["best_epoch"]),
                        {k: f"{f['metrics'][k]:.4f}" for k in width}))
    stats = {k: f"{result['mean'][k]:.4f} ± {result['std'][k]:.4f}" for k in width}
    rows.append(row("mean ± std", "", "", "", stats))
    return "\n".join(rows)
