"""What a user holds -> the raw batch a run's model takes (its samples as the dataset stores them).

    as_batch(run.data, "photo.jpg")                  # image runs: paths, PIL images, numpy arrays, tensors,
    as_batch(run.data, [pil_image, "b.png"])         #   one image or a batch, any size: decoded like training
    as_batch(run.data, ["a great film", "dull"])     # text runs: strings (or token ids)
    as_batch(run.data, {"age": 41, "region": "north"})   # tabular runs: a dict, a DataFrame, a CSV path or features

Images follow each library's convention: numpy arrays are (H, W, C) like PIL's, tensors (C, H, W) like
torch's; a batch adds a leading dimension. uint8 arrays are 0..255 and go through PIL exactly as an image
file would (so `np.asarray(Image.open(f))` predicts like the file f); float arrays are 0..1 and are
resized with torch's antialiased bilinear resize.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torchvision.transforms.v2 import functional as TF

from trainlab.core.errors import UserError
from trainlab.data.images import decode_image, load_image
from trainlab.data.tabular import encode_rows, read_table
from trainlab.data.text import encode, text_warnings

CHANNELS = (1, 3, 4)  # gray, RGB, RGBA


def as_batch(data: dict, x) -> torch.Tensor:
    """Any supported input for a run described by `data` (data.json) -> its raw batch (B, *raw_shape)."""
    kind = data["kind"]
    if kind == "image":
        return image_batch(x, data["raw_shape"])
    if kind == "text":
        return text_batch(x, data["meta"])
    if kind == "tabular":
        return table_batch(x, data["meta"], data["raw_shape"])
    return _array_batch(x, data["raw_shape"], torch.float32)


# ----------------------------------------------------------------------------- images

def image_batch(x, raw_shape: list[int]) -> torch.Tensor:
    """-> uint8 (B, C, H, W), or float 0..1 (B, C, H, W) when float arrays were given."""
    c, h, w = raw_shape
    if isinstance(x, (str, Path)):
        return load_image(x, (h, w), c).unsqueeze(0)
    if isinstance(x, Image.Image):
        return decode_image(x, (h, w), c).unsqueeze(0)
    if isinstance(x, (list, tuple)):
        if not x:
            raise UserError("no images given")
        parts = [image_batch(item, raw_shape) for item in x]
        if any(p.is_floating_point() for p in parts):  # one batch, one dtype
            parts = [p.float() / 255.0 if p.dtype == torch.uint8 else p for p in parts]
        return torch.cat(parts)
    if isinstance(x, np.ndarray):
        return _array_images(torch.from_numpy(np.array(x)), raw_shape, channels_last=True)  # a copy: may be read-only
    if isinstance(x, torch.Tensor):
        return _array_images(x.detach().cpu(), raw_shape, channels_last=False)
    raise UserError(f"cannot predict a {type(x).__name__}: give image paths, PIL images, numpy arrays or tensors")


def _nchw(t: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """(H, W), (C, H, W) / (H, W, C), (B, H, W) or (B, C, H, W) / (B, H, W, C) -> (B, C, H, W)."""
    if t.ndim == 2:
        return t[None, None]
    if t.ndim == 3:
        first, last = t.shape[0] in CHANNELS, t.shape[-1] in CHANNELS
        if last and (channels_last or not first):
            return t.permute(2, 0, 1)[None]
        return t[None] if first else t[:, None]  # (C, H, W) one image, else (B, H, W) grayscale
    if t.ndim == 4:
        second, last = t.shape[1] in CHANNELS, t.shape[-1] in CHANNELS
        return t.permute(0, 3, 1, 2) if last and (channels_last or not second) else t
    raise UserError(f"cannot read an array of shape {tuple(t.shape)} as images: expected (H, W), (H, W, C) or "
                    f"(C, H, W), or a batch of those")


def _array_images(t: torch.Tensor, raw_shape: list[int], channels_last: bool) -> torch.Tensor:
    c, h, w = raw_shape
    t = _nchw(t, channels_last)
    if t.shape[1] not in CHANNELS:
        raise UserError(f"images with {t.shape[1]} channels: expected 1 (gray), 3 (RGB) or 4 (RGBA)")
    if t.dtype == torch.bool or t.is_complex():
        raise UserError(f"cannot read {t.dtype} arrays as images: give uint8 (0..255) or float (0..1)")
    if not t.is_floating_point():
        if t.numel() and (t.min() < 0 or t.max() > 255):
            raise UserError(f"integer images must be 0..255; got values in [{int(t.min())}, {int(t.max())}]")
        t = t.to(torch.uint8)
        if tuple(t.shape[1:]) == (c, h, w):
            return t
        # through PIL, exactly as an image file with these pixels would be decoded
        # (H, W) -> mode L, (H, W, 3) -> RGB, (H, W, 4) -> RGBA
        return torch.stack([decode_image(Image.fromarray(img.permute(1, 2, 0).squeeze(-1).numpy()), (h, w), c)
                            for img in t])
    t = t.float()
    if t.numel() and (t.min() < 0 or t.max() > 1):
        raise UserError(f"float images are taken as 0..1, before the run's own normalization; got values in "
                        f"[{float(t.min()):.3g}, {float(t.max()):.3g}] (pass uint8 for 0..255)")
    t = t[:, :3] if t.shape[1] == 4 else t  # drop alpha, as PIL's convert does
    if t.shape[1] != c:
        t = TF.rgb_to_grayscale(t) if c == 1 else t.expand(-1, 3, -1, -1)
    return TF.resize(t, [h, w], antialias=True) if tuple(t.shape[-2:]) != (h, w) else t


# ----------------------------------------------------------------------------- texts, tables, sequences

def text_batch(x, meta: dict) -> torch.Tensor:
    """A string or a list of strings -> (B, max_len) token ids (token-id tensors pass through)."""
    if isinstance(x, (torch.Tensor, np.ndarray)):
        t = torch.as_tensor(x)
        if t.is_floating_point():
            raise UserError("a text run takes strings or integer token ids, not float arrays")
        return (t[None] if t.ndim == 1 else t).long()
    texts = [x] if isinstance(x, str) else list(x)
    if not all(isinstance(t, str) for t in texts):
        raise UserError("a text run takes a string or a list of strings")
    for i, why in text_warnings(texts, meta).items():
        warnings.warn(f"text {i}: {why}", UserWarning, stacklevel=3)
    return encode(texts, meta)


def table_batch(x, meta: dict, raw_shape: list[int]) -> torch.Tensor:
    """A dict (one row), a list of dicts, a DataFrame or a CSV path -> encoded features (B, F) with the run's
    categories and missing-value policy; numeric arrays are taken as already encoded features."""
    if isinstance(x, (np.ndarray, torch.Tensor)):
        return _array_batch(x, raw_shape, torch.float32)
    if isinstance(x, (str, Path)):
        x = read_table(x)
    elif isinstance(x, dict):
        x = pd.DataFrame([x])
    elif isinstance(x, (list, tuple)) and x and all(isinstance(r, dict) for r in x):
        x = pd.DataFrame(list(x))
    if not isinstance(x, pd.DataFrame):
        raise UserError("a tabular run takes a dict, a list of dicts, a DataFrame, a CSV path or a feature array")
    absent = [c for c in meta["raw_features"] if c not in x.columns]
    if absent:
        raise UserError(f"feature column {absent[0]!r} missing; expected columns: {', '.join(meta['raw_features'])}")
    values, errors, warns = encode_rows(x.reset_index(drop=True), meta)
    if errors:
        i = min(errors)
        raise UserError(f"row {i} cannot be predicted: {errors[i]} ({len(errors)} such rows)")
    for i, why in warns.items():
        warnings.warn(f"row {i}: {why}", UserWarning, stacklevel=3)
    return torch.from_numpy(values)


def _array_batch(x, raw_shape: list[int], dtype: torch.dtype) -> torch.Tensor:
    """(*raw_shape) one sample or (B, *raw_shape) a batch -> (B, *raw_shape)."""
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).detach().cpu().to(dtype)
    if tuple(t.shape) == tuple(raw_shape):
        return t[None]
    if tuple(t.shape[1:]) != tuple(raw_shape):
        raise UserError(f"input of shape {tuple(t.shape)}: this run takes {tuple(raw_shape)} per sample "
                        f"(or a batch of them)")
    return t
