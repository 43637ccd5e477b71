"""Layers the sequence models (rnn, transformer) share: inputs as (B, T, F), padding masks, pooling, output scale.

Three kinds of input become a sequence of feature vectors:
- sequence (B, T, F) float: time-series windows, used as they are;
- image (B, C, H, W): read row by row, H steps of C*W features (digits: 8 steps of 8, MNIST: 28 of 28);
- text (B, L) long token ids: an embedding; `pad_index` marks padding, which the models never attend to.
"""
from __future__ import annotations

import torch
from torch import nn

from trainlab.core.errors import UserError


def sequence_shape(name: str, input_shape: tuple, info: dict) -> tuple[int, int | None]:
    """-> (steps T, features per step F); F is None for token ids (the model picks the embedding size)."""
    if "vocab_size" in info:
        if len(input_shape) != 1:
            raise UserError(f"model {name!r}: token ids must be (L,), the data gives {tuple(input_shape)}")
        return int(input_shape[0]), None
    if len(input_shape) == 3:
        c, h, w = input_shape
        return int(h), int(c * w)
    if len(input_shape) == 2:
        return int(input_shape[0]), int(input_shape[1])
    raise UserError(f"model {name!r} needs sequence (T, F), text (L,) or image (C, H, W) inputs; "
                    f"the data gives shape {tuple(input_shape)}")


class SequenceInput(nn.Module):
    """Raw batch -> (features (B, T, dim), pad (B, T) bool True = padding, or None when nothing is padded).

    `dim` None keeps float features as they are (an RNN reads them directly); an int projects them
    with a Linear layer (a Transformer needs d_model). Token ids always go through an embedding of `embed_dim`.
    """

    def __init__(self, name: str, input_shape: tuple, info: dict, dim: int | None, embed_dim: int):
        super().__init__()
        self.steps, features = sequence_shape(name, input_shape, info)
        self.pad_index = info.get("pad_index", 0)
        self.text = features is None
        if self.text:
            self.embed = nn.Embedding(int(info["vocab_size"]), embed_dim, padding_idx=self.pad_index)
            self.dim = embed_dim
        else:
            self.embed = nn.Linear(features, dim) if dim else nn.Identity()
            self.dim = dim or features

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.text:
            # token ids are long; torchinfo (trainlab summary) feeds a float dummy batch, which becomes all <pad>
            x = x.long() if x.is_floating_point() else x
            pad = x == self.pad_index  # (B, L)
            # an empty text (all padding) would leave attention nothing to look at: let it see its pads
            pad = pad & ~pad.all(1, keepdim=True)
            return self.embed(x), pad
        if x.ndim == 4:  # (B, C, H, W) -> (B, H, C*W): each image row is one time step
            x = x.permute(0, 2, 1, 3).reshape(x.shape[0], x.shape[2], -1)
        return self.embed(x), None


def lengths_of(pad: torch.Tensor) -> torch.Tensor:
    """(B, T) padding mask -> (B,) lengths: up to the last real token (right padding; inner pads stay tokens)."""
    pos = torch.arange(1, pad.shape[1] + 1, device=pad.device)
    return (pos * ~pad).amax(1).clamp_min(1)


def pool(h: torch.Tensor, pad: torch.Tensor | None, how: str) -> torch.Tensor:
    """(B, T, D) -> (B, D): the last real step, the mean or the max over real steps (padding excluded)."""
    if how == "last":
        if pad is None:
            return h[:, -1]
        idx = (lengths_of(pad) - 1).view(-1, 1, 1).expand(-1, 1, h.shape[-1])  # (B, 1, D)
        return h.gather(1, idx).squeeze(1)
    keep = torch.ones(h.shape[:2], dtype=torch.bool, device=h.device) if pad is None else ~pad
    if how == "mean":
        w = keep.unsqueeze(-1).to(h.dtype)
        return (h * w).sum(1) / w.sum(1).clamp_min(1)
    if how == "max":
        return h.masked_fill(~keep.unsqueeze(-1), float("-inf")).amax(1)
    raise ValueError(how)


class OutputScale(nn.Module):
    """Forecasts in the data's units: out * std + mean, with mean/std of the training targets.

    The network then learns targets of mean 0 and std 1 (easy to reach from its initialization) while
    loss and metrics stay in the original units. The statistics come from the data (`model_info`), fitted
    on the training windows only, and are stored as buffers so a loaded run predicts the same values.
    """

    def __init__(self, mean: list[float], std: list[float]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.std + self.mean


def output_scale(info: dict, num_outputs: int) -> nn.Module:
    """OutputScale when the data gives target statistics of the right size (forecasting), else identity."""
    mean, std = info.get("target_mean"), info.get("target_std")
    if mean is None or std is None or len(mean) != num_outputs or len(std) != num_outputs:
        return nn.Identity()
    return OutputScale(mean, std)
