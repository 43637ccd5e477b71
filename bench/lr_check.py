"""Where lr-find's suggestion falls against a short learning-rate sweep, on small tasks that need no download.

    python bench/lr_check.py                          # 3 tasks x 7 lrs x 2 seeds, ~5 min on 2 shared CPU cores
    python bench/lr_check.py --tasks digits-mlp --seeds 0 --json lr_check.json

For every task: `trainlab lr-find`'s range test (workflows/lr_find.py: 200 steps, 1e-7 .. 10) per seed, every
suggestion rule read off the same curve (valley, steepest, minimum/10); then short runs of the task's own config
(optimizer, schedule, epochs) at a grid of learning rates, each seed, scored by the lowest validation loss over
the epochs (the test split is never used). Prints, per task, the sweep (mean validation loss and accuracy per lr),
the best swept lr and, per rule, suggestion / best lr (geometric mean over the seeds; 1 = on the best, the grid's
step is sqrt(10) = 3.16), the validation loss the sweep reached at the grid point nearest the suggestion, and
whether that point is "good" (mean validation loss <= 1.25 x the best + 0.01: small validation splits are noisy).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
GOOD = (1.25, 0.01)  # a grid lr is "good" when its mean validation loss is <= 1.25 x the best one's + 0.01
GRID = [1e-4, 3.16e-4, 1e-3, 3.16e-3, 1e-2, 3.16e-2, 1e-1]  # half-decade steps
CNN = """seed: 0
data: {name: digits, val_fraction: 0.1, test_fraction: 0.2, batch_size: 64,
       transforms: {train: [{name: normalize}], eval: [{name: normalize}]}}
model: {name: cnn, channels: [16, 32], hidden: [64]}
train: {epochs: 6, optimizer: adam, lr: 0.001, metrics: [accuracy], monitor: val_loss}
"""
# task -> (config file, overrides): the shipped examples as a user runs them, a little shorter where they are long
TASKS = {
    "digits-mlp": ("examples/digits-mlp.yaml", []),  # adam + one-cycle, 12 epochs: train.lr is the peak
    "wine-table": ("examples/wine-csv.yaml", ["train.epochs=30", "train.early_stopping=null"]),  # adam, constant lr
    "digits-cnn": (None, []),  # a tiny CNN on the 8x8 digits, adam, constant lr, 6 epochs
}


def config(task: str, seed: int, work: Path, extra: list[str] = ()):
    from trainlab.run.config import load_config  # start-up time: torch only when the benchmark runs

    path, overrides = TASKS[task]
    overrides = [*overrides, f"seed={seed}", "train.num_threads=1", "train.baselines=false", *extra]
    if task == "wine-table":
        overrides.append(f"data.path={wine_csv(work)}")
    if path is None:
        (work / "cnn.yaml").write_text(CNN)
        return load_config(work / "cnn.yaml", overrides)
    return load_config(ROOT / path, overrides)


def wine_csv(work: Path) -> Path:
    from sklearn.datasets import load_wine  # optional heavy dependency: imported on use

    path = work / "wine.csv"
    if not path.is_file():
        load_wine(as_frame=True).frame.to_csv(path, index=False)
    return path


def short_run(cfg, lr: float) -> dict:
    """Train cfg at `lr` on train/val (no run directory, no test split): lowest val loss, best val accuracy."""
    from trainlab.core.checkpoint import seed_everything  # start-up time, as above
    from trainlab.data.prepare import load_data
    from trainlab.engine.trainer import Trainer
    from trainlab.models.catalog import build_model

    data = load_data(cfg)
    view = data.view(data.splits.train, data.splits.val)
    seed_everything(cfg.seed)
    model = build_model(cfg.model, view.input_shape, view.bundle.num_outputs, **view.model_info)
    settings = dataclasses.replace(cfg.train, lr=lr, verbose=False)
    trainer = Trainer(model, settings, seed=cfg.seed, task=view.bundle.task, progress=False)
    history = trainer.fit(view.batches("train", trainer.device), view.batches("val", trainer.device),
                          cfg.train.epochs)
    losses = [r["val_loss"] for r in history]
    loss = min((v for v in losses if math.isfinite(v)), default=math.inf)
    return {"val_loss": loss, "val_accuracy": max((r.get("val_accuracy", 0.0) for r in history), default=0.0)}


def check_task(task: str, seeds: list[int], work: Path) -> dict:
    from trainlab.workflows.lr_find import lr_range_test  # start-up time, as above

    t0 = time.perf_counter()
    found = [lr_range_test(config(task, s, work)) for s in seeds]
    rules = {rule: [f["rules"][rule] for f in found] for rule in found[0]["rules"]}
    sweep = {lr: [short_run(config(task, s, work), lr) for s in seeds] for lr in GRID}
    mean_loss = {lr: float(np.mean([r["val_loss"] for r in runs])) for lr, runs in sweep.items()}
    best = min(mean_loss, key=mean_loss.get)

    def nearest(lr: float) -> float:
        return min(GRID, key=lambda g: abs(math.log(g / lr)))

    good = [lr for lr in GRID if mean_loss[lr] <= GOOD[0] * mean_loss[best] + GOOD[1]]  # as good, within noise
    ratios = {}
    for rule, lrs in rules.items():
        at = nearest(float(np.exp(np.mean(np.log(lrs)))))
        ratios[rule] = {"suggested": lrs, "ratio": float(np.exp(np.mean(np.log(np.array(lrs) / best)))),
                        "val_loss_at_nearest": mean_loss[at], "in_good_range": at in good}
    return {"task": task, "seeds": seeds, "best_lr": best, "best_val_loss": mean_loss[best], "good": good,
            "rules": ratios,
            "sweep": {f"{lr:g}": {"val_loss": mean_loss[lr],
                                  "val_accuracy": float(np.mean([r["val_accuracy"] for r in runs]))}
                      for lr, runs in sweep.items()},
            "config_lr": config(task, seeds[0], work).train.lr, "seconds": time.perf_counter() - t0}


def show(r: dict) -> None:
    print(f"\n{r['task']} (seeds {r['seeds']}, {r['seconds']:.0f} s): best swept lr {r['best_lr']:g} "
          f"(val loss {r['best_val_loss']:.4f}); good (<= 1.25x + 0.01): {', '.join(f'{g:g}' for g in r['good'])}; "
          f"the config's own lr {r['config_lr']:g}")
    print("  sweep: " + "  ".join(f"{lr} {v['val_loss']:.3f}/{v['val_accuracy']:.3f}" for lr, v in r["sweep"].items()))
    for rule, v in r["rules"].items():
        print(f"  {rule:<11} suggests {', '.join(f'{x:.2e}' for x in v['suggested'])}: {v['ratio']:.2f}x the best "
              f"lr, val loss {v['val_loss_at_nearest']:.4f} at the nearest grid point"
              f"{'' if v['in_good_range'] else ' (outside the good range)'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args(argv)
    from trainlab.core.machine import cpu_model  # start-up time, as above

    print(f"CPU: {cpu_model()}; grid {', '.join(f'{g:g}' for g in GRID)}")
    with tempfile.TemporaryDirectory() as tmp:
        results = []
        for task in args.tasks:
            results.append(check_task(task, args.seeds, Path(tmp)))
            show(results[-1])
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
