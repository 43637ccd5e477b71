"""The course's pitfalls, caught before training from the model and the data: an output activation in front
of a loss that wants logits, inputs that are not normalized, labels that do not fit the loss, class imbalance,
the same samples in two splits, BatchNorm with batches of one, a drop_last that drops most of the data.

    findings = [f for f in (output_activation(model, out, "cross_entropy", settings), input_scale(x)) if f]

Each check returns a `Finding` (diagnose/finding.py) or None; a mistake that would crash the first training
step (float labels for cross-entropy, a 1-sample batch through BatchNorm1d) raises a one-line UserError
instead. The probes run under `torch.no_grad()` in eval mode and draw no random numbers. The guide runs them
as the registered checks of diagnose/catalog.py, each on a `Probe` (diagnose/checks.py).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from trainlab.core.errors import UserError
from trainlab.diagnose.finding import Finding

LOGIT_LOSSES = ("cross_entropy", "bce_with_logits")
SQUASHING = (nn.Sigmoid, nn.Softmax, nn.LogSoftmax)
BOUNDED = {nn.Sigmoid: (0.0, 1.0), nn.Tanh: (-1.0, 1.0), nn.ReLU: (0.0, math.inf), nn.Softplus: (0.0, math.inf)}
SCALE_RMS = 5.0  # inputs whose root-mean-square is > 5 are not normalized (a normalized feature: RMS 1) ...
SCALE_FEATURE = 20.0  # ... nor are any with one feature's |mean| or std > 20 (wine's proline: ~750)
IMBALANCE = 3.0  # largest / smallest class count from which accuracy flatters a model
DROP_LAST_SHARE = 0.2  # drop_last dropping a fifth of the training set every epoch


# ----------------------------------------------------------------------------- the model's output

@torch.no_grad()
def final_module(model: nn.Module, x: torch.Tensor) -> tuple[nn.Module | None, torch.Tensor]:
    """The leaf module whose output the model returns (None if the last op is functional), and that output."""
    produced: list[tuple[nn.Module, torch.Tensor]] = []
    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(lambda m, i, o: produced.append((m, o))) for m in leaves]
    was_training = model.training
    try:
        model.eval()
        with torch.random.fork_rng(devices=[]):
            out = model(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return next((m for m, o in reversed(produced) if o is out), None), out


def output_activation(module: nn.Module | None, out: torch.Tensor, loss_name: str, targets: torch.Tensor,
                      in_config: bool = False) -> Finding | None:
    """A squashing activation (Sigmoid, Softmax, LogSoftmax) before a loss that applies its own, or a bounded
    one before a regression target outside its range. `in_config`: trainlab's model.output_activation set it."""
    kind = type(module) if isinstance(module, (*SQUASHING, *BOUNDED)) else _kind_by_range(out, loss_name)
    if kind is None:
        return None
    name = kind.__name__
    fix = ("model.output_activation: null (the model then returns logits)" if in_config else
           f"remove the final nn.{name}() from your model: return the last layer's raw outputs (logits)")
    evidence = {"activation": name, "output_min": float(out.min()), "output_max": float(out.max())}
    if loss_name in LOGIT_LOSSES and kind in SQUASHING:
        return _squashed_logits(name, loss_name, out.shape[-1], fix, evidence)
    if loss_name not in LOGIT_LOSSES and kind in BOUNDED and targets.is_floating_point():
        lo, hi = BOUNDED[kind]
        outside = float(((targets < lo) | (targets > hi)).float().mean())
        if outside > 0.05:
            return Finding("output_activation", "warning", f"the model ends in {name}, whose outputs lie in "
                           f"({lo:g}, {hi:g}), but {outside:.0%} of the targets are outside (they range "
                           f"{float(targets.min()):.4g} to {float(targets.max()):.4g}): those it can never predict",
                           [fix, "or scale the targets into the activation's range"],
                           {**evidence, "targets_outside": outside}, "before")
    return None


def _kind_by_range(out: torch.Tensor, loss_name: str):
    """No activation module at the end: recognise a functional softmax/sigmoid/log_softmax by the outputs."""
    if loss_name not in LOGIT_LOSSES or out.ndim != 2 or out.shape[-1] < 2 or not out.is_floating_point():
        return None
    out = out.float()
    if bool((out >= 0).all() and (out <= 1).all()):
        return nn.Softmax if bool(torch.allclose(out.sum(-1), torch.ones(len(out)), atol=1e-4)) else nn.Sigmoid
    if bool((out <= 0).all()) and bool(torch.allclose(out.logsumexp(-1), torch.zeros(len(out)), atol=1e-4)):
        return nn.LogSoftmax
    return None


def _squashed_logits(name: str, loss_name: str, k: int, fix: str, evidence: dict) -> Finding:
    if loss_name == "cross_entropy" and name == "LogSoftmax":  # log_softmax(log_softmax(x)) = log_softmax(x)
        return Finding("output_activation", "note", "the model ends in LogSoftmax before cross_entropy, which "
                       "applies log-softmax itself: redundant but harmless (it gives the same loss)", [fix],
                       evidence, "before")
    if loss_name == "cross_entropy":
        cap = math.e / (math.e + k - 1)  # the right class leads by at most 1 after squashing into [0, 1]
        cause = (f"the model ends in {name}, but cross_entropy expects raw logits (it applies softmax itself): "
                 f"squashed into (0, 1), the right class can lead the others by at most 1, so its predicted "
                 f"probability is capped at e/(e+{k - 1}) = {cap:.3f} for {k} classes and the loss cannot go below "
                 f"{-math.log(cap):.2f}; training stalls and predict_proba is nearly flat")
        evidence.update(probability_cap=cap, loss_floor=-math.log(cap))
    else:
        span = "never above 0.5" if name == "LogSoftmax" else "always between 0.5 and 0.73"
        cause = (f"the model ends in {name}, but bce_with_logits applies a sigmoid itself: squashed twice, each "
                 f"output's probability is {span}, so the model can never be confident")
    return Finding("output_activation", "warning", cause, [fix], evidence, "before")


# ----------------------------------------------------------------------------- inputs and labels

def input_scale(x: torch.Tensor) -> Finding | None:
    """Per-feature mean/std far from 0/1, or raw 0-255 pixels. x: (N, F), (N, T, F) or (N, C, H, W)."""
    if not x.is_floating_point() or len(x) < 2:
        return None  # token ids and other integer inputs are looked up, not scaled
    x = x.float()
    feats = x.transpose(0, 1).flatten(1) if x.ndim == 4 else x.reshape(-1, x.shape[-1]).T  # (F, samples)
    mean, std = feats.mean(1), feats.std(1)
    rms = float((mean.square() + std.square()).mean().sqrt())
    worst = int((mean.abs() + std).argmax())
    evidence = {"rms": rms, "max_abs_mean": float(mean.abs().max()), "max_std": float(std.max()),
                "worst_feature": worst, "min": float(x.min()), "max": float(x.max())}
    if x.ndim == 4 and evidence["min"] >= 0 and 1.5 < evidence["max"] <= 255 and bool((x == x.round()).all()):
        return Finding("input_scale", "warning", f"the inputs are raw 0-255 pixel values (max {evidence['max']:g}): "
                       f"large inputs saturate activations and need a tiny learning rate",
                       ["data.transforms: [{name: normalize}] (scales to 0-1, then mean/std of the training split)",
                        "in your own Dataset: x.float() / 255, then (x - mean) / std"], evidence, "before")
    if rms > SCALE_RMS or evidence["max_abs_mean"] > SCALE_FEATURE or evidence["max_std"] > SCALE_FEATURE:
        return Finding("input_scale", "warning", f"the inputs are not normalized: root-mean-square {rms:.3g} "
                       f"(normalized: 1), feature {worst} has mean {float(mean[worst]):.4g} and std "
                       f"{float(std[worst]):.4g}; features on large or different scales slow training and make "
                       f"the learning rate hard to choose",
                       ["data.transforms.train / .eval: [{name: normalize}] (mean/std of the training split only)",
                        "in your own Dataset: (x - mean) / std with the training split's mean and std"],
                       evidence, "before")
    return None


def check_labels(y: torch.Tensor, outputs: int, loss_name: str) -> None:
    """Labels that cannot work with the loss -> UserError (the first step would fail or learn nonsense)."""
    if loss_name == "cross_entropy" and y.is_floating_point():
        if y.ndim == 2 and y.shape[1] == outputs and bool(((y == 0) | (y == 1)).all() and (y.sum(1) == 1).all()):
            raise UserError(f"the targets are one-hot vectors (N, {outputs}); cross_entropy, the metrics and the "
                            f"confusion matrix need class indices: use y.argmax(1)")
        if y.ndim == 1 and bool((y == y.round()).all()):
            raise UserError(f"the labels are floats (e.g. {float(y[0]):g}); cross_entropy needs integer class "
                            f"indices: y.long()")
        if y.ndim == 1:
            raise UserError(f"the targets are continuous ({len(torch.unique(y))} distinct values such as "
                            f"{float(y[0]):.4g}): that is regression; use loss: mse (or l1, huber)")
    if loss_name not in LOGIT_LOSSES and outputs > 1 and y.ndim == 1:
        raise UserError(f"the model has {outputs} outputs but each target is one number, with loss {loss_name}; "
                        f"for classes use loss: cross_entropy, for one value per sample give the model 1 output")


def labels_outside(labels: torch.Tensor, outputs: int) -> None:
    """Integer class labels beyond the model's outputs -> UserError naming whether it looks like regression."""
    if not labels.numel():
        return
    lo, hi = int(labels.min()), int(labels.max())
    if hi < outputs and lo >= 0:
        return
    bad = hi if hi >= outputs else lo
    hint = (f"; {len(torch.unique(labels))} distinct values up to {hi}: if this is a number to predict, not a "
            f"class, it is regression (loss: mse)" if hi >= 4 * max(outputs, 2) else "")
    raise UserError(f"label {bad} is outside the model's {outputs} outputs (classes 0..{outputs - 1}){hint}")


def class_imbalance(y: torch.Tensor, outputs: int, remedies_on: list[str], names: list[str] | None = None
                    ) -> Finding | None:
    """Largest/smallest class count >= 3: accuracy flatters; name macro-F1 and the two remedies as settings."""
    if y.is_floating_point() or y.ndim != 1 or len(y) == 0:
        return None
    counts = torch.bincount(y.long().cpu(), minlength=outputs).double()
    present = counts[counts > 0]
    ratio = float(present.max() / present.min()) if len(present) > 1 else 1.0
    if ratio < IMBALANCE:
        return None
    top = int(counts.argmax())
    share = float(counts[top] / counts.sum())
    label = names[top] if names and top < len(names) else str(top)
    evidence = {"ratio": ratio, "majority_class": label, "majority_share": share, "counts": counts.long().tolist()}
    cause = (f"class imbalance: class {label!r} has {share:.0%} of the training labels ({ratio:.0f}:1 largest to "
             f"smallest class); always predicting it scores accuracy {share:.2f}, so judge by macro-F1 (val_f1)")
    if remedies_on:
        return Finding("class_imbalance", "note", f"{cause}; handled by {' and '.join(remedies_on)}", [],
                       evidence, "before")
    return Finding("class_imbalance", "warning", cause,
                   ["train.class_weights: auto (the loss weighs class c by N / (K * count_c))",
                    "data.sampler: balanced (draws every class equally often)",
                    "train.metrics: [accuracy, f1] and train.monitor: val_f1"], evidence, "before")


# ----------------------------------------------------------------------------- splits and batches

HASH_CHUNK = 256  # rows per step: bounds the (rows, words) int64 temporaries and keeps them in cache


def content_hashes(x: torch.Tensor) -> list[bytes]:
    """One 16-byte digest per sample (row of x), equal when the samples are identical; two different samples
    collide with probability at most 2^-66.

    Each row's bytes are read as 32-bit words w (signed: -2^31 .. 2^31-1) and hashed twice as sum(w_i * a_i) mod 2^64
    with fixed random 64-bit multipliers a (int64 arithmetic wraps). Words of 32 bits keep the bound: two rows
    differing in word i differ by d with |d| < 2^32, so d * a_i is 0 mod 2^64 for at most 2^31 of the 2^64
    values of a_i. (64-bit words with odd multipliers, used before, gave rows that differ only in two sign
    bits, such as [1.0, 2.0] and [-1.0, -2.0] in float64, the same digest.) Vectorized: 0.08 s for MNIST's
    60,000 float images here, where hashlib per row takes 0.28 s."""
    if len(x) == 0:
        return []
    rows = x.detach().cpu().contiguous().reshape(len(x), -1).view(torch.uint8)  # (N, bytes)
    words = -(-rows.shape[1] // 4)
    a = torch.randint(-2**63, 2**63 - 1, (2, words), generator=torch.Generator().manual_seed(0), dtype=torch.int64)
    out = []
    for chunk in rows.split(HASH_CHUNK):
        if chunk.shape[1] % 4 or chunk.storage_offset() % 4:  # copy into whole, aligned 32-bit words
            padded = torch.zeros(len(chunk), words * 4, dtype=torch.uint8)
            padded[:, :chunk.shape[1]] = chunk
            chunk = padded
        w = chunk.view(torch.int32).to(torch.int64)  # (n, words): -2^31 .. 2^31-1, one value per word
        h = torch.stack([(w * a[0]).sum(1), (w * a[1]).sum(1)], 1)  # (n, 2): wrapping sums
        out.extend(h.numpy().view(np.dtype("V16")).ravel().tolist())  # one 16-byte bytes object per row
    return out


SAMPLED_WORDS = 64  # 32-bit words per row read by the first, cheap pass of split_digests


def split_digests(splits: dict[str, torch.Tensor]) -> dict[str, list]:
    """{split: one digest per row}, for `duplicates`, computed in two passes.

    A cheap key from SAMPLED_WORDS evenly spaced 32-bit words of each row finds the rows whose key also
    occurs in another split; identical rows always share it, so no duplicate is missed. Only those rows get
    the full content_hashes digest (bytes); every other row keeps its key (an int, found in no other split,
    so never equal to a row of another split). On MNIST's 54,000 + 6,000 float images 122 rows share a
    key: 0.02 s instead of 0.07 s for full digests of every row."""
    keys = {name: _sampled_keys(x) for name, x in splits.items()}
    out = {}
    for name, x in splits.items():
        others = [k for other, k in keys.items() if other != name]
        shared = torch.isin(keys[name], torch.cat(others)) if others else torch.zeros(len(x), dtype=torch.bool)
        digests: list = keys[name].tolist()  # ints, found in no other split; the full digests below are bytes
        rows = shared.nonzero().flatten().tolist()
        for i, digest in zip(rows, content_hashes(x[rows]) if rows else [], strict=True):
            digests[i] = digest
        out[name] = digests
    return out


def _sampled_keys(x: torch.Tensor) -> torch.Tensor:
    """(N,) int64: a linear hash of SAMPLED_WORDS 32-bit words spread over each row (equal rows, equal keys)."""
    if len(x) == 0:
        return torch.zeros(0, dtype=torch.int64)
    rows = x.detach().cpu().contiguous().reshape(len(x), -1).view(torch.uint8)
    if rows.shape[1] % 4 or rows.storage_offset() % 4:  # a copy in whole, aligned words
        rows = torch.cat([rows, rows.new_zeros(len(rows), -rows.shape[1] % 4)], 1)
    words = rows.view(torch.int32)  # (N, W)
    # 4 blocks of 16 consecutive words (one 64-byte cache line each) spread over the row: reading a few cache
    # lines per row, not the whole row, is what makes this pass cheap
    n_words, block = words.shape[1], SAMPLED_WORDS // 4
    starts = sorted({min(max(0, (2 * j + 1) * n_words // 8 - block // 2), max(0, n_words - block)) for j in range(4)})
    sampled = torch.cat([words[:, s:s + block] for s in starts], 1).to(torch.int64)  # (N, <= 64)
    a = torch.randint(-2**63, 2**63 - 1, (sampled.shape[1],), generator=torch.Generator().manual_seed(1),
                      dtype=torch.int64)
    return (sampled * a).sum(1)


def duplicates(hashes: dict[str, list[bytes]], names: dict[str, list[str]] | None = None) -> Finding | None:
    """Samples of a later split (val, test) identical to one in an earlier split (train, val): leakage."""
    order = list(hashes)
    earlier: set[bytes] = set()
    for split in order:  # the usual answer, "none shared", from set operations alone
        here = set(hashes[split])
        if not earlier.isdisjoint(here):
            break
        earlier |= here
    else:
        return None
    seen: dict[bytes, tuple[str, int]] = {}
    shared: dict[str, list[tuple[int, str, int]]] = {}
    for split in order:
        first_here: dict[bytes, int] = {}
        for i, h in enumerate(hashes[split]):
            if h in seen and seen[h][0] != split:
                shared.setdefault(split, []).append((i, *seen[h]))
            first_here.setdefault(h, i)
        for h, i in first_here.items():
            seen.setdefault(h, (split, i))
    if not shared:
        return None

    def label(split: str, i: int) -> str:
        return names[split][i] if names and split in names else f"{split} #{i}"
    counts = {s: len(v) for s, v in shared.items()}
    examples = [f"{label(s, i)} = {label(t, j)}" for s, v in shared.items() for i, t, j in v[:3]]
    parts = ", ".join(f"{n} of the {s} split" for s, n in counts.items())
    return Finding("duplicates", "warning", f"leakage: {parts} also appear in an earlier split with identical "
                   f"content (e.g. {'; '.join(examples[:3])}); those scores measure memory, not generalization",
                   ["remove exact duplicates before splitting (e.g. pandas drop_duplicates, or by file hash)",
                    "keep related samples together: split by group"], {"counts": counts, "examples": examples},
                   "before")


def batch_norm(model: nn.Module, n: int, batch_size: int, drop_last: bool) -> Finding | None:
    """BatchNorm needs 2+ samples per batch: batch_size 1, or a last batch of 1 sample."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    last = n % batch_size
    one = batch_size == 1 or (last == 1 and not drop_last)
    if not bns or not one:
        return None
    what = "batch_size is 1" if batch_size == 1 else f"the last batch of each epoch holds 1 sample ({n} % {batch_size})"
    fix = ["data.drop_last: true" if batch_size > 1 else "a batch_size of 16 or more",
           f"or a batch_size that does not leave 1 sample over (e.g. {batch_size + 1})"]
    if any(isinstance(m, nn.BatchNorm1d) for m in bns):
        raise UserError(f"{what} and the model has BatchNorm1d, which cannot compute batch statistics of one sample "
                        f"(training would stop with an error); set {fix[0]}")
    return Finding("batch_norm", "warning", f"{what}: BatchNorm then normalizes with the statistics of a single "
                   f"sample, which are noise", fix, {"batch_size": batch_size, "samples": n}, "before")


def drop_last_waste(n: int, batch_size: int, drop_last: bool) -> Finding | None:
    """drop_last throwing away a large share of a small training set every epoch."""
    dropped = n % batch_size if drop_last else 0
    if dropped / max(n, 1) < DROP_LAST_SHARE:
        return None
    return Finding("drop_last", "warning", f"drop_last drops {dropped} of {n} training samples ({dropped / n:.0%}) "
                   f"every epoch: batch_size {batch_size} is large for this dataset",
                   [f"data.drop_last: false, or a batch_size that divides {n} better"],
                   {"dropped": dropped, "samples": n, "batch_size": batch_size}, "before")
