"""`trainlab cv CONFIG --folds K`: K-fold cross-validation on the training pool (issue 4)."""
from __future__ import annotations

import argparse

from trainlab.errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("args", nargs="*")


def run(args: argparse.Namespace) -> int:
    raise UserError("`trainlab cv` is not implemented yet")
