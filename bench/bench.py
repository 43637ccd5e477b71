"""trainlab speed benchmarks (`make bench`): side by side, alternating, medians of repeated runs.

    python bench/bench.py                 # all seven, writes bench/results.json and prints markdown tables
    python bench/bench.py --only 1 2 --reps 5
    ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 python bench/bench.py --only 6 7 --as avx2   # no native bf16

1. Trainer.fit vs a minimal hand-written loop on identical tensors (course MLP, batch 64 and 256).
2. One training epoch: trainlab's data path for the MNIST config vs the tutorial pipeline
   (torchvision MNIST + ToTensor + Normalize + DataLoader), same model and optimizer.
3. Time to test accuracy on real MNIST (../shared/data or $TRAINLAB_MNIST_ROOT): examples/mnist-mlp.yaml to
   98.0% and examples/mnist-cnn.yaml to 99.0%, beside the same recipes hand-written (bench/recipes), seeds 0-2.
4. Samples/s vs batch size; peak memory of the streaming path at 1x and 10x dataset size.
5. Start-up: `trainlab --version`, `--help` and a config error beside `python -c pass` and `import torch`.
6. The course's CustomDataset (uint8 scaled in __getitem__) through Trainer.fit vs a TensorDataset.
7. A whole `trainlab train` process (one epoch of examples/mnist-mlp.yaml) vs a hand-written script: wall, memory.
Timings on a shared machine are noisy: read the ratios, which are measured in alternating runs.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import time_to_accuracy
import torch
from custom_dataset import bench_custom_dataset
from lean import bench_lean
from startup import bench_startup
from torch import nn

from trainlab.core.machine import cpu_facts, cpu_line

ROOT = Path(__file__).resolve().parents[1]
MNIST_ROOT = Path(os.environ.get("TRAINLAB_MNIST_ROOT", ROOT.parent / "shared" / "data"))


# ----------------------------------------------------------------------------- shared pieces

def course_mlp() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 196), nn.ReLU(), nn.Linear(196, 49), nn.ReLU(), nn.Linear(49, 10))


def machine() -> dict:
    """The CPU every figure of this run holds for: model, kernel level, native bf16, kernel caps, threads."""
    facts = cpu_facts()
    return {"cpu": facts["model"], "capability": facts["capability"], "native_bf16": facts["native_bf16"],
            "kernel_caps": facts["kernel_caps"], "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(), "platform": platform.platform(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None, "line": cpu_line(facts)}


def hand_written_epoch(model, opt, x, y, batch_size, gen) -> None:
    """The loop people write by hand: shuffle, slice, forward, loss, backward, step. No logging at all."""
    loss_fn = nn.CrossEntropyLoss()
    perm = torch.randperm(len(x), generator=gen)
    for i in range(0, len(x), batch_size):
        idx = perm[i:i + batch_size]
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x[idx]), y[idx])
        loss.backward()
        opt.step()


def median(values):
    return statistics.median(values)


def mnist_tensors(n: int | None = None):
    """Real MNIST as float tensors (N, 1, 28, 28) in [0,1] when available, else same-shaped random data."""
    try:
        from torchvision.datasets import MNIST

        ds = MNIST(str(MNIST_ROOT), train=True, download=False)
        x, y = ds.data.unsqueeze(1).float() / 255, ds.targets
    except RuntimeError:
        g = torch.Generator().manual_seed(0)
        x, y = torch.rand(60000, 1, 28, 28, generator=g), torch.randint(0, 10, (60000,), generator=g)
    return (x[:n], y[:n]) if n else (x, y)


# ----------------------------------------------------------------------------- 1. overhead

def bench_overhead(reps: int) -> dict:
    """Samples/s of Trainer.fit and of the hand-written loop, alternating, same data, same model init."""
    from torch.utils.data import TensorDataset

    from trainlab import Trainer

    x, y = mnist_tensors(20000)
    x = x.view(len(x), -1)
    out = {}
    for bs in (64, 256):
        t_hand, t_lab = [], []
        for r in range(reps + 1):  # the first pair warms up
            torch.manual_seed(r)
            model = course_mlp()
            # fused: the update kernel Trainer builds, so this table measures the loop around it, not the kernel
            opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
            t0 = time.perf_counter()
            hand_written_epoch(model, opt, x, y, bs, torch.Generator().manual_seed(r))
            th = time.perf_counter() - t0
            torch.manual_seed(r)
            trainer = Trainer(course_mlp(), lr=1e-3, metrics=("accuracy",), progress=False, seed=r)
            t0 = time.perf_counter()
            trainer.fit(TensorDataset(x, y), epochs=1, batch_size=bs)
            tl = time.perf_counter() - t0
            if r:
                t_hand.append(th)
                t_lab.append(tl)
        ratios = [h / t for h, t in zip(t_hand, t_lab, strict=True)]
        # noise on a shared VM only ever adds time, so the fastest of each side is the steadiest estimate
        out[bs] = {"hand_samples_per_s": len(x) / median(t_hand), "trainlab_samples_per_s": len(x) / median(t_lab),
                   "ratio_trainlab_over_hand": median(ratios), "ratios": ratios,
                   "best_ratio_trainlab_over_hand": min(t_hand) / min(t_lab), "hand_s": t_hand, "trainlab_s": t_lab}
    return out


# ----------------------------------------------------------------------------- 2. data path

def tutorial_loader(batch_size: int = 64, train: bool = True):
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    ds = datasets.MNIST(str(MNIST_ROOT), train=train, download=False, transform=tf)
    return DataLoader(ds, batch_size=batch_size, shuffle=train)


def tutorial_epoch(model, opt, loader) -> None:
    loss_fn = nn.CrossEntropyLoss()
    for xb, yb in loader:
        opt.zero_grad()
        loss = loss_fn(model(xb), yb)
        loss.backward()
        opt.step()


def trainlab_setup(config: str, overrides=()):
    from trainlab.data.prepare import load_data
    from trainlab.run.config import load_config

    cfg = load_config(ROOT / "examples" / config, [f"data.root={MNIST_ROOT}", *overrides])
    data = load_data(cfg)
    view = data.view(data.splits.train, data.splits.val)
    return cfg, view


def bench_epoch(reps: int) -> dict:
    """One training epoch of the course MLP: trainlab's in-memory path vs the tutorial DataLoader pipeline."""
    from trainlab import Trainer
    from trainlab.models.catalog import build_model

    t0 = time.perf_counter()
    cfg, view = trainlab_setup("mnist-mlp.yaml")
    train_b = view.batches("train", torch.device("cpu"))
    setup_s = time.perf_counter() - t0  # decode once + eval transforms once: paid once per run, not per epoch
    loader = tutorial_loader(cfg.data.batch_size)
    t_tut, t_lab = [], []
    for r in range(reps):
        torch.manual_seed(r)
        model = course_mlp()
        opt = torch.optim.Adam(model.parameters(), lr=cfg.train.lr)
        t0 = time.perf_counter()
        tutorial_epoch(model, opt, loader)
        t_tut.append(time.perf_counter() - t0)
        torch.manual_seed(r)
        trainer = Trainer(build_model(cfg.model, view.input_shape, 10), cfg.train, seed=r, task="classification",
                                      progress=False)
        t0 = time.perf_counter()
        trainer.fit(train_b, epochs=1)
        t_lab.append(time.perf_counter() - t0)
    n = len(loader.dataset)
    return {"samples": n, "tutorial_epoch_s": median(t_tut), "trainlab_epoch_s": median(t_lab),
            "trainlab_setup_s": setup_s,
            "speedup": median([a / b for a, b in zip(t_tut, t_lab, strict=False)]),
            "train_samples_trainlab": train_b.num_samples,
            "data_path": f"{train_b.path} ({train_b.nbytes() / 2**20:.0f} MB)"}


# ----------------------------------------------------------------------------- 3. time to accuracy

def bench_time_to_accuracy(reps: int) -> dict:
    if not (MNIST_ROOT / "MNIST" / "raw").is_dir():
        return {"skipped": f"no MNIST under {MNIST_ROOT}"}
    return time_to_accuracy.bench_time_to_accuracy(MNIST_ROOT, min(reps, 3))


# ----------------------------------------------------------------------------- 4. scaling and memory

def bench_scaling(reps: int) -> dict:
    from torch.utils.data import TensorDataset

    from trainlab import Trainer

    x, y = mnist_tensors(20000)
    rates = {}
    for bs in (16, 32, 64, 128, 256, 512, 1024):
        times = []
        for r in range(max(1, reps // 2)):
            trainer = Trainer(course_mlp(), lr=1e-3, metrics=("accuracy",), progress=False, seed=r)
            t0 = time.perf_counter()
            trainer.fit(TensorDataset(x, y), epochs=1, batch_size=bs)
            times.append(time.perf_counter() - t0)
        rates[bs] = len(x) / median(times)
    memory = {scale: _streaming_peak_rss(scale) for scale in (1, 10)}
    return {"samples_per_s_by_batch": rates, "streaming_peak_rss_mb": memory,
            "memory_ratio_10x_over_1x": memory[10] / memory[1]}


STREAM_SCRIPT = """
import resource, sys, torch
from torch.utils.data import Dataset
from trainlab import Trainer
from trainlab.data.batches import LoaderBatches

class Synthetic(Dataset):
    # a dataset too big to hold: each sample is made on the fly, like decoding a file
    def __init__(self, n): self.n = n
    def __len__(self): return self.n
    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        return torch.randint(0, 256, (1, 28, 28), dtype=torch.uint8, generator=g).float() / 255, i % 10

n = int(sys.argv[1])
batches = LoaderBatches(Synthetic(n), 256, shuffle=True, num_workers=2)
model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
Trainer(model, metrics=("accuracy",), progress=False).fit(batches, epochs=1)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss + resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def _streaming_peak_rss(scale: int) -> float:
    out = subprocess.run([sys.executable, "-c", STREAM_SCRIPT, str(20000 * scale)], capture_output=True, text=True,
                         check=True)
    return int(out.stdout.strip().splitlines()[-1]) / 1024  # ru_maxrss is in KiB on Linux


# ----------------------------------------------------------------------------- main
def bench_custom(reps: int) -> dict:
    x, y = mnist_tensors(20_000)  # as bench 1; the streaming side reads every sample through __getitem__
    images = (x.reshape(-1, 28, 28) * 255).round().to(torch.uint8) if x.is_floating_point() else x
    return bench_custom_dataset(reps, images.reshape(-1, 28, 28), y)


def bench_whole_process(reps: int) -> dict:
    if not (MNIST_ROOT / "MNIST" / "raw").is_dir():
        return {"skipped": f"no MNIST under {MNIST_ROOT}"}
    return bench_lean(MNIST_ROOT, max(3, reps - 1))


BENCHES = {1: ("overhead", bench_overhead), 2: ("epoch", bench_epoch), 3: ("time_to_accuracy", bench_time_to_accuracy),
           4: ("scaling", bench_scaling), 5: ("startup", bench_startup), 6: ("custom_dataset", bench_custom),
           7: ("whole_process", bench_whole_process)}



def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", type=int, nargs="*", default=list(BENCHES), choices=list(BENCHES))
    p.add_argument("--reps", type=int, default=5, help="repetitions (medians are reported)")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results.json")
    p.add_argument("--threads", type=int, help="torch.set_num_threads for both sides (default: torch's choice)")
    p.add_argument("--as", dest="kind", help="store each table as NAME@KIND beside this CPU's (e.g. avx2: run "
                   "under ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2, a CPU without native bf16)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    results["machine"] = machine()
    print(f"machine: {results['machine']['line']}", flush=True)  # where every figure below holds
    results["mnist_available"] = (MNIST_ROOT / "MNIST" / "raw").is_dir()
    for key in args.only:
        name, fn = BENCHES[key]
        name = f"{name}@{args.kind}" if args.kind else name
        t0 = time.perf_counter()
        results[name] = fn(args.reps)
        results[name]["bench_seconds"] = time.perf_counter() - t0
        results[name]["machine"] = results["machine"]["line"]
        print(f"{name}: {json.dumps(results[name], indent=1)}", flush=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
