"""`trainlab tune CONFIG --trials N`: Optuna hyperparameter search (issue 4)."""
from __future__ import annotations

import argparse

from trainlab.errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("args", nargs="*")


def run(args: argparse.Namespace) -> int:
    raise UserError("`trainlab tune` is not implemented yet")
