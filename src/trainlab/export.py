"""`trainlab export RUN_DIR --format onnx|torchscript` (issue 8)."""
from __future__ import annotations

import argparse

from trainlab.errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("args", nargs="*")


def run(args: argparse.Namespace) -> int:
    raise UserError("`trainlab export` is not implemented yet")
