"""Shared fixtures: tiny configs and an in-process CLI runner."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
import yaml

from trainlab.cli.main import main

os.environ.setdefault("MPLBACKEND", "Agg")
# measured choices (train.precision: auto, ...) go to a cache of this test session, not the user's
os.environ["TRAINLAB_CACHE"] = tempfile.mkdtemp(prefix="trainlab-cache-")


def tiny_config(**sections) -> dict:
    """A digits MLP config that trains in about a second."""
    cfg = {
        "seed": 0,
        "data": {"name": "digits", "batch_size": 64, "val_fraction": 0.1, "test_fraction": 0.2},
        "model": {"name": "mlp", "hidden": [32]},
        "train": {"epochs": 2, "lr": 0.01},
    }
    for name, values in sections.items():
        cfg.setdefault(name, {}).update(values) if isinstance(values, dict) else cfg.__setitem__(name, values)
    return cfg


@pytest.fixture
def write_config(tmp_path):
    def write(cfg: dict | None = None, name: str = "config.yaml", **sections) -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(cfg if cfg is not None else tiny_config(**sections)))
        return path
    return write


@pytest.fixture
def cli(capsys):
    """Run `trainlab ARGS...` in-process; returns (exit code, stdout, stderr)."""
    def run(*args) -> tuple[int, str, str]:
        code = main([str(a) for a in args])
        out = capsys.readouterr()
        return code, out.out, out.err
    return run


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert code == 2, (code, err)
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
