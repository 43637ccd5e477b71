"""The one diagnosis of a run: what went wrong, why, the numbers that show it and the fix - produced once and
rendered the same by the console (`Trainer.fit`, `trainlab train`), `result.json` (`diagnosis`), `report.html`
and the Python API (`trainer.diagnosis`).

    diag = diagnose(Signals(history, baseline_loss=math.log(10)), before=[finding, ...])
    print(diag)                    # the console lines
    diag.to_dict()                 # what result.json stores; Diagnosis.from_dict(...) reads it back
    diag.findings[0].code          # "output_activation", "overfitting", ...

A `Finding` is a warning (something to fix) or a note (worth knowing: early stopping caught overfitting,
a small validation split, how the network compares with simple baselines). Findings come from three stages:
`before` training (the model and the data: engine/pitfalls.py), `during` (the curves: engine/curves.py) and
`after` (baselines: engine/baselines.py). No torch here.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field

from trainlab.engine import curves
from trainlab.engine.curves import Signals

# curve symptoms that a cause found before training explains better than their generic remedies
SYMPTOMS = ("underfitting", "learning_rate", "divergence", "baselines")
CAUSES = ("output_activation", "input_scale", "ema_horizon", "frozen_backbone", "target_scale")  # pitfalls that
#                                                                          stall or blow up training


@dataclass
class Finding:
    code: str  # what kind: "output_activation", "class_imbalance", "overfitting", ...
    severity: str  # "warning" (fix it) or "note" (worth knowing)
    cause: str  # one sentence: what is wrong and why, with the numbers that show it
    fix: list[str] = field(default_factory=list)  # settings or code lines that remedy it, best first
    evidence: dict = field(default_factory=dict)  # the numbers behind `cause`
    stage: str = "during"  # "before" training, "during" (the curves) or "after" (baselines)

    def lines(self) -> list[str]:
        head = f"{'diagnosis' if self.severity == 'warning' else 'note'}: {self.cause}"
        return [head] + (["  try: " + "; ".join(self.fix)] if self.fix and self.severity == "warning" else [])


@dataclass
class Diagnosis:
    findings: list[Finding] = field(default_factory=list)  # warnings first (before, during, after), then notes
    checks: dict = field(default_factory=dict)  # every curve check by name, with its status and numbers
    baselines: dict = field(default_factory=dict)  # simple models' scores on the validation split

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    @property
    def healthy(self) -> bool:
        return not self.warnings

    @property
    def problems(self) -> list[str]:
        return [f.code for f in self.warnings]

    def lines(self) -> list[str]:
        """The console lines: each warning with what to try, then the notes (or one 'healthy' line first)."""
        out = [] if self.warnings else ["diagnosis: healthy - no problem found in the data, the model or the "
                                        "curves (over/underfitting, divergence, learning rate, gradients, "
                                        "dead units, input pipeline)"]
        for f in self.findings:
            out += f.lines()
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())

    __repr__ = __str__  # a notebook cell ending in `trainer.diagnosis` shows the same lines

    def to_dict(self) -> dict:
        return {"healthy": self.healthy, "problems": self.problems, "lines": self.lines(),
                "findings": [asdict(f) for f in self.findings], "checks": self.checks, "baselines": self.baselines}

    @classmethod
    def from_dict(cls, d: dict) -> Diagnosis:
        """Read back `to_dict()` - or an older result.json that has only `checks`."""
        if "findings" in d:
            findings = [Finding(**f) for f in d["findings"]]
        else:
            findings = [f for name, c in d.get("checks", {}).items() if (f := from_check(name, c)) is not None]
        return cls(findings, d.get("checks", {}), d.get("baselines", {}))


def from_check(name: str, check: dict) -> Finding | None:
    """A curve check as a finding: its warning, or the note that early stopping caught overfitting."""
    evidence = {k: v for k, v in check.items() if k not in ("status", "message", "remedies")}
    if check["status"] == "warning":
        return Finding(name, "warning", check["message"], list(check["remedies"]), evidence)
    if check.get("caught"):
        return Finding(name, "note", check["message"], [], evidence)
    return None


def curve_checks(sig: Signals) -> dict:
    """Every curve check on the signals; a diverged run's fit and learning rate are not judged on top."""
    checks = {
        "overfitting": curves.overfitting(sig.history, sig.settings, sig.stopped_early, sig.best_epoch,
                                          sig.baseline_loss),
        "underfitting": curves.underfitting(sig.history, sig.baseline_loss),
        "divergence": curves.divergence(sig.history, sig.step_losses, sig.baseline_loss, sig.failure),
        "learning_rate": curves.learning_rate(sig.step_losses, sig.update_ratio, sig.lr),
        "gradients": curves.gradients(sig.grad_rms),
        "dead_units": curves.dead_units(sig.dead),
        "input_pipeline": curves.input_pipeline(sig.history, sig.settings),
    }
    if checks["divergence"]["status"] == "warning":  # a diverged run's curves say nothing about fit
        for name in ("overfitting", "underfitting", "learning_rate"):
            if checks[name]["status"] == "warning":
                checks[name] = {"status": "skipped", "message": f"not judged: the run diverged "
                                                                f"({checks[name]['message']})", "remedies": []}
    return checks


def diagnose(sig: Signals, before: list[Finding] = (), after: list[Finding] = (),
             baselines: dict | None = None) -> Diagnosis:
    """Assemble the diagnosis: before-training findings, the curve checks, after-training findings.

    A symptom on the curves (underfitting, a loss that barely moves) that a before-training warning explains
    names that cause first: the course's Sigmoid output stalls training, and "a bigger model" is the wrong fix.
    """
    checks = curve_checks(sig)
    during = [f for name, c in checks.items() if (f := from_check(name, c)) is not None]
    causes = [f for f in before if f.severity == "warning" and f.code in CAUSES]
    if causes:
        for f in [*during, *after]:
            if f.code in SYMPTOMS and f.severity == "warning":
                f.cause += f" - likely because of the {causes[0].code.replace('_', ' ')} found before training"
                f.fix = [f"first: {causes[0].fix[0]}" if causes[0].fix else "first: fix the problem found before "
                         "training", *f.fix]
                f.evidence["likely_cause"] = causes[0].code
    found = [*before, *during, *after]
    order = {"warning": 0, "note": 1}
    found.sort(key=lambda f: order.get(f.severity, 2))  # stable: stages keep their order within a severity
    return Diagnosis(found, checks, baselines or {})


def wilson(successes: float, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion: accuracy k/n -> (low, high), 95% by default."""
    z = statistics.NormalDist().inv_cdf(0.5 + confidence / 2)
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)
