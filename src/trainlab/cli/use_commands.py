"""The commands that look at data or use a finished run and train nothing: show, audit, card, export, serve,
doctor. Same shape as cli/commands.py: each handler reads its arguments, calls one entry point with typed
arguments, renders the result and writes `--out DIR/result.json`; workflows are imported when the handler
runs (start-up time: they import torch).
"""
from __future__ import annotations

import sys
from pathlib import Path

from trainlab.cli.outputs import check_out_is_dir, write_result
from trainlab.core.errors import UserError
from trainlab.run.config import load_config


def export(args) -> int:
    if args.out is not None and args.out.is_dir():
        raise UserError(f"--out {args.out} is a directory; name the file to write, e.g. {args.out / 'model.onnx'}")
    check_out_is_dir(args.out.parent if args.out is not None else None)
    from trainlab.use.export import export_run, format_export  # start-up time

    record = export_run(args.run_dir, args.format, args.out, args.samples)
    print(format_export(record))
    if not record["parity_ok"]:
        print(f"error: the exported model disagrees with the PyTorch model by {record['max_abs_diff']:.3g}",
              file=sys.stderr)
        return 1
    return 0


def card(args) -> int:
    check_out_is_dir(args.out)
    from trainlab.use.card import build_card  # start-up time

    result = build_card(args.run_dir, args.out, args.evaluate, args.audit)
    print(f"wrote {result['card']} ({result['kind']} directory {args.run_dir})")
    write_result(args.out, result)
    return 0


def serve(args) -> int:
    from trainlab.use.serve import serve_run  # start-up time

    return serve_run(args.run_dir, args.host, args.port, args.max_bytes, args.trust_code, args.log_level,
                     body_timeout=args.body_timeout)


def doctor(args) -> int:
    from trainlab.cli import doctor  # start-up time: it imports torch to report on it

    return doctor.run(args)


def show(args) -> int:
    if args.n < 1:
        raise UserError(f"--n must be >= 1, got {args.n}")
    check_out_is_dir(args.out)
    cfg = load_config(args.config, args.overrides)
    from trainlab.workflows.show import show_data, summary_lines  # start-up time

    out = args.out or Path("runs") / f"{Path(args.config).stem}-show"
    result = show_data(cfg, out, args.n, Path(args.config).name)
    write_result(Path(result["out"]), result)
    for line in summary_lines(result):
        print(line)
    return 0


def audit(args) -> int:
    check_out_is_dir(args.out)
    target = Path(args.config)
    if target.is_dir():  # a run directory: the model's embeddings and probabilities
        if args.overrides:
            raise UserError(f"{target} is a run directory: it is audited with its own config; drop the overrides "
                            f"({args.overrides[0]!r}), or audit a CONFIG")
        from trainlab.use.audit import audit_run  # start-up time

        out = args.out or target / "audit"
        result = audit_run(target, out)
    else:
        cfg = load_config(args.config, args.overrides)
        from trainlab.workflows.audit import audit_config  # start-up time

        out = args.out or Path("runs") / f"{target.stem}-audit"
        result = audit_config(cfg, out, target.name)
    from trainlab.workflows.audit import summary_lines  # start-up time

    write_result(out, result)
    for line in summary_lines(result):
        print(line)
    return 0
