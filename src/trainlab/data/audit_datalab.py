"""The part of the audit cleanlab's Datalab does: label issues, outliers and near-duplicates within a split,
all from the audit's own neighbour graph (passed as `knn_graph`: Datalab searches no neighbours again).

    findings = datalab_findings(data, graph)                  # pred_probs: out-of-sample k-NN votes
    findings = datalab_findings(data, graph, pred_probs)      # or a trained model's probabilities (trainlab audit RUN)

Datalab flags generously (it ranks issues for review); the audit reports only what clean data does not
produce (thresholds below, measured in docs/audit.md), so a clean data set gives an empty list.
"""
from __future__ import annotations

import warnings

import numpy as np

from trainlab.data.audit import NEAR, AuditInput, Graph, finding, name_of, where

LABEL_QUALITY = 0.05  # label issue: Datalab flags it AND the given label's probability is below 0.05: with the
                      # k-NN votes (k=10, smoothing 0.5) none of the 10 nearest neighbours shares the label
OUTLIER_THRESHOLD = 1 / 7  # Datalab's outlier threshold t: flagged beyond Q3 + (1/t - 1) IQR = Q3 + 6 IQR of the mean
                         # neighbour distance (its default 0.37 -> 1.7 IQR flags 0.3% of MNIST); clean MNIST and
                         # digits reach at most Q3 + 2.8 IQR, Gaussian clusters' tails Q3 + 4.9 IQR (800 rows)


def knn_graph(graph: Graph):
    """The audit's neighbours as the (N, N) sparse distance matrix Datalab takes as `knn_graph`."""
    from scipy.sparse import csr_matrix  # optional heavy dependency: imported on use

    n, k = graph.idx.shape
    # Datalab reads distances of zero as missing entries: exact copies get a distance far below any threshold
    dist = np.maximum(graph.dist, graph.scale * 1e-6).astype(np.float64)
    return csr_matrix((dist.ravel(), graph.idx.ravel(), np.arange(0, n * k + 1, k)), shape=(n, n))


def knn_probabilities(data: AuditInput, graph: Graph, smoothing: float = 0.5) -> np.ndarray:
    """(N, C) out-of-sample class probabilities: each sample's neighbours' labels (never its own), smoothed."""
    c = int(max(len(data.classes or []), data.y.max() + 1))
    votes = np.zeros((len(data.y), c))
    np.add.at(votes, (np.repeat(np.arange(len(data.y)), graph.idx.shape[1]), data.y[graph.idx].ravel()), 1.0)
    votes += smoothing
    return votes / votes.sum(1, keepdims=True)


def datalab_findings(data: AuditInput, graph: Graph, pred_probs: np.ndarray | None = None) -> list[dict]:
    """Label issues (classification only), outliers and within-split near-duplicates found by Datalab."""
    from cleanlab import Datalab  # optional heavy dependency: imported on use

    labelled = data.y is not None and len(np.unique(data.y)) > 1
    # Datalab's radius is threshold x the median nearest-neighbour distance: the same radius as the audit's
    nearest = max(float(np.median(graph.dist[:, 0])), 1e-12)
    issue_types = {"outlier": {"threshold": OUTLIER_THRESHOLD},
                   "near_duplicate": {"threshold": NEAR * graph.scale / nearest}}
    kwargs = {"knn_graph": knn_graph(graph)}
    if labelled:
        issue_types["label"] = {}
        kwargs["pred_probs"] = pred_probs if pred_probs is not None else knn_probabilities(data, graph)
        lab = Datalab({"label": data.y}, label_name="label", verbosity=0)
    else:
        lab = Datalab({"x": np.zeros(len(data.split))}, verbosity=0)
    with warnings.catch_warnings():  # cleanlab's own pandas deprecation notices: nothing the user can act on
        warnings.filterwarnings("ignore", module="cleanlab")
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        lab.find_issues(issue_types=issue_types, **kwargs)
    out = outliers(data, graph, lab.get_issues("outlier"))
    out += within_duplicates(data, graph, lab.get_issues("near_duplicate"))
    if labelled:
        out += label_issues(data, lab.get_issues("label"))
    return out


def label_issues(data: AuditInput, issues) -> list[dict]:
    flagged = issues["is_label_issue"].to_numpy() & (issues["label_score"].to_numpy() < LABEL_QUALITY)
    found = np.flatnonzero(flagged)
    found = found[np.argsort(issues["label_score"].to_numpy()[found], kind="stable")]
    predicted = issues["predicted_label"].to_numpy()
    out = []
    for s in found:
        likely = data.classes[int(predicted[s])] if data.classes else str(predicted[s])
        out.append(finding(data, "label_issue", [s], 1 - issues["label_score"].iloc[s],
                           f"{where(data, s)} is labelled {name_of(data, s)!r} but looks like {likely!r} "
                           f"(label quality {issues['label_score'].iloc[s]:.3f}): check it and relabel or drop",
                           likely_label=likely))
    return out


def outliers(data: AuditInput, graph: Graph, issues) -> list[dict]:
    """Samples far from all others; each with its nearest training samples (for the page)."""
    found = np.flatnonzero(issues["is_outlier_issue"].to_numpy())
    score = issues["outlier_score"].to_numpy()
    found = found[np.argsort(score[found], kind="stable")]
    train = data.split[graph.idx] == "train"  # (N, k)
    out = []
    for s in found:
        near = graph.idx[s][train[s]][:3]
        rel = float(graph.dist[s].mean() / graph.scale)
        hint = "a test sample unlike the training data: the model is extrapolating" if data.split[s] == "test" \
            else "drop it if it is an error, or collect more samples like it"
        out.append(finding(data, "outlier", [s], 1 - score[s],
                           f"{where(data, s)} is far from every other sample (mean neighbour distance {rel:.1f} "
                           f"x the typical neighbour distance): {hint}",
                           neighbours=[int(i) for i in near]))
    return out


def within_duplicates(data: AuditInput, graph: Graph, issues) -> list[dict]:
    """Datalab's near-duplicate sets, as pairs inside one split (pairs across splits: audit.pair_findings)."""
    flagged = np.flatnonzero(issues["is_near_duplicate_issue"].to_numpy())
    seen, out = set(), []
    for s in flagged:
        for j, d in zip(graph.idx[s], graph.dist[s], strict=True):
            pair = (min(s, int(j)), max(s, int(j)))
            if d / graph.scale >= NEAR or pair in seen or data.split[s] != data.split[j]:
                continue
            if data.y is not None and data.y[s] != data.y[j]:
                continue  # a conflict: audit.pair_findings reports it as conflicting_labels
            seen.add(pair)
            out.append(finding(data, "near_duplicate", list(pair), 1 - d / graph.scale / NEAR,
                               f"{where(data, pair[1])} is a near-copy of {where(data, pair[0])} in the same split: "
                               f"it counts twice; drop one", distance=float(d / graph.scale)))
    return out

