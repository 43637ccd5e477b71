"""What this machine is, for decisions that depend on it and for figures that must say where they hold.

    cpu_facts()          # {"model": "AMD EPYC ...", "capability": "AVX512", "native_bf16": True, ...}
    cpu_line()           # 'AMD EPYC (AVX512, native bf16: yes), torch 2.x, 2 threads'
    physical_cores()     # cores this process may use, one per physical core
    choices = Choices()  # per-machine cache of measured choices (~/.cache/trainlab/choices.json)

A measured choice (train.precision: auto, ...) is stored under a key made of this machine's fingerprint
and the model's shape, so it is measured once per machine and model and every later run agrees.
"""
from __future__ import annotations

import contextlib
import json
import os
import platform
import time
from pathlib import Path

import torch

from trainlab.core.files import write_json

# Environment variables that restrict torch's kernels: a different value is a different machine.
KERNEL_CAPS = ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "DNNL_MAX_CPU_ISA")


def cpu_model() -> str:
    """The CPU's model name (lscpu's 'Model name'), or the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def native_bf16() -> bool:
    """Whether oneDNN runs bfloat16 natively here (AVX512-BF16 or AMX). It honours ONEDNN_MAX_CPU_ISA, which
    torch.backends.cpu.get_cpu_capability() does not: under that cap bf16 is emulated and several times slower."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def physical_cores() -> int:
    """Cores this process may run on, counting one per physical core (hyper-threads share a core's FPUs)."""
    allowed = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    siblings = _threads_per_core()
    return max(1, allowed // siblings)


@contextlib.contextmanager
def torch_threads(num_threads: int | str, deterministic: bool):
    """train.num_threads (auto: physical cores) and train.deterministic for the duration of a fit, restored
    afterwards: they are process-wide, and one process may fit many models (K-fold CV, tuning, notebooks)."""
    threads, det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    wanted = physical_cores() if num_threads == "auto" else int(num_threads)
    if wanted != threads:
        torch.set_num_threads(wanted)
    if deterministic != det:
        # only on a change: the call imports torch._inductor.config (about 1.3 s measured) even to switch off
        torch.use_deterministic_algorithms(deterministic, warn_only=True)
    try:
        yield
    finally:
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        if torch.are_deterministic_algorithms_enabled() != det:
            torch.use_deterministic_algorithms(det, warn_only=True)


def _threads_per_core() -> int:
    try:
        text = Path("/sys/devices/system/cpu/cpu0/topology/thread_siblings_list").read_text().strip()
    except OSError:
        return 1
    count = 0
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        count += int(hi) - int(lo) + 1 if hi else 1
    return max(1, count)


def cpu_facts() -> dict:
    """The CPU as torch sees it, with the kernel caps in force (what README and BENCHMARKS figures name)."""
    caps = {k: os.environ[k] for k in KERNEL_CAPS if k in os.environ}
    return {"model": cpu_model(), "capability": torch.backends.cpu.get_cpu_capability(),
            "native_bf16": native_bf16(), "threads": torch.get_num_threads(), "torch": torch.__version__,
            "kernel_caps": caps}


def cpu_line(facts: dict | None = None) -> str:
    """One line naming the CPU for a printed figure: model, SIMD level, native bf16, torch, threads."""
    f = facts or cpu_facts()
    caps = "".join(f", {k}={v}" for k, v in f["kernel_caps"].items())
    return (f"{f['model']} ({f['capability']}, native bf16: {'yes' if f['native_bf16'] else 'no'}{caps}), "
            f"torch {f['torch']}, {f['threads']} threads")


def matmul_gflops(dtype: torch.dtype, seconds: float = 0.5, n: int = 512) -> float:
    """Multiply-adds x 2 per second of (n, n) @ (n, n) in `dtype` on this CPU, timed for about `seconds`
    (trainlab doctor prints fp32 beside bf16: emulated bf16 shows as several times slower)."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    a @ b  # the first call picks kernels
    count, t0 = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - t0) < seconds:
        a @ b
        count += 1
    return 2 * n**3 * count / elapsed / 1e9


def fingerprint() -> str:
    """What makes a measured choice valid: CPU, torch, threads and the kernel caps."""
    f = cpu_facts()
    caps = ",".join(f"{k}={v}" for k, v in sorted(f["kernel_caps"].items()))
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else ""
    return f"{f['model']}|{f['capability']}|{f['torch']}|{f['threads']}|{caps}|{gpu}"


def cache_dir() -> Path:
    """$TRAINLAB_CACHE, else $XDG_CACHE_HOME/trainlab, else ~/.cache/trainlab."""
    if os.environ.get("TRAINLAB_CACHE"):
        return Path(os.environ["TRAINLAB_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "trainlab"


class Choices:
    """Measured choices of this machine, kept in one small JSON file; a file that cannot be read or written
    only means measuring again (a read-only home must not stop a run)."""

    def __init__(self, path: Path | None = None):
        self.path = path or cache_dir() / "choices.json"

    def get(self, key: str) -> dict | None:
        try:
            value = json.loads(self.path.read_text()).get(key)
        except (OSError, ValueError, AttributeError):
            return None
        return value if isinstance(value, dict) else None

    def put(self, key: str, value: dict) -> None:
        try:
            data = json.loads(self.path.read_text()) if self.path.is_file() else {}
            data = data if isinstance(data, dict) else {}
            data[key] = value
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_json(self.path, data)
        except (OSError, ValueError):
            pass
