"""`trainlab plot activations`, learning curves, confusion matrices (issue 5)."""
from __future__ import annotations

import argparse

from trainlab.errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("args", nargs="*")


def run(args: argparse.Namespace) -> int:
    raise UserError("`trainlab plot` is not implemented yet")
