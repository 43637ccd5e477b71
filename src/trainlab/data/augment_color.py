"""Batched random photometric augmentations (blur, colour jitter) with per-sample random parameters.

Same contract as trainlab.data.augment (the geometric ones): `sample_params(x, generator)` draws every
random number from `generator`, `apply(x, params)` is deterministic; x is float (B, C, H, W).
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from trainlab.data.augment import (
    BatchAugment,
    Number,
    Params,
    check_range,
    pair_of_ints,
    uniform,
)

# ----------------------------------------------------------------------------------------------- blur


def _gaussian_kernels(kernel_size: int, sigma: Tensor) -> Tensor:
    """(B, k) normalized 1-D Gaussian kernels, one per sigma (B,); torchvision's softmax formulation."""
    lim = (kernel_size - 1) / (2.0 * math.sqrt(2.0))
    pos = torch.linspace(-lim, lim, steps=kernel_size, dtype=sigma.dtype, device=sigma.device)  # (k,)
    return torch.softmax(-(pos.view(1, -1) / sigma.view(-1, 1)).pow(2), dim=1)


class GaussianBlur(BatchAugment):
    """Per-sample Gaussian blur: sigma ~ U[sigma_min, sigma_max] per sample, reflect padding like torchvision.

    kernel_size is an odd int or (kx, ky) like torchvision (x = width direction first). The 2-D kernel is
    applied as two 1-D grouped convolutions (separable), which equals torchvision's 2-D conv up to float rounding.
    """

    def __init__(self, kernel_size: int | Sequence[int], sigma: Number | Sequence[Number] = (0.1, 2.0)) -> None:
        self.kernel_size = pair_of_ints(kernel_size, "kernel_size")
        if any(k <= 0 or k % 2 == 0 for k in self.kernel_size):
            raise ValueError(f"kernel_size must be odd and positive, got {kernel_size!r}")
        if isinstance(sigma, Sequence) and len(sigma) == 1:
            sigma = (sigma[0], sigma[0])
        lo, hi = (float(sigma), float(sigma)) if isinstance(sigma, numbers.Real) else check_range(sigma, "sigma")
        if not 0.0 < lo <= hi:
            raise ValueError(f"sigma must be positive and of the form (min, max), got {sigma!r}")
        self.sigma = (lo, hi)

    def sample_params(self, x: Tensor, generator: torch.Generator) -> Params:
        return {"sigma": uniform(*self.sigma, x.shape[0], generator, x.device)}

    def apply(self, x: Tensor, params: Params) -> Tensor:
        n, channels, height, width = x.shape
        kx, ky = self.kernel_size
        if kx // 2 >= width or ky // 2 >= height:
            raise ValueError(f"kernel_size {self.kernel_size} needs reflect padding wider than the image "
                             f"{(height, width)}")
        sigma = params["sigma"].to(x.dtype)
        # One group per (sample, channel): each sample's kernel is repeated over its C channels.
        wx = _gaussian_kernels(kx, sigma).repeat_interleave(channels, dim=0).view(n * channels, 1, 1, kx)
        wy = _gaussian_kernels(ky, sigma).repeat_interleave(channels, dim=0).view(n * channels, 1, ky, 1)
        out = F.pad(x.reshape(1, n * channels, height, width), [kx // 2, kx // 2, ky // 2, ky // 2], mode="reflect")
        out = F.conv2d(F.conv2d(out, wx, groups=n * channels), wy, groups=n * channels)  # (1, B*C, H, W)
        return out.view(n, channels, height, width)


# ----------------------------------------------------------------------------------------------- color


def _blend(x: Tensor, other: Tensor, ratio: Tensor) -> Tensor:
    """ratio * x + (1 - ratio) * other, clamped to [0, 1] like torchvision's float path; ratio is (B,)."""
    r = ratio.view(-1, 1, 1, 1)
    return (x * r + other * (1.0 - r)).clamp(0.0, 1.0)


def _grayscale(x: Tensor) -> Tensor:
    """(B, 3, H, W) RGB -> (B, 1, H, W) luma with torchvision's ITU-R 601 weights."""
    r, g, b = x.unbind(dim=1)
    return (r * 0.2989 + g * 0.587 + b * 0.114).unsqueeze(1)


def _rgb_to_hsv(x: Tensor) -> Tensor:
    """(B, 3, H, W) RGB in [0, 1] -> HSV with hue in [0, 1) (torchvision's formulas, NaN-free)."""
    r, g, _ = x.unbind(dim=1)
    minc, maxc = torch.aminmax(x, dim=1)  # (B, H, W)
    flat = maxc == minc  # gray pixels: hue and saturation are 0; avoid dividing by 0
    s = (maxc - minc) / torch.where(flat, torch.ones_like(maxc), maxc)
    span = torch.where(flat, torch.ones_like(maxc), maxc - minc).unsqueeze(1)
    rc, gc, bc = ((maxc.unsqueeze(1) - x) / span).unbind(dim=1)
    is_r, is_g = maxc == r, (maxc == g) & (maxc != r)
    is_b = ~is_r & ~is_g
    h = (bc - gc) * is_r + (2.0 + rc - bc) * is_g + (4.0 + gc - rc) * is_b
    h = (h * (1.0 / 6.0) + 1.0).fmod(1.0)
    return torch.stack((h, s, maxc), dim=1)


def _hsv_to_rgb(x: Tensor) -> Tensor:
    """(B, 3, H, W) HSV -> RGB; picks each channel from (v, p, q, t) by hue sector like torchvision."""
    h, s, v = x.unbind(dim=1)
    h6 = h * 6.0
    sector = torch.floor(h6)
    f = h6 - sector
    sector = sector.long().remainder(6)  # (B, H, W)
    p = ((1.0 - s) * v).clamp(0.0, 1.0)
    q = ((1.0 - s * f) * v).clamp(0.0, 1.0)
    t = ((1.0 - s + s * f) * v).clamp(0.0, 1.0)
    vpqt = torch.stack((v, p, q, t), dim=1)  # (B, 4, H, W)
    table = torch.tensor([[0, 2, 1, 1, 3, 0], [3, 0, 0, 2, 1, 1], [1, 1, 3, 0, 0, 2]], device=x.device)
    select = table[:, sector].permute(1, 0, 2, 3)  # (B, 3, H, W) index into vpqt per output channel
    return vpqt.gather(1, select)


def _jitter_range(value: Number | Sequence[Number] | None, name: str, center: float,
                  bound: tuple[float, float]) -> tuple[float, float] | None:
    """torchvision ColorJitter._check_input: b -> [max(0, c - b), c + b]; (min, max) kept; no-op range -> None."""
    if value is None:
        return None
    lo, hi = check_range(value, name, symmetric_about=center)
    if isinstance(value, numbers.Real) and center == 1.0:
        lo = max(lo, 0.0)
    if not bound[0] <= lo <= hi <= bound[1]:
        raise ValueError(f"{name} values must lie in {bound} and be increasing, got {(lo, hi)}")
    return None if lo == hi == center else (lo, hi)


class ColorJitter(BatchAugment):
    """Per-sample brightness/contrast/saturation/hue factors with torchvision's ranges and formulas.

    Differences: the four adjustments run in the fixed order brightness, contrast, saturation, hue (torchvision
    draws a random order per call). Each step clamps to [0, 1] like torchvision's float path. Only 1- or
    3-channel batches are accepted; for 1 channel saturation and hue are skipped, as torchvision does.
    """

    def __init__(self, brightness: Number | Sequence[Number] | None = None,
                 contrast: Number | Sequence[Number] | None = None,
                 saturation: Number | Sequence[Number] | None = None,
                 hue: Number | Sequence[Number] | None = None) -> None:
        self.brightness = _jitter_range(brightness, "brightness", 1.0, (0.0, math.inf))
        self.contrast = _jitter_range(contrast, "contrast", 1.0, (0.0, math.inf))
        self.saturation = _jitter_range(saturation, "saturation", 1.0, (0.0, math.inf))
        self.hue = _jitter_range(hue, "hue", 0.0, (-0.5, 0.5))

    def sample_params(self, x: Tensor, generator: torch.Generator) -> Params:
        params = {}
        for name in ("brightness", "contrast", "saturation", "hue"):
            rng = getattr(self, name)
            if rng is not None:
                params[name] = uniform(*rng, x.shape[0], generator, x.device)  # (B,)
        return params

    def apply(self, x: Tensor, params: Params) -> Tensor:
        channels = x.shape[1]
        if channels not in (1, 3):
            raise ValueError(f"ColorJitter expects 1 or 3 channels, got {channels}")
        out = x.clone()
        if "brightness" in params:
            out = (out * params["brightness"].to(x.dtype).view(-1, 1, 1, 1)).clamp(0.0, 1.0)
        if "contrast" in params:
            gray = _grayscale(out) if channels == 3 else out
            out = _blend(out, gray.mean(dim=(1, 2, 3), keepdim=True), params["contrast"].to(x.dtype))
        if "saturation" in params and channels == 3:
            out = _blend(out, _grayscale(out), params["saturation"].to(x.dtype))
        if "hue" in params and channels == 3:
            hsv = _rgb_to_hsv(out)
            hue = (hsv[:, 0] + params["hue"].to(x.dtype).view(-1, 1, 1)).remainder(1.0)
            out = _hsv_to_rgb(torch.cat([hue.unsqueeze(1), hsv[:, 1:]], dim=1))
        return out
