"""Text views against a task whose answer is known: a text is class "zebra" iff the word zebra occurs in it.

A trained Transformer must then attribute its "zebra" logit to that one token, and some head must let the
[CLS] token (the head's input) look at it far more than at a random word. Measured on 100 held-out zebra
texts, data/training seeds 0, 1 and 2: the largest |attribution| is on "zebra" in 100% of texts; the best
head's [CLS] -> zebra weight is 0.98-1.00 on average against a uniform 0.11 (per text 9.7-10x the uniform 1/T'
at the median, >= 5.8x at the least; T' = 6..13 positions with [CLS]).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from tests.conftest import assert_one_line_error, tiny_config

from trainlab.models.catalog import build_model
from trainlab.run.config import build_config
from trainlab.use.loaded import load_run
from trainlab.use.text_views import attention_per_head, encoded, token_attribution
from trainlab.workflows.train import train_run

FILLER = ("apple river stone cloud paper green music table window garden honey silver candle forest bread train "
          "yellow pencil ocean mountain coffee winter summer lamp chair violin rabbit tiger orange purple letter "
          "bottle castle island planet rocket").split()
MAX_LEN = 16


def zebra_texts(n: int, seed: int) -> list[tuple[str, str]]:
    """n texts of 5-12 filler words; every second one has one word replaced by "zebra" at a random place."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        words = list(rng.choice(FILLER, int(rng.integers(5, 13))))
        if i % 2:
            words[int(rng.integers(len(words)))] = "zebra"
        rows.append((" ".join(words), "zebra" if i % 2 else "none"))
    return rows


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny matrices on a shared machine run ~9x slower on two threads; the process's setting is given back."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, one_thread):
    tmp = tmp_path_factory.mktemp("zebra")
    (tmp / "z.csv").write_text("text,label\n" + "".join(f"{t},{y}\n" for t, y in zebra_texts(400, 0)))
    cfg = build_config({
        "seed": 0,
        "data": {"name": "text", "path": str(tmp / "z.csv"), "max_len": MAX_LEN, "batch_size": 32,
                 "val_fraction": 0.2, "test_fraction": 0.1, "transforms": {"train": [], "eval": []}},
        "model": {"name": "transformer", "d_model": 32, "heads": 2, "layers": 1, "ff_dim": 64, "dropout": 0.0},
        "train": {"epochs": 4, "lr": 0.003, "verbose": False}})
    result = train_run(cfg, tmp / "run", quiet=True)
    assert result["test"]["accuracy"] == 1.0  # the task is easy: the views below look at a model that solved it
    return tmp / "run"


@pytest.fixture(scope="module")
def held_out(run_dir):
    """(run, [(ids (T,), words)] of 100 held-out zebra texts, index of "zebra" in the vocabulary)."""
    run = load_run(run_dir)
    texts = [t for t, y in zebra_texts(200, 99) if y == "zebra"]
    return run, [encoded(run, t) for t in texts], run.data["meta"]["vocab"].index("zebra")


def test_token_attribution_lands_on_the_marker(held_out):
    run, items, zebra = held_out
    ids = torch.nn.utils.rnn.pad_sequence([i for i, _ in items], batch_first=True)  # (100, T) right-padded
    attr = token_attribution(run.model, ids, run.classes.index("zebra"))  # (100, T)
    assert attr.shape == ids.shape and (attr[ids == 0] == 0).all()
    top = ids.gather(1, attr.abs().argmax(1, keepdim=True))[:, 0]
    share = float((top == zebra).float().mean())
    print(f"largest |attribution| on 'zebra' in {share:.0%} of {len(ids)} texts")
    assert share >= 0.9  # measured 100% on three seeds
    # and "zebra" raises the zebra logit: its attribution is positive, larger than all other tokens' together
    on = attr[ids == zebra]
    assert (on > 0).all() and (on > attr.abs().sum(1) - on).float().mean() >= 0.9


def test_some_head_looks_from_cls_at_the_marker(held_out):
    run, items, zebra = held_out
    cls_to_marker, uniform = [], []
    for ids, words in items:
        maps = attention_per_head(run.model, ids)  # 1 layer: [(heads, T+1, T+1)]
        assert len(maps) == 1 and maps[0].shape == (2, len(ids) + 1, len(ids) + 1) and len(words) == len(ids)
        assert torch.allclose(maps[0].sum(-1), torch.ones(2, len(ids) + 1))
        key = 1 + int((ids == zebra).nonzero()[0])  # column 0 is [CLS]
        cls_to_marker.append(maps[0][:, 0, key])  # (heads,)
        uniform.append(1 / (len(ids) + 1))
    w, u = torch.stack(cls_to_marker), torch.tensor(uniform)  # (N, heads), (N,)
    best = int(w.mean(0).argmax())
    ratio = w[:, best] / u
    print(f"head {best + 1}: [CLS] -> zebra weight {float(w[:, best].mean()):.3f} on average (uniform "
          f"{float(u.mean()):.3f}); ratio to uniform median {float(ratio.median()):.1f}, min {float(ratio.min()):.1f}")
    assert float(w[:, best].mean()) >= 0.5  # measured 0.98-1.00 on three seeds, uniform is 0.11
    assert float(ratio.median()) >= 4  # measured 9.7-10 (the ceiling is T' = 6..13)


def test_attention_weights_are_those_of_the_forward(held_out):
    """Recomputed from the weights by hand: softmax(Q K^T / sqrt(d)) of the first block's LayerNorm output."""
    run, items, _ = held_out
    ids, _ = items[0]
    m = run.model
    with torch.no_grad():
        h = torch.cat([m.cls, m.input.embed(ids[None])], dim=1) + m.pos[: len(ids) + 1]  # (1, T+1, d)
        q, k, _ = m.blocks[0].attn.qkv(m.blocks[0].ln1(h)).view(1, len(ids) + 1, 3, 2, 16).permute(2, 0, 3, 1, 4)
        expected = (q @ k.transpose(-2, -1) / 4.0).softmax(-1)[0]  # (heads, T+1, T+1)
        before = m(ids[None])
    assert torch.allclose(attention_per_head(m, ids)[0], expected, atol=1e-5)
    assert torch.equal(m(ids[None]), before)  # capturing left the model's numbers alone


@pytest.mark.parametrize("model", [{"name": "transformer", "d_model": 16, "heads": 2, "layers": 2, "ff_dim": 32},
                                   {"name": "rnn", "cell": "lstm", "hidden": 16, "embed_dim": 8}])
def test_attributions_add_up_to_the_logit_change(model):
    """Integrated gradients' completeness: per text, the token attributions sum to f(text) - f(zero embeddings)."""
    torch.manual_seed(0)
    cfg = build_config({"data": {"name": "digits"}, "model": model})
    net = build_model(cfg.model, (10,), 3, vocab_size=30, pad_index=0).eval()
    ids = torch.tensor([[5, 7, 2, 9, 0, 0, 0, 0, 0, 0], [3, 3, 8, 1, 4, 6, 11, 0, 0, 0]])
    attr = token_attribution(net, ids, torch.tensor([2, 0]))
    with torch.no_grad():
        out = net(ids)[[0, 1], [2, 0]]
        hook = net.input.embed.register_forward_hook(lambda _m, _i, o: torch.zeros_like(o))
        base = net(ids)[[0, 1], [2, 0]]
        hook.remove()
    assert torch.allclose(attr.sum(1), out - base, atol=0.02 * float((out - base).abs().max()) + 1e-4)


def test_inspect_text_panels(run_dir, cli, tmp_path):
    code, out, err = cli("inspect", run_dir, "--internals", "--attribution", "--text", "river zebra lamp",
                         "--out", tmp_path / "mine")
    assert code == 0, err
    page = (tmp_path / "mine" / "inspect.html").read_text()
    assert "Attention per head" in page and "Token attribution" in page and "your text: predicted zebra" in page
    assert page.count("data:image/png;base64,") == 1 and 'title="+' in page and ">zebra</span>" in page
    code, _, err = cli("inspect", run_dir, "--internals", "--attribution", "--index", 3, "--out", tmp_path / "top")
    page = (tmp_path / "top" / "inspect.html").read_text()
    assert code == 0 and "dataset sample 3" in page and page.count("<h3>#") == 8  # 8 top-loss texts attributed


def test_inspect_text_refusals(run_dir, cli, write_config, tmp_path):
    assert_one_line_error(*cli("inspect", run_dir, "--internals", "--text", "")[::2], "no tokens")
    assert_one_line_error(*cli("inspect", run_dir, "--text", "zebra")[::2], "--internals or --attribution")
    assert_one_line_error(*cli("inspect", run_dir, "--internals", "--index", 10_000)[::2], "--index 10000")
    config = write_config(tiny_config(train={"epochs": 1}))
    assert cli("train", config, "--out", tmp_path / "digits")[0] == 0
    code, _, err = cli("inspect", tmp_path / "digits", "--attribution", "--text", "zebra", "--out", tmp_path / "x")
    assert_one_line_error(code, err, "--text needs a text run", "image run")
    assert not (tmp_path / "x").exists()
