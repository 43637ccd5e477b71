"""Big text inputs stream through `trainlab predict`: a multi-MB text file, a CSV, a folder and a glob of texts are
read in pieces and predicted CHUNK texts at a time (the same predictions as one whole batch), a very long text is
tokenized only as far as the model reads it (with a warning), progress goes to stderr, and `trainlab serve`
refuses a request over its limits."""
from __future__ import annotations

import csv
import inspect
import json
import time

import numpy as np
import pandas as pd
import pytest
import torch

from own_data import PHRASES, trained
from test_serve import assert_json_error
from trainlab.data import text as text_module
from trainlab.data.text import UNK, TextCoder, iter_texts, tokenize
from trainlab.use import predict as predict_module
from trainlab.use.loaded import load_run
from trainlab.use.predict import iter_predictions, predict_files
from trainlab.use.serve import create_app
from trainlab.use.serve_request import MAX_SAMPLES

SMALL_CHUNK = 64


@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
    return trained(tmp_path_factory, "texts")[0]


def sentences(n: int, seed: int = 0) -> list[str]:
    """n lines of topic phrases: 3 in 4 short (1-3 phrases, under the run's max_len of 32 tokens), the others
    40-60 phrases (about 2,000 characters, 200+ tokens) that the model reads only the head of."""
    rng = np.random.default_rng(seed)
    lines = []
    for _ in range(n):
        subjects, verbs, things = PHRASES[list(PHRASES)[rng.integers(3)]]
        k = int(rng.integers(1, 4)) if rng.random() < 0.75 else int(rng.integers(40, 61))
        lines.append(", ".join(f"{rng.choice(subjects)} {rng.choice(verbs)} {rng.choice(things)}" for _ in range(k)))
    return lines


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: on a shared CI machine two threads per tiny op cost more than the op; these tests
    count what is read and predicted, not threading."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def big_texts(tmp_path_factory):
    """(texts, a .txt of one per line, a CSV with them in its text column): over 2 MB each."""
    folder = tmp_path_factory.mktemp("big")
    texts = sentences(5_000)
    (folder / "big.txt").write_text("\n".join(texts) + "\n")
    pd.DataFrame({"id": range(len(texts)), "text": texts}).to_csv(folder / "big.csv", index=False)
    assert (folder / "big.txt").stat().st_size > 2_000_000
    return texts, folder / "big.txt", folder / "big.csv"


def whole_batch(run, texts: list[str]) -> torch.Tensor:
    """The non-streaming reference: every text tokenized whole (no prefix), cut to max_len, one (N, C) softmax."""
    meta = run.data["meta"]
    index = {t: i for i, t in enumerate(meta["vocab"])}
    ids = torch.zeros(len(texts), meta["max_len"], dtype=torch.long)  # (N, max_len), 0 = <pad>
    for row, text in enumerate(texts):
        tokens = [index.get(t, index[UNK]) for t in tokenize(text, meta["tokenizer"], meta["lowercase"])]
        ids[row, :min(len(tokens), meta["max_len"])] = torch.tensor(tokens[:meta["max_len"]], dtype=torch.long)
    return run.predict_outputs(ids).softmax(-1)


@pytest.fixture
def small_chunk(monkeypatch):
    monkeypatch.setattr(predict_module, "CHUNK", SMALL_CHUNK)
    monkeypatch.setattr(text_module, "CSV_ROWS", 50)


# ----------------------------------------------------------------------------- streaming = one whole batch

@pytest.mark.parametrize("which", ["txt", "csv"])
def test_a_multi_mb_file_streams_to_the_same_predictions_row_for_row(text_run, big_texts, small_chunk, which):
    texts, txt, table = big_texts
    run = load_run(text_run)
    rows = predict_files(run, [str(txt if which == "txt" else table)], top=2)
    want = whole_batch(run, texts)  # (N, 3)
    assert len(rows) == len(texts)
    first = 1 if which == "txt" else 2  # a CSV's header is row 1
    assert [r["input"] for r in rows[:2]] == [f"big.{which}:{first}", f"big.{which}:{first + 1}"]
    assert rows[-1]["input"] == f"big.{which}:{len(texts) + first - 1}"
    got = torch.tensor([r["probability"] for r in rows])
    assert [r["prediction"] for r in rows] == [run.classes[int(i)] for i in want.argmax(1)]
    assert torch.allclose(got, want.max(1).values, atol=1e-5)
    long = [i for i, t in enumerate(texts) if len(tokenize(t, "word", True)) > 32]
    assert len(texts) // 8 < len(long) < len(texts) // 2  # the file mixes texts under and over max_len
    assert all("only its first 32 tokens" in rows[i]["warning"] for i in long)
    assert sum("warning" in r for r in rows) == len(long)


def test_a_folder_and_a_glob_of_text_files_stream_in_order(text_run, tmp_path, small_chunk):
    texts = sentences(300, seed=1)
    folder = tmp_path / "notes"
    folder.mkdir()
    for i in range(100):  # 100 files of 3 texts: chunks of 64 cross file boundaries
        (folder / f"n{i:03d}.txt").write_text("\n".join(texts[3 * i:3 * i + 3]))
    run = load_run(text_run)
    want = [run.classes[int(i)] for i in whole_batch(run, texts).argmax(1)]
    for item in (folder, folder / "n*.txt"):
        rows = predict_files(run, [str(item)])
        assert [r["input"] for r in rows[:4]] == ["n000.txt:1", "n000.txt:2", "n000.txt:3", "n001.txt:1"]
        assert [r["prediction"] for r in rows] == want


def test_the_reader_is_lazy_and_at_most_two_chunks_are_held(text_run, big_texts, small_chunk, monkeypatch):
    """Structural memory bound: when a chunk is predicted, the texts tokenized so far exceed those predicted
    by at most two chunks (the one predicted and the reader's own), whatever the file's size."""
    texts, txt, _ = big_texts
    encoded, outstanding, sizes = [0], [], []
    real_encode, real_predict = TextCoder.encode, predict_module._predict_chunk

    def counting_encode(self, batch):
        encoded[0] += len(batch)
        return real_encode(self, batch)

    def watching_predict(run, chunk, top):
        outstanding.append(encoded[0] - sum(sizes))
        sizes.append(len(chunk))
        return real_predict(run, chunk, top)

    monkeypatch.setattr(TextCoder, "encode", counting_encode)
    monkeypatch.setattr(predict_module, "_predict_chunk", watching_predict)
    rows = iter_predictions(load_run(text_run), [str(txt)])
    assert inspect.isgenerator(rows) and inspect.isgenerator(iter_texts({}, str(txt)))
    first = next(rows)
    assert first["input"] == "big.txt:1" and encoded[0] <= SMALL_CHUNK  # one chunk read, not the file
    n = 1 + sum(1 for _ in rows)
    assert n == len(texts) == sum(sizes) and max(sizes) == SMALL_CHUNK
    assert max(outstanding) <= 2 * SMALL_CHUNK


# ----------------------------------------------------------------------------- one very long text

def test_a_1_mb_single_line_text_is_truncated_with_a_warning(text_run, tmp_path, monkeypatch):
    head = "the team won the match " * 10  # 50 tokens: the model reads the first 32
    huge = head + "snow covers the hills " * 70_000  # about 1.5 MB on one line
    (tmp_path / "one.txt").write_text(huge + "\nthe cook bakes fresh bread\n")
    seen = []
    real_split = text_module._split
    monkeypatch.setattr(text_module, "_split", lambda t, *a: seen.append(len(t)) or real_split(t, *a))
    run = load_run(text_run)
    t = time.perf_counter()
    rows = predict_files(run, [str(tmp_path / "one.txt"), huge[:1_000_000]])
    assert time.perf_counter() - t < 5
    assert max(seen) < 2_000  # only the text's head was lowercased and split, never the megabyte
    assert [r["input"] for r in rows[:2]] == ["one.txt:1", "one.txt:2"] and len(rows) == 3
    for row in (rows[0], rows[2]):
        assert "long text: only its first 32 tokens are read" in row["warning"]
        assert row["prediction"] == predict_files(run, [head])[0]["prediction"]
        assert row["probability"] == pytest.approx(predict_files(run, [head])[0]["probability"], abs=1e-6)
    assert "warning" not in rows[1]
    assert tokenize(huge, "word", True, 32) == tokenize(head, "word", True)[:33]


# ----------------------------------------------------------------------------- the CLI: progress, files

def test_cli_reports_progress_on_stderr_and_writes_rows_as_they_come(text_run, big_texts, tmp_path, cli,
                                                                       small_chunk, monkeypatch):
    texts, txt, _ = big_texts
    monkeypatch.setattr(predict_module, "PROGRESS_SECONDS", 0.0)  # no terminal here: a line per chunk
    code, out, err = cli("predict", text_run, txt, "--top", "1", "--out", tmp_path / "p")
    assert code == 0 and len(out.splitlines()) == len(texts)
    progress = [line for line in err.splitlines() if line.startswith("predict: ")]
    assert len(progress) == -(-len(texts) // SMALL_CHUNK)
    assert progress[0].startswith(f"predict: {SMALL_CHUNK} of {len(texts):,} inputs ({SMALL_CHUNK / len(texts):.0%})")
    assert progress[-1].startswith(f"predict: {len(texts):,} of {len(texts):,} inputs (100%)")
    result = json.loads((tmp_path / "p" / "result.json").read_text())
    assert (result["inputs"], result["predicted"], result["failed"]) == (len(texts), len(texts), 0)
    with (tmp_path / "p" / "predictions.csv").open() as f:
        table = list(csv.DictReader(f))
    assert list(table[0]) == ["input", "prediction", "probability", "top", "warning"]
    assert [r["input"] for r in table] == [r["input"] for r in result["predictions"]]
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == ["predictions.csv", "result.json"]  # no spool


def test_cli_where_nothing_can_be_predicted_writes_nothing(text_run, tmp_path, cli):
    (tmp_path / "wrong.csv").write_text("message\nhello\n")
    code, out, err = cli("predict", text_run, tmp_path / "wrong.csv", "--out", tmp_path / "p")
    assert code == 2 and out == "" and "no input could be predicted (1 failed)" in err
    assert not (tmp_path / "p").exists()


# ----------------------------------------------------------------------------- serve: what one request may hold

def test_serve_bounds_what_one_request_may_hold(text_run):
    from fastapi.testclient import TestClient

    client = TestClient(create_app(text_run, max_bytes=1_500_000), raise_server_exceptions=False)
    r = client.post("/predict", json={"text": "x " * 800_000})
    assert_json_error(r, 413, "request too large: 1,600,0")
    r = client.post("/predict", json={"instances": ["the team won"] * (MAX_SAMPLES + 1)})
    assert_json_error(r, 413, f"too many instances: {MAX_SAMPLES + 1} (limit {MAX_SAMPLES} per request)")
    r = client.post("/predict", json={"text": ["snow"] * (MAX_SAMPLES + 1)})
    assert_json_error(r, 413, f"too many texts: {MAX_SAMPLES + 1}")
    assert_json_error(client.post("/predict", json={"text": ["snow", 3]}), 422, "text must be a string")
    head = "the team won the match " * 10
    r = client.post("/predict", json={"text": head + "snow covers the hills " * 60_000})  # 1.3 MB: accepted
    assert r.status_code == 200, r.text
    (answer,) = r.json()["predictions"]
    assert "only its first 32 tokens are read" in answer["warning"]
    same = client.post("/predict", json={"instances": [head, "the cook bakes"]}).json()["predictions"]
    assert answer["prediction"] == same[0]["prediction"] and "warning" in same[0] and not same[1].get("warning")
