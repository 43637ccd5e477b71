"""trainlab's scaled dot-product attention against torch's, and the masks of multi-head attention."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from trainlab.models.attention import MultiHeadAttention, causal_mask, scaled_dot_product_attention


def qkv(b=2, h=3, tq=5, tk=5, d=8, dv=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(b, h, tq, d, generator=g), torch.randn(b, h, tk, d, generator=g),
            torch.randn(b, h, tk, dv, generator=g))


def bool_mask(b, tq, tk, seed=1):
    """Random keep-mask (B, 1, Tq, Tk) with at least one key kept per query."""
    m = torch.rand(b, 1, tq, tk, generator=torch.Generator().manual_seed(seed)) > 0.4
    m[..., 0] = True
    return m


@pytest.mark.parametrize("tq, tk", [(5, 5), (3, 7)])
def test_matches_torch_without_mask(tq, tk):
    q, k, v = qkv(tq=tq, tk=tk, dv=4)
    out, w = scaled_dot_product_attention(q, k, v)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 3, tq))  # each query's weights are a distribution


@pytest.mark.parametrize("kind", ["bool", "float"])
def test_matches_torch_with_mask(kind):
    q, k, v = qkv(tq=4, tk=6)
    mask = bool_mask(2, 4, 6)
    if kind == "float":  # an additive mask: large negative = (almost) masked, other values shift the scores
        mask = torch.where(mask, torch.randn(mask.shape, generator=torch.Generator().manual_seed(2)), -1e9)
    out, w = scaled_dot_product_attention(q, k, v, mask)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask), atol=1e-5, rtol=1e-5)
    if kind == "bool":
        assert (w[~mask.expand_as(w)] == 0).all()  # masked keys get exactly zero weight


def test_matches_torch_causal_and_causal_with_padding():
    q, k, v = qkv(tq=6, tk=6)
    out, w = scaled_dot_product_attention(q, k, v, causal=True)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, is_causal=True), atol=1e-5, rtol=1e-5)
    assert (w.triu(1) == 0).all()  # nothing from the future
    pad = torch.zeros(2, 1, 1, 6, dtype=torch.bool)
    pad[1, ..., 4:] = True  # the second sequence has 2 padding tokens at its end
    keep = ~pad & causal_mask(6, 6)
    out, _ = scaled_dot_product_attention(q, k, v, ~pad, causal=True)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=keep), atol=1e-5, rtol=1e-5)


def test_multi_head_ignores_padding_and_the_future():
    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 4).eval()
    x = torch.randn(1, 6, 16)
    pad = torch.tensor([[False, False, False, False, True, True]])
    y = mha(x, pad)
    x2 = x.clone()
    x2[:, 4:] = torch.randn(1, 2, 16)  # change only what sits at padded positions
    torch.testing.assert_close(mha(x2, pad)[:, :4], y[:, :4])
    assert not torch.allclose(mha(x2)[:, :4], mha(x)[:, :4])  # without the mask the change would leak in
    yc = mha(x, causal=True)
    x3 = x.clone()
    x3[:, 3:] = 0  # change the future of positions 0..2
    torch.testing.assert_close(mha(x3, causal=True)[:, :3], yc[:, :3])
    assert mha.last_weights.shape == (1, 4, 6, 6)
