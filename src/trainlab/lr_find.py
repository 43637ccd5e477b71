"""`trainlab lr-find CONFIG`: learning-rate range test (issue 4)."""
from __future__ import annotations

import argparse

from trainlab.errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("args", nargs="*")


def run(args: argparse.Namespace) -> int:
    raise UserError("`trainlab lr-find` is not implemented yet")
