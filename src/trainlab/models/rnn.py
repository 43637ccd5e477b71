"""Recurrent networks (RNN, LSTM, GRU) for forecasting and sequence classification.

    model: {name: rnn, cell: lstm, hidden: 64, layers: 2, bidirectional: false, pooling: last}

Inputs: time-series windows (T, F), images read row by row (H steps of C*W features) or token ids
(embedded; padded texts are packed so the recurrence stops at each text's real end). The head reads the
final hidden state (`last`; both directions when bidirectional) or pools all steps (`mean`, `max`).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from trainlab.models.options import RNNConfig
from trainlab.models.seqlayers import SequenceInput, lengths_of, output_scale, pool

CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


class RNNModel(nn.Module):
    def __init__(self, cfg: RNNConfig, input_shape: tuple, num_outputs: int, info: dict):
        super().__init__()
        self.pooling, self.dirs = cfg.pooling, 2 if cfg.bidirectional else 1
        self.input = SequenceInput("rnn", input_shape, info, None, cfg.embed_dim)
        self.rnn = CELLS[cfg.cell](self.input.dim, cfg.hidden, cfg.layers, batch_first=True,
                                   dropout=cfg.dropout if cfg.layers > 1 else 0.0, bidirectional=cfg.bidirectional)
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cfg.hidden * self.dirs, num_outputs)
        self.scale = output_scale(info, num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq, pad = self.input(x)  # (B, T, F), (B, T) or None
        if pad is None:
            out, h = self.rnn(seq)
        else:
            # packing: each sequence stops at its own length, so padding never reaches the state
            # (lengths must live on the CPU: one host copy per batch)
            packed = pack_padded_sequence(seq, lengths_of(pad).cpu(), batch_first=True, enforce_sorted=False)
            out, h = self.rnn(packed)
            out, _ = pad_packed_sequence(out, batch_first=True, total_length=seq.shape[1])  # (B, T, dirs*H)
        if self.pooling == "last":
            h = h[0] if isinstance(h, tuple) else h  # LSTM returns (h_n, c_n); h_n is (layers*dirs, B, H)
            feats = h[-self.dirs:].transpose(0, 1).reshape(seq.shape[0], -1)  # top layer, both directions: (B, dirs*H)
        else:
            feats = pool(out, pad, self.pooling)
        return self.scale(self.head(self.drop(feats)))


def build_rnn(cfg: RNNConfig, input_shape: tuple, num_outputs: int, **info) -> nn.Module:
    """RNN/LSTM/GRU over time steps (series windows, image rows, tokens); forecasts or class logits."""
    return RNNModel(cfg, input_shape, num_outputs, info)
