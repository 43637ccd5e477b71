"""The audit's steps in order, for `trainlab audit` (full) and `trainlab train` (the cheap part).

    data = audit_input(load_data(cfg))
    result = full_audit(data)                       # features from the raw samples
    result = full_audit(data, embeddings, probs)    # a trained model's (trainlab audit RUN)
    result = cheap_audit(data)                      # across-split near-duplicates and conflicting labels only

The result holds `findings` (worst first), `counts` per type, per-split sizes and label counts, the
thresholds used and each step's seconds.
"""
from __future__ import annotations

import time

import numpy as np

from trainlab.data import audit, audit_cheap, audit_datalab, audit_images
from trainlab.data.audit import SPLITS, AuditInput

MAX_LISTED = 200  # findings of one type listed in result.json and on the page (all are counted)

# the order findings are listed in: what corrupts a score first, what to look at later
PRIORITY = ("near_duplicate", "conflicting_labels", "label_shift", "input_shift", "label_issue", "outlier",
            "image_issue")


def full_audit(data: AuditInput, embeddings: np.ndarray | None = None, model_probs: np.ndarray | None = None,
               progress: bool = True) -> dict:
    """Every check; `embeddings` (N, D) replace the raw-sample features; `model_probs` (N, C), a trained model's
    probabilities, replace the neighbours' votes on val/test only: on train the model has seen the labels, and
    label issues need out-of-sample probabilities."""
    clock = Clock()
    train = data.split == "train"
    z = (audit.reduce(embeddings, train) if embeddings is not None
         else audit.compact_features(data.x, train))
    clock.lap("features")
    graph = audit.neighbours(z, train, progress=progress)
    clock.lap("neighbours")
    findings = audit.pair_findings(data, audit.close_pairs(graph))
    findings += audit.label_shift(data) + audit.input_shift(data, graph)
    clock.lap("splits")
    pred_probs = None
    if data.y is not None:
        pred_probs = audit_datalab.knn_probabilities(data, graph)
        if model_probs is not None and model_probs.shape[1] == pred_probs.shape[1]:
            pred_probs[~train] = model_probs[~train]
    findings += audit_datalab.datalab_findings(data, graph, pred_probs)
    clock.lap("datalab")
    if data.kind == "image":
        sizes = audit_images.stored_sizes(data.ids) if data.source == "paths" else None
        findings += audit_images.image_findings(data, audit_images.image_stats(data.x), sizes)
        clock.lap("images")
    result = summarize(data, findings, graph.scale, "model embeddings" if embeddings is not None else "raw samples")
    result["seconds"] = clock.laps
    return result


def cheap_audit(data: AuditInput) -> dict:
    """What `trainlab train` checks before the first epoch: near-duplicates across splits and conflicting labels
    (near-identical across splits, byte-identical within a split)."""
    clock = Clock()
    train = data.split == "train"
    pairs, scale = audit_cheap.cross_split_pairs(audit.compact_features(data.x, train), data.split)
    exact = audit.exact_conflicts(data)
    within = exact[data.split[exact[:, 0].astype(int)] == data.split[exact[:, 1].astype(int)]] if len(exact) else exact
    findings = audit.pair_findings(data, unique_pairs(np.concatenate([pairs, within])))
    clock.lap("total")
    result = summarize(data, findings, scale, "raw samples", cheap=True)
    result["seconds"] = clock.laps
    return result


def unique_pairs(pairs: np.ndarray) -> np.ndarray:
    """(P, 3) [i, j, distance] with each (i, j) once (found by two searches: the first kept)."""
    if not len(pairs):
        return pairs
    _, first = np.unique(np.sort(pairs[:, :2].astype(np.int64), 1), axis=0, return_index=True)
    return pairs[np.sort(first)]


def summarize(data: AuditInput, findings: list[dict], scale: float, features: str, cheap: bool = False) -> dict:
    """Findings worst first, at most MAX_LISTED per type (all are counted)."""
    findings = sorted(findings, key=lambda f: (PRIORITY.index(f["type"]), -f["score"]))
    counts = {t: sum(f["type"] == t for f in findings) for t in PRIORITY}
    listed, seen = [], dict.fromkeys(PRIORITY, 0)
    for f in findings:
        seen[f["type"]] += 1
        if seen[f["type"]] <= MAX_LISTED:
            listed.append(f)
    return {"source": data.source, "kind": data.kind, "features": features, "checks": "cheap" if cheap else "full",
            "sizes": {s: int((data.split == s).sum()) for s in SPLITS}, "label_counts": audit.label_counts(data),
            "typical_distance": scale, "thresholds": thresholds(), "max_listed": MAX_LISTED,
            "counts": {t: n for t, n in counts.items() if n}, "findings": listed}


def thresholds() -> dict:
    return {"near_duplicate_distance": audit.NEAR, "neighbours": audit.K, "input_shift_auc": audit.SHIFT_AUC,
            "input_shift_p": audit.SHIFT_P, "label_shift_total_variation": audit.LABEL_TV,
            "label_shift_p": audit.LABEL_P, "label_quality": audit_datalab.LABEL_QUALITY,
            "outlier_threshold": audit_datalab.OUTLIER_THRESHOLD}


def public(result: dict, data: AuditInput) -> dict:
    """The result as result.json holds it: sample positions replaced by the user's references."""
    findings = []
    for f in result["findings"]:
        g = {k: v for k, v in f.items() if k not in ("samples", "neighbours")}
        if "neighbours" in f:
            g["nearest_train"] = [data.ids[i] for i in f["neighbours"]]
        findings.append(g)
    return {**result, "findings": findings}


class Clock:
    """Seconds per step, for result.json and BENCHMARKS.md."""

    def __init__(self):
        self.start, self.laps = time.perf_counter(), {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = round(now - self.start, 2)
        self.start = now
