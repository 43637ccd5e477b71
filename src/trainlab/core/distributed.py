"""Distributed data parallel training on PyTorch's own engine, kept out of the training loop.

    torchrun --nproc-per-node 2 -m trainlab train examples/digits-mlp.yaml         # 2 CPU processes (gloo)
    torchrun --nproc-per-node 4 -m trainlab train examples/mnist-cnn.yaml          # 4 GPUs (nccl)
    torchrun --nnodes 2 --node-rank R --rdzv-endpoint HOST:29500 --nproc-per-node 8 -m trainlab train ...

`data.batch_size` is the global batch: each of the N processes trains on batch_size / N rows of every
batch (the same rows a single process would see, split by rank), DDP averages the gradients, and the
epoch's training loss/accuracy are all-reduced. Validation and test run on every rank over the full
split (identical numbers, no communication). Only rank 0 writes files and prints.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from trainlab.core.errors import UserError


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def from_env() -> DistInfo | None:
    """The torchrun environment (RANK, WORLD_SIZE, LOCAL_RANK), or None for a plain single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return None
    return DistInfo(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))


def init(info: DistInfo, device_pref: str) -> torch.device:
    """Join the process group (nccl on CUDA, gloo on CPU) and return this rank's device."""
    use_cuda = torch.cuda.is_available() and device_pref in ("auto", "cuda")
    if use_cuda:
        torch.cuda.set_device(info.local_rank)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return torch.device("cuda", info.local_rank) if use_cuda else torch.device("cpu")


def shard(batches, info: DistInfo) -> None:
    """Make `batches` yield this rank's rows of every global batch; every rank needs >= 1 row, so drop_last."""
    if batches.batch_size % info.world:
        raise UserError(f"data.batch_size={batches.batch_size} must be divisible by the {info.world} processes")
    batches.shard = (info.rank, info.world)
    batches.drop_last = True


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    return nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def all_reduce_sum(values: list[float], device: torch.device) -> list[float]:
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def epoch_totals(loss_sum: float, n: int, correct: float, info: DistInfo | None, device: torch.device):
    """An epoch's training sums over every rank, and the samples trained (per rank under torchrun) for
    history.csv: {"samples_train": N, "samples_train_rank0": N0, ...}; a mid-epoch resume's samples included."""
    ranks = [float(n) * (r == info.rank) for r in range(info.world)] if info else []
    if info:
        loss_sum, n, correct, *ranks = all_reduce_sum([loss_sum, n, correct, *ranks], device)
    counts = {"samples_train": int(n), **{f"samples_train_rank{r}": int(c) for r, c in enumerate(ranks)}}
    return loss_sum, n, correct, counts


def broadcast(obj, info: DistInfo):
    """Rank 0's value of a picklable object on every rank (e.g. the run directory)."""
    box = [obj if info.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
