"""The `trainlab` command line. Each sub-command is a small function; the work lives in its own module.

    trainlab train CONFIG [key=value ...] [--out DIR]     trainlab eval RUN_DIR [--split test]
    trainlab predict RUN_DIR [INPUT...]                   trainlab summary CONFIG
    trainlab list [datasets|models|...]                   trainlab doctor [--json]

Bad input (config, data, run directory) prints one line `error: ...` on stderr and exits with code 2.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from trainlab.errors import Interrupted, UserError

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    """argparse exits with its own multi-line usage text; we want the house one-line error."""

    def error(self, message: str):
        raise UserError(f"{message} (see: {self.prog} --help)")


def _out_arg(p: argparse.ArgumentParser, help: str = "directory for result.json") -> None:
    p.add_argument("--out", type=Path, default=None, help=help)


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a model from a YAML config", description="Train a model from a config.")
    p.add_argument("config", nargs="?", help="YAML config (not needed with --resume)")
    p.add_argument("overrides", nargs="*", help="dotted key=value overrides, e.g. train.epochs=3")
    _out_arg(p, "run directory (default: runs/<dataset>-<model>-<time>)")
    p.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue an interrupted run from its last.pt")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run in --out")
    p.add_argument("--dry-run", action="store_true", help="one epoch on two batches: checks the whole pipeline")
    p.add_argument("--deterministic", action="store_true",
                   help="PyTorch's deterministic algorithms (same as train.deterministic=true)")
    p.set_defaults(func=cmd_train)


def _add_eval(sub) -> None:
    p = sub.add_parser("eval", help="evaluate a run's best model on a split")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--split", choices=("val", "test"), default="test")
    _out_arg(p)
    p.set_defaults(func=cmd_eval)


def _add_predict(sub) -> None:
    p = sub.add_parser("predict", help="predict image files, CSV rows or texts, or forecast the next steps")
    p.add_argument("run_dir", type=Path, help="RUN_DIR or an exported model file (.onnx, .torchscript.pt)")
    p.add_argument("files", nargs="*", help="image files, CSV files with the training feature columns, or texts "
                   "(text runs); none for a forecasting run: the steps after its data ends")
    p.add_argument("--top", type=int, default=3, help="how many classes to show per input")
    _out_arg(p)
    p.set_defaults(func=cmd_predict)


def _add_summary(sub) -> None:
    p = sub.add_parser("summary", help="layers, output shapes, parameters and mult-adds of a config's model")
    p.add_argument("config")
    p.add_argument("overrides", nargs="*")
    p.set_defaults(func=cmd_summary)


def _add_list(sub) -> None:
    p = sub.add_parser("list", help="list registered datasets, models, activations, ...")
    p.add_argument("kind", nargs="?", choices=REGISTRY_KINDS, help="what to list (default: all)")
    p.set_defaults(func=cmd_list)


def module_commands() -> list[tuple[str, str, object, object]]:
    """(name, help, add_arguments, run) of the commands that live in their own modules.

    Those modules import their heavy libraries (optuna, tensorboard, onnx, fastapi) inside functions,
    so `trainlab --help` stays fast.
    """
    from trainlab import cv, doctor, export, lr_find, plots, runs, serve, tb, tune

    return [
        ("cv", "K-fold cross-validation on the training pool (never the test split)", cv.add_arguments, cv.run),
        ("tune", "hyperparameter search with Optuna (the config's tune section)", tune.add_arguments, tune.run),
        ("lr-find", "learning-rate range test: suggests a learning rate", lr_find.add_arguments, lr_find.run),
        ("runs", "table of the runs under a directory", runs.add_arguments, runs.run),
        ("compare", "config differences and overlaid learning curves of runs", runs.add_compare_arguments,
         runs.run_compare),
        ("plot", "plots: activation functions and their derivatives, a run's curves", plots.add_arguments, plots.run),
        ("tensorboard", "start TensorBoard on 127.0.0.1 for a runs directory", tb.add_arguments, tb.run),
        ("export", "export a run's model to ONNX or TorchScript (with preprocessing)", export.add_arguments,
         export.run),
        ("serve", "serve a run's model: web page + JSON API on 127.0.0.1", serve.add_arguments, serve.run),
        ("doctor", "check Python, PyTorch, devices and the course's libraries", doctor.add_arguments, doctor.run),
    ]


def _add_module_commands(sub) -> None:
    for name, help, add_arguments, run in module_commands():
        p = sub.add_parser(name, help=help, description=help[0].upper() + help[1:] + ".")
        add_arguments(p)
        p.set_defaults(func=run)


def build_parser() -> argparse.ArgumentParser:
    from trainlab import __version__

    parser = _Parser(prog="trainlab", description="Train, evaluate and use PyTorch models from one config.")
    parser.add_argument("--version", action="version", version=f"trainlab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for add in (_add_train, _add_eval, _add_predict, _add_summary, _add_list, _add_module_commands):
        add(sub)
    return parser


# ----------------------------------------------------------------------------- commands

def cmd_train(args) -> int:
    from trainlab.config import load_config
    from trainlab.train import train_run

    if args.resume:
        cfg = _resume_config(args)
    elif not args.config:
        raise UserError("train needs a CONFIG path (or --resume RUN_DIR)")
    else:
        overrides = [*args.overrides, "train.deterministic=true"] if args.deterministic else args.overrides
        cfg = load_config(args.config, overrides)
    result = train_run(cfg, args.out, args.resume, args.overwrite, sys.argv, args.dry_run)
    if not result:  # a torchrun worker other than rank 0: rank 0 reports
        return 0
    print(_format_metrics("test", result["test"]))
    if result.get("baseline_comparison"):  # forecasting: does the model beat the naive forecasts?
        print(result["baseline_comparison"])
    print(f"best epoch {result['best_epoch']} of {result['epochs_run']}; run directory: {result['run_dir']}")
    return 0


def _resume_config(args):
    from trainlab.config import apply_overrides, build_config, read_yaml

    if args.config and "=" in args.config:  # `train --resume DIR train.epochs=20`: no CONFIG given
        args.overrides.insert(0, args.config)
    bad = [o for o in args.overrides if not o.startswith("train.epochs=")]
    if bad:
        raise UserError(f"--resume continues the saved config; only train.epochs may change, not {bad[0]!r}")
    if not (args.resume / "last.pt").is_file():
        raise UserError(f"nothing to resume in {args.resume}: no last.pt")
    return build_config(apply_overrides(read_yaml(args.resume / "config.yaml"), args.overrides))


def cmd_eval(args) -> int:
    from trainlab.evaluate import evaluate_run

    result = evaluate_run(args.run_dir, args.split)
    if result.get("warning"):
        print(f"warning: {result['warning']}", file=sys.stderr)
    print(_format_metrics(args.split, result["metrics"]))
    _write_result(args.out, result)
    return 0


def cmd_predict(args) -> int:
    from trainlab.predict import predict_files
    from trainlab.run import load_run

    if args.top < 1:
        raise UserError(f"--top must be >= 1, got {args.top}")
    if args.run_dir.is_file():  # an exported model (trainlab export): ONNX or TorchScript
        from trainlab.export import predict_exported

        rows = predict_exported(args.run_dir, args.files, args.top)
    else:
        rows = predict_files(load_run(args.run_dir), args.files, args.top)
    for row in rows:
        if "top" in row:
            probs = "  ".join(f"{t['class']} {t['probability']:.3f}" for t in row["top"])
            print(f"{row['input']}: {row['prediction']}  ({probs})")
        else:
            print(f"{row['input']}: {row['prediction']:.6g}")
    _write_result(args.out, {"predictions": rows})
    return 0


def cmd_summary(args) -> int:
    from trainlab.config import load_config
    from trainlab.data import load_data
    from trainlab.models import build_model
    from trainlab.summary import model_summary

    cfg = load_config(args.config, args.overrides)
    data = load_data(cfg)
    view = data.view(data.splits.train, data.splits.val)
    model = build_model(cfg.model, view.input_shape, view.bundle.num_outputs, **view.model_info)
    print(model_summary(model, view.input_shape))
    return 0


REGISTRY_KINDS = ("datasets", "models", "activations", "optimizers", "schedulers", "losses", "metrics", "transforms")


def registries() -> dict:
    from trainlab.data import DATASETS
    from trainlab.data.transforms import TRANSFORMS, _register_augments
    from trainlab.losses import LOSSES
    from trainlab.metrics import METRICS
    from trainlab.models import ACTIVATIONS, MODELS
    from trainlab.optim import OPTIMIZERS, SCHEDULERS

    _register_augments()
    return {"datasets": DATASETS, "models": MODELS, "activations": ACTIVATIONS, "optimizers": OPTIMIZERS,
            "schedulers": SCHEDULERS, "losses": LOSSES, "metrics": METRICS, "transforms": TRANSFORMS}


def cmd_list(args) -> int:
    regs = registries()
    for kind in [args.kind] if args.kind else list(regs):
        print(f"{kind}:")
        for name in regs[kind].names():
            print(f"  {name:<24} {regs[kind].entry(name).help}")
    return 0


def _format_metrics(split: str, metrics: dict) -> str:
    return f"{split}: " + "  ".join(f"{k} {v:.4f}" for k, v in metrics.items()) if metrics else f"{split}: (empty)"


def _write_result(out: Path | None, result: dict) -> None:
    if out is None:
        return
    from trainlab.run import write_json

    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "result.json", result)


# ----------------------------------------------------------------------------- entry point

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """argparse cannot take positionals after options (`train CFG --out D k=v`): collect stray key=value."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    overrides = [a for a in extra if "=" in a and not a.startswith("-")]
    rest = [a for a in extra if a not in overrides]
    if rest or (overrides and not hasattr(args, "overrides")):
        raise UserError(f"unrecognized arguments: {' '.join(rest or overrides)} (see: trainlab --help)")
    if overrides:
        args.overrides = list(args.overrides) + overrides
    return args


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(argv)
        if not getattr(args, "func", None):
            build_parser().print_help()
            return EXIT_USAGE
        return args.func(args)
    except UserError as e:
        print(f"error: {str(e).splitlines()[0] if str(e) else type(e).__name__}", file=sys.stderr)
        return EXIT_USAGE
    except Interrupted as e:
        print(f"interrupted: last.pt saved; resume with: trainlab train --resume {e}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED

