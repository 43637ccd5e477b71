"""Scaled dot-product attention and multi-head attention, written out the way the course derives them.

    out, weights = scaled_dot_product_attention(q, k, v, mask=keep, causal=True)

    attention(Q, K, V) = softmax(Q K^T / sqrt(d_k) + mask) V

tests/models/test_attention.py checks it against torch.nn.functional.scaled_dot_product_attention.
Masks follow torch's boolean convention: True = this query may attend to this key.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def causal_mask(t_q: int, t_k: int, device: torch.device | None = None) -> torch.Tensor:
    """(t_q, t_k) bool, True on and below the diagonal: position i sees positions <= i (torch's is_causal)."""
    return torch.ones(t_q, t_k, dtype=torch.bool, device=device).tril()


def scaled_dot_product_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None,
                                 causal: bool = False, dropout_p: float = 0.0,
                                 training: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """q (..., Tq, d), k (..., Tk, d), v (..., Tk, dv) -> (output (..., Tq, dv), weights (..., Tq, Tk)).

    `mask` broadcasts to (..., Tq, Tk): bool (True = attend) or float (added to the scores).
    A query whose keys are all masked gets NaN weights, exactly as torch's implementation does.
    """
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (..., Tq, Tk): similarity of each query to each key
    if causal:
        scores = scores.masked_fill(~causal_mask(q.shape[-2], k.shape[-2], q.device), float("-inf"))
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else scores + mask
    weights = scores.softmax(dim=-1)  # each row sums to 1: how much each key contributes to this query
    if dropout_p > 0 and training:
        weights = F.dropout(weights, dropout_p)
    return weights @ v, weights


class MultiHeadAttention(nn.Module):
    """h heads of size d_model/h attend in parallel; their outputs are concatenated and projected back."""

    def __init__(self, d_model: int, heads: int, dropout: float = 0.0):
        super().__init__()
        if d_model % heads:
            raise ValueError(f"d_model={d_model} must be divisible by heads={heads}")
        self.heads, self.dropout = heads, dropout
        self.qkv = nn.Linear(d_model, 3 * d_model)  # the three projections W_Q, W_K, W_V in one matmul
        self.out = nn.Linear(d_model, d_model)
        self.last_weights: torch.Tensor | None = None  # (B, h, T, T) of the last forward, for plotting

    def forward(self, x: torch.Tensor, pad: torch.Tensor | None = None, causal: bool = False) -> torch.Tensor:
        """x (B, T, d_model), pad (B, T) bool True = padding (never attended to) -> (B, T, d_model)."""
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)  # 3 x (B, h, T, hs)
        mask = None if pad is None else ~pad[:, None, None, :]  # (B, 1, 1, T): every query, every head
        y, w = scaled_dot_product_attention(q, k, v, mask, causal, self.dropout, self.training)
        self.last_weights = w.detach()
        return self.out(y.transpose(1, 2).reshape(b, t, d))  # (B, T, h, hs) -> (B, T, d_model)
