"""`trainlab serve RUN_DIR`: local web page and JSON API (issue 8)."""
from __future__ import annotations

import argparse

from trainlab.errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("args", nargs="*")


def run(args: argparse.Namespace) -> int:
    raise UserError("`trainlab serve` is not implemented yet")
