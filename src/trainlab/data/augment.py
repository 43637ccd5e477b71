"""Batched random image augmentations with per-sample random parameters.

torchvision.transforms.v2 applied to a batch tensor (B, C, H, W) draws ONE set of random parameters per call,
so every sample in the batch gets the same flip/angle/crop. The in-memory data path augments whole batches,
so these classes draw parameters per sample and apply them with vectorized tensor ops (masks, gather,
affine_grid/grid_sample, grouped conv2d) on whatever device the batch lives on; no Python loop over samples.

    aug = RandomAffine(degrees=15, translate=(0.1, 0.1))
    out = aug(x, generator)               # x: float (B, C, H, W); generator on x's device type

Each class mirrors the keyword arguments of the torchvision.transforms.v2 class of the same name, and
splits the call into `sample_params(x, generator)` (all randomness, from `generator` only, so the same
generator state gives bit-identical output) and `apply(x, params)` (deterministic).
Differences from torchvision are listed in each class docstring.
"""
from __future__ import annotations

import numbers
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

Number = int | float
Fill = Number | Sequence[Number] | None
Params = dict[str, Tensor]


# ----------------------------------------------------------------------------------------------- helpers


def check_batch(x: Tensor, generator: torch.Generator) -> None:
    """Reject inputs the vectorized kernels cannot handle, with a message naming the problem."""
    if not isinstance(x, Tensor):
        raise TypeError(f"expected a (B, C, H, W) tensor, got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"expected a (B, C, H, W) tensor, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"expected a floating-point tensor (values in [0, 1]), got dtype {x.dtype}")
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    if generator.device.type != x.device.type:
        raise ValueError(f"generator is on {generator.device.type} but the batch is on {x.device.type}")


def uniform(lo: float, hi: float, n: int, generator: torch.Generator, device: torch.device) -> Tensor:
    """(n,) float32 samples from U[lo, hi); exactly `lo` when lo == hi, so collapsed ranges are exact."""
    u = torch.rand(n, generator=generator, device=device)
    return lo + (hi - lo) * u


def _math_dtype(device: torch.device) -> torch.dtype:
    """float64 for the tiny per-sample matrix math (as torchvision does in Python floats); MPS has no float64."""
    return torch.float32 if device.type == "mps" else torch.float64


def check_prob(p: float) -> float:
    if not isinstance(p, numbers.Real) or not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be a probability in [0, 1], got {p!r}")
    return float(p)


def _check_fill(fill: Fill) -> tuple[float, ...] | None:
    """Fill as a tuple of per-channel values (length 1 broadcasts), or None."""
    if fill is None:
        return None
    if isinstance(fill, numbers.Real):
        return (float(fill),)
    if isinstance(fill, Sequence) and len(fill) > 0 and all(isinstance(v, numbers.Real) for v in fill):
        return tuple(float(v) for v in fill)
    raise ValueError(f"fill must be a number or a non-empty sequence of numbers, got {fill!r}")


def _fill_tensor(fill: tuple[float, ...], x: Tensor) -> Tensor:
    """(1, C, 1, 1) fill values in x's dtype/device; a single value broadcasts over channels."""
    channels = x.shape[1]
    if len(fill) not in (1, channels):
        raise ValueError(f"fill has {len(fill)} values but the batch has {channels} channels")
    return torch.tensor(fill, dtype=x.dtype, device=x.device).view(1, -1, 1, 1).expand(1, channels, 1, 1)


def check_range(value: Number | Sequence[Number], name: str, symmetric_about: float = 0.0) -> tuple[float, float]:
    """A number d -> (c - d, c + d) (d >= 0); a 2-sequence -> itself (must be increasing)."""
    if isinstance(value, numbers.Real):
        if value < 0:
            raise ValueError(f"if {name} is a single number it must be non-negative, got {value}")
        return symmetric_about - float(value), symmetric_about + float(value)
    if isinstance(value, Sequence) and len(value) == 2 and all(isinstance(v, numbers.Real) for v in value):
        lo, hi = float(value[0]), float(value[1])
        if lo > hi:
            raise ValueError(f"{name} range must be (min, max) with min <= max, got {tuple(value)}")
        return lo, hi
    raise ValueError(f"{name} must be a number or a sequence (min, max), got {value!r}")


def pair_of_ints(value: int | Sequence[int], name: str) -> tuple[int, int]:
    """An int or a 1/2-sequence of ints -> a pair (torchvision's _setup_size)."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value), int(value)
    if isinstance(value, Sequence) and len(value) in (1, 2) and all(isinstance(v, numbers.Integral) for v in value):
        return int(value[0]), int(value[-1])
    raise ValueError(f"{name} must be an int or a sequence of 1 or 2 ints, got {value!r}")


class BatchAugment:
    """Base class: `aug(x, generator)` = `aug.apply(x, aug.sample_params(x, generator))`."""

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        check_batch(x, generator)
        return self.apply(x, self.sample_params(x, generator))

    def sample_params(self, x: Tensor, generator: torch.Generator) -> Params:
        """Per-sample parameters, each a (B,) tensor on x.device; only x's shape/device are used."""
        raise NotImplementedError

    def apply(self, x: Tensor, params: Params) -> Tensor:
        """Deterministic part: apply the given per-sample parameters to the batch x (B, C, H, W)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"


# ----------------------------------------------------------------------------------------------- flips


class _RandomFlip(BatchAugment):
    _dim = -1

    def __init__(self, p: float = 0.5) -> None:
        self.p = check_prob(p)

    def sample_params(self, x: Tensor, generator: torch.Generator) -> Params:
        # Same rule as torchvision (apply when rand < p), drawn once per sample.
        flip = torch.rand(x.shape[0], generator=generator, device=x.device) < self.p  # (B,) bool
        return {"flip": flip}

    def apply(self, x: Tensor, params: Params) -> Tensor:
        mask = params["flip"].view(-1, 1, 1, 1)  # (B, 1, 1, 1) broadcasts over C, H, W
        return torch.where(mask, x.flip(self._dim), x)


class RandomHorizontalFlip(_RandomFlip):
    """Flip each sample left-right with probability p, independently per sample."""

    _dim = -1


class RandomVerticalFlip(_RandomFlip):
    """Flip each sample top-bottom with probability p, independently per sample."""

    _dim = -2


# ----------------------------------------------------------------------------------------------- crop

_PAD_MODES = ("constant", "edge", "reflect", "symmetric")


def _parse_padding(padding: int | Sequence[int] | None) -> tuple[int, int, int, int]:
    """torchvision's padding forms -> (left, right, top, bottom): p | [p] | [lr, tb] | [l, t, r, b]."""
    if padding is None:
        return 0, 0, 0, 0
    if isinstance(padding, numbers.Integral) and not isinstance(padding, bool):
        pads = [int(padding)] * 4
    elif isinstance(padding, Sequence) and len(padding) in (1, 2, 4) and all(
            isinstance(p, numbers.Integral) for p in padding):
        p = [int(v) for v in padding]
        pads = p * 4 if len(p) == 1 else [p[0], p[0], p[1], p[1]] if len(p) == 2 else [p[0], p[2], p[1], p[3]]
    else:
        raise ValueError(f"padding must be an int or a sequence of 1, 2 or 4 ints, got {padding!r}")
    if min(pads) < 0:
        raise ValueError(f"padding must be non-negative, got {padding!r}")
    return pads[0], pads[1], pads[2], pads[3]


def _pad_index(n: int, before: int, after: int, mode: str, device: torch.device) -> tuple[Tensor, Tensor]:
    """Source index (n + before + after,) into a length-n axis for each padded position, and its validity mask.

    Padding is expressed as an index map so padding and per-sample cropping become one gather.
    """
    i = torch.arange(-before, n + after, device=device)
    valid = (i >= 0) & (i < n)
    if mode == "reflect":  # mirror without repeating the edge: period 2(n - 1)
        period = max(2 * (n - 1), 1)
        i = i.abs().remainder(period)
        i = torch.where(i >= n, period - i, i)
    elif mode == "symmetric":  # mirror repeating the edge: period 2n
        i = i.remainder(2 * n)
        i = torch.where(i >= n, 2 * n - 1 - i, i)
    return i.clamp(0, n - 1), valid  # constant/edge: clamp; constant then masks out the invalid positions


class RandomCrop(BatchAugment):
    """Pad (same for all samples) then crop `size` at a per-sample random top/left offset.

    Same arguments as torchvision v2 RandomCrop; output is (B, C, size_h, size_w). Differences:
    negative padding is rejected; `reflect` padding wider than the image keeps mirroring instead of erroring.
    """

    def __init__(self, size: int | Sequence[int], padding: int | Sequence[int] | None = None,
                 pad_if_needed: bool = False, fill: Fill = 0, padding_mode: str = "constant") -> None:
        self.size = pair_of_ints(size, "size")
        if min(self.size) <= 0:
            raise ValueError(f"size must be positive, got {size!r}")
        self.padding = _parse_padding(padding)
        if padding_mode not in _PAD_MODES:
            raise ValueError(f"padding_mode must be one of {_PAD_MODES}, got {padding_mode!r}")
        self.pad_if_needed = bool(pad_if_needed)
        self.fill = _check_fill(fill)
        if self.fill is None:
            raise ValueError("fill must be a number or a sequence of numbers, not None")
        self.padding_mode = padding_mode

    def _padding_for(self, height: int, width: int) -> tuple[int, int, int, int]:
        """(left, right, top, bottom), grown on both sides like torchvision when pad_if_needed."""
        left, right, top, bottom = self.padding
        crop_h, crop_w = self.size
        if self.pad_if_needed and height + top + bottom < crop_h:
            diff = crop_h - (height + top + bottom)
            top, bottom = top + diff, bottom + diff
        if self.pad_if_needed and width + left + right < crop_w:
            diff = crop_w - (width + left + right)
            left, right = left + diff, right + diff
        if height + top + bottom < crop_h or width + left + right < crop_w:
            raise ValueError(f"crop size {self.size} is larger than the padded image "
                             f"{(height + top + bottom, width + left + right)}")
        return left, right, top, bottom

    def sample_params(self, x: Tensor, generator: torch.Generator) -> Params:
        height, width = x.shape[-2:]
        left, right, top, bottom = self._padding_for(height, width)
        max_top = height + top + bottom - self.size[0]  # offsets are in padded coordinates
        max_left = width + left + right - self.size[1]
        tops = torch.randint(0, max_top + 1, (x.shape[0],), generator=generator, device=x.device)
        lefts = torch.randint(0, max_left + 1, (x.shape[0],), generator=generator, device=x.device)
        return {"top": tops, "left": lefts}

    def apply(self, x: Tensor, params: Params) -> Tensor:
        height, width = x.shape[-2:]
        left, right, top, bottom = self._padding_for(height, width)
        row_src, row_ok = _pad_index(height, top, bottom, self.padding_mode, x.device)  # (Hp,)
        col_src, col_ok = _pad_index(width, left, right, self.padding_mode, x.device)  # (Wp,)
        rows = params["top"].view(-1, 1) + torch.arange(self.size[0], device=x.device)  # (B, h) padded coords
        cols = params["left"].view(-1, 1) + torch.arange(self.size[1], device=x.device)  # (B, w)
        batch = torch.arange(x.shape[0], device=x.device).view(-1, 1, 1)
        out = x[batch, :, row_src[rows][:, :, None], col_src[cols][:, None, :]]  # (B, h, w, C)
        out = out.permute(0, 3, 1, 2).contiguous()  # (B, C, h, w)
        if self.padding_mode == "constant" and any((left, right, top, bottom)):
            inside = (row_ok[rows][:, :, None] & col_ok[cols][:, None, :]).unsqueeze(1)  # (B, 1, h, w)
            out = torch.where(inside, out, _fill_tensor(self.fill, x))
        return out


# ----------------------------------------------------------------------------------------------- affine


def _inverse_affine(angle: Tensor, tx: Tensor, ty: Tensor, scale: Tensor, shear_x: Tensor,
                    shear_y: Tensor) -> Tensor:
    """(B, 2, 3) output->input pixel maps about the image center (torchvision's _get_inverse_affine_matrix).

    All inputs are (B,) in degrees / pixels; M = T * RotateScaleShear, inverted, with center (0, 0).
    """
    rot, sx, sy = torch.deg2rad(angle), torch.deg2rad(shear_x), torch.deg2rad(shear_y)
    a = torch.cos(rot - sy) / torch.cos(sy)
    b = -torch.cos(rot - sy) * torch.tan(sx) / torch.cos(sy) - torch.sin(rot)
    c = torch.sin(rot - sy) / torch.cos(sy)
    d = -torch.sin(rot - sy) * torch.tan(sx) / torch.cos(sy) + torch.cos(rot)
    m00, m01, m10, m11 = d / scale, -b / scale, -c / scale, a / scale  # det([[a, b], [c, d]]) == 1
    m02 = -(m00 * tx + m01 * ty)
    m12 = -(m10 * tx + m11 * ty)
    return torch.stack([m00, m01, m02, m10, m11, m12], dim=1).view(-1, 2, 3)


def _pixel_to_normalized(matrix: Tensor, height: int, width: int) -> Tensor:
    """(B, 2, 3) map in centered pixel units -> affine_grid's theta in [-1, 1] units (align_corners=False)."""
    scale_in = matrix.new_tensor([2.0 / width, 2.0 / height]).view(1, 2, 1)  # pixels -> normalized (rows)
    scale_out = matrix.new_tensor([width / 2.0, height / 2.0, 1.0]).view(1, 1, 3)  # normalized -> pixels (cols)
    return matrix * scale_in * scale_out


class RandomAffine(BatchAugment):
    """Per-sample random rotation/translation/scale/shear about the image center, via affine_grid + grid_sample.

    Parameter meaning and sampling ranges follow torchvision v2 RandomAffine (translations are rounded to whole
    pixels like torchvision), and the matrix is torchvision's `F.affine` matrix, so outputs match
    `F.affine(img, angle, [tx, ty], scale, [shear_x, shear_y], interpolation=BILINEAR, fill=fill)` per sample.
    Rotation direction: like torchvision's `F.affine` / `RandomAffine` (and PIL), a POSITIVE angle turns the image
    CLOCKWISE as displayed (row 0 at the top); only `F.rotate` / `RandomRotation` use counter-clockwise, since they
    negate the angle. Center: torchvision's tensor-kernel center ((W - 1) / 2, (H - 1) / 2) in pixel-index
    coordinates (its PIL path uses (W / 2, H / 2)). Differences: interpolation is always bilinear (torchvision
    defaults to nearest) and there is no `center` argument. `fill` is blended with the sampled in-bounds weight
    exactly as torchvision's tensor kernel does; fill=None means plain zero padding.
    """

    def __init__(self, degrees: Number | Sequence[Number], translate: Sequence[float] | None = None,
                 scale: Sequence[float] | None = None, shear: Number | Sequence[Number] | None = None,
                 fill: Fill = 0) -> None:
        self.degrees = check_range(degrees, "degrees")
        self.translate = self._check_translate(translate)
        self.scale = self._check_scale(scale)
        self.shear = self._check_shear(shear)
        self.fill = _check_fill(fill)

    @staticmethod
    def _check_translate(translate: Sequence[float] | None) -> tuple[float, float] | None:
        if translate is None:
            return None
        if not isinstance(translate, Sequence) or len(translate) != 2 or not all(
                isinstance(t, numbers.Real) and 0.0 <= t <= 1.0 for t in translate):
            raise ValueError(f"translate must be (max_dx, max_dy) fractions in [0, 1], got {translate!r}")
        return float(translate[0]), float(translate[1])

    @staticmethod
    def _check_scale(scale: Sequence[float] | None) -> tuple[float, float] | None:
        if scale is None:
            return None
        if not isinstance(scale, Sequence) or len(scale) != 2 or not all(
                isinstance(s, numbers.Real) and s > 0 for s in scale) or scale[0] > scale[1]:
            raise ValueError(f"scale must be (min, max) with 0 < min <= max, got {scale!r}")
        return float(scale[0]), float(scale[1])

    @staticmethod
    def _check_shear(shear: Number | Sequence[Number] | None) -> tuple[float, ...] | None:
        """number s -> x-shear in (-s, s); (a, b) -> x-shear; (a, b, c, d) -> x in (a, b), y in (c, d)."""
        if shear is None:
            return None
        if isinstance(shear, Sequence) and len(shear) == 4:
            return check_range(shear[:2], "shear") + check_range(shear[2:], "shear")
        return check_range(shear, "shear")

    def sample_params(self, x: Tensor, generator: torch.Generator) -> Params:
        n, dev = x.shape[0], x.device
        height, width = x.shape[-2:]
        zeros = torch.zeros(n, device=dev)
        angle = uniform(*self.degrees, n, generator, dev)
        tx, ty = zeros, zeros
        if self.translate is not None:
            max_dx, max_dy = self.translate[0] * width, self.translate[1] * height
            tx = torch.round(uniform(-max_dx, max_dx, n, generator, dev))  # whole pixels, like torchvision
            ty = torch.round(uniform(-max_dy, max_dy, n, generator, dev))
        scale = zeros + 1.0 if self.scale is None else uniform(*self.scale, n, generator, dev)
        shear_x, shear_y = zeros, zeros
        if self.shear is not None:
            shear_x = uniform(self.shear[0], self.shear[1], n, generator, dev)
            if len(self.shear) == 4:
                shear_y = uniform(self.shear[2], self.shear[3], n, generator, dev)
        return {"angle": angle, "tx": tx, "ty": ty, "scale": scale, "shear_x": shear_x, "shear_y": shear_y}

    def apply(self, x: Tensor, params: Params) -> Tensor:
        height, width = x.shape[-2:]
        names = ("angle", "tx", "ty", "scale", "shear_x", "shear_y")
        matrix = _inverse_affine(*(params[k].to(_math_dtype(x.device)) for k in names))  # (B, 2, 3)
        theta = _pixel_to_normalized(matrix, height, width).to(x.dtype)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)  # (B, H, W, 2)
        if self.fill is None:
            out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        else:
            # Extra ones channel = in-bounds weight of each output pixel, used to blend in the fill (as torchvision).
            ones = torch.ones_like(x[:, :1])  # (B, 1, H, W)
            out = F.grid_sample(torch.cat([x, ones], dim=1), grid, mode="bilinear", padding_mode="zeros",
                                align_corners=False)
            out, mask = out[:, :-1], out[:, -1:]
            fill = _fill_tensor(self.fill, x)
            out = (out - fill) * mask + fill
        # Identity samples get x back bit-exactly (resampling at pixel centers is only exact to ~1e-6).
        return torch.where(self._is_identity(params).view(-1, 1, 1, 1), x, out)

    @staticmethod
    def _is_identity(params: Params) -> Tensor:
        """(B,) bool: no rotation, translation, scaling or shear for this sample."""
        still = (params["angle"] == 0) & (params["tx"] == 0) & (params["ty"] == 0) & (params["scale"] == 1)
        return still & (params["shear_x"] == 0) & (params["shear_y"] == 0)
