"""Advice off the demo path: train the "your own data" examples on data trainlab never saw - a survey table and a
panel regression bundled with statsmodels, short texts, photos trained from scratch with the fine-tuning
example - and count the runs whose diagnosis is wrong (a warning nothing provokes) or useless (a remedy
that cannot help: a bigger model for a table the features cannot decide, lr-find for an EMA longer than the run,
a bare leakage alarm for a survey's expected identical rows, model.activation for a timm model).

    python bench/off_path.py                 # seed 0, every case (~5 minutes on 2 CPU cores)
    python bench/off_path.py --seeds 0 1 2 --only survey panel

Prints one row per run and the rate of runs with wrong or useless advice; exit code 1 when there is one.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


# ----------------------------------------------------------------------------- data the project never saw

def survey_csv(work: Path) -> list[str]:
    import statsmodels.api as sm  # optional heavy dependency: imported on use

    df = sm.datasets.fair.load_pandas().data  # 6,366 answers coded 1..6 per question
    df["affair"] = (df.pop("affairs") > 0).map({True: "yes", False: "no"})
    df.to_csv(work / "fair.csv", index=False)
    return [f"data.path={work / 'fair.csv'}", "data.target=affair", "model.hidden=[256,128]", "train.epochs=20"]


def panel_csv(work: Path) -> list[str]:
    import statsmodels.api as sm  # optional heavy dependency: imported on use

    sm.datasets.grunfeld.load_pandas().data.to_csv(work / "grunfeld.csv", index=False)  # investment, 1e1..1e3
    return [f"data.path={work / 'grunfeld.csv'}", "data.target=invest", "train.epochs=40"]


TOPICS = {"sport": (["the team", "our striker", "the keeper", "the coach"], ["won", "lost", "scored in", "trained for"],
                    ["the match", "the final", "the derby", "the cup"]),
          "food": (["the chef", "my aunt", "the baker", "the cook"], ["roasted", "baked", "seasoned", "served"],
                   ["garlic", "the bread", "a soup", "the fish"]),
          "weather": (["the storm", "the wind", "heavy rain", "the fog"], ["hit", "covered", "flooded", "cooled"],
                      ["the coast", "the hills", "the valley", "the town"])}


def texts_csv(work: Path, per_topic: int = 40) -> list[str]:
    import pandas as pd  # optional heavy dependency: imported on use

    rng = np.random.default_rng(0)
    rows = [(f"{rng.choice(s)} {rng.choice(v)} {rng.choice(o)}", label) for label, (s, v, o) in TOPICS.items()
            for _ in range(per_topic)]
    pd.DataFrame(rows, columns=["text", "label"]).to_csv(work / "texts.csv", index=False)
    return [f"data.path={work / 'texts.csv'}", "train.epochs=25"]


def photos(work: Path, per_class: int = 40) -> list[str]:
    from PIL import Image  # optional heavy dependency: imported on use

    rng = np.random.default_rng(0)
    root = work / "photos"
    for k, name in enumerate(["red", "green", "blue", "grey"]):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            img = rng.integers(0, 60, (32, 32, 3)).astype(np.uint8)
            img[..., k % 3] += 150 if k < 3 else 0
            Image.fromarray(img).save(root / name / f"{i}.png")
    return [f"data.path={root}", "model.pretrained=false", "data.image_size=[32,32]", "model.image_size=32",
            "data.batch_size=16", "train.epochs=3"]


# ----------------------------------------------------------------------------- the cases
# name -> (example, data maker, extra overrides, warnings the run provokes on purpose, remedies that would mislead)
CASES = {
    "survey": ("csv-classification.yaml", survey_csv, [], {"features_limit"}, ["bigger model"]),
    "panel": ("csv-regression.yaml", panel_csv, [], set(), []),
    "panel-unscaled": ("csv-regression.yaml", panel_csv, ["data.scale_target=false"], {"target_scale"}, []),
    "texts": ("text-csv.yaml", texts_csv, ["train.early_stopping=null"], set(), []),
    "scratch-traps": ("finetune-image-folder.yaml", photos, [], {"ema_horizon", "frozen_backbone", "head_phase"},
                      ["lr-find", "model.activation"]),
    "scratch-fixed": ("finetune-image-folder.yaml", photos, ["train.ema=null", "train.freeze=none",
                                                            "train.lr_mult=1", "train.epochs=10"], set(),
                      ["model.activation"]),
}
SYMPTOMS = ("underfitting", "learning_rate", "baselines")  # a known cause must come first in their remedies


def run_case(name: str, seed: int, work: Path) -> dict:
    """Train one case quietly; its warnings, the unexpected ones, and the misleading remedies it gave."""
    from trainlab.run.config import load_config  # start-up time: torch only when the benchmark runs
    from trainlab.workflows.train import train_run  # start-up time

    example, make, extra, expected, misleading = CASES[name]
    data = work / name
    data.mkdir(parents=True, exist_ok=True)
    overrides = make(data) + extra + [f"seed={seed}", "train.num_threads=1"]
    t0 = time.perf_counter()
    result = train_run(load_config(EXAMPLES / example, overrides), out=work / f"{name}-{seed}", quiet=True)
    findings = result["diagnosis"]["findings"]
    warnings = [f["code"] for f in findings if f["severity"] == "warning"]
    attributed = {f["code"] for f in findings if f["evidence"].get("likely_cause") in expected}  # symptoms of a cause
    bad = [f"{f['code']}: {x}" for f in findings if f["severity"] == "warning"
           for x in f["fix"] if any(m in x for m in misleading) and not x.startswith("first:")]
    causes = expected & {"ema_horizon", "frozen_backbone", "target_scale"}
    bad += [f"{f['code']}: no cause first" for f in findings if causes and f["code"] in SYMPTOMS
            and f["severity"] == "warning" and not (f["fix"] and f["fix"][0].startswith("first:"))]
    test = result["test"]
    score = next((f"{k} {test[k]:.4f}" for k in ("accuracy", "r2") if k in test), "")
    return {"case": name, "seed": seed, "test": score, "warnings": warnings,
            "false_alarms": [w for w in warnings if w not in expected | attributed],
            "missed": sorted(expected - set(warnings) - {"head_phase"}),  # head_phase: only when the head is stuck
            "misleading": bad, "seconds": time.perf_counter() - t0}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--only", nargs="+", default=list(CASES), choices=list(CASES))
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only:
            for seed in args.seeds:
                r = run_case(name, seed, Path(tmp))
                rows.append(r)
                print(f"{name:<15} seed {seed}  {r['test']:<16} warnings: {', '.join(r['warnings']) or '-':<40} "
                      f"false alarms: {', '.join(r['false_alarms']) or '-'}  missed: {', '.join(r['missed']) or '-'}"
                      f"  misleading: {'; '.join(r['misleading']) or '-'}  ({r['seconds']:.0f} s)", flush=True)
    wrong = [r for r in rows if r["false_alarms"] or r["missed"] or r["misleading"]]
    print(f"{len(rows)} runs, {len(wrong)} with wrong or useless advice ({len(wrong) / max(len(rows), 1):.0%})")
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
