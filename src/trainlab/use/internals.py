"""Inside the model for one sample: CNN feature maps of the first layers, Transformer attention per head.

    trainlab inspect runs/cnn --internals --index 17     # feature maps of dataset sample 17 in inspect.html
    trainlab inspect runs/text --internals --text "a great film"

Which view a run gets follows from its data and model: image runs with a Conv2d get feature maps; text runs
with attention layers get attention weights per head. The sample is the highest-loss one of the split unless
`index` (a dataset index) or `text` (text runs) names another.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from trainlab.core.errors import UserError
from trainlab.data.describe import describe_sample
from trainlab.use.feature_maps import feature_map_html, feature_maps
from trainlab.use.inspect import SplitPredictions
from trainlab.use.text_views import internals_text

Section = tuple[str, str, str]  # (id, title, html) of one inspect.html panel
FEATURE_LAYERS = 2  # the first layers: edges and blobs a learner can still recognise


def chosen_row(p: SplitPredictions, index: int | None) -> int | None:
    """The split row of dataset index `index` (None when it is not in the split), or the highest-loss row."""
    if index is None:
        return int(np.argmax(p.losses))
    rows = np.flatnonzero(p.indices == index)
    return int(rows[0]) if len(rows) else None


def image_sample(run, p: SplitPredictions, index: int | None) -> tuple[dict, str]:
    """The chosen image (describe_sample dict with a (C, H, W) uint8 'image') and a caption for it."""
    row = chosen_row(p, index)
    idx = int(p.indices[row]) if row is not None else index
    size = len(p.data.bundle.test) if p.where == "test" else len(p.data.bundle.pool)
    if not 0 <= idx < size:
        raise UserError(f"--index {idx} is outside the {p.where} dataset (0..{size - 1})")
    sample = describe_sample(p.data.bundle, p.where, idx)
    if row is None:
        return sample, f"dataset index {idx} (not in this split)"
    pred = int(p.predicted[row])
    return sample, (f"dataset index {idx}: true {run.classes[int(p.labels[row])]}, predicted {run.classes[pred]} "
                    f"({p.probs[row, pred]:.2f}), loss {p.losses[row]:.3f}")


def cnn_sections(run, p: SplitPredictions, index: int | None) -> list[Section]:
    sample, caption = image_sample(run, p, index)
    x = run.eval_pipeline()(torch.as_tensor(sample["image"])[None])  # (1, C, H, W) as the model takes it
    maps = feature_maps(run.model, x, FEATURE_LAYERS)
    return [("internals", "Feature maps of the first conv layers", feature_map_html(sample["image"], maps, caption))]


def internals_sections(run, predictions: SplitPredictions, index: int | None = None,
                       text: str | None = None) -> list[Section]:
    """The inside-the-model panels that fit this run (see the module docstring)."""
    kind = predictions.data.bundle.kind
    if text is not None and kind != "text":
        raise UserError(f"--text needs a text run; {run.dir} is a {kind} run (use --index)")
    if kind == "text":
        return internals_text(run, predictions, index, text)
    has_conv = any(isinstance(m, nn.Conv2d) for m in run.model.modules())
    if kind == "image" and has_conv:
        return cnn_sections(run, predictions, index)
    if kind == "image":
        return [("internals", "Inside the model", "<p>feature maps need a model with Conv2d layers; this one has "
                                                   "none (see the activation distributions in report.html)</p>")]
    return [("internals", "Inside the model", f"<p>{kind} runs: see the activation distributions per layer over "
                                               "training in the run's report.html</p>")]
