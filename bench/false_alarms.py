"""False alarms of the diagnosis: train every shipped example that needs no download with several seeds and
list each warning it raises that the example does not deliberately provoke.

    python bench/false_alarms.py                       # 3 seeds, the short epochs of tests/test_false_alarms.py
    python bench/false_alarms.py --full --seeds 0 1 2  # the examples' own epochs (minutes per run on a CPU)
    python bench/false_alarms.py --off-path            # also data the project never saw (bench/off_path.py):
                                                       # survey and panel tables, regression, texts, fine-tuning
                                                       # from scratch; its rate is in BENCHMARKS.md

Prints one row per run (example, seed, epochs, test score, warnings, false alarms) and the total; exit code 1
when there is a false alarm. tests/test_false_alarms.py runs the short version.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# example -> (overrides for a short run, warnings it provokes on purpose)
EXAMPLES = {
    "digits-mlp.yaml": (["train.epochs=8"], set()),
    "digits-overfit.yaml": (["train.epochs=15"], {"overfitting"}),
    "digits-rnn.yaml": (["train.epochs=10"], set()),
    "digits-tune.yaml": (["train.epochs=8"], set()),
    "wine-csv.yaml": (["train.epochs=40"], set()),
    "text-transformer.yaml": (["train.epochs=8"], set()),
    "sunspots-lstm.yaml": (["train.epochs=40"], set()),
}


def run_example(name: str, seed: int, full: bool, work: Path) -> dict:
    """Train one example with `seed` (quietly) and return its warnings and the unexpected ones."""
    from trainlab.run.config import load_config  # start-up time: torch only when the benchmark runs
    from trainlab.workflows.train import train_run  # start-up time

    overrides, expected = EXAMPLES[name]
    extra = [f"seed={seed}", "train.num_threads=1"] + ([] if full else overrides)
    if name == "wine-csv.yaml":
        extra.append(f"data.path={wine_csv(work)}")
    t0 = time.perf_counter()
    result = train_run(load_config(ROOT / "examples" / name, extra), out=work / f"{name}-{seed}", quiet=True)
    warnings = result["diagnosis"]["problems"]
    test = result["test"]
    score = next((f"{k} {test[k]:.4f}" for k in ("accuracy", "r2", "mae") if k in test), "")
    return {"example": name, "seed": seed, "epochs": result["epochs_run"], "test": score, "warnings": warnings,
            "false_alarms": [w for w in warnings if w not in expected], "seconds": time.perf_counter() - t0}


def wine_csv(work: Path) -> Path:
    from sklearn.datasets import load_wine  # optional heavy dependency: imported on use

    path = work / "wine.csv"
    if not path.is_file():
        load_wine(as_frame=True).frame.to_csv(path, index=False)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--full", action="store_true", help="the examples' own epochs instead of short runs")
    parser.add_argument("--only", nargs="+", default=list(EXAMPLES), choices=list(EXAMPLES))
    parser.add_argument("--off-path", action="store_true", help="then bench/off_path.py with the same seeds")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only:
            for seed in args.seeds:
                row = run_example(name, seed, args.full, Path(tmp))
                rows.append(row)
                print(f"{row['example']:<22} seed {seed}  {row['epochs']:>3} epochs  {row['test']:<16} "
                      f"warnings: {', '.join(row['warnings']) or '-':<24} false alarms: "
                      f"{', '.join(row['false_alarms']) or '-'}  ({row['seconds']:.0f} s)", flush=True)
    total = sum(len(r["false_alarms"]) for r in rows)
    print(f"{len(rows)} runs, {total} false alarm(s)")
    off = 0
    if args.off_path:
        sys.path.insert(0, str(ROOT / "bench"))  # bench/off_path.py, beside this script (run or loaded by a test)
        import off_path  # noqa: E402

        off = off_path.main(["--seeds", *map(str, args.seeds)])
    return 1 if total or off else 0


if __name__ == "__main__":
    sys.exit(main())
