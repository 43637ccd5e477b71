"""A Transformer encoder (pre-LayerNorm) for text classification, sequence classification and forecasting.

    model: {name: transformer, d_model: 64, heads: 4, layers: 2, ff_dim: 128, positional: sinusoidal, pooling: cls}

Each block: x + Attention(LN(x)), then x + FeedForward(LN(x)). Attention is trainlab's own
(models/attention.py). Positions come from fixed sinusoids (Vaswani et al. 2017) or a learned table;
padding is masked out of every attention and pooling; `causal` lets position i see positions <= i only.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from trainlab.core.errors import UserError
from trainlab.models.attention import MultiHeadAttention
from trainlab.models.options import TransformerConfig
from trainlab.models.seqlayers import SequenceInput, output_scale, pool


def sinusoidal_positions(steps: int, d_model: int) -> torch.Tensor:
    """(steps, d_model): sin on even, cos on odd dimensions, wavelengths from 2*pi to 10000*2*pi."""
    pos = torch.arange(steps, dtype=torch.float32).unsqueeze(1)  # (T, 1)
    freq = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))  # (d/2,)
    pe = torch.zeros(steps, d_model)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq[: d_model // 2])
    return pe


class EncoderBlock(nn.Module):
    def __init__(self, d_model: int, heads: int, ff_dim: int, dropout: float):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.attn = MultiHeadAttention(d_model, heads, dropout)
        self.ff = nn.Sequential(nn.Linear(d_model, ff_dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(ff_dim, d_model))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, pad: torch.Tensor | None, causal: bool) -> torch.Tensor:
        x = x + self.drop(self.attn(self.ln1(x), pad, causal))  # tokens exchange information
        return x + self.drop(self.ff(self.ln2(x)))  # each token is transformed on its own


class TransformerModel(nn.Module):
    def __init__(self, cfg: TransformerConfig, input_shape: tuple, num_outputs: int, info: dict):
        super().__init__()
        self.pooling, self.causal = cfg.pooling, cfg.causal
        self.input = SequenceInput("transformer", input_shape, info, cfg.d_model, cfg.d_model)
        steps = self.input.steps + (cfg.pooling == "cls")
        self.cls = nn.Parameter(torch.randn(1, 1, cfg.d_model) * 0.02) if cfg.pooling == "cls" else None
        if cfg.positional == "learned":
            self.pos = nn.Parameter(torch.randn(steps, cfg.d_model) * 0.02)
        else:
            none = cfg.positional == "none"
            pe = torch.zeros(steps, cfg.d_model) if none else sinusoidal_positions(steps, cfg.d_model)
            self.register_buffer("pos", pe, persistent=False)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(EncoderBlock(cfg.d_model, cfg.heads, cfg.ff_dim, cfg.dropout)
                                    for _ in range(cfg.layers))
        self.ln = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, num_outputs)
        self.scale = output_scale(info, num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, pad = self.input(x)  # (B, T, d), (B, T) or None
        if self.cls is not None:  # a learned token in front that attends to the whole sequence
            h = torch.cat([self.cls.expand(h.shape[0], -1, -1), h], dim=1)
            if pad is not None:
                pad = torch.cat([pad.new_zeros(h.shape[0], 1), pad], dim=1)
        if h.shape[1] > len(self.pos):
            raise UserError(f"a sequence of {h.shape[1]} steps is longer than the model's {len(self.pos)} positions")
        h = self.drop(h + self.pos[: h.shape[1]])
        for block in self.blocks:
            h = block(h, pad, self.causal)
        h = self.ln(h)
        feats = h[:, 0] if self.cls is not None else pool(h, pad, self.pooling)  # (B, d)
        return self.scale(self.head(feats))


def build_transformer(cfg: TransformerConfig, input_shape: tuple, num_outputs: int, **info) -> nn.Module:
    """Transformer encoder (multi-head self-attention + feed-forward blocks); class logits or forecasts."""
    if cfg.d_model % cfg.heads:
        raise UserError(f"model.d_model={cfg.d_model} must be divisible by model.heads={cfg.heads}")
    if cfg.causal and cfg.pooling == "cls":
        raise UserError("model.pooling=cls needs causal=false (a CLS token in front would see only itself); "
                        "use pooling=last with causal=true")
    return TransformerModel(cfg, input_shape, num_outputs, info)
