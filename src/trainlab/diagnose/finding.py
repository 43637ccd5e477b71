"""One finding of the diagnosis (what is wrong, why, the numbers, the fix) and the Wilson interval the findings
about accuracy quote. The vocabulary every check and renderer shares; no torch here."""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field


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


def wilson(successes: float, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion: accuracy k/n -> (low, high), 95% by default."""
    z = statistics.NormalDist().inv_cdf(0.5 + confidence / 2)
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


CI_SHOWN_BELOW = 1000  # show accuracy's 95% interval next to it for fewer samples (at 50%: wider than +-3 points)


def accuracy_interval(accuracy: float, n: int, always: bool = False, short: bool = False) -> str:
    """' (95% CI 0.93-0.99, n=144)' when n samples leave accuracy uncertain (or `always`), else ''."""
    if n <= 0 or not (always or n < CI_SHOWN_BELOW):
        return ""
    lo, hi = wilson(accuracy * n, n)
    return f" (CI {lo:.2f}-{hi:.2f})" if short else f" (95% CI {lo:.3f}-{hi:.3f}, n={n})"
