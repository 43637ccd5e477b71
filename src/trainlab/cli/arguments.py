"""Every command's arguments, in one light module: building the parser imports neither torch nor any
workflow, so `trainlab --help`, `COMMAND --help` and usage errors answer at once.

Choices that a workflow also knows (fold splitters, export formats, serve's upload limit) are spelled
here too; tests/test_cli.py checks that both spellings agree.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from trainlab.data.options import FOLD_SPLITTERS  # light: no torch

FOLD_SPLITS = ("auto", *FOLD_SPLITTERS)
EXPORT_FORMATS = ("onnx", "torchscript")  # trainlab.use.export.FORMATS
SERVE_MAX_BYTES = 2 * 2**20  # trainlab.use.serve.DEFAULT_MAX_BYTES: a 2 MiB image is far larger than any input here
SERVE_BODY_TIMEOUT = 30.0  # trainlab.use.serve.DEFAULT_BODY_TIMEOUT
REGISTRY_KINDS = ("datasets", "models", "activations", "optimizers", "schedulers", "losses", "metrics", "transforms")


def out_arg(p: argparse.ArgumentParser, help: str = "directory for result.json") -> None:
    p.add_argument("--out", type=Path, default=None, help=help)


def config_args(p: argparse.ArgumentParser, config_help: str = "YAML config",
                example: str = "train.epochs=3") -> None:
    p.add_argument("config", help=config_help)
    p.add_argument("overrides", nargs="*", help=f"dotted key=value overrides, e.g. {example}")


def train(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", nargs="?", help="YAML config (not needed with --resume)")
    p.add_argument("overrides", nargs="*", help="dotted key=value overrides, e.g. train.epochs=3")
    out_arg(p, "run directory (default: runs/<dataset>-<model>-<time>)")
    p.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue an interrupted run from its last.pt")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run in --out")
    p.add_argument("--dry-run", action="store_true",
                   help="one epoch on two batches: checks the pipeline and reports shapes, pitfalls, a finite loss "
                        "and time per batch; no test evaluation or curve checks")
    p.add_argument("--deterministic", action="store_true",
                   help="PyTorch's deterministic algorithms (same as train.deterministic=true)")
    p.add_argument("--seeds", type=seeds_count, metavar="N",
                   help="train N runs with seeds seed, seed+1, ... into OUT/seed-<s>/ and report every metric as "
                   "mean ± std (sample std) over them in OUT/result.json and OUT/report.html (1: one ordinary run)")


def count(low: int, high: int):
    """An argparse type: a whole number from `low` to `high`, checked before any work starts (an unbounded
    count - `--seeds 4294967296` - would fill the machine's memory before failing)."""
    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number from {low} to {high}, got {text!r}") from None
        if not low <= n <= high:
            raise argparse.ArgumentTypeError(f"must be a whole number from {low} to {high}, got {text!r}")
        return n
    parse.__name__ = "count"  # argparse names the type in its message: "invalid count value"
    return parse


def utf8_text(text: str) -> str:
    """A text argument must be UTF-8: other bytes reach Python as lone surrogates that no tokenizer or page takes."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        code = ord(text[e.start])  # a byte that is not UTF-8 arrives as U+DC80..U+DCFF (PEP 383); else a lone surrogate
        what = f"byte {code - 0xDC00:#04x}" if 0xDC80 <= code <= 0xDCFF else f"lone surrogate U+{code:04X}"
        raise argparse.ArgumentTypeError(f"is not valid UTF-8 ({what} at character {e.start}); give the text as "
                                         f"UTF-8") from None
    return text


def seconds(text: str) -> float:
    """A duration in seconds: more than 0, at most a day."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value <= 86_400:
        raise argparse.ArgumentTypeError(f"must be a number of seconds above 0 and at most 86400, got {text!r}")
    return value


MAX_RUNS = 1000  # seeds, folds, trials: runs one command trains; more is a typo, not a study
seeds_count = count(1, MAX_RUNS)  # --seeds N
TOP = count(1, 10_000)  # --top: classes or samples shown
PORT = count(0, 65_535)


def evaluate(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", type=Path)
    p.add_argument("--split", choices=("val", "test"), default="test")
    out_arg(p)


def inspect(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", type=Path)
    p.add_argument("--split", choices=("val", "test"), default="val",
                   help="which split to look at; test counts as a test evaluation of the run")
    p.add_argument("--top", type=TOP, default=16, help="how many highest-loss samples to show")
    p.add_argument("--attribution", action="store_true",
                   help="add attribution maps of the top-loss samples: Grad-CAM (CNNs) and integrated gradients "
                   "(images), integrated gradients per token (text)")
    p.add_argument("--internals", action="store_true",
                   help="add what happens inside the model for one sample: CNN feature maps of the first layers, "
                   "Transformer attention weights per head")
    p.add_argument("--index", type=count(0, 2**31 - 1), default=None,
                   help="the dataset index of the sample --internals shows (default: the highest-loss sample)")
    p.add_argument("--text", type=utf8_text, default=None,
                   help="text runs: a text of your own for --internals and --attribution")
    out_arg(p, "directory for inspect.html and result.json (default RUN_DIR/inspect-SPLIT)")


def predict(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", type=Path, help="RUN_DIR or an exported model file (.onnx, .torchscript.pt)")
    p.add_argument("files", nargs="*", help="image files, folders (searched recursively) or globs ('photos/*.jpg'); "
                   "CSV files with the training feature columns; or texts (text runs); none for a forecasting run: "
                   "the steps after its data ends. An input that cannot be predicted gets an error row; exit code "
                   "0 = all predicted, 3 = some could not be, 2 = none could")
    p.add_argument("--top", type=TOP, default=3, help="how many classes to show per input")
    p.add_argument("--trust-code", action="store_true",
                   help="allow a TorchScript model file: it carries code that runs when loaded (use only your own)")
    out_arg(p, "directory for result.json and predictions.csv (one line per input, errors included)")


def summary(p: argparse.ArgumentParser) -> None:
    p.add_argument("config")
    p.add_argument("overrides", nargs="*")


def list_(p: argparse.ArgumentParser) -> None:
    p.add_argument("kind", nargs="?", choices=REGISTRY_KINDS, help="what to list (default: all)")
    p.add_argument("--filter", metavar="PATTERN", help="models: timm and torchvision models whose names contain "
                   "PATTERN (or match a glob such as 'resnet*'), to use as model.name")


def cv(p: argparse.ArgumentParser) -> None:
    config_args(p)
    p.add_argument("--folds", type=count(2, MAX_RUNS), default=5, help="number of folds K (default 5)")
    p.add_argument("--split", choices=FOLD_SPLITS, default="auto",
                   help="auto: time for sequence data, group with --group, stratified for classification, else kfold")
    p.add_argument("--group", metavar="COLUMN", help="csv data: rows sharing this column's value stay in "
                                                     "one fold (the column is not used as a feature)")
    p.add_argument("--jobs", type=count(1, 256), default=1, help="folds trained in parallel processes (default 1)")
    p.add_argument("--out", type=Path, default=None, help="directory (default: runs/<data>-<model>-cv-<time>)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing result in --out")
    p.add_argument("--verbose", action="store_true",
                   help="print every epoch of every fold in a terminal too (a log or pipe always gets them)")
    p.add_argument("--dry-run", action="store_true", help="one epoch on two batches per fold")


def tune(p: argparse.ArgumentParser) -> None:
    config_args(p, "YAML config with a tune section", "train.epochs=10")
    p.add_argument("--trials", type=count(1, 100_000), required=True, help="finished trials the study should hold")
    p.add_argument("--metric", help="validation objective, e.g. val_accuracy (default: train.monitor)")
    p.add_argument("--cv", type=count(2, MAX_RUNS), metavar="K",
                   help="objective = mean over K folds instead of the val split")
    p.add_argument("--storage", help="Optuna storage URL (default: sqlite:///OUT/study.db); share a "
                                     "postgresql:// URL between workers to scale out")
    p.add_argument("--study", help="study name (default: the config file name)")
    p.add_argument("--timeout", type=float, help="stop starting trials after this many seconds")
    p.add_argument("--no-prune", action="store_true", help="run every trial to the end")
    p.add_argument("--search-only", action="store_true", help="skip the final retrain and test evaluation "
                                                              "(extra workers of a shared study)")
    p.add_argument("--out", type=Path, help="directory (default: runs/<config name>-tune)")
    p.add_argument("--dry-run", action="store_true", help="2 trials of one epoch on two batches, in memory")


def lr_find(p: argparse.ArgumentParser) -> None:
    config_args(p, example="train.optimizer=sgd")
    p.add_argument("--start", type=float, default=1e-7, help="first learning rate (default 1e-7)")
    p.add_argument("--end", type=float, default=10.0, help="last learning rate (default 10)")
    p.add_argument("--steps", type=count(1, 1_000_000), default=200, help="training steps of the sweep (default 200)")
    p.add_argument("--out", type=Path, help="directory (default: runs/<data>-<model>-lr-find)")
    p.add_argument("--dry-run", action="store_true", help="a 10-step sweep")


def runs(p: argparse.ArgumentParser) -> None:
    p.add_argument("dir", nargs="?", default="runs", type=Path, help="directory with runs (default: runs)")
    p.add_argument("--sort", metavar="COLUMN", help="sort by this column (e.g. test, best_val, lr, time_s)")
    p.add_argument("--reverse", action="store_true", help="descending order")
    p.add_argument("--wide", action="store_true",
                   help="every column, however wide (default: the key columns fitted to the terminal's width)")
    p.add_argument("--out", type=Path, default=None, help="directory for result.json (the runs as rows)")


def compare(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", type=Path, help="two or more run directories")
    p.add_argument("--out", type=Path, default=None,
                   help="directory for compare.png and result.json (default: compare.png in the current "
                        "directory, no result.json)")


def plot(p: argparse.ArgumentParser) -> None:
    p.add_argument("what", choices=("activations", "curves"),
                   help="activations: functions and derivatives; curves: a run's learning curves")
    p.add_argument("names", nargs="*", help="activations: names (default: all); curves: RUN_DIR")
    p.add_argument("--out", type=Path, default=None,
                   help="directory for the PNG and result.json (default: the run directory for curves, "
                        "the current directory for activations)")


def track(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a finished run directory or a --seeds directory")
    p.add_argument("--mlflow", metavar="URI", help="tracking URI (default: the run's track.mlflow, else "
                   "$MLFLOW_TRACKING_URI, else sqlite:///mlflow.db in the working directory)")
    p.add_argument("--experiment", metavar="NAME", help="MLflow experiment (default: the run's track.experiment)")


def tensorboard(p: argparse.ArgumentParser) -> None:
    p.add_argument("logdir", nargs="?", default="runs", type=Path,
                   help="directory searched for TensorBoard event files (default: runs)")
    p.add_argument("--port", type=PORT, default=6006, help="port on 127.0.0.1 (default 6006)")


def export(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", type=Path, help="a trainlab run directory")
    p.add_argument("--format", choices=EXPORT_FORMATS, default="onnx", help="file format (default: onnx)")
    p.add_argument("--out", type=Path, default=None, help="output file (default: RUN_DIR/model.onnx or "
                   "RUN_DIR/model.torchscript.pt)")
    p.add_argument("--samples", type=count(2, 1_000_000), default=256, help="test-split inputs in the parity check")


def card(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", type=Path, metavar="RUN", help="a run directory, a --seeds directory or a cv directory")
    out_arg(p, "directory for MODEL_CARD.md and result.json (default: MODEL_CARD.md in RUN, no result.json)")
    p.add_argument("--audit", type=Path, default=None,
                   help="a `trainlab audit` output directory (default: RUN/audit when it exists)")
    p.add_argument("--no-eval", dest="evaluate", action="store_false",
                   help="skip the uncounted pass of best.pt over the test split (no calibration, no bootstrap "
                        "intervals: they are then written as not measured)")


def serve(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run directory or an exported .onnx/.pt file")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=PORT, default=8000, help="port (default 8000; 0 = any free port)")
    p.add_argument("--max-bytes", type=count(1, 2**30), default=SERVE_MAX_BYTES, help="request body limit in bytes")
    p.add_argument("--body-timeout", type=seconds, default=SERVE_BODY_TIMEOUT, metavar="SECONDS",
                   help="answer 408 to a request whose body has not arrived whole within this time (default 30)")
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    p.add_argument("--trust-code", action="store_true",
                   help="allow a TorchScript model file (it runs code when loaded); only for files you made")


def doctor(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the information as JSON instead of a report")


def show(p: argparse.ArgumentParser) -> None:
    config_args(p, example="data.val_fraction=0.2")
    p.add_argument("--n", type=count(1, 1000), default=8, help="training samples shown (default 8)")
    out_arg(p, "directory for show.html and result.json (default: runs/<config name>-show)")


def audit(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", metavar="CONFIG_OR_RUN",
                   help="YAML config (audits its data as train splits it), or a run directory (uses the model's "
                        "embeddings and probabilities)")
    p.add_argument("overrides", nargs="*", help="dotted key=value overrides of a CONFIG, e.g. data.path=table.csv")
    out_arg(p, "directory for audit.html and result.json (default: runs/<config name>-audit, or RUN/audit)")
