"""The `trainlab` command line: the parser, the dispatch table and the one guard around every command.

    trainlab train CONFIG [key=value ...] [--out DIR]     trainlab eval RUN_DIR [--split test]
    trainlab predict RUN_DIR [INPUT...]                   trainlab summary CONFIG
    trainlab list [datasets|models|...]                   trainlab doctor [--json]

Bad input (config, data, run directory) prints one line `error: ...` on stderr and exits with code 2.
Anything unexpected is a bug: one line naming it, the traceback in a log file (or on screen with
`--debug`), exit code 1. Nothing here imports torch; each command imports its workflow when it runs.
"""
from __future__ import annotations

import argparse
import atexit
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

from trainlab import __version__
from trainlab.cli import arguments, commands
from trainlab.core.errors import Interrupted, UserError
from trainlab.core.files import disk_full, is_disk_full

EXIT_USAGE = 2
EXIT_BUG = 1
EXIT_INTERRUPTED = 130

# name -> (help, arguments, handler); the parser, the docs and the tests read this one table
COMMANDS = {
    "train": ("train a model from a YAML config", arguments.train, commands.train),
    "eval": ("evaluate a run's best model on a split", arguments.evaluate, commands.evaluate),
    "inspect": ("error analysis of a run: top-loss samples, confused classes, attribution maps",
                arguments.inspect, commands.inspect),
    "predict": ("predict image files, CSV rows or texts, or forecast the next steps", arguments.predict,
                commands.predict),
    "summary": ("layers, output shapes, parameters and mult-adds of a config's model", arguments.summary,
                commands.summary),
    "show": ("the data as the model sees it, without training: splits, class counts, augmented samples, tokens",
             arguments.show, commands.show),
    "list": ("list registered datasets, models, activations, ...", arguments.list_, commands.list_),
    "cv": ("K-fold cross-validation on the training pool (never the test split)", arguments.cv, commands.cv),
    "tune": ("hyperparameter search with Optuna (the config's tune section)", arguments.tune, commands.tune),
    "lr-find": ("learning-rate range test: suggests a learning rate", arguments.lr_find, commands.lr_find),
    "runs": ("table of the runs under a directory", arguments.runs, commands.runs),
    "compare": ("config differences and overlaid learning curves of runs", arguments.compare, commands.compare),
    "plot": ("plots: activation functions and their derivatives, a run's curves", arguments.plot, commands.plot),
    "tensorboard": ("start TensorBoard on 127.0.0.1 for a runs directory", arguments.tensorboard,
                    commands.tensorboard),
    "export": ("export a run's model to ONNX or TorchScript (with preprocessing)", arguments.export,
               commands.export),
    "serve": ("serve a run's model: web page + JSON API on 127.0.0.1", arguments.serve, commands.serve),
    "doctor": ("check Python, PyTorch, devices and the course's libraries", arguments.doctor, commands.doctor),
}
REGISTRY_KINDS = arguments.REGISTRY_KINDS
registries = commands.registries


class _Parser(argparse.ArgumentParser):
    """argparse exits with its own multi-line usage text; we want the house one-line error."""

    def error(self, message: str):
        raise UserError(f"{message} (see: {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="trainlab", description="Train, evaluate and use PyTorch models from one config.")
    parser.add_argument("--version", action="version", version=f"trainlab {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an unexpected error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (help, add_arguments, handler) in COMMANDS.items():
        p = sub.add_parser(name, help=help, description=help[0].upper() + help[1:] + ".")
        add_arguments(p)
        p.set_defaults(func=handler)
    return parser


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Options may stand anywhere (`predict RUN --top 1 FILE`, `train CFG --out D k=v`): argparse's intermixed
    parsing takes the positionals around them; stray key=value pairs become overrides."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args, extra = parser.parse_known_args(argv)
    if getattr(args, "func", None) is not None and extra:
        sub = _subparser(parser, args.command)
        try:  # options between positionals: parse the command's arguments intermixed
            rest = argv[argv.index(args.command) + 1:]
            sub_args, extra = sub.parse_known_intermixed_args(rest)
            for key, value in vars(sub_args).items():
                setattr(args, key, value)
        except (TypeError, ValueError):  # argparse cannot intermix some layouts; keep the first parse
            pass
    overrides = [a for a in extra if "=" in a and not a.startswith("-")]
    rest = [a for a in extra if a not in overrides]
    if rest or (overrides and not hasattr(args, "overrides")):
        raise UserError(f"unrecognized arguments: {' '.join(rest or overrides)} (see: trainlab --help)")
    if overrides:
        args.overrides = list(args.overrides) + overrides
    return args


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices[name]


def main(argv: list[str] | None = None) -> int:
    args = None
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
    except BrokenPipeError:  # the reader stopped reading (`trainlab list | head -3`): it has what it wanted
        return 0
    except Exception as e:  # a bug in trainlab, not bad input: say so in one line, keep the traceback
        if is_disk_full(e):  # a write outside core.files (a folder, TensorBoard's file): the user's situation
            print(f"error: {disk_full(e)}", file=sys.stderr)
            return EXIT_USAGE
        if args is not None and getattr(args, "debug", False):
            raise
        log = _write_traceback(args)
        first = (str(e).splitlines() or [""])[0][:200]
        print(f"error: internal error ({type(e).__name__}: {first}); this is a bug in trainlab - please report it "
              f"with the traceback in {log} (or rerun with --debug)", file=sys.stderr)
        return EXIT_BUG


def run() -> None:
    """The console script (`trainlab`, `python -m trainlab`): main(), then a quick exit.

    Tearing the interpreter down (freeing thousands of modules and torch's C++ state) took 0.8-0.9 s after a
    one-epoch `trainlab train` here, longer than the epoch. Every file a command writes is closed before
    main() returns, and the atexit handlers registered after this one (TensorBoard, logging, multiprocessing)
    still run before it; then the process exits with main()'s status. Under a tracer (coverage, a debugger)
    the interpreter exits normally, so the tracer can write its data.
    """
    status = [EXIT_BUG]  # the exit status if main() raises instead of returning (an uncaught --debug traceback)
    atexit.register(_quick_exit, status)
    try:
        status[0] = main()
    except SystemExit as e:  # argparse: --help (0), a usage error (2)
        status[0] = e.code if isinstance(e.code, int) else 0 if e.code is None else EXIT_BUG
        raise
    raise SystemExit(status[0])


def _quick_exit(status: list[int]) -> None:
    if sys.gettrace() is not None:
        return
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`trainlab list | head`): nothing left to say
            pass
    os._exit(status[0])


def _write_traceback(args) -> Path:
    """The traceback goes to RUN_DIR/error.log when the command names an existing run directory, else to /tmp."""
    text = f"{time.strftime('%Y-%m-%dT%H:%M:%S')} trainlab {__version__} {' '.join(sys.argv)}\n{traceback.format_exc()}"
    for key in ("out", "resume", "run_dir"):
        folder = getattr(args, key, None) if args is not None else None
        if folder is not None and Path(folder).is_dir() and (Path(folder) / "config.yaml").is_file():
            path = Path(folder) / "error.log"
            try:
                with open(path, "a") as f:
                    f.write(text + "\n")
                return path
            except OSError:
                break
    fd, name = tempfile.mkstemp(prefix="trainlab-error-", suffix=".log")
    with open(fd, "w") as f:
        f.write(text)
    return Path(name)
