"""What each `trainlab` command does: read its arguments, call the workflow or `use` function, print.

The shape of every command (follow it for a new one): `def NAME(args) -> int` here is the only code that
reads the argparse namespace. It checks the arguments, calls ONE lower-layer entry point with typed
arguments (`run_x(config: Config, out: Path, folds: int, ..., report: Reporter = print_progress)`), which
returns a result (dict or dataclass) and prints nothing but progress through the `core.report.Reporter`
it is given. The handler here renders the result on the console and writes `--out DIR/result.json`.

Each handler imports its workflow when it runs (start-up time: workflows import torch, and `--help`,
`list` and config errors must not). Config files are read and validated here first, so a bad key is
reported before torch is imported.
"""
from __future__ import annotations

import copy
import sys
import time
from functools import partial
from pathlib import Path

from trainlab.cli.outputs import check_out_is_dir, write_result
from trainlab.core.configfile import apply_overrides, read_yaml
from trainlab.core.errors import Interrupted, UserError
from trainlab.core.metrics import METRICS
from trainlab.data.catalog import DATASETS, TRANSFORMS
from trainlab.engine.catalog import LOSSES, OPTIMIZERS, SCHEDULERS
from trainlab.models.activations import ACTIVATIONS
from trainlab.models.catalog import MODELS
from trainlab.observe.tracking import mlflow_line
from trainlab.run.config import build_config, load_config, read_run_config


def registries() -> dict:
    return {"datasets": DATASETS, "models": MODELS, "activations": ACTIVATIONS, "optimizers": OPTIMIZERS,
            "schedulers": SCHEDULERS, "losses": LOSSES, "metrics": METRICS, "transforms": TRANSFORMS}


def train(args) -> int:
    check_out_is_dir(args.out)
    seeds = args.seeds not in (None, 1)  # --seeds 1 is one ordinary run
    if seeds and args.resume:
        raise UserError("--seeds trains new runs and cannot --resume one; resume a seed's run directory "
                        "(OUT/seed-<s>) without --seeds, or start the seeds again with --overwrite")
    if args.resume:
        cfg = _resume_config(args)
    elif not args.config:
        raise UserError("train needs a CONFIG path (or --resume RUN_DIR)")
    elif "=" in args.config and not Path(args.config).exists():
        raise UserError(f"train needs a CONFIG file first, then key=value overrides; {args.config!r} is an override. "
                        f"Start from an example: trainlab train examples/image-folder.yaml data.path=photos "
                        f"(also csv-classification, csv-regression, text-csv; see README 'Your own data')")
    else:
        overrides = [*args.overrides, "train.deterministic=true"] if args.deterministic else args.overrides
        cfg = load_config(args.config, overrides)
    if seeds:
        return _train_seeds(cfg, args)
    from trainlab.workflows.train import train_run  # start-up time

    keep = (Path(args.config),) if args.config else ()  # --overwrite never removes the config being used
    result = train_run(cfg, args.out, args.resume, args.overwrite, sys.argv, args.dry_run, keep=keep)
    if not result:  # a torchrun worker other than rank 0: rank 0 reports
        return 0
    if result.get("note"):
        print(result["note"])
    if result.get("nothing_left"):  # --resume of a complete run: the note says so, nothing was run
        return 0
    if result.get("dry_run"):  # it printed what two batches tell; the test split waits for the real run
        print(f"dry run passed; run directory: {result['run_dir']}")
        return 0
    print(format_metrics("test", result["test"]))
    if result.get("baseline_comparison"):  # forecasting: does the model beat the naive forecasts?
        print(result["baseline_comparison"])
    print(f"best epoch {result['best_epoch']} of {result['epochs_run']}; run directory: {result['run_dir']}")
    print_mlflow(result)
    return 0


def print_mlflow(result: dict) -> None:
    """Where the run was logged (track.mlflow), when it was."""
    if result.get("mlflow"):
        print(mlflow_line(result["mlflow"]))


def track(args) -> int:
    from trainlab.workflows.track import track_dir  # start-up time

    result = track_dir(args.run_dir, args.mlflow, args.experiment)
    print(mlflow_line(result) + f" ({result['runs']} run{'s' if result['runs'] > 1 else ''})")
    return 0


def _train_seeds(cfg, args) -> int:
    """`train --seeds N`: N ordinary runs under --out and their mean ± std."""
    from trainlab.workflows.seeds import STD_IS, format_table, train_seeds  # start-up time

    keep = (Path(args.config),) if args.config else ()  # --overwrite never removes the config being used
    result = train_seeds(cfg, args.out, args.seeds, args.overwrite, sys.argv, args.dry_run, keep=keep,
                         track=cfg.track)
    print(format_table(result))
    print(f"{STD_IS}; {result['n']} run directories and report.html in {result['out']}")
    print_mlflow(result)
    return 0


def _resume_config(args):
    if args.config and "=" in args.config:  # `train --resume DIR train.epochs=20`: no CONFIG given
        args.overrides.insert(0, args.config)
    bad = [o for o in args.overrides if not o.startswith("train.epochs=")]
    if bad:
        raise UserError(f"--resume continues the saved config; only train.epochs may change, not {bad[0]!r}")
    if not (args.resume / "last.pt").is_file():
        raise UserError(f"nothing to resume in {args.resume}: no last.pt")
    return read_run_config(args.resume, args.overrides)


def evaluate(args) -> int:
    from trainlab.use.evaluate import evaluate_run  # start-up time

    check_out_is_dir(args.out)
    result = evaluate_run(args.run_dir, args.split)
    if result.get("warning"):
        print(f"warning: {result['warning']}", file=sys.stderr)
    print(format_metrics(args.split, result["metrics"]))
    write_result(args.out, result)
    return 0


def inspect(args) -> int:
    from trainlab.use.inspect import inspect_run  # start-up time

    if args.text is not None:
        if not (args.internals or args.attribution):
            raise UserError("--text is shown by --internals or --attribution; add one of them")
        from trainlab.use.text_views import check_text_request  # start-up time
        # before the test split is counted or anything is written
        warning = check_text_request(args.run_dir, args.text)
        if warning:
            print(f"warning: --text: {warning}", file=sys.stderr)
    extras = []
    if args.attribution:
        from trainlab.use.attribution import attribution_sections  # start-up time: imports captum
        extras.append(partial(attribution_sections, text=args.text))
    if args.internals:
        from trainlab.use.internals import internals_sections  # start-up time
        extras.append(partial(internals_sections, index=args.index, text=args.text))
    result = inspect_run(args.run_dir, args.split, args.top, args.out, extras)
    write_result(Path(result["out"]), {k: v for k, v in result.items() if k != "out"})
    if result.get("warning"):
        print(f"warning: {result['warning']}", file=sys.stderr)
    print(f"{args.split}: {result['errors']} of {result['samples']} misclassified, mean loss {result['mean_loss']:.4f}")
    for c in result["confused_pairs"]:
        print(f"  {c['true']} -> {c['predicted']}: {c['count']}")
    print(f"wrote {result['out']}/inspect.html")
    return 0


EXIT_SOME_INPUTS_FAILED = 3  # predict: the others were predicted; 1 stays "a bug in trainlab", 2 "bad usage"


def predict(args) -> int:
    """Exit 0: every input predicted; 3: some could not be (error rows); 2: none could, or bad arguments."""
    from trainlab.use.predict import predict_stream, save_predictions  # start-up time

    if args.top < 1:
        raise UserError(f"--top must be >= 1, got {args.top}")
    check_out_is_dir(args.out)
    # rows are shown and written as they are predicted: memory stays flat for inputs of any size
    rows = predict_stream(args.run_dir, args.files, args.top, args.trust_code)
    counts = save_predictions(rows, args.out, show=lambda row: print(format_row(row)))
    if counts["failed"]:
        print(f"warning: {counts['failed']} of {counts['inputs']} inputs could not be predicted (rows with 'error')",
              file=sys.stderr)
        return EXIT_SOME_INPUTS_FAILED
    return 0


def format_row(row: dict) -> str:
    if "error" in row:
        return f"{row['input']}: error: {row['error']}"
    if "top" in row:
        probs = "  ".join(f"{t['class']} {t['probability']:.3f}" for t in row["top"])
        text = f"{row['input']}: {row['prediction']}  ({probs})"
    elif isinstance(row["prediction"], list):
        text = f"{row['input']}: {', '.join(f'{v:.6g}' for v in row['prediction'])}"
    else:
        text = f"{row['input']}: {row['prediction']:.6g}"
    return f"{text}  warning: {row['warning']}" if row.get("warning") else text


def summary(args) -> int:
    cfg = load_config(args.config, args.overrides)
    from trainlab.workflows.summary import summarize  # start-up time

    print(summarize(cfg))
    return 0


def list_(args) -> int:
    if args.filter is not None:
        return list_library_models(args)
    regs = registries()
    for kind in [args.kind] if args.kind else list(regs):
        print(f"{kind}:")
        for name in regs[kind].names():
            print(f"  {name:<24} {regs[kind].entry(name).help}")
    return 0


def list_library_models(args) -> int:
    if args.kind not in (None, "models"):
        raise UserError(f"--filter lists models; not {args.kind}")
    from trainlab.models.library import library_names  # start-up time: timm and torchvision import torch

    names = library_names(args.filter)
    for name in names:
        print(name)
    print(f"{len(names)} timm/torchvision models match {args.filter!r}; use one as model.name", file=sys.stderr)
    return 0


def cv(args) -> int:
    check_out_is_dir(args.out)
    if args.jobs < 1:
        raise UserError(f"--jobs must be >= 1, got {args.jobs}")
    if args.folds < 2:  # before anything is written to --out
        raise UserError(f"--folds must be >= 2, got {args.folds}")
    cfg = load_config(args.config, args.overrides)
    from trainlab.run.directory import run_name  # start-up time: imports torch
    from trainlab.workflows.cv import format_table, run_cv  # start-up time

    out = args.out or Path("runs") / f"{run_name(cfg)}-cv-{time.strftime('%Y%m%d-%H%M%S')}"
    result = run_cv(cfg, out, args.folds, args.split, args.group, args.jobs, args.overwrite, args.verbose,
                    args.dry_run, sys.argv, keep=(Path(args.config),), track=cfg.track)  # keep: never removed
    write_result(out, result)
    print(format_table(result))
    if "label_issues" in result:
        print(f"{len(result['label_issues'])} likely label errors (cleanlab): {out / 'label_issues.html'}")
    print(f"{result['method']} {len(result['folds'])}-fold CV in {result['time']:.1f}s; results: {out}")
    print_mlflow(result)
    return 0


def tune(args) -> int:
    check_out_is_dir(args.out)
    if args.trials < 1:
        raise UserError(f"--trials must be >= 1, got {args.trials}")
    raw = apply_overrides(read_yaml(args.config), args.overrides)
    from trainlab.workflows.search_space import shown_url  # start-up time
    from trainlab.workflows.tune import format_best, run_tune  # start-up time

    name = args.study or Path(args.config).stem
    out = args.out or Path("runs") / f"{name}-tune"
    storage = "in-memory" if args.dry_run else (args.storage or f"sqlite:///{out.resolve() / 'study.db'}")
    track = build_config(copy.deepcopy(raw)).track  # MLflow: the study's parent run, a child per trial
    track.experiment = track.experiment or Path(args.config).stem
    try:
        result = run_tune(raw, out, name, args.trials, storage, args.metric, args.cv, args.timeout,
                          not args.no_prune, args.search_only, args.dry_run, sys.argv, track=track)
    except Interrupted:
        print(f"interrupted: finished trials are stored in {shown_url(storage)}; rerun the same command to resume",
              file=sys.stderr)
        return 130
    write_result(out, result)
    print(format_best(result))
    if result.get("test"):
        print(f"{format_metrics('test', result['test'])}  ({result['final_run']})")
    print(f"{result['n_trials']} finished trials in {result['time']:.1f}s; results: {out}")
    print_mlflow(result)
    return 0


def lr_find(args) -> int:
    check_out_is_dir(args.out)
    cfg = load_config(args.config, args.overrides)
    from trainlab.run.directory import run_name  # start-up time: imports torch
    from trainlab.workflows.lr_find import format_lr_find, run_lr_find  # start-up time

    out = args.out or Path("runs") / f"{run_name(cfg)}-lr-find"
    result = run_lr_find(cfg, out, args.start, args.end, args.steps, args.dry_run)
    write_result(out, result)
    print(format_lr_find(result, out))
    return 0


def runs(args) -> int:
    check_out_is_dir(args.out)
    from trainlab.observe.compare import fit_table, format_table, runs_table  # start-up time

    columns, rows = runs_table(args.dir, args.sort, args.reverse)
    print(format_table(columns, rows) if args.wide else fit_table(columns, rows))
    write_result(args.out, {"root": str(args.dir), "columns": columns, "runs": rows})
    return 0


def compare(args) -> int:
    check_out_is_dir(args.out)
    from trainlab.observe import compare as comparison  # start-up time

    result = comparison.compare(args.runs, args.out if args.out is not None else Path("."))
    print(comparison.format_compare(result))
    for p in result["plots"]:
        print(f"curves: {p}")
    write_result(args.out, result)
    return 0


def plot(args) -> int:
    check_out_is_dir(args.out)
    from trainlab.observe.plots import plot_activations, plot_curves  # start-up time

    result = (plot_activations if args.what == "activations" else plot_curves)(args.names, args.out)
    for p in result["plots"]:
        print(f"wrote {p}")
    write_result(args.out, result)
    return 0


def tensorboard(args) -> int:
    from trainlab.observe.tb import serve_tensorboard  # start-up time

    return serve_tensorboard(args.logdir, args.port)


def format_metrics(split: str, metrics: dict) -> str:
    return f"{split}: " + "  ".join(f"{k} {v:.4f}" for k, v in metrics.items()) if metrics else f"{split}: (empty)"

