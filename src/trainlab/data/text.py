"""Text classification data: CSV (text column + label column) or the generated `first_marker` task.

    data: {name: text, path: reviews.csv, text_column: review, label_column: stars, tokenizer: word}
    data: {name: first_marker, samples: 3000}        # embedded, no download (see data/sequences.py)

Texts stay strings until the training split is known; then (DataBundle.fit) the vocabulary is built from
the training texts only - `min_freq`, `max_vocab`, index 0 = <pad>, 1 = <unk> - and every text becomes
`max_len` token ids (truncated, right-padded with 0). The vocabulary is saved in data.json, so
`trainlab predict RUN "some text"` tokenizes raw strings exactly as training did.
"""
from __future__ import annotations

import dataclasses
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from trainlab.core.errors import UserError
from trainlab.core.paths import path_kind
from trainlab.data.base import ArrayDataset, DataBundle
from trainlab.data.options import FirstMarkerParams, TextParams, TokenizerParams  # noqa: F401
from trainlab.data.sequences import first_marker_task
from trainlab.data.tabular import read_table

PAD, UNK = "<pad>", "<unk>"
WORD = re.compile(r"\w+|[^\w\s]")  # words, and each punctuation mark on its own


# ----------------------------------------------------------------------------- tokenizer and vocabulary

def tokenize(text: str, tokenizer: str, lowercase: bool) -> list[str]:
    text = text.lower() if lowercase else text
    return list(text) if tokenizer == "char" else WORD.findall(text)


def build_vocab(token_lists: list[list[str]], min_freq: int, max_vocab: int) -> list[str]:
    """[<pad>, <unk>, tokens by falling count (ties alphabetical)]: the training texts' tokens only."""
    counts = Counter(t for tokens in token_lists for t in tokens)
    kept = sorted((t for t, c in counts.items() if c >= min_freq), key=lambda t: (-counts[t], t))[:max_vocab]
    if not kept:
        raise UserError(f"empty vocabulary: no token occurs at least data.min_freq={min_freq} times in the "
                        f"{len(token_lists)} training texts; lower data.min_freq or check the text column")
    return [PAD, UNK, *kept]


def encode(texts: list[str], meta: dict) -> torch.Tensor:
    """Texts -> (N, max_len) long token ids with the saved vocabulary (unknown tokens -> <unk>)."""
    index = {t: i for i, t in enumerate(meta["vocab"])}
    unk, max_len = index[UNK], meta["max_len"]
    ids = torch.zeros(len(texts), max_len, dtype=torch.long)  # 0 = <pad>
    for row, text in enumerate(texts):
        tokens = tokenize(text, meta["tokenizer"], meta["lowercase"])[:max_len]
        if tokens:
            ids[row, : len(tokens)] = torch.tensor([index.get(t, unk) for t in tokens])
    return ids


class TextPool(Dataset):
    """Raw texts and labels, before a vocabulary exists: (text, label) items, `.targets` for stratified splits."""
    def __init__(self, texts: list[str], targets: torch.Tensor):
        self.texts, self.targets = list(texts), targets

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, i):
        return self.texts[i], self.targets[i]


def fit_vocab(bundle: DataBundle, params: TokenizerParams, train_idx: np.ndarray) -> DataBundle:
    """Vocabulary from the training texts only; every split -> token ids (N, max_len)."""
    pool = bundle.pool
    tokens = [tokenize(pool.texts[int(i)], params.tokenizer, params.lowercase) for i in train_idx]
    meta = {**bundle.meta, "tokenizer": params.tokenizer, "lowercase": params.lowercase, "max_len": params.max_len,
            "vocab": build_vocab(tokens, params.min_freq, params.max_vocab)}
    ids = ArrayDataset(encode(pool.texts, meta), pool.targets)
    test = ArrayDataset(encode(bundle.test.texts, meta), bundle.test.targets) if bundle.test is not None else None
    info = {"vocab_size": len(meta["vocab"]), "pad_index": 0}
    return dataclasses.replace(bundle, pool=ids, test=test, meta=meta, model_info=info, fit=None)


def text_bundle(pool: TextPool, test: TextPool | None, classes: list[str], params: TokenizerParams,
                meta: dict) -> DataBundle:
    bundle = DataBundle(pool, test, "classification", "text", classes, meta=meta)
    bundle.fit = lambda train_idx: fit_vocab(bundle, params, train_idx)
    return bundle


# ----------------------------------------------------------------------------- datasets

def read_texts(path: str, params: TextParams, classes: list[str] | None = None) -> tuple[list[str], pd.Series]:

    df = read_table(path)
    for what, col in (("text", params.text_column), ("label", params.label_column)):
        if col not in df.columns:
            raise UserError(f"{what} column {col!r} not in {path}; columns: {', '.join(map(str, df.columns))} "
                            f"(set data.{what}_column)")
    na = df[[params.text_column, params.label_column]].isna().any(axis=1).to_numpy()
    if na.any():
        raise UserError(f"missing text or label in {path} row {int(np.argmax(na)) + 2}")
    return df[params.text_column].astype(str).tolist(), df[params.label_column].astype(str)


def build_text(cfg, params: TextParams) -> DataBundle:
    """Your own texts: a CSV with a text column and a label column (char or word tokens)."""
    if not params.path:
        raise UserError("data.path is required for the text dataset: a CSV with a text and a label column")
    texts, labels = read_texts(params.path, params)
    classes = sorted(labels.unique())
    pool = TextPool(texts, torch.tensor([classes.index(v) for v in labels], dtype=torch.long))
    test = None
    if params.test_path:
        t_texts, t_labels = read_texts(params.test_path, params)
        unknown = sorted(set(t_labels) - set(classes))
        if unknown:
            raise UserError(f"test CSV {params.test_path} has labels not in the training CSV: {unknown[:5]}")
        test = TextPool(t_texts, torch.tensor([classes.index(v) for v in t_labels], dtype=torch.long))
    meta = {"text_column": params.text_column, "label_column": params.label_column}
    return text_bundle(pool, test, classes, params, meta)


def build_first_marker(cfg, params: FirstMarkerParams) -> DataBundle:
    """Generated texts: which marker letter comes first? Order matters, counts do not (no download)."""
    if params.max_len < params.min_len:
        raise UserError(f"data.max_len={params.max_len} must be >= data.min_len={params.min_len}")
    # a fixed seed: the data set is the same whatever the run's seed (which drives splits and training)
    texts, labels = first_marker_task(params.samples, 1234, params.markers, params.min_len, params.max_len)
    pool = TextPool(texts, torch.from_numpy(labels))
    return text_bundle(pool, None, list(params.markers), params, {"task": "first_marker"})


def predict_texts(meta: dict, items: list[str]) -> tuple[list[str], list[str]]:
    """`trainlab predict` arguments -> (texts, names): a .csv gives its text column, a .txt file one text per
    line, anything else is itself the text to classify."""


    texts, names = [], []
    for item in items:
        p = Path(item)
        if p.suffix.lower() == ".csv" and path_kind(item) == "file":  # a text too long to be a name is a text
            df = read_table(p)
            col = meta["text_column"] if "text_column" in meta else "text"
            if col not in df.columns:
                raise UserError(f"text column {col!r} not in {p}; columns: {', '.join(map(str, df.columns))}")
            texts += df[col].fillna("").astype(str).tolist()
            names += [f"{p.name}:{i + 2}" for i in range(len(df))]
        elif p.suffix.lower() == ".txt" and path_kind(item) == "file":
            lines = p.read_text(encoding="utf-8", errors="replace").splitlines()
            texts += lines
            names += [f"{p.name}:{i + 1}" for i in range(len(lines))]
        else:
            texts.append(item)
            names.append(repr(item) if len(item) <= 40 else repr(item[:37] + "..."))
    return texts, names


def text_warnings(texts: list[str], meta: dict) -> dict[int, str]:
    """{position: warning} for texts the model cannot really read: empty, or no token it has seen in training
    (the prediction then reflects only the model's biases)."""
    known, warns = set(meta["vocab"][2:]), {}
    for i, text in enumerate(texts):
        tokens = tokenize(text, meta["tokenizer"], meta["lowercase"])
        if not tokens:
            warns[i] = "empty text: no tokens, so the prediction says nothing about this input"
        elif not known.intersection(tokens):
            warns[i] = f"none of its {len(tokens)} tokens is in the training vocabulary"
    return warns


def tokenizing(meta: dict) -> dict:
    """`encode` in words, for the metadata of an exported model (the vocabulary itself is in meta.vocab)."""
    split = ("list(text): one token per character" if meta["tokenizer"] == "char"
             else f"re.findall({WORD.pattern!r}, text): words, and each punctuation mark on its own")
    return {"before_model": [*(["text.lower()"] if meta["lowercase"] else []), split,
                      "token -> its index in meta.vocab; unknown tokens -> 1 (<unk>)",
                      f"keep the first {meta['max_len']} ids; pad on the right with 0 (<pad>)"],
            "pad_index": 0, "unk_index": 1, "max_len": meta["max_len"], "layout": "(B, max_len)", "dtype": "int64"}
