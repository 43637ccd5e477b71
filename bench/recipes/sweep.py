"""Compare candidate recipes side by side in one process: seeds outer, candidates inner, order rotated.

    .venv/bin/python bench/recipes/sweep.py mlp --cands '{"a": {"lr": 0.01}, "b": {"lr": 0.005}}' --seeds 0 1 2
    .venv/bin/python bench/recipes/sweep.py cnn --cands-file bench/recipes/grids/cnn_precision.json --seeds 0

Every run appends its JSON line (plus "name") to --out; the end prints one summary row per candidate:
how many seeds reached the target, median epochs and training seconds to it, median final test accuracy
and the median training seconds per epoch. The machine is shared, so every row also carries the median
1-minute load average seen at its runs.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys

# On a shared 2-core machine libgomp's default spin-waiting (OMP_WAIT_POLICY=active) collapses when
# another process holds a core (we saw 55 s instead of 3.7 s per MLP epoch at load 13); passive
# waiting costs little when idle. Must be set before torch loads libgomp; the environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def med(xs):
    xs = [x for x in xs if x is not None]
    return round(statistics.median(xs), 3) if xs else None


def summarize(rows: list[dict], names: list[str]) -> list[dict]:
    out = []
    for name in names:
        rs = [r for r in rows if r["name"] == name]
        if not rs:
            continue
        out.append({
            "name": name, "runs": len(rs), "reached": sum(r["epochs_to_target"] is not None for r in rs),
            "med_epochs_to_target": med([r["epochs_to_target"] for r in rs]),
            "med_seconds_to_target": med([r["seconds_to_target"] for r in rs]),
            "med_final_acc": med([r["final_test_acc"] for r in rs]),
            "min_final_acc": min(r["final_test_acc"] for r in rs),
            "med_epoch_seconds": med([h["seconds"] for r in rs for h in r["history"]]),
            "med_epoch_cpu_seconds": med([h.get("cpu_seconds") for r in rs for h in r["history"]]),
            "med_total_seconds": med([r["total_train_seconds"] for r in rs]),
            "med_load": med([r["loadavg_1min"] for r in rs]),
        })
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("model", choices=["mlp", "cnn"])
    p.add_argument("--cands", help="JSON object: name -> recipe overrides")
    p.add_argument("--cands-file", help="file holding that JSON object")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--train-size", type=int, default=60000)
    p.add_argument("--split-seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--data", default="/work/shared/data")
    p.add_argument("--target", type=float, default=None)
    p.add_argument("--stop-at-target", action="store_true", help="end each run at its first epoch on target")
    p.add_argument("--out", default=None, help="append every run's JSON line here")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    mod = __import__("handwritten_mlp" if a.model == "mlp" else "handwritten_cnn")
    cands = json.loads(open(a.cands_file).read() if a.cands_file else a.cands)
    names = list(cands)
    target = a.target if a.target is not None else mod.TARGET
    datas = {}
    rows = []
    for si, seed in enumerate(a.seeds):
        order = names[si % len(names):] + names[:si % len(names)]
        for name in order:
            r = {**mod.RECIPE, **cands[name]}
            if r["norm"] not in datas:
                datas[r["norm"]] = mod.prepare(a.data, a.train_size, a.split_seed, r["norm"])
            res = mod.run(r, datas[r["norm"]], seed, target, a.stop_at_target)
            res["name"] = name
            rows.append(res)
            hist = " ".join(f"{h['seconds']:.2f}s/{h['test_acc']:.4f}" for h in res["history"])
            print(f"[seed {seed}] {name}: to-target={res['epochs_to_target']} ep {res['seconds_to_target']} s | "
                  f"{hist} | load {res['loadavg_1min']}", flush=True)
            if a.out:
                with open(a.out, "a") as f:
                    f.write(json.dumps(res) + "\n")
    print("\nname | runs | reached | med epochs | med s to target | med final acc | min acc | med s/epoch | "
          "med cpu s/epoch | med total s | load")
    for s in summarize(rows, names):
        print(" | ".join(str(v) for v in s.values()))


if __name__ == "__main__":
    main()
