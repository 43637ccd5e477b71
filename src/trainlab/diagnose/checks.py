"""The registry of diagnosis checks: each check is one registered function that carries its title, when it
applies, what it measures and the fix, so a new check is one function in one file (`diagnose/catalog.py` holds
the built-in ones) and every renderer - console, result.json, report.html, `trainer.diagnosis` - picks it up.

    @pitfall("drop_last", "drop_last")                      # code (what result.json names), title (report.html)
    def drop_last(p: Probe) -> Finding | None:              # what it measures: the Probe of the training data
        ...                                                 # the fix travels in the Finding (`fix=[...]`)

    @pitfall("class_imbalance", "Class imbalance", applies=lambda p: p.task == "classification")

Three stages, one signature each: `pitfall` checks run before training on a `Probe` and return a `Finding` or
None (or raise a one-line UserError for a mistake that would crash the first step); `curve` checks run on the
`Signals` (diagnose/curves.py) after every epoch and return a check dict {"status", "message", "remedies",
...numbers}; `after` checks run once training is over on an `Outcome` and return a `Finding` or None; a
`revision` reads the assembled diagnosis (a `Review`) and returns it rewritten (advice the run cannot apply,
a symptom whose honest name is another: underfitting on rows the features cannot tell apart). Checks run in
registration order, which is the order their findings are printed in.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from trainlab.diagnose.finding import Finding

STAGES = ("before", "during", "after", "revise")


@dataclass(frozen=True)
class Check:
    code: str  # the finding's code: "output_activation", "overfitting", ...
    title: str  # how report.html heads it: "Output activation", "Overfitting", ...
    stage: str  # "before" (a Probe), "during" (the Signals) or "after" (an Outcome)
    measure: Callable[[Any], Any]  # the check itself; its docstring says what it measures
    applies: Callable[[Any], bool] = lambda facts: True  # when it applies (false: not run at all)
    judged_when_diverged: bool = True  # curve checks: still judged once the run diverged?


CHECKS: dict[str, Check] = {}  # code -> Check, in registration order


@dataclass(frozen=True)
class Probe:
    """What a before-training check looks at: the model, a probe of the training data and the facts around it.
    Checks run the model only under `torch.no_grad()` in eval mode and draw no random numbers."""

    model: Any  # the nn.Module about to be trained
    x: Any  # (N<=1024, ...) training inputs as the model sees them
    y: Any  # (N, ...) their targets
    labels: Any  # every training label when the batch source can tell them cheaply, else y (on the CPU)
    num_outputs: int  # the model's output width
    task: str  # "classification", "regression" or "multilabel"
    loss_name: str
    samples: int  # training samples per epoch
    batch_size: int
    drop_last: bool
    balancing: list[str] = field(default_factory=list)  # class-imbalance remedies already on, as settings
    hashes: dict = field(default_factory=dict)  # {split: one digest per sample} for the leakage check
    classes: list[str] | None = None  # class names, when the data has them
    settings: dict = field(default_factory=dict)  # config facts the remedies name (Brief.settings)
    run: Any = None  # the RunSetup (diagnose/facts.py): planned epochs, optimizer steps, fine-tuning settings
    conflicts: dict = field(default_factory=dict)  # identical training rows of a table (advice.label_conflicts)


@dataclass(frozen=True)
class Outcome:
    """What an after-training check looks at: the finished run's numbers."""

    comparison: dict  # the network next to the baselines on validation (diagnose/baselines.compare), or {}
    best: dict  # the history row of the best epoch, or {}
    val_size: int  # validation samples (0: no validation split)
    history: list = field(default_factory=list)  # the Trainer's history rows
    baseline_loss: float | None = None  # a constant prediction's training loss
    run: Any = None  # the RunSetup (diagnose/facts.py), None when no fit started


@dataclass(frozen=True)
class Review:
    """What a revision reads: the assembled diagnosis and the facts around it."""

    diagnosis: Any  # the Diagnosis (diagnose/diagnosis.py) as assembled from every stage
    comparison: dict  # the network next to the baselines, or {}
    settings: dict  # config facts (Brief.settings: "model", "pretrained", ...)


def register(stage: str, code: str, title: str, applies: Callable[[Any], bool] | None = None,
             judged_when_diverged: bool = True) -> Callable:
    """Decorator: add `fn` to the registry as the check `code` of `stage`."""
    if stage not in STAGES:
        raise ValueError(f"unknown check stage {stage!r}; choose from {STAGES}")

    def add(fn: Callable) -> Callable:
        if code in CHECKS:
            raise ValueError(f"diagnosis check {code!r} registered twice")
        CHECKS[code] = Check(code, title, stage, fn, applies or (lambda facts: True), judged_when_diverged)
        return fn
    return add


def pitfall(code: str, title: str, applies: Callable[[Probe], bool] | None = None) -> Callable:
    """A before-training check: fn(Probe) -> Finding | None."""
    return register("before", code, title, applies)


def curve(code: str, title: str, judged_when_diverged: bool = True) -> Callable:
    """A check of the curves: fn(Signals) -> {"status", "message", "remedies", ...numbers}."""
    return register("during", code, title, None, judged_when_diverged)


def after(code: str, title: str, applies: Callable[[Outcome], bool] | None = None) -> Callable:
    """An after-training check: fn(Outcome) -> Finding | None."""
    return register("after", code, title, applies)


def revision(code: str, title: str) -> Callable:
    """A rewrite of the assembled diagnosis: fn(Review) -> Diagnosis (`code`: the finding it may add)."""
    return register("revise", code, title)


def of_stage(stage: str) -> list[Check]:
    return [c for c in CHECKS.values() if c.stage == stage]


def findings(stage: str, facts) -> list[Finding]:
    """Every applicable check of a Finding-returning stage ("before", "after") run on `facts`, in order."""
    return [f for c in of_stage(stage) if c.applies(facts) and (f := c.measure(facts)) is not None]


def title(code: str, fallback: str | None = None) -> str:
    """A check's title for report.html; a code nobody registered (an older run's) reads as its words."""
    check = CHECKS.get(code)
    if check is not None:
        return check.title
    return fallback if fallback is not None else code.replace("_", " ").capitalize()
