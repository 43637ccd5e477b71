"""`trainlab doctor`: report the Python, PyTorch, device and library setup, and how to fix what is missing."""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from trainlab.core.device import select_device

# (PyPI distribution name, import name): students pip-install the first, the second only matters as a fallback.
COURSE_LIBRARIES: tuple[tuple[str, str], ...] = (
    ("torchvision", "torchvision"),
    ("torchmetrics", "torchmetrics"),
    ("torchinfo", "torchinfo"),
    ("tensorboard", "tensorboard"),
    ("scikit-learn", "sklearn"),
    ("scikit-image", "skimage"),
    ("matplotlib", "matplotlib"),
    ("pandas", "pandas"),
    ("seaborn", "seaborn"),
    ("tqdm", "tqdm"),
    ("jupyterlab", "jupyterlab"),
)


def installed_version(dist_name: str, import_name: str) -> str | None:
    """Version of an installed library, "unknown" if importable without metadata, None if missing.

    Reads package metadata instead of importing, because importing pandas/tensorboard/... takes seconds.
    """
    try:
        return metadata.version(dist_name)
    except metadata.PackageNotFoundError:
        pass
    # A module on sys.path without dist-info (e.g. a copied folder) still counts as installed.
    if importlib.util.find_spec(import_name) is not None:
        return "unknown"
    return None


def _python_info() -> dict[str, Any]:
    """Interpreter facts: students often run a different Python than the one they installed into."""
    return {
        "version": platform.python_version(),
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
        "virtualenv": sys.prefix != sys.base_prefix,
    }


def _os_info() -> dict[str, Any]:
    """Operating system and CPU architecture."""
    return {
        "system": platform.system(),
        "release": platform.release(),
        "platform": platform.platform(),
        "machine": platform.machine(),
    }


def _cuda_devices() -> list[dict[str, Any]]:
    """Name, memory and compute capability of each visible CUDA device."""
    import torch  # doctor must report a missing or broken torch, not crash on it
    devices = []
    for index in range(torch.cuda.device_count()):
        try:
            props = torch.cuda.get_device_properties(index)
        except (RuntimeError, AssertionError) as exc:  # a broken driver must not crash the doctor
            devices.append({"index": index, "error": str(exc)})
            continue
        devices.append({
            "index": index,
            "name": props.name,
            "memory_gib": round(props.total_memory / 1024**3, 2),
            "capability": f"{props.major}.{props.minor}",
        })
    return devices


def _cudnn_version() -> int | None:
    """cuDNN version as torch reports it (e.g. 91000), or None when torch has no cuDNN."""
    import torch  # doctor must report a missing or broken torch, not crash on it
    try:
        return torch.backends.cudnn.version()
    except (RuntimeError, OSError):
        return None


def _cuda_info() -> dict[str, Any]:
    """CUDA as torch sees it; torch.version.cuda is None for CPU-only builds."""
    import torch  # doctor must report a missing or broken torch, not crash on it
    available = torch.cuda.is_available()
    return {
        "available": available,
        "torch_cuda_version": torch.version.cuda,
        "device_count": torch.cuda.device_count() if available else 0,
        "devices": _cuda_devices() if available else [],
        "cudnn_version": _cudnn_version(),
    }


def _mps_info() -> dict[str, bool]:
    """Apple-silicon GPU support: built into this torch, and usable on this machine."""
    import torch  # doctor must report a missing or broken torch, not crash on it
    mps = getattr(torch.backends, "mps", None)
    if mps is None:
        return {"built": False, "available": False}
    return {"built": bool(mps.is_built()), "available": bool(mps.is_available())}


def _cpu_info() -> dict[str, Any]:
    """The CPU as torch's kernels see it, and what bf16 costs here: half a second of fp32 and of bf16 matmuls."""
    import torch  # doctor must report a missing or broken torch, not crash on it

    from trainlab.core.machine import cpu_facts, matmul_gflops, physical_cores  # doctor must survive a broken torch

    facts = cpu_facts()
    return {"logical_cores": os.cpu_count(), "physical_cores": physical_cores(), "torch_threads": facts["threads"],
            "model": facts["model"], "capability": facts["capability"], "native_bf16": facts["native_bf16"],
            "kernel_caps": facts["kernel_caps"], "matmul_gflops": {
                "fp32": round(matmul_gflops(torch.float32), 1), "bf16": round(matmul_gflops(torch.bfloat16), 1)}}


def _trainlab_info() -> dict[str, Any]:
    """trainlab's own version and where it is imported from (a source checkout has no metadata)."""
    try:
        version = metadata.version("trainlab")
    except metadata.PackageNotFoundError:
        version = getattr(sys.modules.get("trainlab"), "__version__", None) or "unknown (not pip-installed)"
    return {"version": version, "location": str(Path(__file__).resolve().parent)}


def _libraries() -> list[dict[str, Any]]:
    """Installed/missing status of every course library, with the pip command for the missing ones."""
    rows = []
    for dist_name, import_name in COURSE_LIBRARIES:
        version = installed_version(dist_name, import_name)
        rows.append({
            "name": dist_name,
            "import_name": import_name,
            "installed": version is not None,
            "version": version,
            "install_command": None if version is not None else f"pip install {dist_name}",
        })
    return rows


def collect() -> dict[str, Any]:
    """Everything the doctor knows, as a JSON-serialisable dict."""
    import torch  # doctor must report a missing or broken torch, not crash on it

    libraries = _libraries()
    missing = [row["name"] for row in libraries if not row["installed"]]
    return {
        "python": _python_info(),
        "os": _os_info(),
        "torch": {"version": torch.__version__, "torchvision": installed_version("torchvision", "torchvision")},
        "cuda": _cuda_info(),
        "mps": _mps_info(),
        "cpu": _cpu_info(),
        "training_device": str(select_device("auto")),
        "trainlab": _trainlab_info(),
        "libraries": libraries,
        "missing": missing,
        "install_command": f"pip install {' '.join(missing)}" if missing else None,
    }


def _yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


def _section(title: str, rows: list[tuple[str, str]], width: int) -> list[str]:
    """A title line followed by `label  value` rows, values starting in column `width`."""
    return [title] + [f"  {label.ljust(width)}  {value}".rstrip() for label, value in rows]


def _system_rows(info: dict[str, Any]) -> list[tuple[str, str]]:
    py, osi = info["python"], info["os"]
    return [
        ("Python", f"{py['version']} ({py['implementation']})"),
        ("Executable", py["executable"]),
        ("Virtualenv", _yes_no(py["virtualenv"])),
        ("OS", f"{osi['system']} {osi['release']}"),
        ("Platform", osi["platform"]),
        ("Machine", osi["machine"]),
    ]


def _torch_rows(info: dict[str, Any]) -> list[tuple[str, str]]:
    cuda = info["cuda"]
    return [
        ("torch", info["torch"]["version"]),
        ("torchvision", info["torch"]["torchvision"] or "MISSING"),
        ("Built for CUDA", cuda["torch_cuda_version"] or "no (CPU-only build)"),
        ("cuDNN", str(cuda["cudnn_version"]) if cuda["cudnn_version"] is not None else "none"),
    ]


def _device_rows(info: dict[str, Any]) -> list[tuple[str, str]]:
    cuda, mps, cpu = info["cuda"], info["mps"], info["cpu"]
    rows = [
        ("Training device", info["training_device"]),
        ("CUDA available", f"{_yes_no(cuda['available'])} ({cuda['device_count']} device(s))"),
    ]
    for dev in cuda["devices"]:
        detail = dev.get("error") or f"{dev['name']}, {dev['memory_gib']:.1f} GiB, capability {dev['capability']}"
        rows.append((f"cuda:{dev['index']}", detail))
    rows.append(("Apple MPS", f"built {_yes_no(mps['built'])}, available {_yes_no(mps['available'])}"))
    rows.append(("CPU", f"{cpu['model']}: {cpu['logical_cores']} logical / {cpu['physical_cores']} physical "
                        f"cores, torch uses {cpu['torch_threads']} threads"))
    caps = "".join(f", {k}={v}" for k, v in cpu["kernel_caps"].items())
    rows.append(("CPU kernels", f"{cpu['capability']}{caps}, native bf16 {_yes_no(cpu['native_bf16'])}"))
    g = cpu["matmul_gflops"]
    verdict = ("bf16 is emulated here: train.precision=auto keeps fp32" if not cpu["native_bf16"] else
               "train.precision=auto measures each model's steps in both" if g["bf16"] > 1.2 * g["fp32"] else
               "bf16 is no faster here: train.precision=auto will mostly keep fp32")
    rows.append(("Matmul 512x512", f"fp32 {g['fp32']:.0f} GFLOP/s, bf16 {g['bf16']:.0f} GFLOP/s ({verdict})"))
    return rows


def _library_rows(info: dict[str, Any]) -> list[tuple[str, str]]:
    # Plain ASCII marks: Windows consoles may not be able to print check marks.
    rows = [(lib["name"], f"{'ok' if lib['installed'] else 'MISSING':<8}{lib['version'] or ''}")
            for lib in info["libraries"]]
    trainlab = info["trainlab"]
    rows.append(("trainlab", f"{'ok':<8}{trainlab['version']} ({trainlab['location']})"))
    return rows


def format_report(info: dict[str, Any]) -> str:
    """Readable, aligned plain-text report of `collect()`'s result."""
    sections = [("Python / OS", _system_rows(info)), ("PyTorch", _torch_rows(info)),
                ("Devices", _device_rows(info)), ("Libraries", _library_rows(info))]
    # One label width for all sections, so every value starts in the same column.
    width = max(len(label) for _, rows in sections for label, _ in rows)
    lines: list[str] = []
    for title, rows in sections:
        lines += _section(title, rows, width) + [""]
    if info["install_command"]:
        lines += ["Install the missing libraries with:", f"  {info['install_command']}"]
    else:
        lines.append("All course libraries are installed.")
    return "\n".join(lines)


def _console_safe(text: str) -> str:
    """Replace characters stdout cannot encode (e.g. a non-ASCII user name in a path on a cp1252 console)."""
    encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
    return text.encode(encoding, errors="replace").decode(encoding)


def run(args: argparse.Namespace) -> int:
    """Print the report (or JSON); missing optional libraries are reported, not treated as an error."""
    info = collect()
    if getattr(args, "json", False):
        print(json.dumps(info, indent=2))  # ensure_ascii (the default) keeps it printable on any console
    else:
        print(_console_safe(format_report(info)))
    return 0
