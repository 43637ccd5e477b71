"""The `trainlab` command line: the parser, the dispatch table and the one guard around every command.

    trainlab train CONFIG [key=value ...] [--out DIR]     trainlab eval RUN_DIR [--split test]
    trainlab predict RUN_DIR [INPUT...]                   trainlab summary CONFIG
    trainlab list [datasets|models|...]                   trainlab doctor [--json]

Bad input (config, data, run directory) prints one line `error: ...` on stderr and exits with code 2.
Anything unexpected is a bug: one line naming it, the traceback in a log file under $XDG_CACHE_HOME/trainlab
(~/.cache/trainlab; else the temporary folder; never a user's run directory), or on screen with `--debug`, exit
code 1. The guard itself never raises, whatever the arguments (names over 255 bytes, bytes that are not UTF-8).
Nothing here imports torch; each command imports its workflow when it runs.
"""
from __future__ import annotations

import argparse
import atexit
import errno
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

from trainlab.cli import arguments, commands, outputs, use_commands
from trainlab.core.errors import Interrupted, UserError
from trainlab.core.files import disk_full, is_disk_full
from trainlab.core.version import __version__

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
             arguments.show, use_commands.show),
    "audit": ("audit the data: near-duplicates across splits, conflicting labels, outliers, label issues, shift, "
              "image problems", arguments.audit, use_commands.audit),
    "list": ("list registered datasets, models, activations, ...", arguments.list_, commands.list_),
    "cv": ("K-fold cross-validation on the training pool (never the test split)", arguments.cv, commands.cv),
    "tune": ("hyperparameter search with Optuna (the config's tune section)", arguments.tune, commands.tune),
    "lr-find": ("learning-rate range test: suggests a learning rate", arguments.lr_find, commands.lr_find),
    "runs": ("table of the runs under a directory", arguments.runs, commands.runs),
    "compare": ("config differences and overlaid learning curves of runs", arguments.compare, commands.compare),
    "plot": ("plots: activation functions and their derivatives, a run's curves", arguments.plot, commands.plot),
    "track": ("log a finished run directory (or a --seeds directory) to MLflow", arguments.track, commands.track),
    "tensorboard": ("start TensorBoard on 127.0.0.1 for a runs directory", arguments.tensorboard,
                    commands.tensorboard),
    "export": ("export a run's model to ONNX or TorchScript (with preprocessing)", arguments.export,
               use_commands.export),
    "card": ("a model card (MODEL_CARD.md, Hugging Face's format) from a run's measured facts", arguments.card,
             use_commands.card),
    "serve": ("serve a run's model: web page + JSON API on 127.0.0.1", arguments.serve, use_commands.serve),
    "doctor": ("check Python, PyTorch, devices and the course's libraries", arguments.doctor, use_commands.doctor),
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
        outputs.check_out(args)  # before any work: no command writes over a run's own files
        return args.func(args)
    except UserError as e:
        _say(f"error: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
        return EXIT_USAGE
    except Interrupted as e:
        _say(f"interrupted: last.pt saved; resume with: trainlab train --resume {e}")
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        _say("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader stopped reading (`trainlab list | head -3`): it has what it wanted
        return 0
    except OSError as e:
        if e.errno in (errno.ENAMETOOLONG, errno.EILSEQ) and not _debug(args):  # a name the OS refuses: the user's
            _say(f"error: the operating system refuses the name {_short(e.filename)}: {e.strerror} "
                 f"(a file name may have at most 255 bytes)")
            return EXIT_USAGE
        return _internal_error(e, args)
    except Exception as e:  # a bug in trainlab, not bad input: say so in one line, keep the traceback
        return _internal_error(e, args)


def _debug(args) -> bool:
    return args is not None and bool(getattr(args, "debug", False))


def _internal_error(e: Exception, args) -> int:
    """One line naming the bug and where its traceback is; nothing here may raise (it is the last guard)."""
    if is_disk_full(e):  # a write outside core.files (a folder, TensorBoard's file): the user's situation
        _say(f"error: {disk_full(e)}")
        return EXIT_USAGE
    if _debug(args):
        raise e
    try:
        log = _write_traceback()
        where = f"the traceback in {log}" if log else "the traceback of --debug (it could not be saved)"
        first = (str(e).splitlines() or [""])[0][:200]
        _say(f"error: internal error ({type(e).__name__}: {first}); this is a bug in trainlab - please report it "
             f"with {where} (or rerun with --debug)")
    except Exception:  # noqa: BLE001 - the guard must not raise; say the least that can be said
        _say("error: internal error; this is a bug in trainlab - rerun with --debug to see it")
    return EXIT_BUG


def _say(line: str) -> None:
    """One line on stderr; bytes that are not text are shown escaped, and a closed stderr is not an error."""
    try:
        sys.stderr.write(line.encode("utf-8", "backslashreplace").decode("utf-8") + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def _short(name) -> str:
    text = repr(os.fsdecode(name)) if isinstance(name, (str, bytes)) else "(unnamed)"
    return text if len(text) <= 60 else f"{text[:40]}...' ({len(os.fsencode(os.fsdecode(name)))} bytes)"


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


def log_folder() -> Path:
    """Where tracebacks go: $XDG_CACHE_HOME/trainlab (default ~/.cache/trainlab), never a user's run directory."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "trainlab"


def _write_traceback() -> Path | None:
    """The traceback in log_folder()/error-TIME-PID.log, else in the temporary folder; None if neither works."""
    text = (f"{time.strftime('%Y-%m-%dT%H:%M:%S')} trainlab {__version__} {' '.join(map(str, sys.argv))}\n"
            f"{traceback.format_exc()}")
    name = f"error-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    for folder in (log_folder(), Path(tempfile.gettempdir())):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / (name if folder == log_folder() else f"trainlab-{name}")
            with open(path, "a", encoding="utf-8", errors="backslashreplace") as f:
                f.write(text + "\n")
            return path
        except (OSError, ValueError):
            continue
    return None
