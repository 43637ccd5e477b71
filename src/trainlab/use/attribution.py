"""What a trained model looks at: Grad-CAM (CNNs) and integrated gradients (any differentiable model), via captum.

    trainlab inspect runs/cnn --attribution        # adds attribution panels of the top-loss images to inspect.html

    from trainlab.use.attribution import attribution_maps, mass_fraction
    maps = attribution_maps(model, x, target)      # x (B, C, H, W) as the model takes it
    # -> {"integrated_gradients": (B, H, W), "gradcam": (B, H, W)}
    mass_fraction(maps["gradcam"], mask)           # (B,) share of the attribution inside a boolean (H, W) mask

Both maps are non-negative and summed over channels: integrated gradients as |attribution| against an all-zero
baseline (the mean input after normalization), Grad-CAM as the ReLU of the last Conv2d's gradient-weighted
activations, upsampled (bilinear) to the input size.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from trainlab.core.errors import UserError
from trainlab.observe.gallery import cards_html
from trainlab.use.feature_maps import conv_read_points
from trainlab.use.inspect import SplitPredictions, describe
from trainlab.use.text_views import attribution_text

IG_STEPS = 32  # Riemann steps of the path integral; captum's default 50 changes the maps by < 1% here
PANEL_SAMPLES = 8


def cam_layer(model: nn.Module) -> nn.Module | None:
    """The last Conv2d, or the activation right after it: Grad-CAM on pre-activation maps can weigh to all-negative."""
    points = conv_read_points(model)
    return points[-1][1] if points else None


def integrated_gradients(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(B, ...) input, (B,) classes -> |integrated gradients| with the input's shape."""
    from captum.attr import IntegratedGradients  # optional heavy dependency: imported on use

    model.eval()
    attr = IntegratedGradients(model).attribute(x, baselines=torch.zeros_like(x), target=target, n_steps=IG_STEPS)
    return attr.detach().abs()


def gradcam(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor | None:
    """(B, C, H, W) -> (B, H, W) Grad-CAM at the last Conv2d; None for a model without one."""
    from captum.attr import LayerAttribution, LayerGradCam  # optional heavy dependency: imported on use

    layer = cam_layer(model)
    if layer is None:
        return None
    model.eval()
    cam = LayerGradCam(model, layer).attribute(x, target=target, relu_attributions=True)  # (B, 1, h, w)
    return LayerAttribution.interpolate(cam, tuple(x.shape[-2:]), "bilinear").detach()[:, 0].clamp_min(0)


def attribution_maps(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """Image inputs (B, C, H, W) -> {"integrated_gradients": (B, H, W), "gradcam": (B, H, W) when a CNN}."""
    maps = {"integrated_gradients": integrated_gradients(model, x, target).sum(1)}
    cam = gradcam(model, x, target)
    if cam is not None:
        maps["gradcam"] = cam
    return maps


def mass_fraction(attr: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, H, W) non-negative maps, (H, W) bool mask -> (B,) fraction of each map's total inside the mask."""
    total = attr.flatten(1).sum(1).clamp_min(1e-12)
    return (attr * mask).flatten(1).sum(1) / total


def overlay(image: np.ndarray, attr: np.ndarray) -> np.ndarray:
    """(C, H, W) uint8 image + (H, W) map -> (3, H, W) uint8: the image in grey under the map in 'inferno'."""
    grey = image.astype(float).mean(0) / 255.0  # (H, W)
    heat = attr / attr.max() if attr.max() > 0 else attr
    import matplotlib  # optional heavy dependency: imported on use

    rgb = matplotlib.colormaps["inferno"](heat)[..., :3]  # (H, W, 3)
    mixed = 0.45 * grey[..., None] + 0.55 * rgb
    return (mixed * 255).round().astype(np.uint8).transpose(2, 0, 1)


def attribution_sections(run, predictions: SplitPredictions, text: str | None = None) -> list[tuple[str, str, str]]:
    """inspect.html panels: each top-loss sample (or a text run's `text`) with its attribution for the predicted
    class: maps over the pixels of images, integrated gradients per token of texts."""
    p = predictions
    if text is not None and p.data.bundle.kind != "text":
        raise UserError(f"--text needs a text run; {run.dir} is a {p.data.bundle.kind} run")
    if p.data.bundle.kind == "text":
        return attribution_text(run, p, text)
    if p.data.bundle.kind != "image":
        return [("attribution", "Attribution", "<p>attribution panels are drawn for image and text runs</p>")]
    rows = np.argsort(-p.losses, kind="stable")[:PANEL_SAMPLES]
    samples = [describe(p, int(r), run.classes) for r in rows]
    raw = torch.stack([torch.as_tensor(s["image"]) for s in samples])  # (B, C, H, W) uint8
    x = run.eval_pipeline()(raw)
    maps = attribution_maps(run.model, x, torch.as_tensor(p.predicted[rows]))
    body = ""
    for name, m in maps.items():
        cards = [{**s, "image": overlay(s["image"], m[i].numpy())} for i, s in enumerate(samples)]
        body += f"<h3>{name.replace('_', ' ')} (for the predicted class)</h3>" + cards_html(cards)
    return [("attribution", "Attribution maps of the top losses", body)]
