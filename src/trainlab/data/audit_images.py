"""Image problems the audit looks for: near-blank, very dark or bright, blurry, grayscale among colour images,
and (image folders) odd sizes or aspect ratios of the files as stored.

    stats = image_stats(x)                       # x: uint8 (N, C, H, W) -> per-image mean, contrast, sharpness
    findings = image_findings(data, stats)

Every rule compares an image with the data set's own typical image as well as with an absolute bound, so
MNIST's white-on-black digits are not "dark" and a data set of night photos is not flagged image by image.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from trainlab.data.audit import AuditInput, finding, where

BLANK_STD = 0.02  # near-blank: pixel standard deviation below 2% of the range (a flat or almost flat image)
DARK = 0.15  # very dark: even the brightest pixels (99th percentile) are darker than 0.15 of the range; a thin
             # white digit on black (MNIST's "1", mean 0.03) is not dark: its brightest pixels are white
BRIGHT = 0.85  # very bright: even the darkest pixels (1st percentile) are brighter than 0.85
BLUR = 0.2  # blurry: sharpness below a fifth of the data set's median
GRAY_SPREAD = 0.02  # grayscale: channels differ from their mean by less than 2% of the image's brightness ...
COLOUR_SHARE = 0.9  # ... in a data set where at least 90% of the images are in colour
ASPECT = 2.0  # odd aspect ratio: width/height more than 2x away from the data set's median
SMALL = 0.25  # odd size: shorter side below a quarter of the median shorter side
CHUNK = 2048


def image_stats(x: torch.Tensor) -> dict[str, np.ndarray]:
    """uint8 (N, C, H, W) -> {mean, std, sharpness, spread, low, high}: (N,) each; sharpness = mean |Laplacian| /
    std; low, high: the 1st and 99th percentile of the gray pixels; spread: colour relative to brightness."""
    lap = torch.tensor([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=torch.float32).view(1, 1, 3, 3)
    parts = {"mean": [], "std": [], "sharpness": [], "spread": [], "high": [], "low": []}
    for chunk in x.split(CHUNK):
        f = chunk.float() / 255.0  # (B, C, H, W)
        gray = f.mean(1, keepdim=True)  # (B, 1, H, W)
        std = gray.flatten(1).std(1)
        edges = F.conv2d(gray, lap).abs().flatten(1).mean(1) if min(f.shape[-2:]) >= 3 else torch.zeros(len(f))
        parts["mean"].append(gray.flatten(1).mean(1))
        low, high = torch.quantile(gray.flatten(1), torch.tensor([0.01, 0.99]), dim=1)  # (B,) each
        parts["low"].append(low)
        parts["high"].append(high)
        parts["std"].append(std)
        parts["sharpness"].append(edges / std.clamp_min(1e-3))
        spread = ((f - f.mean(1, keepdim=True)).abs().flatten(1).mean(1) / gray.flatten(1).mean(1).clamp_min(1e-3)
                  if f.shape[1] == 3 else torch.zeros(len(f)))
        parts["spread"].append(spread)
    return {k: torch.cat(v).numpy() for k, v in parts.items()}


def image_findings(data: AuditInput, stats: dict[str, np.ndarray], sizes: np.ndarray | None = None) -> list[dict]:
    """One finding per image and problem; `sizes` (N, 2) are the stored (height, width) of image files."""
    mean, std, sharp = stats["mean"], stats["std"], stats["sharpness"]
    blank = std < BLANK_STD
    med = float(np.median(mean))
    checks = [
        ("near-blank", blank, 1 - std / BLANK_STD, "almost no contrast (pixel std {v:.3f})", std),
        ("very dark", ~blank & (stats["high"] < DARK), 1 - stats["high"] / DARK,
         "very dark (its brightest pixels reach {v:.2f} of the range; typical mean " + f"{med:.2f})", stats["high"]),
        ("very bright", ~blank & (stats["low"] > BRIGHT), (stats["low"] - BRIGHT) / (1 - BRIGHT),
         "very bright (its darkest pixels are at {v:.2f} of the range; typical mean " + f"{med:.2f})", stats["low"]),
    ]
    positive = sharp[~blank]
    if len(positive) >= 20 and positive.max() > 0:
        bound = BLUR * float(np.median(positive))
        checks.append(("blurry", ~blank & (sharp < bound), 1 - sharp / max(bound, 1e-6),
                       "blurry (sharpness {v:.3f}; typical " + f"{np.median(positive):.3f})", sharp))
    spread = stats["spread"]
    if (spread >= GRAY_SPREAD).mean() >= COLOUR_SHARE:
        checks.append(("grayscale", spread < GRAY_SPREAD, 1 - spread / GRAY_SPREAD,
                       "grayscale among colour images (channel spread {v:.4f})", spread))
    if sizes is not None:
        checks += size_checks(sizes)
    out = []
    for problem, mask, score, text, values in checks:
        for s in np.flatnonzero(mask):
            out.append(finding(data, "image_issue", [s], float(np.clip(score[s], 0, 1)),
                               f"{where(data, s)} is {text.format(v=float(values[s]))}: check it, drop it if it "
                               f"is not a real sample", problem=problem))
    return out


def size_checks(sizes: np.ndarray) -> list[tuple]:
    """Odd aspect ratios and small images among files of an image folder; sizes: (N, 2) height, width."""
    aspect = np.log(sizes[:, 1] / np.maximum(sizes[:, 0], 1))
    off = np.abs(aspect - np.median(aspect))
    short = sizes.min(1).astype(float)
    small = short < SMALL * np.median(short)
    return [("odd aspect ratio", off > np.log(ASPECT), np.minimum(off / np.log(ASPECT) - 1, 1),
             "an odd shape (aspect ratio log {v:+.2f} away from the typical)", aspect - np.median(aspect)),
            ("small", small, 1 - short / (SMALL * np.median(short)), "much smaller than the others "
             "(shorter side {v:.0f} px)", short)]


def stored_sizes(paths: list[str]) -> np.ndarray:
    """(N, 2) height, width of image files as stored (read from their headers, not decoded)."""
    from PIL import Image  # optional heavy dependency: imported on use

    sizes = []
    for p in paths:
        with Image.open(p) as im:
            sizes.append((im.height, im.width))
    return np.asarray(sizes, dtype=np.int64)
