"""DDP: two CPU processes under torchrun (gloo) train one run directory, close to a single process."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
import yaml

from conftest import tiny_config
from trainlab.core.distributed import DistInfo, shard
from trainlab.core.errors import UserError
from trainlab.data.batches import TensorBatches


def test_shards_partition_every_batch():
    x = torch.arange(20).float().unsqueeze(1)
    full = TensorBatches(x, torch.arange(20), batch_size=8, shuffle=True, drop_last=True)
    order = full.order(torch.Generator().manual_seed(0))
    parts = []
    for rank in range(2):
        b = TensorBatches(x, torch.arange(20), batch_size=8, shuffle=True)
        shard(b, DistInfo(rank, 2, rank))
        parts.append([yb.tolist() for _, yb in b.iterate(order)])
    for whole, r0, r1 in zip((yb.tolist() for _, yb in full.iterate(order)), *parts, strict=False):
        assert len(r0) == len(r1) == 4 and sorted(r0 + r1) == sorted(whole)


def test_global_batch_must_divide():
    b = TensorBatches(torch.zeros(10, 1), torch.zeros(10), batch_size=7)
    with pytest.raises(UserError, match="divisible by the 2 processes"):
        shard(b, DistInfo(0, 2, 0))


@pytest.mark.slow
def test_torchrun_two_cpu_processes(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(tiny_config(data={"batch_size": 32}, train={"epochs": 3, "lr": 0.003})))
    single = tmp_path / "single"
    assert subprocess.run([sys.executable, "-m", "trainlab", "train", str(cfg), "--out", str(single)],
                          capture_output=True).returncode == 0
    ddp = tmp_path / "ddp"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29531"]
    proc = subprocess.run([*torchrun, "-m", "trainlab", "train", str(cfg), "--out", str(ddp)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("data path:") == 1 and proc.stdout.count("epoch   3/3") == 1  # rank 0 prints
    a, b = (json.loads((d / "result.json").read_text()) for d in (single, ddp))
    assert b["epochs_run"] == 3 and sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml", "ddp", "single"]
    assert abs(a["final"]["train_loss"] - b["final"]["train_loss"]) < 0.15 * a["final"]["train_loss"]
    assert abs(a["test"]["accuracy"] - b["test"]["accuracy"]) < 0.05
