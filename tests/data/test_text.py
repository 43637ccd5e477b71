"""Tokenizers, a vocabulary fitted on the training split only, padding/truncation, and the generated order task."""
from __future__ import annotations

from collections import Counter

import pytest
import torch

from trainlab.core.errors import UserError
from trainlab.data.prepare import load_data
from trainlab.data.sequences import first_marker_task
from trainlab.data.text import build_vocab, encode, tokenize
from trainlab.run.config import build_config


def text_csv(tmp_path, rows: list[tuple[str, str]], name: str = "texts.csv"):
    path = tmp_path / name
    path.write_text("text,label\n" + "".join(f'"{t}",{y}\n' for t, y in rows))
    return path


def text_config(path, **data):
    return build_config({"data": {"name": "text", "path": str(path), "transforms": {"train": [], "eval": []}, **data},
                         "model": {"name": "transformer"}})


def test_tokenizers():
    assert tokenize("Hi, there!", "word", True) == ["hi", ",", "there", "!"]
    assert tokenize("Hi, there!", "word", False)[0] == "Hi"
    assert tokenize("ab c", "char", True) == ["a", "b", " ", "c"]


def test_vocab_order_min_freq_and_max_vocab():
    docs = [["b", "a", "a", "c"], ["a", "b", "d"]]
    assert build_vocab(docs, 1, 100) == ["<pad>", "<unk>", "a", "b", "c", "d"]  # by count, ties alphabetical
    assert build_vocab(docs, 2, 100) == ["<pad>", "<unk>", "a", "b"]
    assert build_vocab(docs, 1, 1) == ["<pad>", "<unk>", "a"]
    with pytest.raises(UserError, match="empty vocabulary.*min_freq=5"):
        build_vocab(docs, 5, 100)


def test_encode_pads_truncates_and_maps_unknown_tokens():
    meta = {"vocab": ["<pad>", "<unk>", "the", "cat"], "tokenizer": "word", "lowercase": True, "max_len": 4}
    ids = encode(["The cat", "the dog the cat sat", ""], meta)
    assert ids.dtype == torch.long
    assert ids.tolist() == [[2, 3, 0, 0], [2, 1, 2, 3], [0, 0, 0, 0]]


def test_vocabulary_sees_the_training_split_only(tmp_path):
    rows = [(f"common word{i % 3}", str(i % 2)) for i in range(40)]
    rows[-1] = ("common zebra", "1")  # tokens of a single text: it can land in train, val or test
    data = load_data(text_config(text_csv(tmp_path, rows), test_fraction=0.25, val_fraction=0.2))
    z = 39
    view = data.view(data.splits.train, data.splits.val)
    vocab = view.bundle.meta["vocab"]
    assert ("zebra" in vocab) == (z in set(data.splits.train.tolist()))
    # whatever the split, the training texts alone decide: refit with the zebra text moved out of training
    train = [i for i in data.splits.train if i != z]
    refit = data.view(train, [z]).bundle
    assert "zebra" not in refit.meta["vocab"]
    assert refit.pool.x[z, 1] == 1  # <unk>
    assert refit.model_info == {"vocab_size": len(refit.meta["vocab"]), "pad_index": 0}
    assert view.input_shape == (64,)  # max_len token ids


def test_text_csv_errors(tmp_path):
    path = text_csv(tmp_path, [("a b", "x"), ("b c", "y")] * 10)
    with pytest.raises(UserError, match="text column 'review' not in"):
        load_data(text_config(path, text_column="review"))
    data = load_data(text_config(path, min_freq=1000))
    with pytest.raises(UserError, match="empty vocabulary"):
        data.view(data.splits.train, data.splits.val)


def test_first_marker_task_is_seeded_and_only_order_tells_the_label():
    texts, labels = first_marker_task(300, seed=5)
    again, _ = first_marker_task(300, seed=5)
    assert texts == again and first_marker_task(300, seed=6)[0] != texts
    for text, label in zip(texts, labels, strict=True):
        counts = Counter(text)
        assert counts["a"] == counts["b"] == counts["c"] == 1 and 12 <= len(text) <= 32
        assert "abc"[label] == min("abc", key=text.index)
    assert min(Counter(labels.tolist()).values()) > 80  # roughly balanced: chance is 1/3


def test_first_marker_dataset_goes_through_the_tokenizer():
    cfg = build_config({"data": {"name": "first_marker", "samples": 200, "transforms": {"train": [], "eval": []}},
                        "model": {"name": "transformer"}})
    data = load_data(cfg)
    view = data.view(data.splits.train, data.splits.val)
    assert view.bundle.kind == "text" and view.bundle.classes == ["a", "b", "c"]
    assert view.input_shape == (32,) and len(view.bundle.meta["vocab"]) == 2 + 26
