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
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import Dataset

if TYPE_CHECKING:
    import pandas as pd

from trainlab.core.errors import UserError
from trainlab.core.paths import path_kind, short_path
from trainlab.data.base import ArrayDataset, DataBundle
from trainlab.data.options import FirstMarkerParams, TextParams, TokenizerParams  # noqa: F401
from trainlab.data.sequences import first_marker_task

PAD, UNK = "<pad>", "<unk>"
WORD = re.compile(r"\w+|[^\w\s]")  # words, and each punctuation mark on its own
LINE_CHARS = 1 << 20  # characters of one line of a .txt file read for prediction: far more than max_len tokens
CSV_ROWS = 256  # rows of a CSV parsed at a time for prediction
HEAD_CHARS = 8  # characters read per token wanted, before the prefix grows (words average ~6 with their space)


# ----------------------------------------------------------------------------- tokenizer and vocabulary

def tokenize(text: str, tokenizer: str, lowercase: bool, limit: int | None = None) -> list[str]:
    """The text's tokens; with `limit`, only its first `limit + 1` (one more than kept says "there were more"),
    read from a prefix of the text that grows until it holds them: a 10 MB line costs what its head costs."""
    if limit is None:
        return _split(text, tokenizer, lowercase)
    n = HEAD_CHARS * (limit + 2)
    while True:
        tokens = _split(text[:n], tokenizer, lowercase)
        # whole text read, or a token starts after token limit+1: then the first limit+1 are whole, not cut
        if n >= len(text) or len(tokens) > limit + 1:
            return tokens[:limit + 1]
        n *= 4


def _split(text: str, tokenizer: str, lowercase: bool) -> list[str]:
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
    return TextCoder(meta).encode(texts)[0]


class TextCoder:
    """The saved vocabulary as lookups, built once per run rather than per batch of texts; each text is
    tokenized once (only its first max_len + 1 tokens) for both its ids and its warning."""

    def __init__(self, meta: dict):
        self.meta, self.max_len = meta, meta["max_len"]
        self.index = {t: i for i, t in enumerate(meta["vocab"])}
        self.unk = self.index[UNK]

    def encode(self, texts: list[str]) -> tuple[torch.Tensor, dict[int, str]]:
        """(N, max_len) long ids (truncated, right-padded with 0) and {position: warning} (see text_warnings)."""
        ids = np.zeros((len(texts), self.max_len), dtype=np.int64)  # numpy rows: no tensor made per text
        warns = {}
        for row, text in enumerate(texts):
            tokens = tokenize(text, self.meta["tokenizer"], self.meta["lowercase"], self.max_len)
            kept = [self.index.get(t, self.unk) for t in tokens[:self.max_len]]
            ids[row, :len(kept)] = kept
            why = self._warning(tokens, kept)
            if why:
                warns[row] = why
        return torch.from_numpy(ids), warns

    def _warning(self, tokens: list[str], kept: list[int]) -> str | None:
        if not tokens:
            return "empty text: no tokens, so the prediction says nothing about this input"
        if all(i == self.unk for i in kept):  # <unk> only: nothing the model learned about
            first = f"first {len(kept)} " if len(tokens) > self.max_len else f"{len(kept)} "
            return f"none of its {first}tokens is in the training vocabulary"
        if len(tokens) > self.max_len:
            return (f"long text: only its first {self.max_len} tokens are read (the model's max_len, as in "
                    f"training); the rest is ignored")
        return None


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

    from trainlab.data.tabular import read_table  # start-up time: pandas (0.4 s) only where a CSV is read

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
    """`trainlab predict` arguments -> (texts, names), all at once (see iter_texts, which streams them)."""
    pairs = [pair for item in items for pair in iter_texts(meta, item)]
    return [t for _, t in pairs], [n for n, _ in pairs]


def iter_texts(meta: dict, item: str) -> Iterator[tuple[str, str]]:
    """(name, text) one at a time: a .csv gives its text column (named FILE:ROW, the header is row 1), a .txt
    file one text per line (FILE:LINE), anything else is itself the text to classify. Files are read in
    pieces, never whole; a CSV that breaks midway raises UserError after the rows before the break."""
    p = Path(item)
    if p.suffix.lower() == ".csv" and path_kind(item) == "file":  # a text too long to be a name is a text
        yield from _csv_texts(p, meta.get("text_column", "text"))
    elif p.suffix.lower() == ".txt" and path_kind(item) == "file":
        for i, line in enumerate(_lines(p)):
            yield f"{p.name}:{i + 1}", line
    else:
        yield repr(item) if len(item) <= 40 else repr(item[:37] + "..."), item


def _lines(path: Path) -> Iterator[str]:
    """The file's lines as str.splitlines() splits them, one read of at most LINE_CHARS characters at a time:
    the rest of a longer line is skipped (only the first max_len tokens of a text are ever read)."""
    with path.open(encoding="utf-8", errors="replace") as f:
        while piece := f.readline(LINE_CHARS):
            if len(piece) == LINE_CHARS and not piece.endswith(("\n", "\r")):
                while (rest := f.readline(LINE_CHARS)) and not rest.endswith(("\n", "\r")):
                    pass  # the skipped tail of an overlong line
            yield from piece.splitlines() or [""]


def _csv_texts(path: Path, col: str) -> Iterator[tuple[str, str]]:
    """The text column, CSV_ROWS rows parsed at a time; errors as read_table words them."""
    import pandas as pd  # start-up time: 0.4 s of every run's start otherwise (an image run needs none)

    row, shown = 2, short_path(path)
    try:
        head = pd.read_csv(path, nrows=0).columns  # the header alone
        if col not in head:
            raise UserError(f"text column {col!r} not in {path}; columns: {', '.join(map(str, head))}")
        with pd.read_csv(path, usecols=[col], dtype={col: str}, chunksize=CSV_ROWS) as reader:
            for chunk in reader:
                for text in chunk[col].fillna("").tolist():
                    yield f"{path.name}:{row}", text
                    row += 1
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as e:
        raise UserError(f"cannot parse CSV {shown}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    except OSError as e:  # permission denied, an I/O error
        raise UserError(f"cannot read CSV {shown}: {e.strerror or type(e).__name__}") from None
    if row == 2:
        raise UserError(f"CSV {path} has no data rows")


def text_warnings(texts: list[str], meta: dict) -> dict[int, str]:
    """{position: warning} for texts the model cannot really read: empty, no token it has seen in training
    (the prediction then reflects only the model's biases), or longer than the max_len tokens it reads."""
    return TextCoder(meta).encode(texts)[1]


def tokenizing(meta: dict) -> dict:
    """`encode` in words, for the metadata of an exported model (the vocabulary itself is in meta.vocab)."""
    split = ("list(text): one token per character" if meta["tokenizer"] == "char"
             else f"re.findall({WORD.pattern!r}, text): words, and each punctuation mark on its own")
    return {"before_model": [*(["text.lower()"] if meta["lowercase"] else []), split,
                      "token -> its index in meta.vocab; unknown tokens -> 1 (<unk>)",
                      f"keep the first {meta['max_len']} ids; pad on the right with 0 (<pad>)"],
            "pad_index": 0, "unk_index": 1, "max_len": meta["max_len"], "layout": "(B, max_len)", "dtype": "int64"}
