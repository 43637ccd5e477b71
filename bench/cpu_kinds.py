"""Time to accuracy on two kinds of CPU (`python bench/cpu_kinds.py`, part of `make bench`): this CPU as it
is, and the same CPU restricted to AVX2 kernels without native bfloat16 (oneDNN's documented ISA cap,
ONEDNN_MAX_CPU_ISA=AVX2, with ATEN_CPU_CAPABILITY=avx2), the kind of CPU most laptops and many servers have.
Each kind runs in its own process (the cap must be set before torch starts): the shipped example configs
(`precision: auto`) beside the hand-written recipes, which take bf16 only where oneDNN runs it natively.

    python bench/cpu_kinds.py --seeds 2 --configs mnist-mlp.yaml     # writes "cpu_kinds" into bench/results.json
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
KINDS = {"as is": {}, "AVX2, no native bf16": {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}}


def child(root: Path, seeds: int, configs: list[str]) -> None:
    from time_to_accuracy import bench_time_to_accuracy

    from trainlab.core.machine import cpu_line

    result = bench_time_to_accuracy(root, seeds, tuple(configs))
    print("RESULT " + json.dumps({"cpu": cpu_line(), "results": result}), flush=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=2, help="seeds 0..N-1 per config and kind")
    p.add_argument("--configs", nargs="*", default=["mnist-mlp.yaml", "mnist-cnn.yaml"])
    p.add_argument("--root", type=Path, default=Path(os.environ.get("TRAINLAB_MNIST_ROOT",
                                                                     HERE.parents[1] / "shared" / "data")))
    p.add_argument("--out", type=Path, default=HERE / "results.json")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child(args.root, args.seeds, args.configs)
        return 0
    kinds = {}
    for kind, env in KINDS.items():
        cmd = [sys.executable, __file__, "--child", "--seeds", str(args.seeds), "--root", str(args.root),
               "--configs", *args.configs]
        print(f"== {kind}", flush=True)
        proc = subprocess.run(cmd, env={**os.environ, **env}, capture_output=True, text=True, cwd=HERE)
        sys.stdout.write("".join(line + "\n" for line in proc.stdout.splitlines() if not line.startswith("RESULT ")))
        line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            print(proc.stderr[-2000:], file=sys.stderr)
            return 1
        kinds[kind] = json.loads(line[len("RESULT "):])
    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    results["cpu_kinds"] = kinds
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
