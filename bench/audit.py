"""The data audit's speed on MNIST and its false alarms on clean data sets (the figures in BENCHMARKS.md and
docs/audit.md).

    python bench/audit.py --mnist-root DIR            # MNIST under DIR/MNIST/raw; bench/audit_results.json
    python bench/audit.py                             # the bundled data sets only

Each data set is audited as `trainlab audit CONFIG` does (the config's seed and splits). A finding on these
data sets is counted as a false alarm: they are clean in the sense the audit means (no planted copies,
conflicts or shift), although MNIST and digits hold a few genuinely mislabelled or odd samples.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from trainlab.core.machine import cpu_model  # noqa: E402
from trainlab.run.config import build_config, load_config  # noqa: E402
from trainlab.workflows.audit import audit_config  # noqa: E402

TABLES = {"wine": "load_wine", "breast_cancer": "load_breast_cancer", "iris": "load_iris"}


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def measure(cfg, name: str, out: Path) -> dict:
    wall, cpu = time.perf_counter(), cpu_seconds()
    result = audit_config(cfg, out / name, name, progress=False)
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    n = sum(result["sizes"].values())
    return {"dataset": name, "samples": n, "seconds": round(wall, 2), "cpu_seconds": round(cpu, 2),
            "steps": result["seconds"], "counts": result["counts"],
            "flagged_share": {t: round(c / n, 5) for t, c in result["counts"].items()},
            "load_average": round(os.getloadavg()[0], 1)}


def table_config(name: str, folder: Path):
    import sklearn.datasets

    frame = getattr(sklearn.datasets, TABLES[name])(as_frame=True).frame
    frame.to_csv(folder / f"{name}.csv", index=False)
    return build_config({"seed": 0, "data": {"name": "csv", "path": str(folder / f"{name}.csv"), "target": "target",
                                             "task": "classification"}, "model": {"name": "mlp"}})


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mnist-root", type=Path, help="folder holding MNIST/raw (no download)")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "audit_results.json")
    args = p.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for seed in (0, 1, 2):
            rows.append(measure(load_config(ROOT / "examples" / "digits-mlp.yaml", [f"seed={seed}"]),
                                f"digits-seed{seed}", tmp))
        for name in TABLES:
            rows.append(measure(table_config(name, tmp), name, tmp))
        if args.mnist_root:
            cfg = load_config(ROOT / "examples" / "mnist-mlp.yaml", [f"data.root={args.mnist_root}"])
            rows.append(measure(cfg, "mnist", tmp))
    for r in rows:
        print(f"{r['dataset']:16s} {r['samples']:6d} samples  {r['seconds']:6.1f} s wall  {r['cpu_seconds']:6.1f} s CPU"
              f"  load {r['load_average']:4.1f}  findings {r['counts'] or 'none'}")
    machine = {"cpu": platform.processor() or platform.machine(), "cpu_name": cpu_model(), "cores": os.cpu_count(),
               "python": platform.python_version(), "command": "python bench/audit.py" + (
                   " --mnist-root DIR" if args.mnist_root else "")}
    args.out.write_text(json.dumps({"machine": machine, "runs": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
