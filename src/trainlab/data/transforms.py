"""Transform pipelines from config, run on whole batches.

    transforms:
      train: [{name: random_affine, degrees: 10}, {name: normalize}]   # training samples only
      eval:  [{name: normalize}]                                     # val, test, predict

Every step maps a batch (B, C, H, W) / (B, F) / (B, T, F) to a batch. Deterministic steps come from
torchvision.transforms.v2.functional; random augmentations come from trainlab.data.augment, which draws
parameters per sample from an explicit torch.Generator (v2 would draw one set per batch), so the
in-memory and streaming paths both augment batched and a resumed run replays the same randomness.
`normalize` without mean/std fits them on the training split only (Pipeline.fit).
"""
from __future__ import annotations

import torch

from trainlab.core.errors import UserError
from trainlab.data.catalog import TRANSFORMS


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


def build_step(spec: dict | str):
    spec = {"name": spec} if isinstance(spec, str) else dict(spec)
    name = spec.pop("name", None)
    if name is None:
        raise UserError(f"transform {spec!r} has no name; e.g. {{name: normalize}}")
    builder = TRANSFORMS.get(name)
    try:
        step = builder(**spec)
    except TypeError as e:
        raise UserError(f"bad arguments for transform {name!r}: {e}") from None
    except ValueError as e:
        raise UserError(f"bad arguments for transform {name!r}: {e}") from None
    if not hasattr(step, "random"):
        step.random = TRANSFORMS.entry(name).meta["random"]  # batch augmentations from trainlab.data.augment
    return step


class Pipeline:
    """An ordered list of steps applied to a batch; `prefix()` / `rest()` split off what can run once up front."""

    def __init__(self, specs: list, uint8_input: bool):
        self.specs = [dict(s) if isinstance(s, dict) else {"name": s} for s in specs]
        self.steps = [build_step(s) for s in self.specs]
        if uint8_input and not any(isinstance(s, ToFloat) for s in self.steps):
            self.steps.insert(0, ToFloat())
            self.specs.insert(0, {"name": "to_tensor"})

    @property
    def random(self) -> bool:
        return any(s.random for s in self.steps)

    def _first_random(self) -> int:
        return next((i for i, s in enumerate(self.steps) if s.random), len(self.steps))

    def prefix(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the deterministic steps before the first random one (done once for in-memory data)."""
        for s in self.steps[: self._first_random()]:
            x = s(x)
        return x

    def rest(self, x: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
        """Apply the remaining steps to a batch that went through `prefix`."""
        for s in self.steps[self._first_random():]:
            x = s(x, g)
        return x

    def __call__(self, x: torch.Tensor, g: torch.Generator | None = None) -> torch.Tensor:
        return self.rest(self.prefix(x), g)

    def fit(self, x: torch.Tensor) -> None:
        """Fit `normalize` statistics on training inputs x (N, ...), skipping random augmentations."""
        fitted = [i for i, s in enumerate(self.steps) if isinstance(s, Normalize)]
        steps = self.steps[:fitted[-1] + 1] if fitted else []  # nothing after the last normalize is needed
        if len(steps) == 2 and isinstance(steps[0], ToFloat) and x.dtype == torch.uint8 and x.ndim == 4:
            return steps[1].fit_bytes(x)  # the usual image pipeline: bytes -> float -> normalize
        for s in steps:
            if isinstance(s, Normalize):
                s.fit(x)
            if not s.random:
                x = s(x)

    def fit_like(self, other: Pipeline) -> None:
        """Take the fitted statistics of a pipeline with the same steps (train and eval both `[normalize]`)."""
        for mine, theirs in zip(self.steps, other.steps, strict=True):
            if isinstance(mine, Normalize):
                mine.mean, mine.std = theirs.mean, theirs.std

    def state(self) -> list[dict]:
        """The specs with fitted statistics filled in: enough to rebuild the same pipeline for predict/export."""
        out = []
        for spec, step in zip(self.specs, self.steps, strict=False):
            out.append({**spec, **step.state()} if isinstance(step, Normalize) else spec)
        return out


def transform_kinds() -> dict[str, str]:
    return {n: TRANSFORMS.entry(n).help for n in TRANSFORMS.names()}
