"""The cheap part of the data audit that `trainlab train` runs before the first epoch: near-duplicates across
splits found without a full neighbour search (data/audit_full.py `cheap_audit` puts it together)."""
from __future__ import annotations

import numpy as np
import torch

from trainlab.data.audit import NEAR, Graph, K, close_pairs, drop_self

SCALE_SAMPLE = 2000  # training samples whose nearest neighbour sets the distance scale in the cheap search


def cross_split_pairs(z: np.ndarray, split: np.ndarray, k: int = K, near: float = NEAR,
                      seed: int = 0) -> tuple[np.ndarray, float]:
    """-> ((P, 3) [i, j, distance / scale] pairs closer than `near` x scale with i or j outside training, scale).

    The same pairs as `close_pairs(neighbours(z))` restricted to those, with far less work: a sample of training
    rows finds the scale by a k-NN search, then the val/test rows look only within `near` x scale
    (`within_radius`): 0.3 s instead of 2.2 s for MNIST's 70,000 rows here."""
    train = np.flatnonzero(split == "train")
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(train, min(len(train), SCALE_SAMPLE), replace=False)) if len(train) else train
    others = np.flatnonzero(split != "train")
    k = max(1, min(k, len(z) - 1))
    scale_rows = sample if len(sample) else others  # no training rows: the scale of the others
    d, i = drop_self(*nearest(z, scale_rows, k + 1), scale_rows)
    ref = d[:, -1]
    scale = max(float(np.median(ref[ref > 0])) if (ref > 0).any() else 1.0, 1e-12)
    graph = Graph(np.zeros((len(z), k), np.float32) + np.inf, np.zeros((len(z), k), np.int64), scale)
    graph.dist[scale_rows], graph.idx[scale_rows] = d, i
    if len(sample) and len(others):
        graph.dist[others], graph.idx[others] = within_radius(z, others, near * scale, k)
    return close_pairs(graph, near), scale


def nearest(z: np.ndarray, rows: np.ndarray, k: int, block: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """-> (len(rows), k) distances and indices of each row's k nearest samples (itself included), closest first:
    brute force with torch (a (B, N) matrix product and topk per block; no scikit-learn import in `train`),
    distances recomputed directly for the k kept (an identical copy is exactly 0)."""
    zt = torch.from_numpy(np.ascontiguousarray(z, dtype=np.float32))
    sq = (zt.double() ** 2).sum(1).float()  # (N,)
    k = min(k, len(z))
    dist, idx = np.empty((len(rows), k), np.float32), np.empty((len(rows), k), np.int64)
    for s in range(0, len(rows), block):
        q = torch.from_numpy(rows[s:s + block])
        d2 = (zt[q] @ zt.T).mul_(-2).add_(sq[None, :]).add_(sq[q][:, None])  # (B, N) squared distances, in place
        cand = d2.topk(min(len(z), k + 4), dim=1, largest=False).indices  # a few spare for rounding near the k-th
        exact = ((zt[q][:, None, :].double() - zt[cand].double()) ** 2).sum(-1).sqrt()  # (B, k + 4)
        order = exact.argsort(dim=1, stable=True)[:, :k]
        dist[s:s + block] = exact.gather(1, order).float().numpy()
        idx[s:s + block] = cand.gather(1, order).numpy()
    return dist, idx


def within_radius(z: np.ndarray, rows: np.ndarray, radius: float, k: int,
                  block: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """-> (len(rows), k) distances and indices of each of `rows`' (ascending sample indices) nearest other samples
    closer than `radius`, closest first (inf / 0 past the last): exactly the k-NN entries under `radius`, without
    the full search.

    Two samples closer than `radius` differ by less than it on every coordinate, so with all samples sorted on
    their widest coordinate a block of consecutive (sorted) query rows needs only the slice of samples within
    `radius` of the block's range on it. Candidates are screened with one (B, W) matrix product and their
    distances recomputed directly (an identical copy is exactly 0)."""
    axis = int(np.argmax(z.var(0)))
    order = np.argsort(z[:, axis], kind="stable")
    key, zs = z[order, axis], np.ascontiguousarray(z[order], dtype=np.float32)
    # |q - x|^2 < r^2  <=>  q.x - |x|^2 / 2 > |q|^2 / 2 - r^2 / 2: one product of [q, -1] with [x, |x|^2 / 2]
    # and one comparison per (B, W) block; the (1 - 1e-4) leaves room for float32's rounding (rechecked below)
    loose = 0.5 * (1 - 1e-4)
    aug = np.concatenate([zs, loose * (zs.astype(np.float64) ** 2).sum(1, keepdims=True).astype(np.float32)], 1)
    queries = rows[np.argsort(z[rows, axis], kind="stable")]
    found_q, found_c, found_d = [], [], []
    for s in range(0, len(queries), block):
        q = queries[s:s + block]  # (B,) sample indices, ascending on the key
        lo = np.searchsorted(key, z[q[0], axis] - radius, "left")
        hi = np.searchsorted(key, z[q[-1], axis] + radius, "right")
        zq = np.concatenate([z[q].astype(np.float32), -np.ones((len(q), 1), np.float32)], 1)  # (B, d + 1)
        bound = loose * (zq[:, :-1].astype(np.float64) ** 2).sum(1) - radius * radius / 2 - 1e-6
        a, b = np.nonzero(zq @ aug[lo:hi].T > bound.astype(np.float32)[:, None])  # (B, W) screened
        cand = order[lo + b]
        keep = cand != q[a]  # not the query itself
        a, cand = a[keep], cand[keep]
        dist = np.sqrt(((z[q[a]].astype(np.float64) - z[cand]) ** 2).sum(1))
        close = dist < radius
        found_q.append(q[a[close]]), found_c.append(cand[close]), found_d.append(dist[close])
    out_d, out_i = np.full((len(rows), k), np.inf, np.float32), np.zeros((len(rows), k), np.int64)
    qs, cs, ds = (np.concatenate(x) if x else np.zeros(0) for x in (found_q, found_c, found_d))
    if len(qs):
        where = np.searchsorted(rows, qs)  # each found pair's query row, as a position in `rows`
        srt = np.lexsort((cs, ds, where))  # per query row: closest first (ties: lower index, as a stable search)
        where, cs, ds = where[srt], cs[srt].astype(np.int64), ds[srt]
        first = np.r_[0, np.flatnonzero(np.diff(where)) + 1]
        rank = np.arange(len(where)) - np.repeat(first, np.diff(np.r_[first, len(where)]))
        top = rank < k
        out_d[where[top], rank[top]], out_i[where[top], rank[top]] = ds[top], cs[top]
    return out_d, out_i
