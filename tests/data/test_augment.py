"""Tests for trainlab.data.augment: per-sample randomness, parity with torchvision, determinism, validation."""
from __future__ import annotations

import pytest
import torch
import torchvision.transforms.v2 as T
import torchvision.transforms.v2.functional as TF
from torchvision.transforms import InterpolationMode

from trainlab.data.augment import (
    RandomAffine,
    RandomCrop,
    RandomHorizontalFlip,
    RandomVerticalFlip,
)
from trainlab.data.augment_color import ColorJitter, GaussianBlur
from trainlab.data.catalog import TRANSFORMS

BILINEAR = InterpolationMode.BILINEAR
# chi-square critical value for 9 degrees of freedom at p = 0.001: a correct sampler fails this 1 time in 1000 seeds
CHI2_DF9_P001 = 27.88


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def images(n: int = 8, c: int = 3, h: int = 12, w: int = 16, seed: int = 0) -> torch.Tensor:
    """(n, c, h, w) random images in [0, 1]."""
    return torch.rand(n, c, h, w, generator=gen(seed))


def identical_images(n: int, c: int = 1, h: int = 8, w: int = 8) -> torch.Tensor:
    """(n, c, h, w) copies of one asymmetric image, so any difference between outputs comes from augmentation."""
    return images(1, c, h, w, seed=123).expand(n, c, h, w).contiguous()


def chi_square_uniform(values: torch.Tensor, lo: float, hi: float, bins: int = 10) -> float:
    """Pearson chi-square statistic of `values` against U[lo, hi] with equal-width bins."""
    counts = torch.histc(values.double(), bins=bins, min=lo, max=hi)
    expected = values.numel() / bins
    return float(((counts - expected) ** 2 / expected).sum())


def max_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


# ------------------------------------------------------------------------------------------- 1. per-sample randomness


@pytest.mark.parametrize(("cls", "dim"), [(RandomHorizontalFlip, -1), (RandomVerticalFlip, -2)])
def test_flip_is_drawn_per_sample(cls, dim):
    x = identical_images(2000)
    out = cls(p=0.5)(x, gen(1))
    flipped = (out == x.flip(dim)).flatten(1).all(1)
    kept = (out == x).flatten(1).all(1)
    assert bool((flipped ^ kept).all())  # each sample is exactly one of the two (the image is asymmetric)
    frac = flipped.double().mean().item()
    assert 0.45 <= frac <= 0.55, frac
    assert 0 < int(flipped.sum()) < 2000


def test_affine_angles_are_per_sample_and_uniform():
    x = identical_images(2000)
    aug = RandomAffine(degrees=30)
    angles = aug.sample_params(x, gen(2))["angle"]
    assert -30.0 <= float(angles.min()) < -29.0 and 29.0 < float(angles.max()) <= 30.0
    assert chi_square_uniform(angles, -30.0, 30.0) < CHI2_DF9_P001
    out = aug(x, gen(2))  # same seed -> these very angles
    distinct = torch.unique(out.flatten(1), dim=0).shape[0]
    assert distinct >= 1990, distinct


def test_other_params_are_per_sample_and_cover_their_range():
    x = identical_images(2000, c=3, h=8, w=8)
    tops = RandomCrop(8, padding=2).sample_params(x, gen(3))["top"]
    assert torch.bincount(tops, minlength=5).tolist().count(0) == 0 and int(tops.max()) == 4
    shift = RandomAffine(0, translate=(0.25, 0.5)).sample_params(x, gen(3))  # max 2 px across, 4 px down
    assert torch.equal(shift["tx"], shift["tx"].round()) and torch.equal(shift["ty"], shift["ty"].round())
    assert set(shift["tx"].tolist()) == {-2, -1, 0, 1, 2} and set(shift["ty"].tolist()) == set(range(-4, 5))
    sigma = GaussianBlur(3, sigma=(0.5, 2.0)).sample_params(x, gen(4))["sigma"]
    assert chi_square_uniform(sigma, 0.5, 2.0) < CHI2_DF9_P001
    p = ColorJitter(brightness=0.4, hue=0.1).sample_params(x, gen(5))
    assert chi_square_uniform(p["brightness"], 0.6, 1.4) < CHI2_DF9_P001
    assert chi_square_uniform(p["hue"], -0.1, 0.1) < CHI2_DF9_P001


def test_torchvision_v2_uses_one_param_set_per_batch():
    """Why this module exists: v2 transforms on a (B, C, H, W) tensor give every sample the same parameters."""
    x = identical_images(64)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        tv_affine = T.RandomAffine(degrees=30, interpolation=BILINEAR)(x)
        tv_flip = T.RandomHorizontalFlip(p=0.5)(x)
    assert torch.equal(tv_flip, x) or torch.equal(tv_flip, x.flip(-1))  # all or nothing
    assert torch.equal(tv_affine, tv_affine[:1].expand_as(tv_affine))  # all 64 outputs identical
    assert not torch.equal(tv_affine[0], x[0])  # ... and it did transform them
    ours = RandomAffine(degrees=30)(x, gen(0))
    assert torch.unique(ours.flatten(1), dim=0).shape[0] == 64


# ------------------------------------------------------------------------------------------- 2. parity with torchvision


def test_flip_parity():
    x = images()
    for cls, ref in [(RandomHorizontalFlip, TF.horizontal_flip), (RandomVerticalFlip, TF.vertical_flip)]:
        aug = cls(p=0.5)
        params = aug.sample_params(x, gen(6))
        out = aug.apply(x, params)
        for i in range(x.shape[0]):
            assert torch.equal(out[i], ref(x[i]) if params["flip"][i] else x[i])


@pytest.mark.parametrize("mode", ["constant", "edge", "reflect", "symmetric"])
def test_crop_parity_exact(mode):
    x = images()
    aug = RandomCrop((10, 15), padding=(1, 2, 3, 4), fill=0.25, padding_mode=mode)
    params = aug.sample_params(x, gen(7))
    out = aug.apply(x, params)
    assert out.shape == (8, 3, 10, 15)
    for i in range(x.shape[0]):
        padded = TF.pad(x[i], [1, 2, 3, 4], fill=0.25, padding_mode=mode)  # left, top, right, bottom
        expected = TF.crop(padded, int(params["top"][i]), int(params["left"][i]), 10, 15)
        assert torch.equal(out[i], expected)


def test_crop_pad_if_needed_matches_torchvision():
    x = images(h=5, w=6)
    aug = RandomCrop(8, pad_if_needed=True, fill=(0.1, 0.2, 0.3))
    params = aug.sample_params(x, gen(8))
    out = aug.apply(x, params)
    assert out.shape == (8, 3, 8, 8)
    for i in range(x.shape[0]):
        padded = TF.pad(x[i], [2, 3, 2, 3], fill=[0.1, 0.2, 0.3])  # grown by the deficit on both sides
        assert torch.equal(out[i], TF.crop(padded, int(params["top"][i]), int(params["left"][i]), 8, 8))


def test_affine_parity_fixed_params():
    # Whole image, borders included: we reuse torchvision's matrix and fill blending, only float rounding differs.
    x = images()
    aug = RandomAffine(degrees=(20, 20), scale=(1.2, 1.2), shear=(5, 5), fill=0.5)
    out = aug(x, gen(9))
    expected = TF.affine(x, angle=20.0, translate=[0, 0], scale=1.2, shear=[5.0, 0.0], interpolation=BILINEAR,
                         fill=0.5)
    assert max_err(out, expected) < 1e-5


def test_affine_parity_per_sample_params():
    x = images(16, h=20, w=24)
    aug = RandomAffine(degrees=45, translate=(0.2, 0.1), scale=(0.7, 1.3), shear=(-10, 10, -5, 5),
                       fill=(0.2, 0.5, 0.9))
    p = aug.sample_params(x, gen(10))
    out = aug.apply(x, p)
    assert len(torch.unique(p["angle"])) == 16
    for i in range(x.shape[0]):
        expected = TF.affine(x[i], angle=float(p["angle"][i]), translate=[float(p["tx"][i]), float(p["ty"][i])],
                             scale=float(p["scale"][i]), shear=[float(p["shear_x"][i]), float(p["shear_y"][i])],
                             interpolation=BILINEAR, fill=[0.2, 0.5, 0.9])
        assert max_err(out[i], expected) < 1e-5


def test_affine_rotation_direction_and_center_match_torchvision():
    x = torch.zeros(1, 1, 9, 9)
    x[0, 0, 4, 7] = 1.0  # 3 pixels right of the center pixel (4, 4)
    out = RandomAffine(degrees=(90, 90))(x, gen())
    # Positive angle = clockwise on screen, like TF.affine / T.RandomAffine: right of center -> below center.
    assert (out[0, 0] > 0.5).nonzero().tolist() == [[7, 4]]
    assert (TF.affine(x, 90.0, [0, 0], 1.0, [0.0, 0.0])[0, 0] > 0.5).nonzero().tolist() == [[7, 4]]
    # TF.rotate is the counter-clockwise one: rotate(+a) == our affine with -a (fill=None = plain zero padding).
    y = images(2, h=11, w=14)
    ours = RandomAffine(degrees=(-33, -33), fill=None)(y, gen())
    assert max_err(ours, TF.rotate(y, 33.0, interpolation=BILINEAR)) < 1e-5


def test_blur_parity():
    x = images()
    out = GaussianBlur(5, sigma=(1.0, 1.0))(x, gen(11))
    assert max_err(out, TF.gaussian_blur(x, [5, 5], [1.0, 1.0])) < 1e-6
    aug = GaussianBlur((3, 7), sigma=(0.1, 3.0))  # (kx, ky): a non-square kernel checks the axis order
    p = aug.sample_params(x, gen(12))
    out = aug.apply(x, p)
    for i in range(x.shape[0]):
        s = float(p["sigma"][i])
        assert max_err(out[i], TF.gaussian_blur(x[i], [3, 7], [s, s])) < 1e-6


def torchvision_jitter(img: torch.Tensor, p: dict[str, torch.Tensor], i: int) -> torch.Tensor:
    """Our fixed order brightness, contrast, saturation, hue, with sample i's factors, via torchvision kernels."""
    img = TF.adjust_brightness(img, float(p["brightness"][i]))
    img = TF.adjust_contrast(img, float(p["contrast"][i]))
    img = TF.adjust_saturation(img, float(p["saturation"][i]))
    return TF.adjust_hue(img, float(p["hue"][i]))


def test_color_jitter_parity():
    x = images()
    assert torch.equal(ColorJitter(brightness=(1.3, 1.3))(x, gen()), TF.adjust_brightness(x, 1.3))
    assert max_err(ColorJitter(hue=(0.2, 0.2))(x, gen()), TF.adjust_hue(x, 0.2)) < 1e-5
    for channels in (3, 1):  # 1 channel: saturation and hue are no-ops in both implementations
        x = images(c=channels)
        aug = ColorJitter(brightness=0.5, contrast=0.5, saturation=0.5, hue=0.2)
        p = aug.sample_params(x, gen(13))
        out = aug.apply(x, p)
        for i in range(x.shape[0]):
            assert max_err(out[i], torchvision_jitter(x[i], p, i)) < 1e-5
        assert 0.0 <= float(out.min()) and float(out.max()) <= 1.0


# ----------------------------------------------------------------------------------------------- 3. determinism

AUGMENTS = [
    RandomHorizontalFlip(),
    RandomVerticalFlip(),
    RandomCrop(10, padding=2, padding_mode="reflect"),
    RandomAffine(degrees=20, translate=(0.1, 0.1), scale=(0.9, 1.1), shear=10),
    GaussianBlur(3),
    ColorJitter(0.4, 0.4, 0.4, 0.1),
]


@pytest.mark.parametrize("aug", AUGMENTS, ids=lambda a: type(a).__name__)
def test_same_seed_same_output_different_seed_different(aug):
    x = images(32)
    a, b, c = aug(x, gen(42)), aug(x, gen(42)), aug(x, gen(43))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


# ------------------------------------------------------------------------------------------- 4. shape, dtype, identity


@pytest.mark.parametrize("aug", AUGMENTS, ids=lambda a: type(a).__name__)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shape_dtype_device_preserved_and_input_untouched(aug, dtype):
    x = images(4).to(dtype)
    before = x.clone()
    out = aug(x, gen())
    expected_hw = (10, 10) if isinstance(aug, RandomCrop) else (12, 16)
    assert out.shape == (4, 3, *expected_hw)
    assert out.dtype == dtype and out.device == x.device
    assert torch.equal(x, before)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("aug", AUGMENTS, ids=lambda a: type(a).__name__)
def test_cuda_matches_cpu_params_and_device(aug):
    x = images(8).cuda()
    g = torch.Generator(device="cuda").manual_seed(0)
    out = aug(x, g)
    assert out.device == x.device and out.dtype == x.dtype
    params = aug.sample_params(x, torch.Generator(device="cuda").manual_seed(0))
    cpu = aug.apply(x.cpu(), {k: v.cpu() for k, v in params.items()})
    assert max_err(out.cpu(), cpu) < 1e-5


@pytest.mark.parametrize("aug", [
    RandomHorizontalFlip(p=0.0),
    RandomVerticalFlip(p=0.0),
    RandomCrop((12, 16)),
    RandomAffine(degrees=0),
    RandomAffine(degrees=(0, 0), translate=(0, 0), scale=(1, 1), shear=(0, 0, 0, 0), fill=0.7),
    GaussianBlur(3, sigma=(1e-3, 1e-3)),  # the kernel underflows to [0, 1, 0]
    ColorJitter(),
    ColorJitter(brightness=(1, 1), contrast=(1, 1), saturation=(1, 1), hue=0.0),
], ids=lambda a: repr(a))
def test_identity_settings_return_input_exactly(aug):
    x = images(4, h=12, w=16)
    out = aug(x, gen())
    assert torch.equal(out, x)
    assert out.data_ptr() != x.data_ptr()


def test_p_one_flips_everything():
    x = images()
    assert torch.equal(RandomHorizontalFlip(p=1.0)(x, gen()), x.flip(-1))
    assert torch.equal(RandomVerticalFlip(p=1.0)(x, gen()), x.flip(-2))


def test_registry_names():
    """The catalog registers each augmentation once, as a random step, resolving to its class."""
    augments = {n: TRANSFORMS.get(n)() for n in TRANSFORMS.names() if TRANSFORMS.entry(n).meta["random"]}
    assert augments == {
        "random_horizontal_flip": RandomHorizontalFlip,
        "random_vertical_flip": RandomVerticalFlip,
        "random_crop": RandomCrop,
        "random_affine": RandomAffine,
        "gaussian_blur": GaussianBlur,
        "color_jitter": ColorJitter,
    }


# ----------------------------------------------------------------------------------------------- 5. bad arguments


@pytest.mark.parametrize(("build", "match"), [
    (lambda: RandomHorizontalFlip(p=1.5), "probability"),
    (lambda: RandomVerticalFlip(p=-0.1), "probability"),
    (lambda: RandomCrop(0), "positive"),
    (lambda: RandomCrop(8, padding=(1, 2, 3)), "padding"),
    (lambda: RandomCrop(8, padding=-1), "non-negative"),
    (lambda: RandomCrop(8, padding_mode="wrap"), "padding_mode"),
    (lambda: RandomAffine(degrees=-5), "non-negative"),
    (lambda: RandomAffine(degrees=(10, -10)), "min <= max"),
    (lambda: RandomAffine(degrees=10, translate=(0.5, 1.5)), "translate"),
    (lambda: RandomAffine(degrees=10, scale=(0.0, 1.0)), "scale"),
    (lambda: RandomAffine(degrees=10, scale=(1.2, 0.8)), "scale"),
    (lambda: RandomAffine(degrees=10, shear=(1, 2, 3)), "shear"),
    (lambda: RandomAffine(degrees=10, fill="white"), "fill"),
    (lambda: GaussianBlur(4), "odd"),
    (lambda: GaussianBlur((3, 0)), "odd"),
    (lambda: GaussianBlur(3, sigma=(2.0, 1.0)), "sigma"),
    (lambda: GaussianBlur(3, sigma=0.0), "sigma"),
    (lambda: ColorJitter(brightness=-0.1), "brightness"),
    (lambda: ColorJitter(contrast=(1.5, 0.5)), "contrast"),
    (lambda: ColorJitter(hue=0.6), "hue"),
    (lambda: ColorJitter(saturation=(-1, 1)), "saturation"),
])
def test_bad_constructor_args_raise(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_bad_call_inputs_raise():
    x = images()
    with pytest.raises(ValueError, match="larger than"):
        RandomCrop(20)(x, gen())
    with pytest.raises(ValueError, match="channels"):
        ColorJitter(brightness=0.2)(images(c=4), gen())
    with pytest.raises(ValueError, match="fill"):
        RandomAffine(degrees=10, fill=(0.1, 0.2))(x, gen())
    with pytest.raises(ValueError, match="B, C, H, W"):
        RandomHorizontalFlip()(x[0], gen())
    with pytest.raises(ValueError, match="floating"):
        RandomHorizontalFlip()((x * 255).to(torch.uint8), gen())
    with pytest.raises(ValueError, match="reflect padding"):
        GaussianBlur(31)(x, gen())
    with pytest.raises(TypeError, match="Generator"):
        RandomHorizontalFlip()(x, 0)
