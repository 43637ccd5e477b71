"""The deterministic transform steps on whole batches: uint8 -> float, normalize, resize, crop, grayscale.

    Normalize()(x)            # x: (B, C, H, W) or (B, F); mean/std fitted on training inputs by Pipeline.fit
    resize(32)(x)             # torchvision.transforms.v2.functional, imported on first use

data/catalog.py registers them by name (with the random augmentations of augment.py and augment_color.py);
data/transforms.py builds a config's pipeline from them.
"""
from __future__ import annotations

import torch

from trainlab.core.errors import UserError


class ToFloat:
    """uint8 0..255 -> float32 0..1 (what ToTensor / ToDtype(float32, scale=True) do)."""

    random = False

    def __call__(self, x: torch.Tensor, g=None) -> torch.Tensor:
        return x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()


class Normalize:
    """(x - mean) / std per channel (images), per feature (tables, sequences); `auto` fits on training data."""

    random = False

    def __init__(self, mean: list[float] | str = "auto", std: list[float] | str = "auto"):
        if (mean == "auto") != (std == "auto"):
            raise UserError("normalize: give both mean and std, or neither (auto = fit on the training split)")
        self.mean = None if mean == "auto" else _numbers("mean", mean)
        self.std = None if std == "auto" else _numbers("std", std)
        if self.std is not None and (self.std <= 0).any():
            raise UserError(f"normalize: std must be > 0, got {std}")

    @staticmethod
    def _dims(x: torch.Tensor) -> tuple[int, ...]:
        return (0, 2, 3) if x.ndim == 4 else tuple(range(x.ndim - 1))  # keep channels / last (feature) dim

    def fit(self, x: torch.Tensor) -> None:
        """Mean/std over the training data x, in float64 chunks to stay exact and small.

        Given RGB statistics (a pretrained model's) and 1-channel images, their average is used: the model's
        stem is adapted to grayscale by summing its RGB filters (timm's in_chans=1), as if gray were R=G=B.
        """
        if self.mean is not None:
            if x.ndim == 4 and x.shape[1] == 1 and len(self.mean) == 3:
                self.mean, self.std = self.mean.mean(0, keepdim=True), self.std.mean(0, keepdim=True)
            return
        dims = self._dims(x)
        total = sq = 0.0
        for chunk in x.split(8192):
            c = chunk.double()
            total = total + c.sum(dims)
            sq = sq + (c * c).sum(dims)
        count = x.numel() / (x.shape[1] if x.ndim == 4 else x.shape[-1])
        mean = total / count
        std = (sq / count - mean * mean).clamp_min(0).sqrt()
        self.mean, self.std = mean.float(), torch.where(std > 1e-8, std, torch.ones_like(std)).float()

    def fit_bytes(self, x: torch.Tensor) -> None:
        """The statistics fit(ToFloat()(x)) gives, for uint8 images x (N, C, H, W), from each channel's histogram
        of its 256 byte values: exact in float64 without a float copy (MNIST: 0.03 s instead of 0.3 s)."""
        if self.mean is not None:
            return self.fit(x)  # given statistics: only the shape matters
        values = (torch.arange(256, dtype=torch.float32) / 255.0).double()  # what ToFloat makes of each byte
        counts = torch.stack([torch.bincount(x[:, c].reshape(-1), minlength=256) for c in range(x.shape[1])])
        counts = counts.double()  # (C, 256)
        n = counts.sum(1, keepdim=True)
        mean = (counts * values).sum(1, keepdim=True) / n  # (C, 1)
        std = ((counts * (values - mean) ** 2).sum(1) / n.squeeze(1)).sqrt()
        self.mean, self.std = mean.squeeze(1).float(), torch.where(std > 1e-8, std, torch.ones_like(std)).float()

    def _shape(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return t.to(x.device).view(-1, 1, 1) if x.ndim == 4 else t.to(x.device)

    def __call__(self, x: torch.Tensor, g=None) -> torch.Tensor:
        if self.mean is None:
            raise RuntimeError("normalize: call Pipeline.fit on training data first")
        if not x.is_floating_point():
            raise UserError("normalize applies to float inputs, not token ids; text data needs "
                            "data.transforms: {train: [], eval: []} (the default normalizes)")
        return (x - self._shape(x, self.mean)) / self._shape(x, self.std)

    def apply_(self, x: torch.Tensor) -> torch.Tensor:
        """The same, in place, on a float tensor the caller owns (Pipeline.prefix: no second full-size copy)."""
        self(x[:0])  # the same checks, on an empty view
        return x.sub_(self._shape(x, self.mean)).div_(self._shape(x, self.std))

    def state(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()} if self.mean is not None else {}


def _numbers(name: str, value) -> torch.Tensor:
    """normalize's mean/std: finite numbers (a NaN would train and write NaN into result.json)."""
    values = value if isinstance(value, (list, tuple)) else [value]
    if not values or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in values):
        raise UserError(f"normalize: {name} must be a number or a list of numbers (one per channel), got {value!r}")
    t = torch.tensor(values, dtype=torch.float32)
    if not torch.isfinite(t).all():
        raise UserError(f"normalize: {name} must be finite, got {value!r}")
    return t


class Functional:
    """A deterministic torchvision.transforms.v2.functional op with fixed arguments (resize, center_crop, ...),
    named and looked up when first applied: importing torchvision costs about 1.2 s (it pulls in
    torch._dynamo), which a run whose pipeline is only `normalize` never has to pay."""

    random = False

    def __init__(self, name: str, **kwargs):
        self.name, self.kwargs = name, kwargs

    def __call__(self, x: torch.Tensor, g=None) -> torch.Tensor:
        from torchvision.transforms.v2 import functional as TF  # start-up time: see the class docstring

        if x.ndim != 4:
            raise UserError(f"transform {self.name} works on images (B, C, H, W); these inputs have shape "
                            f"{tuple(x.shape[1:])} per sample")
        return getattr(TF, self.name)(x, **self.kwargs)


MAX_SIZE = 4096  # pixels per side: a typo like 100000 would decode to gigabytes


def _size(size) -> list[int]:
    size = [size] if isinstance(size, int) else list(size) if isinstance(size, (list, tuple)) else [size]
    if not 1 <= len(size) <= 2 or any(isinstance(s, bool) or not isinstance(s, int) or not 1 <= s <= MAX_SIZE
                                      for s in size):
        raise UserError(f"bad transform size {size!r}; expected an int in 1..{MAX_SIZE} or [height, width]")
    return size


def to_float(dtype: str = "float32", scale: bool = True) -> ToFloat:
    return ToFloat()


def resize(size) -> Functional:
    return Functional("resize", size=_size(size), antialias=True)


def center_crop(size) -> Functional:
    return Functional("center_crop", output_size=_size(size))


def grayscale(num_output_channels: int = 1) -> Functional:
    if num_output_channels not in (1, 3) or isinstance(num_output_channels, bool):
        raise UserError(f"grayscale: num_output_channels must be 1 or 3, got {num_output_channels!r}")
    return Functional("rgb_to_grayscale", num_output_channels=num_output_channels)
