"""Attribution with a known answer: the class is decided only by WHERE a bright 4x4 patch sits."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from trainlab.models.catalog import CNNConfig
from trainlab.models.cnn import build_cnn
from trainlab.use.attribution import attribution_maps, mass_fraction

SIZE = 16
CORNERS = [(2, 2), (2, 10), (10, 2), (10, 10)]  # class k: a bright 4x4 patch at CORNERS[k], 1/16 of the image


def patch_images(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, 1, 16, 16) noise in [0, 0.5) with one bright (1.0) patch; the label is the patch's corner."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, SIZE, SIZE, generator=g) * 0.5
    y = torch.randint(0, len(CORNERS), (n,), generator=g)
    for i, k in enumerate(y.tolist()):
        r, c = CORNERS[k]
        x[i, :, r:r + 4, c:c + 4] = 1.0
    return x, y


def patch_mask(k: int) -> torch.Tensor:
    mask = torch.zeros(SIZE, SIZE, dtype=torch.bool)
    r, c = CORNERS[k]
    mask[r:r + 4, c:c + 4] = True
    return mask


@pytest.fixture(scope="module")
def trained():
    """trainlab's own conv-block CNN (2 blocks: conv-BN-ReLU-maxpool), trained to ~100% on the task."""
    torch.manual_seed(0)
    model, (x, y) = build_cnn(CNNConfig(channels=[8, 16]), (1, SIZE, SIZE), len(CORNERS)), patch_images(1024, 0)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(8):
        for i in range(0, len(x), 64):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[i:i + 64]), y[i:i + 64]).backward()
            opt.step()
    model.eval()
    xt, yt = patch_images(200, 1)
    assert (model(xt).argmax(1) == yt).float().mean() >= 0.98  # accurate before we ask where it looks
    return model


@pytest.mark.slow
def test_attribution_concentrates_on_the_patch(trained):
    x, y = patch_images(160, 2)
    fractions, peaks = {}, {}
    for k in range(len(CORNERS)):
        maps = attribution_maps(trained, x[y == k], y[y == k])
        assert set(maps) == {"integrated_gradients", "gradcam"} and maps["gradcam"].shape[1:] == (SIZE, SIZE)
        for name, m in maps.items():
            assert (m >= 0).all()
            fractions.setdefault(name, []).append(float(mass_fraction(m, patch_mask(k)).mean()))
            peak = m.flatten(1).argmax(1)  # (B,) flat position of each map's maximum
            peaks.setdefault(name, []).append(float(patch_mask(k).flatten()[peak].float().mean()))
    print("mass inside the patch (1/16 of the area):", json.dumps(fractions))
    print("share of maps whose maximum is inside the patch:", json.dumps(peaks))
    # measured: integrated gradients 0.85 of the mass, Grad-CAM 0.29-0.34 (its 8x8 map, upsampled, spills onto
    # the patch's rim), both peak inside the patch on every image. Uniform maps would put 1/16 = 0.0625 there.
    assert min(fractions["integrated_gradients"]) >= 0.6, fractions
    assert min(fractions["gradcam"]) >= 0.2, fractions  # > 3x uniform
    assert min(min(v) for v in peaks.values()) >= 0.95, peaks
