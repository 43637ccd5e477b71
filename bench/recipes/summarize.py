"""Summarize the JSON lines that sweep.py wrote: one Markdown row per (model, train size, candidate name).

    python bench/recipes/summarize.py bench/recipes/logs/final_*.jsonl
"""
from __future__ import annotations

import json
import statistics
import sys


def med(xs):
    xs = [x for x in xs if x is not None]
    return round(statistics.median(xs), 2) if xs else None


def main(paths: list[str]) -> None:
    groups: dict[tuple, list[dict]] = {}
    for path in paths:
        for line in open(path):
            r = json.loads(line)
            model = "cnn" if "channels" in r["recipe"] else "mlp"
            groups.setdefault((model, r["train_size"], r.get("name", "?"), path.rsplit("/", 1)[-1]), []).append(r)
    print("| model | train | file | candidate | seeds | reached | med epochs | med s to target | med cpu s to target "
          "| final acc (per seed) | med s/epoch | load |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for (model, n, name, path), rs in groups.items():
        cpu_to = [sum(h["cpu_seconds"] for h in r["history"][:r["epochs_to_target"]])
                  for r in rs if r["epochs_to_target"] and "cpu_seconds" in r["history"][0]]
        accs = ", ".join(f"{r['final_test_acc']:.4f}" for r in rs)
        print(f"| {model} | {n} | {path} | {name} | {','.join(str(r['seed']) for r in rs)} "
              f"| {sum(r['epochs_to_target'] is not None for r in rs)}/{len(rs)} "
              f"| {med([r['epochs_to_target'] for r in rs])} | {med([r['seconds_to_target'] for r in rs])} "
              f"| {med(cpu_to)} | {accs} "
              f"| {med([h['seconds'] for r in rs for h in r['history']])} | {med([r['loadavg_1min'] for r in rs])} |")


if __name__ == "__main__":
    main(sys.argv[1:])
