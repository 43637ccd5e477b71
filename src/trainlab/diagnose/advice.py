"""The guide's advice off the demo path: settings that keep fine-tuning from scratch from learning (an EMA longer
than the run, a frozen random backbone, a head-only phase that learned nothing), tables whose features cannot
determine the label, identical rows that are expected rather than leaked, and regression targets far from unit
scale. Pure functions over plain values (settings, counts, losses, baseline scores) that return a `Finding`
(diagnose/finding.py) or None, so each is testable on made-up numbers:

    ema_horizon(0.99, total_steps=30)          # Finding("ema_horizon", "warning", "train.ema 0.99 averages ...")
    frozen_backbone("backbone", 1, 5, pretrained=False)
    revise(diagnosis, conflicts)               # underfitting on ambiguous rows -> the features' limit

Each is registered once as a check (diagnose/catalog.py: @pitfall, @after, and `revise` as the `features_limit`
revision of the assembled diagnosis); `conflicts` counts come from `label_conflicts(x, y)` (the guide's Probe).
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

from trainlab.core.errors import UserError
from trainlab.diagnose.finding import Finding

EMA_SHARE = 0.05  # the first step's weights may keep at most 5% of the EMA at the end of the run (ema^steps)
HEAD_PHASE_STUCK = 0.97  # frozen epochs whose training loss stays above 97% of a constant prediction's: no learning
CONFLICT_SHARE = 0.05  # >= 5% of the training rows share their exact features with a row of another label
FLOOR_MARGIN = 1.15  # a training loss within 15% of the features' floor (H(label | features)) is at that limit
LOW_DISTINCT_SHARE = 0.05  # >= 5% of the training rows have an exact twin in training: twins are the table's nature
CHANCE_MIN = 0.01  # ... and the columns' value frequencies make >= 1% of rows twins by chance (wine: ~1e-20;
#                   a survey: 7%, correlated columns then give several times more)
EXPECTED_RATIO = 1.5  # ... and a later split shares rows with training at most 1.5x that share (+2 points)
LIBRARY = ("timm:", "torchvision:")  # their activations are the library's: model.activation does not exist
LIBRARY_FIX = "train.warmup (e.g. 100 steps) or a lower learning rate (a library model's activations are fixed)"
SETTING_CAUSES = ("ema_horizon", "frozen_backbone")  # found before training, they explain the curves' symptoms
GENERIC = ("lr-find", "learning rate", "train longer", "more epochs", "bigger model")  # remedies they make useless
AT_THE_LIMIT = {  # findings that the features' limit explains, and what to say instead of their fix
    "dead_units": "harmless here: the network already does as well as these features allow, so the dead units are "
                  "capacity it does not need",
    "baselines": "expected here: when the features do not determine the label, no model, the network included, "
                 "can do much better than a simple one",
}
TABLE_COLUMNS = 500  # identical-row checks only on tables up to 500 columns ...
TABLE_ROWS = 500_000  # ... and 500,000 rows (here: 2 ms for the 4,584 x 8 survey, 60 ms for 60,000 x 13 floats)
CHANCE_ROWS = 20_000  # rows whose value frequencies estimate the chance of twins
TARGET_FAR = 10.0  # regression targets with |mean| or std above 10 (or std below 1/10) are far from unit scale


# ----------------------------------------------------------------------------- fine-tuning settings

def ema_horizon(ema: float | None, total_steps: int) -> Finding | None:
    """train.ema whose average still holds much of the first step's weights after the run's last step: the
    weights validated, saved and tested then barely move from those of step 1 (what the learner saw as a
    validation loss stuck at chance for 5 epochs while the training loss fell)."""
    if not ema or total_steps <= 0:
        return None
    share = ema ** total_steps  # weight of step 1's parameters in the EMA after the last step
    if share <= EMA_SHARE:
        return None
    horizon = 1 / (1 - ema)
    good = 1 - 1 / max(total_steps / 10, 1)  # an average over the last tenth of the run
    fix = ["train.ema: null (validate the trained weights themselves)"]
    if good > 0.5:
        fix.append(f"train.ema: {good:.3g} (averages about the last {total_steps // 10} steps)")
    fix.append(f"or more optimizer steps: epochs or a smaller data.batch_size (now {total_steps} in all)")
    return Finding("ema_horizon", "warning", f"train.ema {ema:g} averages about the last {horizon:.0f} optimizer "
                   f"steps, but the whole run has only {total_steps}: at the end the averaged weights - those "
                   f"validated, saved and tested - are still {share:.0%} the weights of step 1, so validation "
                   f"stays near chance while the training loss falls", fix,
                   {"ema": ema, "horizon_steps": horizon, "total_steps": total_steps, "first_step_share": share},
                   "before")


def frozen_backbone(freeze: str, freeze_epochs: int, epochs: int, pretrained: bool | None,
                    lr_mult: float = 1.0) -> Finding | None:
    """train.freeze: backbone on a backbone that starts from random weights (`pretrained` False; None = not
    known, e.g. a model handed to the Python Trainer): the head learns on random features. Frozen for the whole
    run, nothing but a linear head on noise is trained -> refused before training."""
    if freeze != "backbone" or pretrained is not False or freeze_epochs <= 0:
        return None
    if freeze_epochs >= epochs:
        raise UserError(f"train.freeze: backbone with freeze_epochs {freeze_epochs} >= epochs {epochs} keeps a "
                        f"randomly initialised backbone frozen for the whole run: only the head would learn, on "
                        f"random features; set train.freeze=none (training from scratch), or model.pretrained=true "
                        f"or model.weights=FILE")
    fix = ["train.freeze: none (from scratch every layer must learn)"]
    if lr_mult < 1:
        fix.append(f"train.lr_mult: 1 (now {lr_mult:g}: the random backbone would learn {1 / lr_mult:g}x slower)")
    fix.append("or start from trained weights: model.pretrained: true, or model.weights: FILE")
    return Finding("frozen_backbone", "warning", f"train.freeze: backbone freezes a randomly initialised backbone "
                   f"(not pretrained, no model.weights) for {freeze_epochs} of {epochs} epochs: the head then "
                   f"learns on random features, and those epochs are lost", fix,
                   {"freeze_epochs": freeze_epochs, "epochs": epochs, "lr_mult": lr_mult}, "before")


def head_phase(freeze: str, freeze_epochs: int, train_losses: list[float], constant_loss: float | None
               ) -> Finding | None:
    """After the run: the head-only epochs (train.freeze: backbone) whose training loss stayed at a constant
    prediction's - the frozen features do not separate the classes."""
    frozen = train_losses[:freeze_epochs] if freeze == "backbone" else []
    if not frozen or not constant_loss or not all(math.isfinite(v) for v in frozen):
        return None
    if min(frozen) < HEAD_PHASE_STUCK * constant_loss:
        return None
    return Finding("head_phase", "warning", f"the head-only phase learned nothing: in the {len(frozen)} epoch(s) "
                   f"with the backbone frozen the training loss stayed at {min(frozen):.4g}, a constant "
                   f"prediction's {constant_loss:.4g}; the frozen features do not separate the classes",
                   ["a pretrained backbone (model.pretrained: true or model.weights: FILE)",
                    "or train.freeze: none"], {"frozen_losses": frozen, "constant_loss": constant_loss}, "after")


# ----------------------------------------------------------------------------- tables

def label_conflicts(x: torch.Tensor | None, y: torch.Tensor | None) -> dict:
    """Identical feature rows of a table (x: (N, F) floats or token ids): {"rows", "distinct", "repeated" (rows
    with an exact twin), "chance" (the share of rows expected to have a twin if columns were independent, from
    each column's value frequencies)}, and for class labels y (N,) also "conflicting" (rows whose exact features
    also carry another label), "floor" (H(label | features) in nats: the lowest mean cross-entropy any model
    can reach on these rows) and "constant" (H(label): a constant prediction's); {} for other inputs."""
    if x is None or x.ndim != 2 or len(x) < 2 or x.shape[1] > TABLE_COLUMNS or len(x) > TABLE_ROWS:
        return {}  # flattened images and huge tables: no survey-like table, and fit's checks must stay cheap
    x = x.detach().cpu().contiguous()
    rows = x.numpy().view(np.dtype((np.void, x.element_size() * x.shape[1]))).ravel()  # (N,) one bytes value per row
    _, inverse = np.unique(rows, return_inverse=True)  # a byte sort: ~5x faster than torch.unique(dim=0) here
    group = torch.from_numpy(inverse.ravel().astype(np.int64))  # (N,) row -> its distinct row
    group_counts = torch.bincount(group).double()  # (G,)
    repeated = int(group_counts[group_counts > 1].sum())
    # chance twins matter only where twins are common (real-valued tables have none): skip the per-column pass
    chance = chance_twins(x[:CHANCE_ROWS]) if repeated >= LOW_DISTINCT_SHARE * len(x) else 0.0
    out = {"rows": len(x), "distinct": len(group_counts), "repeated": repeated, "chance": chance}
    if y is None or y.ndim != 1 or y.is_floating_point() or len(y) != len(x):
        return out
    labels = y.detach().cpu().long()
    k = int(labels.max()) + 1
    pair_ids, pair_counts = torch.unique(group * k + labels, return_counts=True)  # (P,): one id per (row, label)
    pair_group = pair_ids // k
    labels_per_group = torch.bincount(pair_group, minlength=len(group_counts))
    p = pair_counts.double() / group_counts[pair_group]
    share = torch.bincount(labels).double() / len(y)
    return {**out, "conflicting": int(group_counts[labels_per_group > 1].sum()),
            "floor": float(-(pair_counts.double() * p.log()).sum() / len(x)),
            "constant": float(-(share[share > 0] * share[share > 0].log()).sum())}


def chance_twins(x: torch.Tensor) -> float:
    """Share of N rows expected to have an identical twin if the columns were independent: a random pair is
    identical with P = prod_j sum_v p_jv^2 (p_jv: column j's share of value v), so 1 - (1 - P)^(N - 1). A
    survey of answer codes: tens of percent; real-valued measurements: ~0."""
    log_p = 0.0
    for column in x.T:  # (N,) per column
        _, counts = torch.unique(column, return_counts=True)
        log_p += math.log(float((counts.double() / len(column)).square().sum()))
    return float(-math.expm1((len(x) - 1) * math.log1p(-min(math.exp(log_p), 1 - 1e-12))))


def ambiguous_features(conflicts: dict) -> Finding | None:
    """Before training: many training rows whose exact features also carry another label (a survey with a few
    answer codes per column) - no model can tell those apart; the note gives the loss floor."""
    if "conflicting" not in conflicts or conflicts["conflicting"] < CONFLICT_SHARE * conflicts["rows"]:
        return None
    c = conflicts
    versus = f" (a constant prediction's: {c['constant']:.4g})"
    return Finding("ambiguous_features", "note", f"{c['conflicting']:,} of {c['rows']:,} training rows share their "
                   f"exact features with a row of another label ({c['distinct']:,} distinct feature rows): no model "
                   f"can tell those apart, so the training loss cannot go below {c['floor']:.4g}{versus}", [],
                   dict(c), "before")


def at_the_limit(f: Finding) -> Finding:
    """A symptom of a network already at the features' limit, as a note that says why it needs no fix."""
    return dataclasses.replace(f, severity="note", fix=[], cause=f"{f.cause} - {AT_THE_LIMIT[f.code]}",
                               evidence={**f.evidence, "likely_cause": "features_limit"})


def revise(diag, comparison: dict | None = None, facts: dict | None = None):
    """Advice the run cannot apply or that misleads, rewritten: a timm/torchvision model has no
    model.activation; underfitting on rows the features cannot tell apart is no case for a bigger model (when
    the training loss is near the features' floor, or a linear model does as well as the network, the honest
    finding is that the features do not determine the label)."""
    if str((facts or {}).get("model", "")).startswith(LIBRARY):
        for f in diag.findings:
            f.fix = [LIBRARY_FIX if "model.activation" in x else x for x in f.fix]
    for f in diag.findings:  # a setting that keeps the run from learning: lr-find or more epochs cannot help
        if f.evidence.get("likely_cause") in SETTING_CAUSES:
            f.fix = [x for x in f.fix if x.startswith("first:") or not any(w in x for w in GENERIC)]
    note = next((f for f in diag.findings if f.code == "ambiguous_features"), None)
    under = next((f for f in diag.findings if f.code == "underfitting" and f.severity == "warning"), None)
    if note is None or under is None:
        return diag
    floor, train = note.evidence["floor"], under.evidence.get("train_loss")
    beats = (comparison or {}).get("beats", {})
    linear_as_good = len(beats) > 1 and not list(beats.values())[-1]
    if not (linear_as_good or (train is not None and train <= FLOOR_MARGIN * floor)):
        return diag
    evidence = {**under.evidence, **note.evidence, "linear_as_good": linear_as_good}
    c = note.evidence
    parts = [f"{c['conflicting']:,} of {c['rows']:,} training rows share their exact features with a row of "
             f"another label"]
    if train is not None and train <= FLOOR_MARGIN * floor:
        parts.append(f"the training loss {train:.4g} is at the floor no model can go below ({floor:.4g})")
    if linear_as_good:
        name = list(beats)[-1]
        parts.append(f"a {name} does as well as the network ({comparison['metric']} {comparison['baselines'][name]:.4g}"
                     f" vs {comparison['network']:.4g})")
    cause = ("the features do not determine the label: " + "; ".join(parts)
             + " - a bigger model or longer training will not help")
    fix = ["new information per row: more or better features (the limit is the data's, not the model's)",
           "judge the model against the baselines and the loss floor, not against zero loss",
           "if the task allows, predict probabilities (predict_proba) rather than hard labels"]
    found = [at_the_limit(f) if f.code in AT_THE_LIMIT and f.severity == "warning" else f
             for f in diag.findings if f is not under]
    found.insert(0, Finding("features_limit", "warning", cause, fix, evidence, "after"))
    return dataclasses.replace(diag, findings=found)  # diag: a diagnose/diagnosis.Diagnosis (it imports this module)


def expected_duplicates(found: Finding | None, conflicts: dict, splits: dict[str, list]) -> Finding | None:
    """A 'leakage' finding on a table whose training split repeats its own rows about as often as later splits
    repeat training rows: with few distinct values per column (a survey's answer codes) identical rows are what
    a random split gives, so say that and what to do, instead of calling it leakage without qualification.
    `splits`: {split: one digest per row}, as `duplicates` took them (only their sizes are read)."""
    if found is None or found.code != "duplicates" or not conflicts.get("rows"):
        return found
    split_sizes = {split: len(rows) for split, rows in splits.items()}
    inside = conflicts["repeated"] / conflicts["rows"]  # share of training rows with a twin in training
    counts = found.evidence.get("counts", {})
    across = max(n / max(split_sizes.get(split, 0), 1) for split, n in counts.items())  # worst later split
    if inside < LOW_DISTINCT_SHARE or across > EXPECTED_RATIO * inside + 0.02 or conflicts["chance"] < CHANCE_MIN:
        return found  # few twins inside training, far more across splits, or values too varied for chance twins
    shared = ", ".join(f"{n:,} of {split_sizes.get(split, 0):,} {split} rows" for split, n in counts.items())
    cause = (f"{shared} are identical to training rows, but the training split repeats its own rows as often "
             f"({conflicts['repeated']:,} of {conflicts['rows']:,} training rows, {inside:.0%}, have an exact twin "
             f"there, and the columns' value frequencies alone make {conflicts['chance']:.0%} expected): with few "
             f"values per column identical rows "
             f"are expected and are not by themselves leakage - only if they are the same record (the same person "
             f"or item) counted twice: then split by group, or deduplicate before splitting")
    fix = ["if a person or item has several rows: split by group (keep each group's rows in one split)",
           "if rows are copies of one record: deduplicate before splitting (pandas drop_duplicates)",
           "otherwise nothing to do: validation then measures what the model does on such rows"]
    return Finding("duplicates", "note", cause, fix,
                   {**found.evidence, **conflicts, "share_inside": inside, "share_across": across, "expected": True},
                   "before")


# ----------------------------------------------------------------------------- regression

def unscaled_targets(mean: float, std: float, scaled: bool) -> Finding | None:
    """Regression targets far from unit scale that are not standardized: the loss starts in the thousands,
    the output layer must grow its weights for many steps first, and the learning rate is hard to choose.
    Standardized by the model's output scale (data.scale_target): a note saying so."""
    far = abs(mean) > TARGET_FAR or std > TARGET_FAR or 0 < std < 1 / TARGET_FAR
    if not far:
        return None
    if scaled:
        return Finding("target_scale", "note", f"the regression targets (mean {mean:.4g}, std {std:.4g}) are "
                       f"standardized for the network with the training split's mean and std (its output layer scales "
                       f"back; data.scale_target for tables); "
                       f"loss, metrics, predictions, export and serve stay in the original units", [],
                       {"mean": mean, "std": std, "scaled": True}, "before")
    return Finding("target_scale", "warning", f"the regression targets are far from unit scale (mean {mean:.4g}, "
                   f"std {std:.4g}) and not standardized: the loss starts near {mean * mean + std * std:.3g}, the "
                   f"network's output layer must first grow to that scale, and no learning rate suits both",
                   ["data.scale_target: true (standardize with the training split's mean and std; predictions, "
                    "metrics, export and serve are given back in the original units)",
                    "in your own Dataset: (y - mean) / std with the training split's mean and std"],
                   {"mean": mean, "std": std}, "before")
