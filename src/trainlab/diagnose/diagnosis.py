"""The one diagnosis of a run: what went wrong, why, the numbers that show it and the fix - produced once and
rendered the same by the console (`Trainer.fit`, `trainlab train`), `result.json` (`diagnosis`), `report.html`
and the Python API (`trainer.diagnosis`).

    diag = diagnose(Signals(history, baseline_loss=math.log(10)), before=[finding, ...])
    print(diag)                    # the console lines
    diag.to_dict()                 # what result.json stores; Diagnosis.from_dict(...) reads it back
    diag.findings[0].code          # "output_activation", "overfitting", ...

A `Finding` is a warning (something to fix) or a note (worth knowing: early stopping caught overfitting,
a small validation split, how the network compares with simple baselines). Findings come from three stages:
`before` training (the model and the data: diagnose/pitfalls.py), `during` (the curves: diagnose/curves.py) and
`after` (baselines: diagnose/baselines.py), each stage the checks registered for it (diagnose/catalog.py).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from trainlab.diagnose import catalog, checks  # noqa: F401  (catalog: imported for the checks it registers)
from trainlab.diagnose.curves import Signals
from trainlab.diagnose.finding import Finding, wilson

__all__ = ["Diagnosis", "Finding", "Signals", "curve_checks", "diagnose", "from_check", "wilson"]

# curve symptoms that a cause found before training explains better than their generic remedies
SYMPTOMS = ("underfitting", "learning_rate", "divergence", "baselines", "gradients", "dead_units")
CAUSES = ("output_activation", "input_scale", "ema_horizon", "frozen_backbone", "target_scale")  # pitfalls that
#                                                                          stall or blow up training


@dataclass
class Diagnosis:
    findings: list[Finding] = field(default_factory=list)  # warnings first (before, during, after), then notes
    checks: dict = field(default_factory=dict)  # every curve check by name, with its status and numbers
    baselines: dict = field(default_factory=dict)  # simple models' scores on the validation split
    dry_run: bool = False  # judged only the pitfalls before training and a finite loss (guide.py: dry_diagnosis)

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
        healthy = ("dry run: no problem found before training (the model, the data, the loss) and the loss "
                   "stayed finite; the curves, baselines and test split are judged by a real run") if self.dry_run \
            else ("diagnosis: healthy - no problem found in the data, the model or the curves (over/underfitting, "
                  "divergence, learning rate, gradients, dead units, input pipeline)")
        out = [] if self.warnings else [healthy]
        for f in self.findings:
            out += f.lines()
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())

    __repr__ = __str__  # a notebook cell ending in `trainer.diagnosis` shows the same lines

    def to_dict(self) -> dict:
        return {"healthy": self.healthy, "problems": self.problems, "lines": self.lines(),
                "findings": [asdict(f) for f in self.findings], "checks": self.checks, "baselines": self.baselines,
                **({"dry_run": True} if self.dry_run else {})}

    @classmethod
    def from_dict(cls, d: dict) -> Diagnosis:
        """Read back `to_dict()` - or an older result.json that has only `checks`."""
        if "findings" in d:
            findings = [Finding(**f) for f in d["findings"]]
        else:
            findings = [f for name, c in d.get("checks", {}).items() if (f := from_check(name, c)) is not None]
        return cls(findings, d.get("checks", {}), d.get("baselines", {}), bool(d.get("dry_run", False)))


def from_check(name: str, check: dict) -> Finding | None:
    """A curve check as a finding: its warning, or the note that early stopping caught overfitting."""
    evidence = {k: v for k, v in check.items() if k not in ("status", "message", "remedies")}
    if check["status"] == "warning":
        return Finding(name, "warning", check["message"], list(check["remedies"]), evidence)
    if check.get("caught"):
        return Finding(name, "note", check["message"], [], evidence)
    return None


def curve_checks(sig: Signals) -> dict:
    """Every registered curve check on the signals; a diverged run's fit and learning rate are not judged on top."""
    found = {c.code: c.measure(sig) for c in checks.of_stage("during")}
    if found.get("divergence", {}).get("status") == "warning":  # a diverged run's curves say nothing about fit
        for c in checks.of_stage("during"):
            if not c.judged_when_diverged and found[c.code]["status"] == "warning":
                found[c.code] = {"status": "skipped", "message": f"not judged: the run diverged "
                                                                 f"({found[c.code]['message']})", "remedies": []}
    return found


def diagnose(sig: Signals, before: list[Finding] = (), after: list[Finding] = (),
             baselines: dict | None = None) -> Diagnosis:
    """Assemble the diagnosis: before-training findings, the curve checks, after-training findings.

    A symptom on the curves (underfitting, a loss that barely moves) that a before-training warning explains
    names that cause first: the course's Sigmoid output stalls training, and "a bigger model" is the wrong fix.
    """
    judged = curve_checks(sig)
    during = [f for name, c in judged.items() if (f := from_check(name, c)) is not None]
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
    diag = Diagnosis(found, judged, baselines or {})
    for c in checks.of_stage("revise"):  # rewrites of the whole diagnosis (diagnose/catalog.py: features_limit)
        diag = c.measure(checks.Review(diag, baselines or {}, sig.settings))
    return diag

