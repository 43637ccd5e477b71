"""After a `trainlab tune` search: the summary, trials.csv, plots, and the one test evaluation of the best config.

    summarize_study(study, space, metric, cv, url)   # best_params, best_value, n_trials, ...
    write_reports(study, out, seed)                  # trials.csv, optimization_history.png, param_importances.png
    retrain_best(raw, study, space, out / "final", summary)   # train+val -> test once, manifest marked tuned
"""
from __future__ import annotations

import io
from pathlib import Path

from trainlab.core.errors import UserError
from trainlab.core.files import write_bytes, write_text
from trainlab.core.report import Reporter, print_progress
from trainlab.data.prepare import load_data
from trainlab.observe.plots import read_result
from trainlab.observe.tracking import OFF, TrackedRun
from trainlab.run.config import dump_config
from trainlab.run.directory import mark_tuned, read_manifest, test_reuse_warning
from trainlab.workflows.search_space import decode, shown_url, trial_config
from trainlab.workflows.train import train_run


def summarize_study(study, space: dict, metric: str, cv: int | None, url: str) -> dict:
    from optuna.trial import TrialState  # optional heavy dependency: imported on use


    states = [t.state for t in study.get_trials(deepcopy=False)]
    complete = states.count(TrialState.COMPLETE)
    if not complete:
        raise UserError(f"no trial of study {study.study_name!r} completed (all pruned or failed); widen the "
                        f"search space, add epochs or pass --no-prune")
    best = study.best_trial
    return {"study": study.study_name, "storage": shown_url(url), "metric": metric, "cv": cv,
            "direction": study.direction.name.lower(), "n_trials": complete + states.count(TrialState.PRUNED),
            "n_complete": complete, "n_pruned": states.count(TrialState.PRUNED),
            "n_failed": states.count(TrialState.FAIL), "best_trial": best.number,
            "best_params": decode(space, best.params), "best_value": best.value,
            "best_epoch": best.user_attrs.get("best_epoch")}


# ----------------------------------------------------------------------------- reports

def write_reports(study, out: Path, seed: int) -> dict:
    """trials.csv and the two plots; returns the parameter importances ({} when they cannot be computed)."""
    write_text(out / "trials.csv", study.trials_dataframe().to_csv(index=False))
    plot_history(study, out / "optimization_history.png")
    importances = param_importances(study, seed)
    if importances:
        plot_importances(importances, out / "param_importances.png")
    return importances


def plot_history(study, path: Path) -> None:
    """Objective value of every completed trial and the best value so far."""
    from matplotlib.figure import Figure  # optional heavy dependency: imported on use
    from optuna.trial import TrialState  # optional heavy dependency: imported on use

    done = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    pick = max if study.direction.name == "MAXIMIZE" else min
    best, so_far = [], None
    for t in done:
        so_far = t.value if so_far is None else pick(so_far, t.value)
        best.append(so_far)
    fig = Figure(figsize=(6, 4), tight_layout=True)
    ax = fig.add_subplot()
    ax.plot([t.number for t in done], [t.value for t in done], "o", alpha=0.6, label="completed trial")
    ax.step([t.number for t in done], best, where="post", color="C3", label="best so far")
    ax.set(xlabel="trial", ylabel="objective", title=f"optimization history ({study.direction.name.lower()})")
    ax.legend()
    png = io.BytesIO()  # rendered in memory, written atomically
    fig.savefig(png, format="png", dpi=100)
    write_bytes(path, png.getvalue())


def param_importances(study, seed: int) -> dict[str, float]:
    """fANOVA importances (seeded); needs >= 2 completed trials whose values and parameters vary."""
    import optuna  # optional heavy dependency: imported on use

    try:
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=seed)
        return dict(optuna.importance.get_param_importances(study, evaluator=evaluator))
    except (ValueError, RuntimeError, ZeroDivisionError):  # too few or constant trials
        return {}


def plot_importances(importances: dict[str, float], path: Path) -> None:
    from matplotlib.figure import Figure  # optional heavy dependency: imported on use

    names = list(importances)[::-1]
    fig = Figure(figsize=(6, 0.6 * len(names) + 1.5), tight_layout=True)
    ax = fig.add_subplot()
    ax.barh(names, [importances[n] for n in names])
    ax.set(xlabel="importance (fANOVA, share of objective variance)", title="parameter importances")
    png = io.BytesIO()  # rendered in memory, written atomically
    fig.savefig(png, format="png", dpi=100)
    write_bytes(path, png.getvalue())


# ----------------------------------------------------------------------------- the one test evaluation

def final_config(raw: dict, values: dict, best_epoch: int | None):
    """Best values + train on train+val (val_fraction 0) for the best trial's epoch count, no early stopping."""
    cfg = trial_config(raw, values)
    cfg.data.val_fraction = 0.0
    cfg.train.epochs = best_epoch or cfg.train.epochs
    cfg.train.early_stopping = None
    cfg.train.monitor = "train_loss"  # nothing is held out any more
    return cfg


def retrain_best(raw: dict, study, space: dict, out: Path, summary: dict, dry_run: bool = False,
                 argv: list[str] | None = None, report: Reporter = print_progress, track: TrackedRun = OFF) -> dict:
    """Train the best config on train+val and evaluate the test split once into `out` (kept when unchanged);
    `track`: the study's MLflow run, which gets the final run as a child run."""
    tuned = {"study": summary["study"], "storage": summary["storage"], "trial": summary["best_trial"],
             "metric": summary["metric"], "value": summary["best_value"], "cv": summary["cv"]}
    old = read_manifest(out) if (out / "manifest.json").is_file() else {}
    if old.get("tuned") == tuned and (out / "result.json").is_file():
        report(f"the best trial is unchanged; reusing {out} (its test split is not evaluated again)")
        return {"test": read_result(out).get("test", {}), "final_run": str(out),
                "test_evaluations": old.get("test_evaluations", 1)}
    cfg = final_config(raw, summary["best_params"], summary["best_epoch"])
    if load_data(cfg).splits.to_json()["test"] != load_data(trial_config(raw, {})).splits.to_json()["test"]:
        raise RuntimeError("the final run's test split differs from the one the search held out")  # a trainlab bug
    if interrupted_final_run(out, old, cfg):  # killed last time: finish it (bit-exact), keep its test count
        report(f"resuming the interrupted final run in {out}")
        result = train_run(cfg, resume=out, argv=argv, dry_run=dry_run, quiet=True, track=track)
        n = mark_tuned(out, tuned)
    else:
        report(f"retraining the best config on train+val for {cfg.train.epochs} epochs -> {out}")
        result = train_run(cfg, out, overwrite=True, argv=argv, dry_run=dry_run, quiet=True, track=track)
        n = mark_tuned(out, tuned, earlier_test_evaluations(old, tuned["study"]))
    warning = test_reuse_warning(out, n)
    if warning:
        report(f"warning: {warning}", warning=True)
    return {"test": result["test"], "final_run": str(out), "test_evaluations": n}


def interrupted_final_run(out: Path, old: dict, cfg) -> bool:
    """`out` holds a final run of this very config that a kill stopped before it was marked tuned."""
    return bool(old) and "tuned" not in old and (out / "last.pt").is_file() and (out / "config.yaml").is_file() \
        and (out / "config.yaml").read_text() == dump_config(cfg)


def earlier_test_evaluations(old: dict, study: str) -> int:
    """Test evaluations of the final run being replaced that count for this study: those of an earlier final run
    of the same study, and those of one killed before it was marked tuned (its test split was looked at too)."""
    if "tuned" not in old or old["tuned"].get("study") == study:
        return old.get("test_evaluations", 0)
    return 0
