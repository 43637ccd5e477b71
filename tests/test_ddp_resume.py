"""Exactly-once under DDP: a `torchrun --nproc-per-node 2` run (CPU, gloo) killed with SIGKILL at a random step and
resumed with `train --resume` trains every training sample exactly once per epoch, on each rank as the
uninterrupted run does, and history.csv counts what the ranks saw.

A spy (written beside the run, started by torchrun instead of `python -m trainlab`) logs each training step's
rows as hashes, one file per rank, and SIGKILLs rank 0 at the chosen step; torchrun then stops rank 1. The
steps after the last checkpoint are lost work, not trained samples: the resume repeats them.
"""
from __future__ import annotations

import csv
import json
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import yaml

from conftest import tiny_config

pytestmark = pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()),
                                reason="torch.distributed with the gloo backend is not available in this build")

EPOCHS, CHECKPOINT_EVERY = 3, 2
SPY = '''
import hashlib, json, os, signal, sys
from trainlab.cli.main import main
from trainlab.engine.trainer import Trainer

rank, kill_at = int(os.environ["RANK"]), int(os.environ.get("SPY_KILL_AT", "0"))
log = open(f"{os.environ['SPY_LOG']}.rank{rank}", "a")
original, steps = Trainer._train_step, [0]

def spy(self, xb, yb, i, n_steps):
    steps[0] += 1
    if rank == 0 and steps[0] == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)  # as a power cut or the OOM killer would: no cleanup at all
    rows = [hashlib.blake2b(r.numpy().tobytes(), digest_size=8).hexdigest() for r in xb.cpu()]
    log.write(json.dumps([self.epoch, i, rows]) + "\\n")
    log.flush()
    return original(self, xb, yb, i, n_steps)

Trainer._train_step = spy
sys.exit(main(sys.argv[1:]))
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(tmp_path: Path, log: str, *args, kill_at: int = 0) -> subprocess.CompletedProcess:
    spy = tmp_path / "spy.py"
    spy.write_text(SPY)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
           "--master-port", str(free_port()), str(spy), *map(str, args)]
    env = {**__import__("os").environ, "SPY_LOG": str(tmp_path / log), "SPY_KILL_AT": str(kill_at),
           "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)


def steps(tmp_path: Path, log: str, rank: int) -> list[tuple[int, int, list[str]]]:
    path = tmp_path / f"{log}.rank{rank}"
    return [tuple(json.loads(line)) for line in path.read_text().splitlines()] if path.exists() else []


def per_epoch(logged) -> dict[int, Counter]:
    out: dict[int, Counter] = {}
    for epoch, _, rows in logged:
        out.setdefault(epoch, Counter()).update(rows)
    return out


def committed(logged, run: Path):
    """The logged steps last.pt keeps: whole epochs before its epoch, and its epoch's batches before the resume
    point; what came after is lost at the kill and trained again by the resume."""
    ckpt = torch.load(run / "last.pt", weights_only=True, map_location="cpu")
    done = ckpt["resume_point"]["batch"] if ckpt["resume_point"] else 0
    return [s for s in logged if s[0] < ckpt["epoch"] or (s[0] == ckpt["epoch"] and s[1] < done)]


def test_torchrun_killed_at_a_random_step_and_resumed_trains_every_sample_exactly_once_per_epoch(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(tiny_config(data={"batch_size": 64}, train={
        "epochs": EPOCHS, "checkpoint_every": CHECKPOINT_EVERY, "num_threads": 1})))
    ref = torchrun(tmp_path, "ref", "train", cfg, "--out", tmp_path / "ref")
    if ref.returncode != 0 and "rendezvous" in ref.stderr.lower():
        pytest.skip(f"torchrun cannot start two local processes here: {ref.stderr.strip().splitlines()[-1]}")
    assert ref.returncode == 0, ref.stderr[-3000:]
    expected = [per_epoch(steps(tmp_path, "ref", r)) for r in (0, 1)]
    n_steps = len(steps(tmp_path, "ref", 0))
    assert n_steps == len(steps(tmp_path, "ref", 1)) and n_steps % EPOCHS == 0

    # a step of rank 0 after the first checkpoint and before the last, at random (seeded: here step 34 of 60,
    # mid-epoch 2, one step after a checkpoint, so that step is lost and must be trained again, once)
    kill_at = int(np.random.default_rng(31).integers(CHECKPOINT_EVERY + 1, n_steps))
    killed = torchrun(tmp_path, "run", "train", cfg, "--out", tmp_path / "run", kill_at=kill_at)
    assert killed.returncode != 0 and (tmp_path / "run" / "last.pt").is_file(), killed.stderr[-3000:]
    assert len(steps(tmp_path, "run", 0)) == kill_at - 1  # rank 0 died at the start of step kill_at
    logged = [steps(tmp_path, "run", r) for r in (0, 1)]
    before = [committed(logged[r], tmp_path / "run") for r in (0, 1)]
    assert 0 < len(before[0]) < kill_at - 1  # some steps were lost with the process
    for r in (0, 1):
        (tmp_path / f"run.rank{r}").rename(tmp_path / f"killed.rank{r}")

    resumed = torchrun(tmp_path, "run", "train", "--resume", tmp_path / "run")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    for r in (0, 1):
        after = steps(tmp_path, "run", r)
        assert len(before[r]) + len(after) == n_steps  # no step repeated, none skipped
        lost = logged[r][len(before[r]):]
        assert lost and after[:len(lost)] == lost  # the lost steps again: same epoch, batch and rows
        got = per_epoch(before[r] + after)
        assert sorted(got) == list(range(EPOCHS))
        assert got == expected[r], f"rank {r}: samples lost or repeated"  # each rank's rows, each epoch
    n_train = len(json.loads((tmp_path / "run" / "splits.json").read_text())["train"])
    history = list(csv.DictReader((tmp_path / "run" / "history.csv").open()))
    assert len(history) == EPOCHS
    for e, row in enumerate(history):
        ranks = [int(row[f"samples_train_rank{r}"]) for r in (0, 1)]
        both = expected[0][e] + expected[1][e]  # the two ranks' rows together: each once, no row on both
        assert max(both.values()) == 1 and ranks == [sum(expected[r][e].values()) for r in (0, 1)]
        assert int(row["samples_train"]) == sum(ranks) == len(both)
        assert n_train - 64 < len(both) <= n_train  # DDP leaves out only the last, partial global batch
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["epochs_run"] == EPOCHS
