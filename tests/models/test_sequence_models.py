"""The sequence models: image rows as time steps, padding that changes nothing, order (in)sensitivity, units."""
from __future__ import annotations

import pytest
import torch

from trainlab.core.errors import UserError
from trainlab.core.schema import from_dict
from trainlab.models.catalog import MODELS
from trainlab.models.seqlayers import SequenceInput, lengths_of, pool

TEXT = {"vocab_size": 30, "pad_index": 0}


def model(name: str, input_shape: tuple, outputs: int = 3, info: dict | None = None, **params):
    torch.manual_seed(0)
    cfg = from_dict(MODELS.entry(name).config, params)
    return MODELS.get(name)(cfg, input_shape, outputs, **(info or {})).eval()


def padded(tokens: list[int], length: int) -> torch.Tensor:
    return torch.tensor([tokens + [0] * (length - len(tokens))])


def test_images_are_read_row_by_row():
    x = torch.arange(2 * 2 * 3 * 4, dtype=torch.float32).view(2, 2, 3, 4)  # (B, C, H, W)
    seq, pad = SequenceInput("rnn", (2, 3, 4), {}, None, 8)(x)
    assert seq.shape == (2, 3, 8) and pad is None  # H = 3 steps of C * W = 8 features
    torch.testing.assert_close(seq[1, 2], torch.cat([x[1, 0, 2], x[1, 1, 2]]))  # step 2 = row 2 of each channel


def test_lengths_and_masked_pooling():
    pad = torch.tensor([[False, False, True, True], [False, False, False, False], [True, True, True, True]])
    assert lengths_of(pad).tolist() == [2, 4, 1]
    h = torch.arange(3 * 4, dtype=torch.float32).view(3, 4, 1)
    assert pool(h, pad, "last")[:, 0].tolist() == [1.0, 7.0, 8.0]
    assert pool(h[:2], pad[:2], "mean")[:, 0].tolist() == [0.5, 5.5]
    assert pool(h[:2], pad[:2], "max")[:, 0].tolist() == [1.0, 7.0]


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("bidirectional, pooling", [(False, "last"), (True, "last"), (True, "mean")])
def test_rnn_packing_makes_padding_irrelevant(cell, bidirectional, pooling):
    """The same text padded to 6 or to 12 tokens gives the same output: the recurrence stops at its end."""
    m = model("rnn", (12,), info=TEXT, cell=cell, hidden=8, embed_dim=4, bidirectional=bidirectional, pooling=pooling)
    short = model("rnn", (6,), info=TEXT, cell=cell, hidden=8, embed_dim=4, bidirectional=bidirectional,
                  pooling=pooling)
    tokens = [5, 3, 9, 2]
    out = m(padded(tokens, 12))
    torch.testing.assert_close(short(padded(tokens, 6)), out)
    batch = torch.cat([padded(tokens, 12), padded([7] * 12, 12)])  # padded and full-length texts in one batch
    torch.testing.assert_close(m(batch)[:1], out)
    seq, h = m.rnn(m.input.embed(padded(tokens, 12)))  # what running over the pads would give instead
    h = h[0] if isinstance(h, tuple) else h
    feats = h[-m.dirs:].transpose(0, 1).reshape(1, -1) if pooling == "last" else seq.mean(1)
    assert not torch.allclose(m.head(feats), out)


@pytest.mark.parametrize("pooling", ["cls", "mean", "last"])
@pytest.mark.parametrize("positional", ["sinusoidal", "learned"])
def test_transformer_padding_is_masked(pooling, positional):
    m = model("transformer", (10,), info=TEXT, d_model=16, heads=2, ff_dim=32, dropout=0.0, pooling=pooling,
              positional=positional)
    x = padded([4, 8, 15, 16], 10)
    y = m(x)
    x_other_pads = x.clone()
    m.input.embed.weight.data[0] = 5.0  # even if <pad> had an embedding, masked positions could not matter
    torch.testing.assert_close(m(x_other_pads), y)


def test_transformer_needs_positions_to_see_order():
    tokens = torch.tensor([[3, 7, 1, 9, 4]])
    perm = tokens[:, [4, 2, 0, 3, 1]]
    blind = model("transformer", (5,), info=TEXT, d_model=16, heads=2, dropout=0.0, positional="none")
    torch.testing.assert_close(blind(perm), blind(tokens))  # a bag of tokens: order cannot matter
    seeing = model("transformer", (5,), info=TEXT, d_model=16, heads=2, dropout=0.0)
    assert not torch.allclose(seeing(perm), seeing(tokens))


def test_causal_transformer_last_step_sees_everything_earlier_steps_do_not():
    m = model("transformer", (6, 2), d_model=16, heads=2, dropout=0.0, causal=True, pooling="last")
    x = torch.randn(1, 6, 2)
    h = m.input(x)[0] + m.pos[:6]
    for block in m.blocks:
        h2 = block(h, None, True)
        changed = h.clone()
        changed[:, 4:] = 0
        torch.testing.assert_close(block(changed, None, True)[:, :4], h2[:, :4])  # positions < 4 ignore the future
        h = h2
    x2 = x.clone()
    x2[:, 0] += 1.0
    assert not torch.allclose(m(x2), m(x))  # ...while the pooled last step depends on the first one


@pytest.mark.parametrize("name", ["rnn", "transformer"])
def test_forecasts_come_out_in_the_data_units(name):
    info = {"target_mean": [100.0, -3.0], "target_std": [20.0, 0.5]}
    m = model(name, (12, 1), 2, info)
    torch.nn.init.zeros_(m.head.weight)
    torch.nn.init.zeros_(m.head.bias)
    torch.testing.assert_close(m(torch.randn(4, 12, 1)), torch.tensor([[100.0, -3.0]] * 4))
    assert set(m.state_dict()) >= {"scale.mean", "scale.std"}  # saved with the weights


def test_bad_model_options_are_user_errors():
    with pytest.raises(UserError, match="divisible"):
        model("transformer", (5,), info=TEXT, d_model=10, heads=4)
    with pytest.raises(UserError, match="pooling=last"):
        model("transformer", (5,), info=TEXT, causal=True, pooling="cls")
    with pytest.raises(UserError, match="needs sequence"):
        model("rnn", (20,))
    with pytest.raises(UserError, match="expected 'rnn' or 'lstm' or 'gru'"):
        from_dict(MODELS.entry("rnn").config, {"cell": "transformer"}, "model")
