"""The data as the model sees it, without training: class counts per split, training samples before and after
the augmentation, texts as tokens with vocabulary coverage, windows of a series, rows of a table.

    data = load_data(cfg); view = data.view(data.splits.train, data.splits.val)   # as `trainlab train` does
    split_counts(view)                     # {"train": {"0": 143, ...}, "val": {...}, "test": {...}}
    augmentation_preview(view, n=8)        # raw pixels, 2 draws of the training pipeline, the eval pipeline

Used by `trainlab show` (workflows/show.py) and the Data section of every run's report.html. Randomness comes
from explicit, seeded generators only: the report calls this after training without touching the run's
random state, and the same seed shows the same samples and the same draws.
"""
from __future__ import annotations

from collections import Counter

import numpy as np
import torch

from trainlab.data.base import targets_of
from trainlab.data.prepare import DataView
from trainlab.data.steps import Normalize
from trainlab.data.text import PAD, UNK, tokenize
from trainlab.data.transforms import Pipeline

SPLITS = ("train", "val", "test")


# ----------------------------------------------------------------------------- splits

def split_indices(view: DataView, split: str) -> np.ndarray | None:
    """Pool indices of `split`; None for the test split of a dataset with its own test set."""
    return {"train": view.train_idx, "val": view.val_idx, "test": view.data.splits.test}[split]


def split_targets(view: DataView, split: str) -> torch.Tensor:
    """The labels (or regression targets) of a split, without decoding its inputs."""
    bundle = view.bundle
    idx = split_indices(view, split)
    if idx is None:
        return targets_of(bundle.test)
    return targets_of(bundle.pool)[torch.as_tensor(idx, dtype=torch.long)]


def split_sizes(view: DataView) -> dict[str, int]:
    return {s: len(split_targets(view, s)) for s in SPLITS}


def split_counts(view: DataView) -> dict[str, dict[str, int]] | None:
    """{split: {class: samples}} (every class, zeros too); multi-label: samples carrying each label.
    None for regression (see `target_summary`)."""
    bundle = view.bundle
    if bundle.task not in ("classification", "multilabel"):
        return None
    out = {}
    for split in SPLITS:
        y = split_targets(view, split)
        if bundle.task == "classification":
            counts = torch.bincount(y.long(), minlength=len(bundle.classes))
        else:
            counts = y.reshape(len(y), -1).sum(0).round().long()
        out[split] = {c: int(n) for c, n in zip(bundle.classes, counts.tolist(), strict=True)}
    return out


def target_summary(view: DataView) -> dict[str, dict] | None:
    """Regression: {split: {samples, mean, std, min, max}} of the targets (all outputs together)."""
    if view.bundle.task != "regression":
        return None
    out = {}
    for split in SPLITS:
        y = split_targets(view, split).double().reshape(-1)
        out[split] = {"samples": len(split_targets(view, split))}
        if len(y):
            out[split].update(mean=float(y.mean()), std=float(y.std(unbiased=False)), min=float(y.min()),
                              max=float(y.max()))
    return out


def pick(view: DataView, n: int, seed: int = 0) -> np.ndarray:
    """Up to n pool indices of training samples, drawn with `seed`, in pool order."""
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(view.train_idx), min(n, len(view.train_idx)), replace=False)
    return np.sort(view.train_idx[chosen])


def raw_samples(view: DataView, pool_idx: np.ndarray) -> tuple[torch.Tensor, list]:
    """Stored inputs (n, ...) and their targets, as the data set gives them (before any transform)."""
    items = [view.bundle.pool[int(i)] for i in pool_idx]
    return torch.stack([torch.as_tensor(x) for x, _ in items]), [y for _, y in items]


def label_name(view: DataView, y) -> str:
    y = torch.as_tensor(y)
    if view.bundle.task == "classification":
        return view.bundle.classes[int(y)]
    if view.bundle.task == "multilabel":
        return ", ".join(c for c, v in zip(view.bundle.classes, y.tolist(), strict=True) if v > 0.5) or "(none)"
    return ", ".join(f"{v:.4g}" for v in y.reshape(-1).tolist())


# ----------------------------------------------------------------------------- images

def to_display(pipe: Pipeline, x: torch.Tensor) -> tuple[np.ndarray, str]:
    """A pipeline's float output (n, C, H, W) -> uint8 pixels for a person, and how they were made: a final
    `normalize` is undone (the colors are the model's input before scaling), anything else outside 0..1 is
    stretched per image."""
    last = pipe.steps[-1] if pipe.steps else None
    how = "as is"
    if isinstance(last, Normalize) and last.mean is not None:
        x = x * last.std.view(-1, 1, 1) + last.mean.view(-1, 1, 1)
        how = "normalize undone"
    if x.min() < -1e-6 or x.max() > 1 + 1e-6:
        lo = x.amin((1, 2, 3), keepdim=True)
        x = (x - lo) / (x.amax((1, 2, 3), keepdim=True) - lo).clamp_min(1e-12)
        how = "stretched per image"
    return (x.clamp(0, 1) * 255).round().to(torch.uint8).numpy(), how


def _changed(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> float | None:
    """Share of values that differ (None when the shapes differ: a crop or resize changed the size)."""
    a, b = torch.as_tensor(a), torch.as_tensor(b)
    return float((a != b).float().mean()) if a.shape == b.shape else None


def _value_stats(x: torch.Tensor) -> dict:
    x = x.double()
    return {"shape": list(x.shape[1:]), "min": float(x.min()), "max": float(x.max()), "mean": float(x.mean()),
            "std": float(x.std(unbiased=False))}


def augmentation_preview(view: DataView, n: int = 8, draws: int = 2, seed: int = 0) -> dict:
    """The same n training images: raw uint8 (n, C, H, W), `draws` passes through the training pipeline (its
    random steps drawn from generators seeded seed, seed+1, ...) and the eval pipeline's output, each as
    displayable uint8; plus the share of pixels each draw changed and the value range the model receives."""
    idx = pick(view, n, seed)
    x, ys = raw_samples(view, idx)  # (n, C, H, W) uint8
    evaluated = view.eval_pipe(x.clone())
    drawn = [view.train_pipe(x.clone(), torch.Generator().manual_seed(seed + d)) for d in range(draws)]
    shown = [to_display(view.train_pipe, t) for t in drawn]
    eval_shown, eval_how = to_display(view.eval_pipe, evaluated)
    return {"indices": idx.tolist(), "labels": [label_name(view, y) for y in ys], "raw": x.numpy(),
            "train": [s for s, _ in shown], "eval": eval_shown, "random": view.train_pipe.random,
            "display": {"train": shown[0][1] if shown else "as is", "eval": eval_how},
            # pixels a draw changed against the stored image, and model inputs that differ from the eval pipeline's
            "changed_vs_raw": [_changed(s, x) for s, _ in shown],
            "differs_from_eval": [_changed(t, evaluated) for t in drawn],
            "model_input": {"train": _value_stats(drawn[0]) if drawn else None, "eval": _value_stats(evaluated)}}


# ----------------------------------------------------------------------------- texts

def split_texts(view: DataView, split: str) -> list[str]:
    """The raw texts of a split (LoadedData.bundle keeps them; the fitted view holds token ids)."""
    raw = view.data.bundle
    idx = split_indices(view, split)
    if idx is None:
        return list(raw.test.texts)
    return [raw.pool.texts[int(i)] for i in idx]


def text_stats(texts: list[str], meta: dict, shown_oov: int = 8) -> dict:
    """Token counts of texts against the vocabulary: coverage (share of tokens in it), out-of-vocabulary share
    and most common unseen tokens, length distribution and how many texts `max_len` truncates."""
    known, max_len = set(meta["vocab"][2:]), meta["max_len"]
    tokens = [tokenize(t, meta["tokenizer"], meta["lowercase"]) for t in texts]
    lengths = np.array([len(t) for t in tokens])
    oov = Counter(tok for ts in tokens for tok in ts if tok not in known)
    total = int(lengths.sum())
    n_oov = sum(oov.values())
    length = ({"min": int(lengths.min()), "median": float(np.median(lengths)), "p90": float(np.percentile(lengths, 90)),
               "max": int(lengths.max()), "mean": float(lengths.mean())} if len(lengths) else {})
    return {"texts": len(texts), "tokens": total, "oov_tokens": n_oov,
            "coverage": (total - n_oov) / total if total else None, "oov_share": n_oov / total if total else None,
            "common_oov": [[t, c] for t, c in oov.most_common(shown_oov)], "length": length,
            "truncated": int((lengths > max_len).sum()), "padded": int((lengths < max_len).sum()),
            "lengths": lengths.tolist()}


def token_view(ids: torch.Tensor, tokens: list[str], vocab: list[str]) -> dict:
    """What the model gets for one text: [[shown token, id, kind]] with kind word / unk (the written token is
    shown) for each id before the padding, the number of <pad> ids, and how many tokens were cut off."""
    ids = ids.tolist()
    used = min(len(tokens), len(ids))  # encode: the first max_len tokens, then id 0 (<pad>) to the end
    shown = [[tokens[i] if v == 1 else vocab[v], v, "unk" if v == 1 else "word"] for i, v in enumerate(ids[:used])]
    return {"tokens": shown, "pad": len(ids) - used, "cut": len(tokens) - used}


def text_preview(view: DataView, n: int = 5, seed: int = 0) -> dict:
    """Per split text_stats; n training texts as written and as the token ids the model gets."""
    meta = view.bundle.meta
    stats = {s: text_stats(split_texts(view, s), meta) for s in SPLITS}
    samples = []
    for i in pick(view, n, seed):
        text = view.data.bundle.pool.texts[int(i)]
        ids, y = view.bundle.pool[int(i)]  # (max_len,) long: the fitted bundle's encoding
        tokens = tokenize(text, meta["tokenizer"], meta["lowercase"])
        samples.append({"index": int(i), "label": label_name(view, y), "text": text,
                        **token_view(ids, tokens, meta["vocab"])})
    return {"vocab_size": len(meta["vocab"]), "special": [PAD, UNK], "max_len": meta["max_len"],
            "tokenizer": meta["tokenizer"], "lowercase": meta["lowercase"], "splits": stats, "samples": samples}


# ----------------------------------------------------------------------------- series and tables

def window_preview(view: DataView, n: int = 4) -> dict:
    """n training windows spread over the training part: inputs (lookback, F) and targets (horizon, k), in the
    data's units (normalize runs later, on the batch)."""
    meta = view.bundle.meta
    idx = view.train_idx[np.unique(np.linspace(0, len(view.train_idx) - 1, min(n, len(view.train_idx))).astype(int))]
    x, ys = raw_samples(view, idx)  # (n, L, F)
    horizon, k = meta.get("horizon", 1), len(meta.get("targets", [])) or 1
    windows = []
    for i, xi, y in zip(idx, x, ys, strict=True):
        target = (torch.as_tensor(y, dtype=torch.float64).reshape(horizon, k).tolist()
                  if view.bundle.task == "regression" else label_name(view, y))
        windows.append({"index": int(i), "inputs": xi.double().tolist(), "target": target})
    return {"lookback": int(x.shape[1]), "horizon": horizon, "stride": meta.get("stride"),
            "columns": meta.get("columns") or [f"x{j}" for j in range(x.shape[2])],
            "targets": meta.get("targets", []), "target_steps": meta.get("target_steps"), "windows": windows}


def table_preview(view: DataView, n: int = 5, seed: int = 0) -> dict:
    """n training rows: the stored (encoded) features by name, and the values the model gets (train pipeline)."""
    idx = pick(view, n, seed)
    x, ys = raw_samples(view, idx)  # (n, F)
    model_x = view.train_pipe(x.clone().float(), torch.Generator().manual_seed(seed))
    names = view.bundle.meta.get("features") or [f"x{j}" for j in range(x.shape[1])]
    rows = [{"index": int(i), "target": label_name(view, y), "values": xi.tolist(), "model_input": mi.tolist()}
            for i, xi, y, mi in zip(idx, x.double(), ys, model_x.double(), strict=True)]
    return {"features": list(map(str, names)), "target": view.bundle.meta.get("target"), "rows": rows}
