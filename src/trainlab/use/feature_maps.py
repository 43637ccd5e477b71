"""What the first conv layers of a CNN compute for one image: each channel's activation map.

    from trainlab.use.feature_maps import feature_maps
    maps = feature_maps(model, x, layers=2)   # x (1, C, H, W) as the model takes it
    # -> [("0.0.2 (after Conv2d 0.0.0)", (C1, H1, W1)), ("0.1.2 ...", (C2, H2, W2))]

A map is read after the activation that follows each Conv2d (what the next layer sees); a conv without one
is read at its own output. Forward hooks only: the model computes exactly what it computes in training.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from trainlab.diagnose.signals import forward_with_hooks
from trainlab.observe.gallery import png_base64
from trainlab.observe.report import esc

# what counts as the activation after a conv (Grad-CAM on pre-activation maps can weigh to all-negative)
ACTIVATIONS = (nn.ReLU, nn.LeakyReLU, nn.GELU, nn.SiLU, nn.ELU, nn.Tanh, nn.Sigmoid)
MAX_CHANNELS = 32  # per layer on the page: enough to see edge/blob detectors, small enough to scan
TILE = 72  # px per channel map


def conv_read_points(model: nn.Module) -> list[tuple[str, nn.Module, str]]:
    """(name, module to hook, label) for every Conv2d in forward order: the activation right after it (a
    BatchNorm may sit between), or the conv itself. Feature maps read the first ones, Grad-CAM the last."""
    named = list(model.named_modules())
    out = []
    for i, (name, m) in enumerate(named):
        if isinstance(m, nn.Conv2d):
            after = [(n, a) for n, a in named[i + 1:i + 3] if isinstance(a, ACTIVATIONS)]
            hook_name, hook = after[0] if after else (name, m)
            label = f"{hook_name} ({type(hook).__name__} after Conv2d {name})" if after else f"Conv2d {name}"
            out.append((hook_name, hook, label))
    return out


def read_points(model: nn.Module, layers: int) -> list[tuple[str, nn.Module, str]]:
    """The first `layers` of conv_read_points."""
    return conv_read_points(model)[:layers]


@torch.no_grad()
def feature_maps(model: nn.Module, x: torch.Tensor, layers: int = 2) -> list[tuple[str, torch.Tensor]]:
    """(1, C, H, W) input -> [(label, (channels, h, w) activation map)] of the first `layers` conv layers."""
    points = read_points(model, layers)
    seen: dict[str, torch.Tensor] = {}
    forward_with_hooks(model, x, [(m, lambda _m, _i, out, key=label: seen.setdefault(key, out.detach()))
                                  for _, m, label in points])
    return [(label, seen[label][0]) for _, _, label in points if label in seen]


def to_uint8(fmap: torch.Tensor) -> np.ndarray:
    """(h, w) map -> (1, h, w) uint8 scaled to its own min..max (each channel gets the full grey range)."""
    lo, hi = float(fmap.min()), float(fmap.max())
    scaled = (fmap - lo) / (hi - lo) if hi > lo else torch.zeros_like(fmap)
    return (scaled * 255).round().to(torch.uint8).numpy()[None]


def feature_map_html(image: np.ndarray, maps: list[tuple[str, torch.Tensor]], caption: str) -> str:
    """The input image, then per layer a grid of its channels (brightest = strongest response)."""
    img = f'<img src="data:image/png;base64,{png_base64(image, 128)}" alt="input">'
    html = f"<p>{esc(caption)}</p>{img}"
    for label, fmap in maps:
        tiles = "".join(f'<div class="card"><img src="data:image/png;base64,{png_base64(to_uint8(ch), TILE)}" '
                        f'alt="channel {c}">ch {c}: max {float(ch.max()):.2f}, '
                        f'{float((ch > 0).float().mean()):.0%} active</div>'
                        for c, ch in enumerate(fmap[:MAX_CHANNELS]))
        html += f"<h3>{esc(label)}: {fmap.shape[0]} channels, {fmap.shape[1]}x{fmap.shape[2]}</h3>"
        html += f'<div class="cards">{tiles}</div>'
    return html
