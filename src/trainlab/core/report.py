"""Progress reporting: the one way a lower layer says something while it works.

A workflow or `use` entry point takes `report: Reporter = print_progress` and calls `report("fold 2/5 ...")`;
what it finally found goes into the result it returns, which `cli/commands.py` renders. Tests and the
Python API pass `silent` to keep a call quiet.

    from trainlab.core.report import Reporter, print_progress, silent
    def run_thing(n: int, report: Reporter = print_progress) -> dict: ...
"""
from __future__ import annotations

import sys
from typing import Protocol


class Reporter(Protocol):
    """Called with one line of progress; `warning=True` marks a line meant for stderr."""

    def __call__(self, line: str, *, warning: bool = False) -> None: ...


def print_progress(line: str, *, warning: bool = False) -> None:
    """Progress on stdout, warnings on stderr, flushed so a piped run shows it as it happens."""
    print(line, file=sys.stderr if warning else sys.stdout, flush=True)


def silent(line: str, *, warning: bool = False) -> None:
    """Says nothing (tests, notebooks that only want the result)."""
