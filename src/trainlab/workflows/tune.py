"""`trainlab tune CONFIG --trials N`: Optuna search over the config's `tune` section; the test split is used once.

    trainlab tune examples/digits-tune.yaml --trials 20                  # study in runs/digits-tune-tune/study.db
    trainlab tune examples/digits-tune.yaml --trials 30                  # same study: 10 more trials
    trainlab tune cfg.yaml --trials 100 --storage postgresql://host/db   # run on several machines: one shared study

    tune:                                     # dotted key -> search space; keys are checked like overrides
      train.lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
      model.hidden: {type: categorical, choices: [[128], [256, 128]]}

`--trials N` is the study's target: trials run until it holds N finished (complete or pruned) trials, so
rerunning a command resumes it. Trials fit on train/val (or K folds with --cv K) with a seeded TPE sampler;
per-epoch (per-fold) reports prune bad trials. Then the best config is retrained on train+val for its best
epoch count and evaluated on the test split once, in OUT/final (a normal run directory, marked as tuned).
"""
from __future__ import annotations

import copy
import importlib.util
import json
import os
import socket
import time
import warnings
import zlib
from pathlib import Path

import numpy as np

from trainlab.core.device import select_device
from trainlab.core.errors import UserError
from trainlab.core.files import make_dir, write_json, write_text
from trainlab.core.metrics import default_metrics, higher_is_better
from trainlab.core.report import Reporter, print_progress, silent
from trainlab.core.schema import to_dict
from trainlab.data.images import skipped_said_once
from trainlab.data.prepare import LoadedData, load_data
from trainlab.engine.trainer import NonFiniteLoss
from trainlab.observe.tb import write_hparams
from trainlab.observe.tracking import Tracking, open_tracker
from trainlab.run.config import TrackConfig, build_config, dump_config
from trainlab.run.directory import manifest
from trainlab.workflows.checks import check_fit
from trainlab.workflows.cv import cross_validate, fit_view
from trainlab.workflows.search_space import parse_space, shown_url, suggest, trial_config
from trainlab.workflows.track import trial_logger, tune_metrics
from trainlab.workflows.train import configure_torch, dry_run_view
from trainlab.workflows.tune_results import retrain_best, summarize_study, write_reports

MAX_TRIALS = 100_000  # = the CLI's bound on --trials (cli/arguments.py)


def run_tune(raw: dict, out: Path, study_name: str, trials: int, storage: str, metric: str | None = None,
             cv: int | None = None, timeout: float | None = None, prune: bool = True, search_only: bool = False,
             dry_run: bool = False, argv: list[str] | None = None, report: Reporter = print_progress,
             track: TrackConfig | None = None) -> dict:
    """`trainlab tune`: search `trials` trials of the raw config's `tune` space in the study at `storage`, then
    retrain the best config into out/final (unless `search_only`); the result the CLI prints and writes to
    out/result.json. Raises Interrupted (the finished trials are kept in `storage`) on SIGINT/SIGTERM.
    `track`: where the study is logged besides `out` (MLflow: a parent run, a child per trial and the final run;
    the result's `mlflow` entry says where); None: the config's track section."""
    import optuna  # optional heavy dependency: imported on use

    if not 1 <= trials <= MAX_TRIALS:  # the CLI's bound (cli/arguments.py), for callers of run_tune
        raise UserError(f"--trials must be a whole number from 1 to {MAX_TRIALS}, got {trials}")
    with skipped_said_once():  # an image folder's "skipped N files" line: once, not once per trial
        cfg = build_config(copy.deepcopy(raw))
        cfg.track = track or cfg.track  # OUT/config.yaml records it: `trainlab track` logs to the same place
        space = parse_space(raw, cfg.tune)
        data = SameData()
        metric = objective_metric(cfg, metric, cv, data.load)
        make_dir(out)
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # our own one line per trial instead
        t0 = time.perf_counter()
        study = open_study(storage, study_name, cfg, metric, cv, prune)
        for number, worker in fail_abandoned_trials(study):
            report(f"trial {number} was left running by a worker that is gone ({worker}); marked failed")
        params = {"tune.trials": trials, "tune.metric": metric, "tune.cv": cv, "tune.study": study_name}
        tracked = Tracking(cfg, out, tracker=open_tracker(cfg.track), params=params)  # MLflow: a child per trial
        with tracked.failing():  # Interrupted too: the MLflow run is marked FAILED, the study keeps its trials
            search(study, make_objective(raw, space, metric, cv, dry_run, out / "tb", data.load),
                   min(trials, 2) if dry_run else trials, timeout, "fold" if cv else "epoch", report,
                   on_trial=trial_logger(tracked.run, metric, space))
            result = summarize_study(study, space, metric, cv, storage)
            result["param_importances"] = write_reports(study, out, cfg.seed)
            if not search_only:  # the final run is a child of the study's MLflow run
                result.update(retrain_best(raw, study, space, out / "final", result, dry_run, argv, report,
                                           tracked.run))
            result["time"] = time.perf_counter() - t0
            write_provenance(out, cfg, result.get("test_evaluations", 0), argv or [])
            if tracked.run:  # MLflow logs out/result.json as an artifact; the CLI rewrites it with where it went
                write_json(out / "result.json", result)
        return tracked.finish(result, tune_metrics(result))


def format_best(result: dict) -> str:
    """'best val_accuracy 0.9611 (trial 7): train.lr=0.003, ...' - the search's answer in one line."""
    return f"best {result['metric']} {result['best_value']:.4f} (trial {result['best_trial']}): " \
           f"{_params(result['best_params'])}"


# what tune writes into OUT (a later --overwrite of OUT may remove exactly these)
TUNE_FILES = ("config.yaml", "manifest.json", "study.db", "trials.csv", "optimization_history.png",
              "param_importances.png", "tb", "final", "result.json")


def write_provenance(out: Path, cfg, test_evaluations: int, argv: list[str]) -> None:
    """OUT/config.yaml and manifest.json of the latest command (test evaluations happen in OUT/final)."""
    write_text(out / "config.yaml", dump_config(cfg))
    m = manifest(cfg, select_device(cfg.train.device), argv, "tune", TUNE_FILES)
    write_json(out / "manifest.json", {**m, "test_evaluations": test_evaluations})


# ----------------------------------------------------------------------------- objective

def objective_metric(cfg, metric: str | None, cv: int | None, load=load_data) -> str:
    """The validation key to optimize (default train.monitor), checked against what the trainer reports."""
    metric = metric or (cfg.train.monitor if cfg.train.monitor.startswith("val_") else "val_loss")
    data = load(cfg)
    check_fit(cfg, data.view(data.splits.train, data.splits.val))  # before the study and --out are created
    task = data.bundle.task
    names = default_metrics(task) if cfg.train.metrics == "auto" else cfg.train.metrics
    allowed = ["val_loss", *(f"val_{m}" for m in names)]
    if metric not in allowed:
        raise UserError(f"bad value for --metric: {metric!r}; choose from: {', '.join(allowed)}")
    if cv is not None and cv < 2:
        raise UserError(f"--cv must be >= 2, got {cv}")
    if cv is None and cfg.data.val_fraction == 0:
        raise UserError("tuning needs validation data: set data.val_fraction > 0 or use --cv K")
    return metric


# what the loaded samples and the splits depend on; the rest of `data` (batch sizes, loaders, transforms) is
# applied later by the DataView, from the trial's own config
READ_KEYS = ("name", "root", "download", "params", "val_fraction", "test_fraction", "stratify")


class SameData:
    """`load(cfg)` -> LoadedData for a trial: when the dataset, its options, the split fractions and the seed are
    those of the previous load, the samples and splits read then are reused (an image folder is listed and its
    files opened once per study, not once per trial); the trial's own config still builds every view from them.
    Only the last one is kept: a search over data.params reads each trial's data, as before."""

    def __init__(self):
        self.key: str | None = None
        self.data: LoadedData | None = None

    def load(self, cfg) -> LoadedData:
        section = to_dict(cfg.data)
        key = json.dumps({"seed": cfg.seed, **{k: section.get(k) for k in READ_KEYS}}, sort_keys=True, default=str)
        if key != self.key or self.data is None:
            self.key, self.data = key, load_data(cfg)
        return LoadedData(cfg, self.data.bundle, self.data.splits)


# ----------------------------------------------------------------------------- objective

def make_objective(raw: dict, space: dict, metric: str, cv: int | None, dry_run: bool = False,
                   tb_dir: Path | None = None, load=load_data):
    """objective(trial) -> validation value; never evaluates the test split. With `tb_dir`, each completed
    trial's parameters and value go to tb_dir/trial-NNNN (TensorBoard's HPARAMS tab compares them).
    `load(cfg)`: a trial's data (SameData.load reuses what the previous trial read)."""
    import optuna  # optional heavy dependency: imported on use

    worker = f"{socket.gethostname()}:{os.getpid()}"

    def objective(trial) -> float:
        trial.set_user_attr("worker", worker)  # first: a later run can tell that a killed trial's worker is gone
        values = suggest(trial, space)
        cfg = trial_config(raw, values)
        try:
            value, best_epoch = (cv_value(cfg, trial, metric, cv, dry_run, load) if cv
                                 else split_value(cfg, trial, metric, dry_run, load))
        except NonFiniteLoss as e:  # a diverging config is a bad trial, not a broken search
            trial.set_user_attr("diverged", str(e))
            raise optuna.TrialPruned(str(e)) from None
        trial.set_user_attr("best_epoch", best_epoch)
        if tb_dir is not None:

            write_hparams(tb_dir / f"trial-{trial.number:04d}", values, {metric: value, "best_epoch": best_epoch})
        return value

    return objective


def split_value(cfg, trial, metric: str, dry_run: bool = False, load=load_data) -> tuple[float, int]:
    """Fit on train, report `metric` every epoch (pruning), return its value at the best epoch."""
    import optuna  # optional heavy dependency: imported on use

    configure_torch(cfg)
    data = load(cfg)
    view = data.view(data.splits.train, data.splits.val)
    if dry_run:
        view = dry_run_view(view, cfg)
    pruned: list[int] = []

    def report(trainer, record: dict) -> None:
        trial.report(record[metric], record["epoch"])
        if trial.should_prune():
            trainer.stop = True  # the loop ends after this epoch; the trial is marked pruned below
            pruned.append(record["epoch"])

    trainer = fit_view(cfg, view, cfg.seed, select_device(cfg.train.device), hooks=[report])
    if pruned:
        raise optuna.TrialPruned(f"pruned at epoch {pruned[0]}")
    return trainer.history[trainer.best_epoch - 1][metric], trainer.best_epoch


def cv_value(cfg, trial, metric: str, k: int, dry_run: bool = False, load=load_data) -> tuple[float, int]:
    """K-fold mean of `metric`; the running mean is reported after each fold so bad trials stop early."""
    import optuna  # optional heavy dependency: imported on use

    def report(entry: dict, done: list[dict]) -> None:
        trial.report(float(np.mean([f["metrics"][metric] for f in done])), len(done))
        if trial.should_prune():
            raise optuna.TrialPruned(f"pruned after fold {len(done)}")

    result = cross_validate(cfg, k, on_fold=report, dry_run=dry_run, report=silent, data=load(cfg))
    return result["mean"][metric], round(float(np.mean([f["best_epoch"] for f in result["folds"]])))



# ----------------------------------------------------------------------------- study

def resolve_storage_url(url: str) -> str:
    """postgresql:// -> the installed driver: SQLAlchemy 2.1 defaults to psycopg 3, many setups have psycopg2."""
    if not url.startswith("postgresql://"):
        return url
    for module, dialect in (("psycopg", "postgresql+psycopg://"), ("psycopg2", "postgresql+psycopg2://")):
        if importlib.util.find_spec(module):
            return dialect + url[len("postgresql://"):]
    raise UserError("--storage postgresql:// needs a driver: pip install psycopg2-binary (or psycopg[binary])")


SCHEMA_ATTEMPTS = 5  # tries to open a server storage while other workers create its tables


def _storage(url: str):

    import optuna  # optional heavy dependency: imported on use
    from sqlalchemy.exc import (  # optional heavy dependency: imported on use
        ArgumentError,
        IntegrityError,
        ProgrammingError,
        SQLAlchemyError,
    )

    if url == "in-memory":
        return optuna.storages.InMemoryStorage()
    url = resolve_storage_url(url)
    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    for attempt in range(SCHEMA_ATTEMPTS):
        try:  # heartbeats let a later run fail the RUNNING trials of a worker that died
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(url, engine_kwargs=kwargs, heartbeat_interval=30, grace_period=120)
        except (IntegrityError, ProgrammingError):
            # workers started together on an empty database race to create Optuna's tables; PostgreSQL lets one
            # win and fails the others (duplicate pg_type / relation): the tables exist now, so try again
            if attempt == SCHEMA_ATTEMPTS - 1:
                raise UserError(f"cannot create the study tables in {shown_url(url)}: other workers kept "
                                f"creating them at the same time; start the workers again") from None
            time.sleep(0.2 * (attempt + 1))
        except (ArgumentError, SQLAlchemyError, ImportError, ValueError) as e:
            raise UserError(f"cannot open --storage {shown_url(url)}: {str(e).splitlines()[0]}") from None


def sampler_seed(seed: int, n_trials: int, url: str) -> int:
    """Mix the config seed with the trials so far (a resumed search must not replay its first proposals) and, for
    a server study shared by workers, the worker's host and pid (or all workers propose the same startup points)."""


    parts = [seed % 2**32, n_trials]
    if not (url.startswith("sqlite") or url == "in-memory"):
        parts += [os.getpid(), zlib.crc32(socket.gethostname().encode())]
    return int(np.random.SeedSequence(parts).generate_state(1)[0])


def open_study(url: str, name: str, cfg, metric: str, cv: int | None, prune: bool = True):
    """Create or resume study `name`; refuse to mix trials of a different config or objective."""
    import optuna  # optional heavy dependency: imported on use


    storage = _storage(url)
    direction = "maximize" if higher_is_better(metric) else "minimize"
    config = {k: v for k, v in to_dict(cfg).items() if k != "track"}  # where runs are logged is not the objective
    fingerprint = json.dumps({"config": config, "metric": metric, "cv": cv}, sort_keys=True)
    study = optuna.create_study(storage=storage, study_name=name, direction=direction, load_if_exists=True)
    saved = study.user_attrs.get("trainlab")
    if saved is None:
        study.set_user_attr("trainlab", fingerprint)
    elif saved != fingerprint:
        raise UserError(f"study {name!r} in {shown_url(url)} was made with another config, search space or objective; "
                        f"pass --study NEW_NAME or another --out")
    sampler = optuna.samplers.TPESampler(seed=sampler_seed(cfg.seed, len(study.trials), url))
    warmup = max(1, cfg.train.epochs // 5) if cv is None else 1
    pruner = optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=warmup) if prune \
        else optuna.pruners.NopPruner()
    return optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner)


def fail_abandoned_trials(study) -> list[tuple[int, str]]:
    """Mark FAIL the RUNNING trials whose worker process is gone (killed): one on this host whose pid is not
    alive, or is this process (which runs no trial yet). Other hosts' trials are left to Optuna's heartbeat
    (grace period), so a shared study never fails a trial another machine is still running."""
    from optuna.trial import TrialState  # optional heavy dependency: imported on use

    failed = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = t.user_attrs.get("worker")
        host, _, pid = str(worker).rpartition(":")
        if host != socket.gethostname() or not pid.isdigit() or _alive(int(pid)):
            continue
        try:
            study.tell(t.number, state=TrialState.FAIL)
        except ValueError:  # another worker failed it first
            continue
        failed.append((t.number, worker))
    return failed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def finished(study) -> list:
    from optuna.trial import TrialState  # optional heavy dependency: imported on use

    return [t for t in study.get_trials(deepcopy=False) if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]


def search(study, objective, n_trials: int, timeout: float | None = None, unit: str = "epoch",
           report: Reporter = print_progress, on_trial=None) -> None:
    """Run trials until the study holds `n_trials` finished ones (all workers together); `on_trial(trial)` runs
    after each (MLflow: a child run per trial)."""
    remaining = n_trials - len(finished(study))
    if remaining <= 0:
        report(f"study {study.study_name!r} already holds {len(finished(study))} finished trials; nothing to run")
        return

    def after_trial(study, trial) -> None:
        report(trial_line(trial, unit))
        if on_trial is not None:
            on_trial(trial)
        if len(finished(study)) >= n_trials:
            study.stop()  # another worker may have finished trials meanwhile

    study.optimize(objective, n_trials=remaining, timeout=timeout, callbacks=[after_trial])


def _params(values: dict) -> str:
    return "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())


def trial_line(trial, unit: str = "epoch") -> str:
    state = trial.state.name.lower()
    value = f"{trial.value:.4f}" if trial.value is not None else "-"
    step = f" after {unit} {trial.last_step}" if state == "pruned" and trial.last_step is not None else ""
    secs = trial.duration.total_seconds() if trial.duration else 0.0
    return f"trial {trial.number:>3} {state}{step}  value {value}  {_params(trial.params)}  {secs:.1f}s"
