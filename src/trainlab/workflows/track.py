"""`trainlab track RUN_DIR`: log a finished run directory to MLflow afterwards; the child runs of CV folds and
tuning trials.

    trainlab track runs/demo --mlflow http://127.0.0.1:5000 --experiment digits
    result = track_dir(Path("runs/demo"), "sqlite:///mlflow.db", None)

A run trained with tracking logs itself as it trains (observe/tracking.py). This command logs one that was not
(trained without track.mlflow, or while the server was unreachable) from its files: the config as parameters,
history.csv as per-epoch metrics, result.json's test metrics, the manifest's tags and the artifacts, exactly
what a tracked run logs. A `--seeds` directory becomes a parent run with one child run per seed.
"""
from __future__ import annotations

import math
from pathlib import Path

from trainlab.core.configfile import read_yaml
from trainlab.core.errors import UserError
from trainlab.core.files import read_run_json
from trainlab.observe.plots import read_history, read_result
from trainlab.observe.seeds import read_seeds
from trainlab.observe.tracking import (
    DEFAULT_EXPERIMENT,
    TrackedRun,
    Tracker,
    epoch_metrics,
    flat_params,
    log_files,
    numbers,
    outcome,
    resolve_uri,
    summary_metrics,
)
from trainlab.workflows.search_space import decode


def log_history(run: TrackedRun, history: list[dict]) -> None:
    """Every epoch's metrics at step=epoch (what the epoch hook logs during training)."""
    for record in history:
        run.metrics(epoch_metrics(record), int(record["epoch"]))


# ----------------------------------------------------------------------------- cv folds and tuning trials

def fold_logger(run: TrackedRun, out: Path | None):
    """`on_fold` for cross_validate: a child run per fold as it finishes, with its epoch history (fold-K/
    history.csv) and its score as fold_<metric>."""
    def log_fold(entry: dict, done: list[dict]) -> None:
        name = f"fold-{entry['fold'] + 1}"
        child = run.child(name, {"fold": entry["fold"] + 1, "train_size": entry["train_size"],
                                 "val_size": entry["val_size"], "best_epoch": entry["best_epoch"]})
        path = out / name / "history.csv" if out is not None else None
        if path is not None and path.is_file():
            log_history(child, read_history(path))
        child.metrics(numbers(entry["metrics"], "fold_"))
        child.end("FINISHED")

    return log_fold if run else None


def cv_metrics(result: dict) -> dict[str, float]:
    """The parent run of a CV: mean and std over the folds of every fold metric."""
    return summary_metrics({k: {"mean": result["mean"][k], "std": result["std"][k]} for k in result["mean"]})


def trial_logger(run: TrackedRun, metric: str, space: dict):
    """After each Optuna trial: a child run with its number, parameters, state (complete or pruned), value and
    the values it reported per epoch (or fold) as the objective metric's history."""
    def log_trial(trial) -> None:
        if not run:
            return
        params = decode(space, trial.params)  # the config values, not Optuna's labels of list choices
        child = run.child(f"trial-{trial.number:04d}", {**flat_params(params), "trial": trial.number})
        child.tags({"trial": trial.number, "state": trial.state.name.lower(), "objective": metric})
        for step, value in sorted(trial.intermediate_values.items()):
            child.metrics(numbers({metric: value}), step)
        if trial.value is not None and math.isfinite(trial.value):
            child.metrics({"value": float(trial.value)})
        child.end("FINISHED" if trial.state.name in ("COMPLETE", "PRUNED") else "FAILED")

    return log_trial if run else None


def tune_metrics(result: dict) -> dict[str, float]:
    """The parent run of a study: its best value and the final run's test metrics."""
    return {**numbers({"best_value": result.get("best_value")}), **numbers(result.get("test") or {}, "test_")}


# ----------------------------------------------------------------------------- trainlab track RUN_DIR

def track_dir(run_dir: Path, uri: str | None = None, experiment: str | None = None) -> dict:
    """Log a finished run directory (or a --seeds directory) to MLflow; returns {uri, experiment, run_id, runs}.

    uri: default the run's track.mlflow, else $MLFLOW_TRACKING_URI or sqlite:///mlflow.db; experiment: default
    the run's track.experiment, else "trainlab".
    """
    run_dir = Path(run_dir)
    seeds = read_seeds(run_dir) if not (run_dir / "config.yaml").is_file() else None
    first = run_dir / seeds["runs"][0] if seeds else run_dir
    if not (first / "config.yaml").is_file():
        raise UserError(f"{run_dir} is not a trainlab run directory (no config.yaml) nor a --seeds directory")
    made_by = read_run_json(first / "result.json") if (first / "result.json").is_file() else {}
    if "folds" in made_by or "n_trials" in made_by:  # their parent/child structure is logged only while they run
        raise UserError(f"{run_dir} is the output of `trainlab {'cv' if 'folds' in made_by else 'tune'}`; trainlab "
                        f"track logs training runs and --seeds directories (a study's OUT/final is a training run)")
    config = read_yaml(first / "config.yaml") or {}
    track = config.get("track") or {}
    uri = uri or resolve_uri(track.get("mlflow") or True)
    tracker = Tracker(uri, experiment or track.get("experiment") or DEFAULT_EXPERIMENT)
    if seeds:
        parent = tracker.open(run_dir.name, {**flat_params(config), "seeds": seeds["n"]}, run_dir=run_dir)
        for name in seeds["runs"]:
            log_one(parent.child(name, flat_params(read_yaml(run_dir / name / "config.yaml") or {}),
                                 run_dir=run_dir / name), run_dir / name)
        parent.metrics(summary_metrics(seeds["metrics"]))
        log_files(parent, run_dir)
        parent.end("FINISHED")
    else:
        parent = tracker.open(run_dir.name, flat_params(config), run_dir=run_dir)
        log_one(parent, run_dir)
    summary = tracker.close()
    if not summary["ok"]:
        raise UserError(f"could not log {run_dir} to MLflow at {uri}: {summary['error']}")
    return {**tracker.entry(parent.key), "run_dir": str(run_dir), "runs": len(summary["runs"])}


def log_one(run: TrackedRun, run_dir: Path) -> None:
    """One run directory's history, final metrics, tags and files; FAILED when its result.json says so."""
    if (run_dir / "history.csv").is_file():
        log_history(run, read_history(run_dir / "history.csv"))
    result = read_result(run_dir) if (run_dir / "result.json").is_file() else {}
    run.metrics(outcome(result))
    log_files(run, run_dir)
    run.end("FAILED" if result.get("error") or not result else "FINISHED")

