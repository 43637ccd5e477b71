"""A whole `trainlab train` process beside a hand-written script doing the same epoch (bench 7 of `make bench`).

Both train the course MLP one epoch on real MNIST with the recipe of examples/mnist-mlp.yaml (batch 512, Adam,
one-cycle, label smoothing, bf16) on the same 54,000 images and score the 10,000 test images: the hand-written
side is bench/recipes/handwritten_mlp.py (plain PyTorch, reads the raw files itself), the trainlab side is the
CLI as a user runs it, with everything a run writes (checkpoints, history, plots, report.html, TensorBoard, the
diagnosis and its baselines). Fresh processes, alternating, `reps` rounds; medians of wall time and of each
process's peak resident memory, and the median of the per-round ratios.
"""
from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = 1.2  # trainlab / hand-written, wall time and peak memory
# runs `cmd` as its only child and prints that child's peak RSS (KiB): RUSAGE_CHILDREN of a fresh wrapper
PEAK = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, check=True); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def commands(root: Path, out: Path) -> dict[str, list[str]]:
    py = sys.executable
    return {"hand-written script": [py, str(ROOT / "bench" / "recipes" / "handwritten_mlp.py"), "--seed", "0",
                                    "--train-size", "54000", "--data", str(root), "--set", "epochs=1"],
            "trainlab train": [py, "-m", "trainlab", "train", str(ROOT / "examples" / "mnist-mlp.yaml"),
                               f"data.root={root}", "train.epochs=1", "--out", str(out), "--overwrite"]}


def measure(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of one fresh process."""
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-c", PEAK, *cmd], capture_output=True, text=True, check=True)
    return time.perf_counter() - t0, int(res.stdout.strip().splitlines()[-1]) / 1024


def bench_lean(root: Path, reps: int = 4) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cmds = commands(root, Path(tmp) / "run")
        for cmd in cmds.values():  # warm-up: file cache, .pyc files
            measure(cmd)
        wall = {k: [] for k in cmds}
        rss = {k: [] for k in cmds}
        for r in range(reps):
            for name in (list(cmds) if r % 2 == 0 else list(reversed(cmds))):
                w, m = measure(cmds[name])
                wall[name].append(w)
                rss[name].append(m)
    hand, lab = cmds
    wall_ratio = statistics.median(a / b for a, b in zip(wall[lab], wall[hand], strict=True))
    rss_ratio = statistics.median(a / b for a, b in zip(rss[lab], rss[hand], strict=True))
    return {"commands": {k: " ".join(v[1:]) for k, v in cmds.items()}, "wall_s": wall, "peak_rss_mb": rss,
            "median_wall_s": {k: statistics.median(v) for k, v in wall.items()},
            "median_peak_rss_mb": {k: statistics.median(v) for k, v in rss.items()},
            "wall_ratio": wall_ratio, "rss_ratio": rss_ratio, "target": TARGET,
            "met": wall_ratio <= TARGET and rss_ratio <= TARGET}


if __name__ == "__main__":
    print(json.dumps(bench_lean(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "data"),
                     indent=1))
