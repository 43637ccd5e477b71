"""What each `trainlab` command does: read its arguments, call the workflow or `use` function, print.

Each handler imports its workflow when it runs (start-up time: workflows import torch, and `--help`,
`list` and config errors must not). Config files are read and validated here first, so a bad key is
reported before torch is imported.
"""
from __future__ import annotations

import sys
from pathlib import Path

from trainlab.core.configfile import apply_overrides, read_yaml
from trainlab.core.errors import UserError
from trainlab.core.files import write_json
from trainlab.core.metrics import METRICS
from trainlab.data.catalog import DATASETS, TRANSFORMS
from trainlab.engine.catalog import LOSSES, OPTIMIZERS, SCHEDULERS
from trainlab.models.catalog import ACTIVATIONS, MODELS
from trainlab.run.config import build_config, load_config


def registries() -> dict:
    return {"datasets": DATASETS, "models": MODELS, "activations": ACTIVATIONS, "optimizers": OPTIMIZERS,
            "schedulers": SCHEDULERS, "losses": LOSSES, "metrics": METRICS, "transforms": TRANSFORMS}


def train(args) -> int:
    if args.resume:
        cfg = _resume_config(args)
    elif not args.config:
        raise UserError("train needs a CONFIG path (or --resume RUN_DIR)")
    else:
        overrides = [*args.overrides, "train.deterministic=true"] if args.deterministic else args.overrides
        cfg = load_config(args.config, overrides)
    from trainlab.workflows.train import train_run  # start-up time

    result = train_run(cfg, args.out, args.resume, args.overwrite, sys.argv, args.dry_run)
    if not result:  # a torchrun worker other than rank 0: rank 0 reports
        return 0
    if result.get("note"):
        print(result["note"])
    print(format_metrics("test", result["test"]))
    if result.get("baseline_comparison"):  # forecasting: does the model beat the naive forecasts?
        print(result["baseline_comparison"])
    print(f"best epoch {result['best_epoch']} of {result['epochs_run']}; run directory: {result['run_dir']}")
    return 0


def _resume_config(args):
    if args.config and "=" in args.config:  # `train --resume DIR train.epochs=20`: no CONFIG given
        args.overrides.insert(0, args.config)
    bad = [o for o in args.overrides if not o.startswith("train.epochs=")]
    if bad:
        raise UserError(f"--resume continues the saved config; only train.epochs may change, not {bad[0]!r}")
    if not (args.resume / "last.pt").is_file():
        raise UserError(f"nothing to resume in {args.resume}: no last.pt")
    return build_config(apply_overrides(read_yaml(args.resume / "config.yaml"), args.overrides))


def evaluate(args) -> int:
    from trainlab.use.evaluate import evaluate_run  # start-up time

    _check_out_is_dir(args.out)
    result = evaluate_run(args.run_dir, args.split)
    if result.get("warning"):
        print(f"warning: {result['warning']}", file=sys.stderr)
    print(format_metrics(args.split, result["metrics"]))
    write_result(args.out, result)
    return 0


def predict(args) -> int:
    from trainlab.use.predict import predict_command  # start-up time

    if args.top < 1:
        raise UserError(f"--top must be >= 1, got {args.top}")
    _check_out_is_dir(args.out)
    rows = predict_command(args.run_dir, args.files, args.top, args.trust_code)
    for row in rows:
        if "error" in row:
            print(f"{row['input']}: error: {row['error']}")
        elif "top" in row:
            probs = "  ".join(f"{t['class']} {t['probability']:.3f}" for t in row["top"])
            print(f"{row['input']}: {row['prediction']}  ({probs})")
        else:
            print(f"{row['input']}: {row['prediction']:.6g}")
    write_result(args.out, {"predictions": rows})
    return 0


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
    from trainlab.workflows import cv  # start-up time

    return cv.run(args)


def tune(args) -> int:
    from trainlab.workflows import tune  # start-up time

    return tune.run(args)


def lr_find(args) -> int:
    from trainlab.workflows import lr_find  # start-up time

    return lr_find.run(args)


def runs(args) -> int:
    from trainlab.observe import compare  # start-up time

    return compare.run(args)


def compare(args) -> int:
    from trainlab.observe import compare  # start-up time

    return compare.run_compare(args)


def plot(args) -> int:
    from trainlab.observe import plots  # start-up time

    return plots.run(args)


def tensorboard(args) -> int:
    from trainlab.observe import tb  # start-up time

    return tb.run(args)


def export(args) -> int:
    from trainlab.use import export  # start-up time

    return export.run(args)


def serve(args) -> int:
    from trainlab.use import serve  # start-up time

    return serve.run(args)


def doctor(args) -> int:
    from trainlab.cli import doctor  # start-up time: it imports torch to report on it

    return doctor.run(args)


def format_metrics(split: str, metrics: dict) -> str:
    return f"{split}: " + "  ".join(f"{k} {v:.4f}" for k, v in metrics.items()) if metrics else f"{split}: (empty)"


def _check_out_is_dir(out: Path | None) -> None:
    """Before any work (a test evaluation counts): --out must be a directory or not exist yet."""
    if out is not None and out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a directory")


def write_result(out: Path | None, result: dict) -> None:
    if out is None:
        return
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "result.json", result)
