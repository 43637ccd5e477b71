"""The only module of diagnose/ that engine/ imports (tests/test_architecture.py holds it to that): the Trainer
builds a `Guide`, hands it a `RunSetup` when `fit` starts and an `EpochFacts` after every epoch (diagnose/facts.py),
stores its `state_dict()` in last.pt, and reads back a `Diagnosis`. `batch_targets` reads a batch source's labels
without decoding its inputs (the class weights need them as the pitfall checks do)."""
from __future__ import annotations

from trainlab.diagnose.diagnosis import Diagnosis
from trainlab.diagnose.facts import Brief, EpochFacts, RunSetup
from trainlab.diagnose.guide import Guide, resolve_verbose
from trainlab.diagnose.signals import batch_targets

__all__ = ["Brief", "Diagnosis", "EpochFacts", "Guide", "RunSetup", "batch_targets", "resolve_verbose"]
