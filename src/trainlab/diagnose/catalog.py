"""Every check the diagnosis runs, in the order its findings are printed: one registered function each, with its
title, when it applies, what it measures (the function it calls, tested on its own) and, in its Finding, the
fix. A new check is one more decorated function here (the registry: diagnose/checks.py):

    @pitfall("my_check", "My check", applies=lambda p: p.task == "classification")
    def my_check(p: Probe) -> Finding | None:
        '''What it measures, in one line.'''
        return Finding("my_check", "warning", "what is wrong, with numbers", ["the fix"], {...}, "before")
"""
from __future__ import annotations

from trainlab.diagnose import advice, curves, pitfalls
from trainlab.diagnose.baselines import sentence
from trainlab.diagnose.checks import Outcome, Probe, Review, after, curve, pitfall, revision
from trainlab.diagnose.curves import Signals
from trainlab.diagnose.finding import Finding, accuracy_interval, wilson
from trainlab.models.seqlayers import OutputScale

# ----------------------------------------------------------------------------- before training (a Probe)


@pitfall("labels", "Labels")
def labels(p: Probe) -> None:
    """Labels that cannot work with the loss (one-hot or float class labels, ...): a one-line UserError."""
    pitfalls.check_labels(p.y, p.num_outputs, p.loss_name)


@pitfall("label_range", "Label range",
         applies=lambda p: p.task == "classification" and not p.labels.is_floating_point())
def label_range(p: Probe) -> None:
    """Class labels beyond the model's outputs: a one-line UserError."""
    pitfalls.labels_outside(p.labels, p.num_outputs)


@pitfall("output_activation", "Output activation")
def output_activation(p: Probe) -> Finding | None:
    """A squashing activation before a loss that applies its own, or a bounded one before targets outside it."""
    module, out = pitfalls.final_module(p.model, p.x[:64])
    return pitfalls.output_activation(module, out, p.loss_name, p.y, bool(p.settings.get("output_activation")))


@pitfall("input_scale", "Input scale")
def input_scale(p: Probe) -> Finding | None:
    """Inputs far from mean 0 / std 1, or raw 0-255 pixels."""
    return pitfalls.input_scale(p.x)


@pitfall("class_imbalance", "Class imbalance", applies=lambda p: p.task == "classification")
def class_imbalance(p: Probe) -> Finding | None:
    """Largest / smallest class count of 3 or more, unless a remedy is already on."""
    return pitfalls.class_imbalance(p.labels, p.num_outputs, p.balancing, p.classes)


@pitfall("duplicates", "Leakage")
def duplicates(p: Probe) -> Finding | None:
    """Samples of a later split identical to one of an earlier split - or, on a table whose training split repeats
    its own rows as often (few values per column), a note that such twins are expected and what to do."""
    return advice.expected_duplicates(pitfalls.duplicates(p.hashes), p.conflicts, p.hashes)


@pitfall("batch_norm", "BatchNorm")
def batch_norm(p: Probe) -> Finding | None:
    """BatchNorm with one-sample batches (BatchNorm1d: a one-line UserError)."""
    return pitfalls.batch_norm(p.model, p.samples, p.batch_size, p.drop_last)


@pitfall("drop_last", "drop_last")
def drop_last(p: Probe) -> Finding | None:
    """drop_last throwing away a fifth or more of the training set every epoch."""
    return pitfalls.drop_last_waste(p.samples, p.batch_size, p.drop_last)


@pitfall("ema_horizon", "EMA horizon", applies=lambda p: p.run is not None)
def ema_horizon(p: Probe) -> Finding | None:
    """train.ema averaging over more optimizer steps than the whole run has."""
    return advice.ema_horizon(p.run.ema, p.run.steps)


@pitfall("frozen_backbone", "Frozen random backbone", applies=lambda p: p.run is not None)
def frozen_backbone(p: Probe) -> Finding | None:
    """train.freeze: backbone on a backbone that is not pretrained (frozen for the whole run: a UserError)."""
    r = p.run
    return advice.frozen_backbone(r.freeze, r.freeze_epochs, r.epochs, p.settings.get("pretrained"), r.lr_mult)


@pitfall("ambiguous_features", "Ambiguous rows")
def ambiguous_features(p: Probe) -> Finding | None:
    """Many training rows of a table whose exact features also carry another label: the loss floor."""
    return advice.ambiguous_features(p.conflicts)


@pitfall("target_scale", "Target scale", applies=lambda p: p.task == "regression"
         and p.labels.is_floating_point() and p.labels.numel() > 1)
def target_scale(p: Probe) -> Finding | None:
    """Regression targets far from unit scale, standardized by the model's output scale (a note) or not."""
    y = p.labels.double()
    scaled = any(isinstance(m, OutputScale) for m in p.model.modules())
    return advice.unscaled_targets(float(y.mean()), float(y.std()), scaled)


# ----------------------------------------------------------------------------- the curves (the Signals)
# a diverged run's curves say nothing about fit: those marked judged_when_diverged=False are then skipped

@curve("overfitting", "Overfitting", judged_when_diverged=False)
def overfitting(s: Signals) -> dict:
    return curves.overfitting(s.history, s.settings, s.stopped_early, s.best_epoch, s.baseline_loss)


@curve("underfitting", "Underfitting", judged_when_diverged=False)
def underfitting(s: Signals) -> dict:
    return curves.underfitting(s.history, s.baseline_loss)


@curve("divergence", "Divergence")
def divergence(s: Signals) -> dict:
    return curves.divergence(s.history, s.step_losses, s.baseline_loss, s.failure)


@curve("learning_rate", "Learning rate", judged_when_diverged=False)
def learning_rate(s: Signals) -> dict:
    return curves.learning_rate(s.step_losses, s.update_ratio, s.lr)


@curve("gradients", "Vanishing / exploding gradients")
def gradients(s: Signals) -> dict:
    return curves.gradients(s.grad_rms, bool(s.settings.get("normalized")))


@curve("dead_units", "Dead ReLU units")
def dead_units(s: Signals) -> dict:
    return curves.dead_units(s.dead)


@curve("input_pipeline", "Input pipeline")
def input_pipeline(s: Signals) -> dict:
    return curves.input_pipeline(s.history, s.settings)


# ----------------------------------------------------------------------------- after training (an Outcome)

@after("baselines", "Baselines", applies=lambda o: bool(o.comparison))
def baselines(o: Outcome) -> Finding:
    """The network next to the majority class / mean and a linear model on the validation split."""
    beats = o.comparison["beats"]
    lost = [name for name, beat in beats.items() if not beat]
    text = sentence(o.comparison)
    if not beats[next(iter(beats))]:  # not even the majority class / mean predictor
        return Finding("baselines", "warning", f"{text}: the network has learned nothing useful yet",
                       ["train longer or with a better learning rate (trainlab lr-find)",
                        "check the pitfalls above: labels, inputs, the output activation"], o.comparison, "after")
    hint = "; the simple model may be enough here, or the network needs tuning" if lost else ""
    return Finding("baselines", "note", text + hint, [], o.comparison, "after")


@after("head_phase", "Head-only phase", applies=lambda o: o.run is not None)
def head_phase(o: Outcome) -> Finding | None:
    """The epochs with the backbone frozen (train.freeze: backbone) that stayed at a constant prediction's loss."""
    losses = [float(r["train_loss"]) for r in o.history if "train_loss" in r]
    return advice.head_phase(o.run.freeze, o.run.freeze_epochs, losses, o.baseline_loss)


@after("small_validation", "Validation split size",
       applies=lambda o: "val_accuracy" in o.best and bool(accuracy_interval(o.best["val_accuracy"], o.val_size)))
def small_validation(o: Outcome) -> Finding:
    """A validation split too small to tell accuracies apart: the best accuracy's 95% interval."""
    n, acc = o.val_size, o.best["val_accuracy"]
    lo, hi = wilson(acc * n, n)
    return Finding("small_validation", "note", f"the validation split has {n} samples: accuracy {acc:.4f} is "
                   f"known only to 95% CI {lo:.3f}-{hi:.3f}; differences smaller than that between epochs or "
                   f"runs are noise", [], {"n": n, "low": lo, "high": hi}, "after")


# ----------------------------------------------------------------------------- the assembled diagnosis (a Review)

@revision("features_limit", "Features' limit")
def features_limit(r: Review):
    """Underfitting on rows the features cannot tell apart becomes 'the features do not determine the label';
    remedies the run cannot apply (model.activation for a timm/torchvision model, lr-find for an EMA/freeze
    trap) are rewritten or dropped."""
    return advice.revise(r.diagnosis, r.comparison, r.settings)
