"""Start-up cost of the `trainlab` command (bench 5 of `make bench`).

Each command is a fresh process, measured in rounds that alternate the commands, so machine drift hits all
of them alike; the table reports medians beside `python -c pass` (the floor) and `python -c "import torch"`
(what a command pays if it imports torch). Target: --help, --version and a config error under 0.5 s.
"""
from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 0.5


def commands(bad_config: Path) -> dict[str, list[str]]:
    py = sys.executable
    return {
        "python -c pass": [py, "-c", "pass"],
        "python -c 'import torch'": [py, "-c", "import torch"],
        "trainlab --version": [py, "-m", "trainlab", "--version"],
        "trainlab --help": [py, "-m", "trainlab", "--help"],
        "trainlab train BAD_CONFIG (exit 2)": [py, "-m", "trainlab", "train", str(bad_config)],
    }


def wall(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - t0


def bench_startup(reps: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        bad = Path(tmp) / "bad.yaml"
        bad.write_text("data: {name: digits}\ntrain: {epoch: 3}\n")  # unknown key train.epoch
        cmds = commands(bad)
        times = {name: [] for name in cmds}
        for cmd in cmds.values():  # warm-up: file cache, .pyc
            wall(cmd)
        for _ in range(reps):
            for name, cmd in cmds.items():
                times[name].append(wall(cmd))
    medians = {name: statistics.median(t) for name, t in times.items()}
    return {"median_s": medians, "runs_s": times, "target_s": TARGET_S,
            "met": all(medians[k] < TARGET_S for k in medians if k.startswith("trainlab"))}
