"""`trainlab tensorboard [DIR]` and TensorBoard logging (issue 5)."""
from __future__ import annotations

import argparse

from trainlab.errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("args", nargs="*")


def run(args: argparse.Namespace) -> int:
    raise UserError("`trainlab tensorboard` is not implemented yet")
