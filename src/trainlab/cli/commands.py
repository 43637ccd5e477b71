"""What each `trainlab` command does: read its arguments, call the workflow or `use` function, print.

Each handler imports its workflow when it runs (start-up time: workflows import torch, and `--help`,
`list` and config errors must not). Config files are read and validated here first, so a bad key is
reported before torch is imported.
"""
from __future__ import annotations

import os
import sys
from functools import partial
from pathlib import Path

from trainlab.core.errors import UserError
from trainlab.core.files import make_dir, printable, write_json
from trainlab.core.metrics import METRICS
from trainlab.data.catalog import DATASETS, TRANSFORMS
from trainlab.engine.catalog import LOSSES, OPTIMIZERS, SCHEDULERS
from trainlab.models.catalog import ACTIVATIONS, MODELS
from trainlab.run.config import load_config, read_run_config


def registries() -> dict:
    return {"datasets": DATASETS, "models": MODELS, "activations": ACTIVATIONS, "optimizers": OPTIMIZERS,
            "schedulers": SCHEDULERS, "losses": LOSSES, "metrics": METRICS, "transforms": TRANSFORMS}


def train(args) -> int:
    _check_out_is_dir(args.out)
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
        from trainlab.workflows.seeds import run_seeds  # start-up time

        return run_seeds(cfg, args)
    from trainlab.workflows.train import train_run  # start-up time

    result = train_run(cfg, args.out, args.resume, args.overwrite, sys.argv, args.dry_run)
    if not result:  # a torchrun worker other than rank 0: rank 0 reports
        return 0
    if result.get("note"):
        print(result["note"])
    if result.get("nothing_left"):  # --resume of a complete run: the note says so, nothing was run
        return 0
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
    return read_run_config(args.resume, args.overrides)


def evaluate(args) -> int:
    from trainlab.use.evaluate import evaluate_run  # start-up time

    _check_out_is_dir(args.out)
    result = evaluate_run(args.run_dir, args.split)
    if result.get("warning"):
        print(f"warning: {result['warning']}", file=sys.stderr)
    print(format_metrics(args.split, result["metrics"]))
    write_result(args.out, result)
    return 0


def inspect(args) -> int:
    from trainlab.use.inspect import inspect_run  # start-up time

    if args.text is not None:
        args.text = printable(args.text)  # bytes that are not UTF-8 (lone surrogates) as U+FFFD: plots can draw it
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
    from trainlab.use.predict import predict_command, write_predictions  # start-up time

    if args.top < 1:
        raise UserError(f"--top must be >= 1, got {args.top}")
    _check_out_is_dir(args.out)
    rows = predict_command(args.run_dir, args.files, args.top, args.trust_code)
    failed = [r for r in rows if "error" in r]
    if rows and len(failed) == len(rows):
        raise UserError(f"no input could be predicted ({len(rows)} failed); first: {failed[0]['input']}: "
                        f"{failed[0]['error']}")
    for row in rows:
        print(format_row(row))
    if args.out is not None:
        write_predictions(args.out, rows)
    if failed:
        print(f"warning: {len(failed)} of {len(rows)} inputs could not be predicted (rows with 'error')",
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
    _check_out_is_dir(args.out)
    from trainlab.workflows import cv  # start-up time

    return cv.run(args)


def tune(args) -> int:
    _check_out_is_dir(args.out)
    from trainlab.workflows import tune  # start-up time

    return tune.run(args)


def lr_find(args) -> int:
    _check_out_is_dir(args.out)
    from trainlab.workflows import lr_find  # start-up time

    return lr_find.run(args)


def runs(args) -> int:
    _check_out_is_dir(args.out)
    from trainlab.observe import compare  # start-up time

    return compare.run(args)


def compare(args) -> int:
    _check_out_is_dir(args.out)
    from trainlab.observe import compare  # start-up time

    return compare.run_compare(args)


def plot(args) -> int:
    _check_out_is_dir(args.out)
    from trainlab.observe import plots  # start-up time

    return plots.run(args)


def tensorboard(args) -> int:
    from trainlab.observe import tb  # start-up time

    return tb.run(args)


def export(args) -> int:
    if args.out is not None and args.out.is_dir():
        raise UserError(f"--out {args.out} is a directory; name the file to write, e.g. {args.out / 'model.onnx'}")
    _check_out_is_dir(args.out.parent if args.out is not None else None)
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
    """Before any work (a test evaluation counts): --out must be a directory or creatable as one (its first
    existing ancestor a directory we may write to), so no command fails on --out after doing its work."""
    if out is None:
        return
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a directory")
    folder = next((p for p in (out, *out.absolute().parents) if p.exists()), None)
    if folder is not None and not folder.is_dir():
        raise UserError(f"--out {out} cannot be created: {folder} is not a directory")
    if folder is not None and not os.access(folder, os.W_OK | os.X_OK):
        raise UserError(f"--out {out}: {folder} is not writable")


def write_result(out: Path | None, result: dict) -> None:
    if out is None:
        return
    make_dir(out)
    write_json(out / "result.json", result)


def show(args) -> int:
    if args.n < 1:
        raise UserError(f"--n must be >= 1, got {args.n}")
    _check_out_is_dir(args.out)
    cfg = load_config(args.config, args.overrides)
    from trainlab.workflows.show import show_data, summary_lines  # start-up time

    out = args.out or Path("runs") / f"{Path(args.config).stem}-show"
    for line in summary_lines(show_data(cfg, out, args.n, Path(args.config).name)):
        print(line)
    return 0
