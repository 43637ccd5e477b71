"""Transform pipelines: implicit uint8 -> float, fitted normalize, deterministic prefix, per-sample augmentation."""
from __future__ import annotations

import pytest
import torch

from trainlab.core.errors import UserError
from trainlab.data.transforms import Normalize, Pipeline, ToFloat


def test_uint8_images_become_float_and_normalized():
    x = torch.randint(0, 256, (50, 3, 4, 4), dtype=torch.uint8)
    p = Pipeline([{"name": "normalize"}], uint8_input=True)
    p.fit(x)
    out = p(x)
    assert isinstance(p.steps[0], ToFloat) and out.dtype == torch.float32
    assert torch.allclose(out.mean((0, 2, 3)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(out.std((0, 2, 3), unbiased=False), torch.ones(3), atol=1e-4)


def test_tabular_normalize_is_per_feature():
    x = torch.tensor([[1.0, 10.0], [3.0, 30.0]])
    n = Normalize()
    n.fit(x)
    assert n.mean.tolist() == [2.0, 20.0] and n.std.tolist() == [1.0, 10.0]


def test_constant_feature_does_not_divide_by_zero():
    n = Normalize()
    n.fit(torch.ones(10, 2))
    assert torch.isfinite(n(torch.ones(3, 2))).all()


def test_explicit_mean_std_state_round_trip():
    p = Pipeline([{"name": "resize", "size": [4, 4]}, {"name": "normalize", "mean": [0.5], "std": [0.25]}], True)
    x = torch.full((2, 1, 8, 8), 255, dtype=torch.uint8)
    assert torch.allclose(p(x), torch.full((2, 1, 4, 4), 2.0))
    again = Pipeline(p.state(), True)
    assert torch.equal(again(x), p(x))


def test_prefix_runs_deterministic_steps_once_and_rest_augments():
    specs = [{"name": "resize", "size": [6, 6]}, {"name": "random_horizontal_flip", "p": 1.0}, {"name": "normalize"}]
    p = Pipeline(specs, True)
    x = torch.arange(64, dtype=torch.uint8).reshape(1, 1, 8, 8).repeat(4, 1, 1, 1)
    p.fit(x)
    pre = p.prefix(x)
    assert pre.shape == (4, 1, 6, 6) and p.random
    out = p.rest(pre, torch.Generator().manual_seed(0))
    direct = p(x, torch.Generator().manual_seed(0))
    assert torch.equal(out, direct)
    assert torch.allclose(out, p.steps[-1](pre.flip(-1)))  # p=1 flips every sample


def test_fitted_stats_ignore_augmentation():
    x = torch.rand(100, 1, 8, 8)
    plain, aug = Pipeline([{"name": "normalize"}], False), Pipeline(
        [{"name": "random_affine", "degrees": 30}, {"name": "normalize"}], False)
    plain.fit(x)
    aug.fit(x)
    assert torch.equal(plain.steps[-1].mean, aug.steps[-1].mean)


@pytest.mark.parametrize("spec, needle", [
    ({"name": "resize"}, "resize"), ({"name": "nosuch"}, "nosuch"), ({"size": 3}, "no name"),
    ({"name": "normalize", "mean": [0.5]}, "both"), ({"name": "random_affine", "degrees": -5}, "random_affine"),
])
def test_bad_specs(spec, needle):
    with pytest.raises(UserError, match=needle):
        Pipeline([spec], True)


def test_normalize_fitted_on_bytes_equals_the_float_fit():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (500, 3, 6, 6), dtype=torch.uint8, generator=g)
    x[:, 2] = 7  # a constant channel: std 0 is replaced by 1
    by_float = Normalize()
    by_float.fit(ToFloat()(x))
    pipe = Pipeline([{"name": "normalize"}], uint8_input=True)
    pipe.fit(x)  # to_float + normalize: fitted from each channel's byte histogram
    fitted = pipe.steps[1]
    assert torch.equal(fitted.mean, by_float.mean) and torch.equal(fitted.std, by_float.std)
    assert fitted.std[2].item() == 1.0 and abs(fitted.mean[2].item() - 7 / 255) < 1e-7


@pytest.mark.parametrize("dtype, specs", [(torch.uint8, []), (torch.float32, []), (torch.float32, ["to_tensor"])])
def test_prefix_normalizes_its_own_copy_in_place_and_never_the_callers_tensor(dtype, specs):
    """In-memory data: normalize after to_tensor works in place on the float copy (memory), bit for bit as
    (x - mean) / std, and a float input (to_tensor returns that same tensor) is left untouched."""
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (64, 1, 8, 8), generator=g).to(dtype)
    before = x.clone()
    pipe = Pipeline([*specs, {"name": "normalize", "mean": [0.2], "std": [0.3]}], uint8_input=dtype == torch.uint8)
    out = pipe.prefix(x)
    scaled = before.float() / 255 if dtype == torch.uint8 else before.float()
    assert torch.equal(x, before)  # the caller's tensor
    assert torch.equal(out, (scaled - 0.2) / 0.3) and out.data_ptr() != x.data_ptr()
