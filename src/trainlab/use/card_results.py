"""The Evaluation and Limitations facts of a model card, from a run's result.json (and one uncounted test pass).

    evaluation_facts(run_dir, result, manifest, evaluate=True)   # test metrics with 95% intervals, baselines, ECE
    limitation_facts(result, evaluation, audit)                   # diagnosis, worst classes, confused pairs, audit

Accuracy's interval is Wilson's from n (diagnose/finding.wilson, the interval the console prints); the other
metrics get a percentile bootstrap over the test samples (use/card_eval.py). Both are only computed when
best.pt, re-run on the run's own test indices, reproduces the recorded metrics.
"""
from __future__ import annotations

from pathlib import Path

from trainlab.core.errors import DamagedRun
from trainlab.core.files import is_number, read_json
from trainlab.diagnose.finding import wilson
from trainlab.use import card_eval

PROPORTIONS = {"accuracy"}  # a share of n independent samples: Wilson's interval from n alone
AUDIT_FILES = ("audit/result.json", "audit.json")  # `trainlab audit RUN --out RUN/audit` leaves its findings there
PITFALLS = ("output_activation", "input_scale", "class_imbalance", "duplicates", "batch_norm", "drop_last_waste")
WORST = 3  # classes, confused pairs and audit findings named in Limitations


def evaluation_facts(run_dir: Path, result: dict, manifest: dict, evaluate: bool = True) -> dict:
    """Test metrics (value, 95% interval), baselines, per-class scores, calibration, test-split looks."""
    test = {k: v for k, v in (result.get("test") or {}).items() if is_number(v)}
    sizes = (result.get("data") or {}).get("sizes") or {}
    comparison = (result.get("baseline_models") or {}).get("test") or {}
    n = sizes.get("test") or comparison.get("n")
    ev = {"n": n, "loss": test.get("loss"), "metrics": {k: {"value": v} for k, v in test.items() if k != "loss"},
          "test_evaluations": manifest.get("test_evaluations"), "baselines": baseline_facts(comparison),
          "forecast_baselines": forecast_facts(result.get("baselines"), test), "per_class": result.get("per_class"),
          "calibration": None, "recomputed": None}
    for key, m in ev["metrics"].items():
        if key in PROPORTIONS and n:
            lo, hi = wilson(m["value"] * n, n)
            m.update(low=lo, high=hi, method="Wilson score interval from n")
    if test and evaluate:
        add_test_pass(run_dir, ev, test)
    return ev


def add_test_pass(run_dir: Path, ev: dict, test: dict) -> None:
    """Bootstrap intervals and calibration from best.pt's outputs on the test split (not counted as a look)."""
    out = card_eval.outputs_on_test(run_dir)
    ok = card_eval.matches(test, out["metrics"])
    ev["recomputed"] = {"matches": ok, "n": out["n"], "metrics": out["metrics"]}
    if not ok:  # other weights or other samples than the recorded evaluation: describing them would mislead
        return
    wanted = [k for k in ev["metrics"] if k not in PROPORTIONS and k in out["names"]]
    for key, bounds in card_eval.intervals(out, wanted).items():
        ev["metrics"][key].update(bounds)
    if out["task"] == "classification" and out["targets"].ndim == 1:
        ev["calibration"] = card_eval.calibration(out["outputs"], out["targets"])


def baseline_facts(comparison: dict) -> dict | None:
    """The baselines (fitted on the training split) scored on the test split next to the network."""
    if not comparison.get("baselines"):
        return None
    return {"metric": comparison["metric"], "network": comparison["network"], "n": comparison.get("n"),
            "baselines": comparison["baselines"], "beats": comparison.get("beats", {})}


def forecast_facts(baselines, test: dict) -> dict | None:
    """Forecasting: the naive and seasonal-naive forecasts on the same test windows (lower error is better)."""
    if not isinstance(baselines, dict) or "mae" not in test:
        return None
    rows = {name: b for name, b in baselines.items() if isinstance(b, dict) and is_number(b.get("mae"))}
    return {"metric": "mae", "network": test["mae"], "baselines": {k: b["mae"] for k, b in rows.items()},
            "beats": {k: test["mae"] < b["mae"] for k, b in rows.items()},
            "season": next((b["season"] for b in rows.values() if "season" in b), None)} if rows else None


# ----------------------------------------------------------------------------- limitations

def limitation_facts(result: dict, evaluation: dict, audit: dict | None) -> dict:
    diag = result.get("diagnosis") or {}
    findings = diag.get("findings", [])
    return {"diagnosed": bool(diag), "healthy": diag.get("healthy"),
            "findings": [{"code": f.get("code"), "severity": f.get("severity"), "stage": f.get("stage"),
                          "cause": f.get("cause"), "fix": (f.get("fix") or [None])[0]} for f in findings],
            "pitfalls_checked": list(PITFALLS) if diag else [],
            "pitfalls_failed": [f.get("code") for f in findings if f.get("stage") == "before"],
            "worst_classes": worst_classes(evaluation.get("per_class")),
            "confused_pairs": confused_pairs(result.get("confusion_matrix"), result.get("per_class")),
            "confusion_measured": bool(result.get("confusion_matrix")),
            "audit": audit, "error": result.get("error")}


def worst_classes(per_class: dict | None, k: int = WORST) -> list[dict]:
    """The k classes with the lowest test F1 (ties: lower recall first)."""
    if not per_class:
        return []
    rows = [{"class": c, **s} for c, s in per_class.items() if is_number(s.get("f1"))]
    return sorted(rows, key=lambda r: (r["f1"], r.get("recall", 0)))[:k]


def confused_pairs(cm: list | None, per_class: dict | None, k: int = WORST) -> list[dict]:
    """The k largest off-diagonal counts of the test confusion matrix (rows = true class)."""
    if not cm or not per_class:
        return []
    names = list(per_class)
    pairs = [{"true": names[i], "predicted": names[j], "count": c, "of": sum(row)}
             for i, row in enumerate(cm) for j, c in enumerate(row) if i != j and c > 0]
    return sorted(pairs, key=lambda p: -p["count"])[:k]


def read_audit(run_dir: Path, audit: Path | None, result: dict) -> dict | None:
    """An audit's findings: `--audit DIR|FILE`, else RUN/audit/result.json or RUN/audit.json, else a
    result.json `audit` entry; None when the data was not audited."""
    candidates = [Path(audit) / "result.json" if Path(audit).is_dir() else Path(audit)] if audit else \
        [run_dir / f for f in AUDIT_FILES]
    found = next((p for p in candidates if p.is_file()), None)
    if audit and found is None:
        raise DamagedRun(f"--audit {audit}: no audit result there (expected result.json from trainlab audit)")
    obj = read_json(found) if found else result.get("audit")
    if obj is None:
        return None
    findings = obj.get("findings") if isinstance(obj, dict) else None
    where = str(found) if found else "result.json 'audit'"
    if not isinstance(findings, list) or not all(isinstance(f, dict) for f in findings):
        raise DamagedRun(f"{where} has no list of findings; rerun trainlab audit")
    by_type: dict[str, int] = {}
    for f in findings:
        by_type[str(f.get("type", "finding"))] = by_type.get(str(f.get("type", "finding")), 0) + 1
    worst = [{"type": f.get("type"), "message": f.get("message"), "score": f.get("score"),
              "split": f.get("split") or f.get("splits")} for f in findings[:WORST]]
    return {"source": where, "count": len(findings), "by_type": by_type, "worst": worst}
