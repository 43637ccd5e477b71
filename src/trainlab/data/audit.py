"""The data audit's pure computations: samples of every split -> compact features -> nearest neighbours ->
findings (near-duplicates across splits, conflicting labels, shift between splits).

    data = audit_input(load_data(cfg))            # raw samples of train/val/test, how the user finds each one
    z = compact_features(data.x, data.split == "train")        # (N, d) float32, d <= FEATURE_DIMS
    graph = neighbours(z, K)                                   # each sample's K nearest others
    findings = cross_split(data, graph) + label_shift(data) + input_shift(data, graph)

Distances are measured in units of the median distance from a training sample to its 10th nearest
neighbour, so one threshold fits pixels, embeddings and standardized table columns alike. The rules and
why each threshold is where it is: docs/audit.md. Within-split duplicates, outliers and label issues come
from cleanlab's Datalab (data/audit_datalab.py), image problems from data/audit_images.py.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from trainlab.core.errors import UserError
from trainlab.data.base import ArrayDataset, targets_of

SPLITS = ("train", "val", "test")
FEATURE_DIMS = 32  # PCA components kept: MNIST's 784 pixels keep >= 0.7 of their variance, and a 70,000-sample
                   # neighbour search stays seconds
POOL_SIDE = 16  # images are average-pooled to at most 16x16 first: noise and re-encoding average out
POOL_CHUNK = 4096  # images converted to float and pooled at a time
PCA_SAMPLE = 10_000  # training samples the PCA is fitted on
EIGH_MAX = 1024  # input widths up to which the PCA is an eigendecomposition of the (D, D) covariance
K = 10  # neighbours per sample (cleanlab's Datalab default for its outlier and duplicate checks)
NEAR = 0.1  # near-duplicate: closer than 0.1 x the typical distance, the median distance from a training sample to
            # its 10th neighbour (= Datalab's default 0.13 x the median nearest-neighbour distance on MNIST, where
            # the 10th is 1.3x the 1st). Not the 1st: where most samples have a copy, the 1st IS the copy
SHIFT_AUC = 0.6  # input shift: a k-NN classifier tells the splits apart with AUC >= 0.6 ...
SHIFT_P = 1e-3  # ... and that is not chance (p below this)
LABEL_TV = 0.05  # label shift: class shares differ by a total variation >= 0.05 ...
LABEL_P = 1e-3  # ... and a chi-square test of homogeneity gives p below this
SEEN = {"train": "the model trained on", "val": "that chose the model (validation)"}
CHUNK = 4096  # query rows per step of the neighbour search: progress, and bounded (CHUNK, N) temporaries


@dataclass
class AuditInput:
    """Every split's raw samples, concatenated train, val, test, with how the user finds each one."""
    x: torch.Tensor  # (N, ...) uint8 images (N, C, H, W) or float32 table rows (N, F)
    y: np.ndarray | None  # (N,) class indices; None unless classification
    split: np.ndarray  # (N,) "train" | "val" | "test"
    source: str  # "rows" (CSV data rows, 0-based), "paths" (image files) or "indices" (a built-in data set)
    ids: list  # (N,) the row number, file path or data set index of each sample
    files: list | None  # (N,) the CSV each row is in, when the test split is its own file
    classes: list[str] | None
    kind: str  # image | tabular


def audit_input(data, progress: bool = True) -> AuditInput:
    """The splits of a `LoadedData` exactly as trainlab trains on them (same seed, same indices)."""
    bundle, splits = data.bundle, data.splits
    if bundle.kind not in ("image", "tabular"):
        raise UserError(f"trainlab audit reads image and table data sets; {data.cfg.data.name!r} holds "
                        f"{bundle.kind} samples")
    parts = [("train", bundle.pool, splits.train, False), ("val", bundle.pool, splits.val, False)]
    if bundle.test is not None:
        parts.append(("test", bundle.test, np.arange(len(bundle.test)), True))
    else:
        parts.append(("test", bundle.pool, splits.test, False))
    xs, ys, names, ids, files = [], [], [], [], []
    for split, ds, idx, official in parts:
        xs.append(_inputs(ds, idx, split, progress))
        ys.append(targets_of(ds)[torch.as_tensor(idx, dtype=torch.long)] if len(idx) else torch.zeros(0))
        names += [split] * len(idx)
        refs, file = _references(bundle, ds, idx, official, data.cfg.data)
        ids += refs
        files += [file] * len(idx)
    y = torch.cat(ys).long().numpy() if bundle.task == "classification" else None
    source = "paths" if hasattr(bundle.pool, "paths") else "rows" if data.cfg.data.name == "csv" else "indices"
    two_files = source == "rows" and bundle.test is not None
    return AuditInput(torch.cat(xs), y, np.asarray(names), source, ids, files if two_files else None,
                      bundle.classes, bundle.kind)


def _inputs(ds, idx: np.ndarray, split: str, progress: bool) -> torch.Tensor:
    if isinstance(ds, ArrayDataset):
        return ds.x[torch.as_tensor(idx, dtype=torch.long)]
    items = tqdm(idx, desc=f"audit: reading {split}", disable=not progress or len(idx) < 2000, leave=False)
    return torch.stack([ds[int(i)][0] for i in items]) if len(idx) else torch.zeros((0, *ds[0][0].shape))


def _references(bundle, ds, idx: np.ndarray, official_test: bool, dcfg) -> tuple[list, str | None]:
    """How the user finds each sample: CSV data rows (0-based, header excluded), file paths, or indices."""
    paths = getattr(ds, "paths", None)
    if paths is not None:
        return [str(paths[int(i)]) for i in idx], None
    intake = bundle.meta.get("intake", {})
    if dcfg.name == "csv" and "train" in intake:
        which = "test" if official_test else "train"
        info = intake[which]
        # rows data.missing=drop left out are not in the pool: pool position -> the file's data row
        kept = np.delete(np.arange(info["rows"]), np.asarray(info["dropped_rows"], dtype=np.int64) - 2)
        return [int(kept[int(i)]) for i in idx], info["file"]
    return [int(i) for i in idx], None


# ----------------------------------------------------------------------------- features and neighbours

def compact_features(x: torch.Tensor, train: np.ndarray, dims: int = FEATURE_DIMS, seed: int = 0) -> np.ndarray:
    """(N, ...) raw samples -> (N, <= dims) float32: images pooled to <= 16x16 and scaled to [0, 1], table
    columns standardized with the training rows' statistics; then PCA fitted on (up to 10,000) training rows."""
    if x.dtype == torch.uint8 or x.ndim == 4:
        # in chunks, into one array: a float copy of all of MNIST at once is 220 MB more peak memory for train
        first = pooled(x[:POOL_CHUNK])
        flat = np.empty((len(x), first.shape[1]), np.float32)
        flat[:len(first)] = first
        for s in range(POOL_CHUNK, len(x), POOL_CHUNK):
            flat[s:s + POOL_CHUNK] = pooled(x[s:s + POOL_CHUNK])
    else:
        flat = x.reshape(len(x), -1).float().numpy()
        ref = flat[train] if train.any() else flat
        mean, std = ref.mean(0), ref.std(0)
        flat = (flat - mean) / np.where(std > 0, std, 1.0)
    return reduce(flat, train, dims, seed, in_place=True)  # flat is this function's own array


def pooled(x: torch.Tensor) -> np.ndarray:
    """(B, C, H, W) images -> (B, C * h * w) float32 in [0, 1] (uint8 / 255), average-pooled to h, w <= POOL_SIDE."""
    x = x.float() / (255.0 if x.dtype == torch.uint8 else 1.0)
    h, w = x.shape[-2:]
    if max(h, w) > POOL_SIDE:
        x = F.adaptive_avg_pool2d(x, (min(h, POOL_SIDE), min(w, POOL_SIDE)))
    return x.reshape(len(x), -1).numpy()


def reduce(flat: np.ndarray, train: np.ndarray, dims: int = FEATURE_DIMS, seed: int = 0,
           in_place: bool = False) -> np.ndarray:
    """(N, D) -> (N, min(D, dims)) float32 by a PCA of the training rows (all rows when D <= dims): the top
    eigenvectors of their covariance (D <= EIGH_MAX, e.g. MNIST's 256 pooled pixels: milliseconds, and no
    scikit-learn import in `train`), scikit-learn's randomized PCA for wider inputs."""
    flat = np.ascontiguousarray(flat, dtype=np.float32)
    ref = np.flatnonzero(train) if train.any() else np.arange(len(flat))  # rows, not a copy of them
    if flat.shape[1] <= dims or len(ref) <= dims:
        return flat
    rng = np.random.default_rng(seed)
    fit = flat[ref[rng.choice(len(ref), min(len(ref), PCA_SAMPLE), replace=False)]]
    if flat.shape[1] <= EIGH_MAX:
        mean = fit.mean(0, dtype=np.float64)
        centred = fit - mean
        _, vectors = np.linalg.eigh(centred.T.astype(np.float64) @ centred)  # eigenvalues ascending
        components = vectors[:, ::-1][:, :dims].T
    else:
        from sklearn.decomposition import PCA  # optional heavy dependency: imported on use

        pca = PCA(dims, svd_solver="randomized", random_state=seed).fit(fit)
        mean, components = pca.mean_, pca.components_
    # float32 throughout: (N, D) float64 copies cost more than the product; `in_place`: centred in flat itself
    centred = np.subtract(flat, mean.astype(np.float32), out=flat if in_place else None)
    return centred @ components.astype(np.float32).T


@dataclass
class Graph:
    """Each sample's nearest other samples, closest first."""
    dist: np.ndarray  # (N, k) float32 euclidean distances
    idx: np.ndarray  # (N, k) int64 sample indices
    scale: float  # median distance from a training sample to its k-th neighbour: the unit of every threshold


def neighbours(z: np.ndarray, train: np.ndarray, k: int = K, progress: bool = True) -> Graph:
    """Exact k nearest neighbours of every sample among all others (scikit-learn, brute force in chunks)."""
    from sklearn.neighbors import NearestNeighbors  # optional heavy dependency: imported on use

    n = len(z)
    k = max(1, min(k, n - 1))
    nn = NearestNeighbors(n_neighbors=k + 1, algorithm="brute" if z.shape[1] > 15 else "auto").fit(z)
    dist, idx = np.empty((n, k), np.float32), np.empty((n, k), np.int64)
    starts = range(0, n, CHUNK)
    for s in tqdm(starts, desc="audit: nearest neighbours", disable=not progress or n < 4 * CHUNK, leave=False):
        d, i = nn.kneighbors(z[s:s + CHUNK])
        dist[s:s + CHUNK], idx[s:s + CHUNK] = drop_self(d, i, np.arange(s, s + len(d)))
    ref = dist[train, -1] if train.any() else dist[:, -1]
    positive = ref[ref > 0]
    scale = float(np.median(positive)) if len(positive) else 1.0
    return Graph(dist, idx, max(scale, 1e-12))


def drop_self(d: np.ndarray, i: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(B, k+1) -> (B, k) without the query itself (with exact copies it need not come first)."""
    self_at = np.where(i == rows[:, None], np.arange(i.shape[1])[None, :], i.shape[1] - 1).min(1)
    keep = np.arange(i.shape[1])[None, :] != self_at[:, None]
    k = i.shape[1] - 1
    return d[keep].reshape(-1, k), i[keep].reshape(-1, k)


def close_pairs(graph: Graph, near: float = NEAR) -> np.ndarray:
    """(P, 3) [i, j, distance / scale] for every pair i < j closer than `near` x the scale."""
    rel = graph.dist / graph.scale
    rows, cols = np.nonzero(rel < near)
    a, b = rows, graph.idx[rows, cols]
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    pairs = np.unique(np.stack([lo, hi], 1), axis=0) if len(lo) else np.zeros((0, 2), np.int64)
    if not len(pairs):
        return np.zeros((0, 3))
    order = {}  # found from both sides: the smaller distance (within_radius's direct one is exact)
    for x, y, r in zip(lo, hi, rel[rows, cols], strict=True):
        order[(int(x), int(y))] = min(r, order.get((int(x), int(y)), np.inf))
    return np.asarray([[x, y, order[(int(x), int(y))]] for x, y in pairs])


# ----------------------------------------------------------------------------- findings

def finding(data: AuditInput, kind: str, samples, score: float, message: str, **extra) -> dict:
    """One finding: its type, the samples as the user's source names them (rows / paths / indices) with
    their split(s), a score in [0, 1] (higher is worse) and a one-line message."""
    samples = [int(s) for s in samples]
    out = {"type": kind, data.source: [data.ids[s] for s in samples],
           "splits": [str(data.split[s]) for s in samples], "score": round(float(score), 4), "message": message}
    if data.files is not None:
        out["files"] = [data.files[s] for s in samples]
    if data.y is not None and samples:
        out["labels"] = [name_of(data, s) for s in samples]
    out["samples"] = samples  # positions in the audit's concatenation (for the page; dropped from result.json)
    return {**out, **extra}


def name_of(data: AuditInput, s: int) -> str:
    return data.classes[int(data.y[s])] if data.classes else str(int(data.y[s]))


def where(data: AuditInput, s: int) -> str:
    """'test row 17', 'train photos/cat/3.jpg', 'val index 120'."""
    noun = {"rows": "row", "paths": "", "indices": "index"}[data.source]
    return f"{data.split[s]} {noun} {data.ids[s]}".replace("  ", " ")


def pair_findings(data: AuditInput, pairs: np.ndarray) -> list[dict]:
    """Near-duplicates across splits (a leak) and near-identical inputs with different labels (any splits)."""
    out = []
    rank = {s: r for r, s in enumerate(SPLITS)}
    for a, b, rel in pairs:
        a, b = sorted((int(a), int(b)), key=lambda s: (rank[data.split[s]], s))
        score = 1.0 - rel / NEAR
        how = "an identical copy" if rel == 0 else f"a near-copy (distance {rel:.3f} x the typical neighbour distance)"
        if data.y is not None and data.y[a] != data.y[b]:
            out.append(finding(data, "conflicting_labels", [a, b], score,
                               f"{where(data, b)} is {how} of {where(data, a)} but labelled {name_of(data, b)!r} "
                               f"instead of {name_of(data, a)!r}: relabel one, or drop both", distance=float(rel)))
        if data.split[a] != data.split[b]:
            out.append(finding(data, "near_duplicate", [a, b], score,
                               f"{where(data, b)} is {how} of {where(data, a)}: the {data.split[b]} score counts "
                               f"a sample {SEEN[str(data.split[a])]}; deduplicate before splitting, or split by group",
                               distance=float(rel)))
    return out


def label_counts(data: AuditInput) -> dict[str, dict[str, int]]:
    """{split: {class: samples}} for classification data."""
    if data.y is None:
        return {}
    names = data.classes or [str(c) for c in range(int(data.y.max()) + 1)]
    return {s: {names[c]: int(n) for c, n in enumerate(np.bincount(data.y[data.split == s], minlength=len(names)))}
            for s in SPLITS if (data.split == s).any()}


def label_shift(data: AuditInput) -> list[dict]:
    """Classes seen in val/test but never in training; class shares that differ beyond chance and by a total
    variation >= LABEL_TV between training and val/test."""
    from scipy.stats import chi2_contingency  # optional heavy dependency: imported on use

    counts = label_counts(data)
    if "train" not in counts:
        return []
    train = np.asarray(list(counts["train"].values()), dtype=float)
    out = []
    for split in ("val", "test"):
        if split not in counts:
            continue
        other = np.asarray(list(counts[split].values()), dtype=float)
        unseen = [c for c, n, t in zip(counts[split], other, train, strict=True) if n > 0 and t == 0]
        if unseen:
            out.append({"type": "label_shift", data.source: [], "splits": [split], "classes": unseen, "score": 1.0,
                        "samples": [],
                        "message": f"class(es) {', '.join(map(repr, unseen[:5]))} occur in {split} but never in train: "
                                   f"the model cannot learn them; re-split (stratified) or collect training samples"})
        used = (train + other) > 0
        if other.sum() < 2 or used.sum() < 2:
            continue
        tv = 0.5 * np.abs(train / train.sum() - other / other.sum()).sum()
        p = chi2_contingency(np.stack([train[used], other[used]]))[1]
        if tv >= LABEL_TV and p < LABEL_P:
            out.append({"type": "label_shift", data.source: [], "splits": ["train", split],
                        "score": round(float(tv), 4), "samples": [], "p_value": float(p), "total_variation": float(tv),
                        "message": f"class shares differ between train and {split} (total variation {tv:.2f}, "
                                   f"chi-square p={p:.1e}): {split} scores weigh classes unlike training; "
                                   f"re-split stratified, or report per-class scores"})
    return out


def input_shift(data: AuditInput, graph: Graph, shown: int = 8) -> list[dict]:
    """A classifier two-sample test per split pair: each sample's share of neighbours from the other split
    (out-of-sample: a sample is never its own neighbour) scores it; the AUC says how well that k-NN classifier
    tells train from val/test (0.5: not at all)."""
    out = []
    for split in ("val", "test"):
        test = shift_test(data, graph, split)
        if test is None:
            continue
        auc, p, score, members = test
        if auc >= SHIFT_AUC and p < SHIFT_P:
            other = members[data.split[members] == split]
            worst = other[np.argsort(-score[data.split[members] == split], kind="stable")[:shown]]
            out.append(finding(data, "input_shift", worst, (auc - 0.5) * 2,
                               f"inputs of train and {split} differ: a nearest-neighbour classifier tells them apart "
                               f"(AUC {auc:.2f}, p={p:.1e}); the {split} score may not hold for training-like data "
                               f"or vice versa; shown: the most {split}-like samples",
                               auc=float(auc), p_value=float(p)))
    return out


def shift_test(data: AuditInput, graph: Graph, split: str):
    """-> (AUC, p, scores, members) of the k-NN two-sample test of train vs `split`, or None if a side is small."""
    from scipy.stats import norm  # optional heavy dependency: imported on use
    from sklearn.metrics import roc_auc_score  # optional heavy dependency: imported on use

    members = np.flatnonzero(np.isin(data.split, ("train", split)))
    is_other = data.split[members] == split
    n1, n0 = int(is_other.sum()), int((~is_other).sum())
    if n1 < 20 or n0 < 20:
        return None
    nb = graph.idx[members]  # (M, k)
    inside = np.isin(data.split[nb], ("train", split))
    from_other = (data.split[nb] == split) & inside
    score = from_other.sum(1) / np.maximum(inside.sum(1), 1)
    auc = float(roc_auc_score(is_other, score))
    z = (auc - 0.5) / np.sqrt((n0 + n1 + 1) / (12.0 * n0 * n1))  # Mann-Whitney's normal approximation
    return auc, float(norm.sf(z)), score, members


def exact_conflicts(data: AuditInput) -> np.ndarray:
    """(P, 3) [i, j, 0] pairs of byte-identical samples with different labels, within any split (O(N) by sorting)."""
    if data.y is None or len(data.y) < 2:
        return np.zeros((0, 3))
    rows = np.ascontiguousarray(data.x.reshape(len(data.x), -1).numpy())
    keys = rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))).ravel()
    _, group = np.unique(keys, return_inverse=True)
    order = np.argsort(group, kind="stable")
    same = group[order][1:] == group[order][:-1]
    a, b = order[:-1][same], order[1:][same]
    differ = data.y[a] != data.y[b]
    return np.stack([a[differ], b[differ], np.zeros(int(differ.sum()))], 1).astype(float)
