"""`trainlab runs [DIR]` and `trainlab compare RUN RUN...` (issue 5)."""
from __future__ import annotations

import argparse

from trainlab.errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("args", nargs="*")


def run(args: argparse.Namespace) -> int:
    raise UserError("`trainlab runs` is not implemented yet")


def add_compare_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("args", nargs="*")


def run_compare(args: argparse.Namespace) -> int:
    raise UserError("`trainlab compare` is not implemented yet")
