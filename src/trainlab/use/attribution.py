"""What a trained model looks at: Grad-CAM (CNNs) and integrated gradients (any differentiable model), via captum.

    trainlab inspect runs/cnn --attribution        # adds attribution panels of the top-loss images to inspect.html
    trainlab inspect runs/table --attribution      # tables: integrated gradients per CSV column (one-hot summed)

    from trainlab.use.attribution import attribution_maps, mass_fraction
    maps = attribution_maps(model, x, target)      # x (B, C, H, W) as the model takes it
    # -> {"integrated_gradients": (B, H, W), "gradcam": (B, H, W)}
    mass_fraction(maps["gradcam"], mask)           # (B,) share of the attribution inside a boolean (H, W) mask

Both maps are non-negative and summed over channels: integrated gradients as |attribution| against an all-zero
baseline (the mean input after normalization), Grad-CAM as the ReLU of the last Conv2d's gradient-weighted
activations, upsampled (bilinear) to the input size. A table's attribution is per CSV column: the signed integrated
gradients of its encoded features (a number, or every 0/1 column of a category) summed, against the training mean
(0 after normalize), so by completeness each column's value is its share of the move from the mean row's output.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from trainlab.core.errors import UserError
from trainlab.data.impute import column_slices
from trainlab.observe.gallery import cards_html
from trainlab.observe.report import esc, table
from trainlab.use.feature_maps import conv_read_points
from trainlab.use.inspect import SplitPredictions, describe
from trainlab.use.text_views import attribution_text

IG_STEPS = 32  # Riemann steps of the path integral; captum's default 50 changes the maps by < 1% here
PANEL_SAMPLES = 8


def cam_layer(model: nn.Module) -> nn.Module | None:
    """The last Conv2d, or the activation right after it: Grad-CAM on pre-activation maps can weigh to all-negative."""
    points = conv_read_points(model)
    return points[-1][1] if points else None


def integrated_gradients(model: nn.Module, x: torch.Tensor, target: torch.Tensor, signed: bool = False) -> torch.Tensor:
    """(B, ...) input, (B,) classes -> |integrated gradients| (or signed) with the input's shape."""
    from captum.attr import IntegratedGradients  # optional heavy dependency: imported on use

    model.eval()
    attr = IntegratedGradients(model).attribute(x, baselines=torch.zeros_like(x), target=target, n_steps=IG_STEPS)
    return attr.detach() if signed else attr.detach().abs()


def column_attribution(model: nn.Module, x: torch.Tensor, target: torch.Tensor, meta: dict) -> torch.Tensor:
    """A table's model inputs (B, F) after the eval transforms, (B,) classes -> (B, columns) signed attribution
    per CSV column (meta["raw_features"] order): the integrated gradients of its encoded features, summed."""
    attr = integrated_gradients(model, x, target, signed=True)  # (B, F)
    return torch.stack([attr[:, sl].sum(1) for sl in column_slices(meta).values()], 1)


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
    if p.data.bundle.kind == "tabular" and (p.data.bundle.meta or {}).get("raw_features"):
        return attribution_table(run, p)
    if p.data.bundle.kind != "image":
        return [("attribution", "Attribution", f"<p>attribution is drawn for image, text and table runs; this is a "
                                               f"{esc(p.data.bundle.kind)} run</p>")]
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


def split_rows(p: SplitPredictions) -> torch.Tensor:
    """The split's stored table rows (N, F), in the order of p's arrays."""
    ds = p.data.bundle.pool if p.where == "pool" else p.data.bundle.test
    return ds.x[torch.as_tensor(p.indices, dtype=torch.long)]


def table_importance(run, p: SplitPredictions) -> list[tuple[str, float, float]]:
    """[(column, mean |attribution|, share of the total)] over the whole split for the predicted classes, largest
    first: which CSV columns move this model's decisions."""
    meta = p.data.bundle.meta
    per_column = column_attribution(run.model, run.eval_pipeline()(split_rows(p)), torch.as_tensor(p.predicted),
                                    meta)  # (N, columns)
    mean = per_column.abs().mean(0)
    share = mean / mean.sum().clamp_min(1e-12)
    order = torch.argsort(-mean, stable=True).tolist()
    return [(str(meta["raw_features"][j]), float(mean[j]), float(share[j])) for j in order]


def attribution_table(run, p: SplitPredictions) -> list[tuple[str, str, str]]:
    """inspect.html panel of a table run: the columns ranked over the split, then the top-loss rows column by
    column (value, attribution for the predicted class)."""
    meta = p.data.bundle.meta
    ranked = table_importance(run, p)
    overall = table([[name, mean, f"{100 * share:.1f}%"] for name, mean, share in ranked],
                    ["column", "mean |attribution|", "share"])
    rows = np.argsort(-p.losses, kind="stable")[:PANEL_SAMPLES]
    raw = split_rows(p)[torch.as_tensor(rows.copy())]
    attr = column_attribution(run.model, run.eval_pipeline()(raw), torch.as_tensor(p.predicted[rows]), meta)
    samples = [describe(p, int(r), run.classes) for r in rows]
    header = ["column"] + [f"#{s['index']}: {s['true']} → {s['predicted']}" for s in samples]
    body = [[str(col)] + [f"{s['values'][str(col)]} ({attr[i, j]:+.3g})" for i, s in enumerate(samples)]
            for j, col in enumerate(meta["raw_features"])]
    note = ("<p>Integrated gradients per CSV column (a category's one-hot columns summed), for the predicted "
            "class, against the training mean row; over the whole " + esc(f"{len(p.labels)}-sample split") + ":</p>")
    return [("attribution", "Attribution per column", note + overall + "<h3>The top losses, column by column "
             "(value and attribution)</h3>" + table(body, header))]

