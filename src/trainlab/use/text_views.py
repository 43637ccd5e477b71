"""What a text model reads: attention weights per head (Transformers) and each token's share of a prediction.

    trainlab inspect runs/text --internals --attribution            # the top-loss texts of the val split
    trainlab inspect runs/text --internals --attribution --text "a great film"

    from trainlab.use.text_views import attention_per_head, token_attribution
    maps = attention_per_head(run.model, ids)        # ids (T,) -> per encoder layer (heads, T', T')
    attr = token_attribution(run.model, ids, target) # ids (T,) -> (T,) signed, in logit units

`attention_per_head` runs one forward pass in eval mode and reads what every `MultiHeadAttention` keeps of
its last pass (`last_weights`); nothing about the forward changes. With `pooling: cls` the model puts a
learned token in front, so T' = T + 1 and row/column 0 is that [CLS] token. `token_attribution` is captum's
`LayerIntegratedGradients` on the embedding layer (any model with an `nn.Embedding`: Transformer, RNN,
LSTM, GRU) from an all-<pad> baseline (a zero embedding): the attributions of a text add up to the target
logit minus the baseline's. Padding is dropped before either runs: masked positions change nothing.
"""
from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import torch
from torch import nn

from trainlab.core.errors import UserError
from trainlab.data.describe import describe_sample
from trainlab.data.text import encode, text_warnings, tokenize
from trainlab.models.attention import MultiHeadAttention
from trainlab.observe.gallery import figure_html
from trainlab.observe.plots import pyplot
from trainlab.observe.report import esc
from trainlab.run.directory import read_data_description
from trainlab.use.inspect import SplitPredictions

IG_STEPS = 32  # Riemann steps of the path integral: the completeness error on a trained text model is < 1%
PANEL_TEXTS = 8  # top-loss texts with token attributions
TICK_LABELS = 40  # heatmaps of longer texts drop the token names on their axes
Section = tuple[str, str, str]


# ----------------------------------------------------------------------------- the numbers

def attention_modules(model: nn.Module) -> list[MultiHeadAttention]:
    """The model's attention layers in the order the forward pass runs them (module order)."""
    return [m for m in model.modules() if isinstance(m, MultiHeadAttention)]


def embedding_layer(model: nn.Module) -> nn.Embedding:
    layers = [m for m in model.modules() if isinstance(m, nn.Embedding)]
    if not layers:
        raise UserError(f"token attribution needs a model with a token embedding; {type(model).__name__} has none")
    return layers[0]


def real_tokens(ids: torch.Tensor, pad_index: int = 0) -> torch.Tensor:
    """(L,) ids -> (T,) the ids up to the last non-pad one (right padding; at least one id)."""
    keep = torch.nonzero(ids != pad_index)
    return ids[: int(keep.max()) + 1] if len(keep) else ids[:1]


@torch.no_grad()
def attention_per_head(model: nn.Module, tokens: torch.Tensor) -> list[torch.Tensor]:
    """(T,) token ids -> per attention layer the weights (heads, T', T'): row = query, column = key."""
    layers = attention_modules(model)
    if not layers:
        raise UserError(f"{type(model).__name__} has no attention layers to show")
    got: list[torch.Tensor] = []
    hooks = [m.register_forward_hook(lambda mod, _i, _o: got.append(mod.last_weights[0].clone())) for m in layers]
    model.eval()
    try:
        model(tokens.reshape(1, -1))
    finally:
        for h in hooks:
            h.remove()
    return got


def token_attribution(model: nn.Module, tokens: torch.Tensor, target: int | torch.Tensor,
                      pad_index: int = 0) -> torch.Tensor:
    """(T,) or (B, T) token ids, target class (or (B,)) -> signed attribution per token, (T,) or (B, T).

    Positive values push the target class's logit up, negative values down; pads get 0.
    """
    from captum.attr import LayerIntegratedGradients  # optional heavy dependency: imported on use

    one = tokens.ndim == 1
    ids = tokens.reshape(1, -1) if one else tokens
    target = torch.as_tensor(target).reshape(-1).expand(len(ids))
    model.eval()
    lig = LayerIntegratedGradients(model, embedding_layer(model))
    # cuDNN computes RNN gradients in training mode only; this is one small batch, so plain kernels cost nothing
    with torch.backends.cudnn.flags(enabled=False):
        attr = lig.attribute(ids, baselines=torch.full_like(ids, pad_index), target=target, n_steps=IG_STEPS)
    attr = attr.sum(-1).detach() * (ids != pad_index)  # (B, T): summed over the embedding dimensions
    return attr[0] if one else attr


# ----------------------------------------------------------------------------- texts of a run

def check_text_request(run_dir: str | Path, text: str | None) -> str | None:
    """Refuse --text before any work: the run must be a text run, the text must hold a token.
    Returns a warning when none of its tokens was seen in training (the views then show only the model's bias)."""
    if text is None:
        return None
    data = read_data_description(Path(run_dir))
    if data["kind"] != "text":
        raise UserError(f"--text needs a text run; {run_dir} is a {data['kind']} run (use --index)")
    meta = data["meta"]
    if not tokenize(text, meta["tokenizer"], meta["lowercase"]):
        raise UserError(f"--text {text!r} has no tokens for this run's {meta['tokenizer']} tokenizer")
    return text_warnings([text], meta).get(0)


def encoded(run, text: str) -> tuple[torch.Tensor, list[str]]:
    """A text -> (T,) the model's input ids without padding, and the T tokens as written (<unk> marked)."""
    meta = run.data["meta"]
    if not tokenize(text, meta["tokenizer"], meta["lowercase"]):
        raise UserError(f"the text {text!r} has no tokens for this run's {meta['tokenizer']} tokenizer")
    ids = real_tokens(run.eval_pipeline()(encode([text], meta))[0])
    vocab = set(meta["vocab"])
    words = tokenize(text, meta["tokenizer"], meta["lowercase"])[: len(ids)]
    return ids, [w if w in vocab else f"{w} (unknown)" for w in words]


def sample_text(run, p: SplitPredictions, index: int | None) -> tuple[str, str]:
    """(text, where it comes from) for --internals: dataset sample `index`, else the split's top loss."""
    if index is None:
        row = int(np.argmax(p.losses))
        index, note = int(p.indices[row]), "the highest-loss sample of the split"
    else:
        ds = p.data.bundle.pool if p.where == "pool" else p.data.bundle.test
        if not 0 <= index < len(ds):
            raise UserError(f"--index {index} is not a sample: the {p.where} set holds 0..{len(ds) - 1}")
        note = f"dataset sample {index}"
    return describe_sample(p.data.bundle, p.where, index)["text"], note


def your_text(run, text: str) -> str:
    """How a panel names the user's text, with the warning a text the model cannot really read deserves."""
    warning = text_warnings([text], run.data["meta"]).get(0)
    return f"your text ({warning})" if warning else "your text"


def with_cls(words: list[str], size: int) -> list[str]:
    """Axis names for a (T', T') map: a leading [CLS] when the model has one in front."""
    return ["[CLS]"] * (size - len(words)) + words


# ----------------------------------------------------------------------------- panels

def shaded(words: list[str], values: np.ndarray, top: float | None = None) -> str:
    """The tokens as spans: red for positive values, blue for negative, opacity = |value| / top (default: the
    largest |value|)."""
    top = top or float(np.abs(values).max()) or 1.0
    spans = []
    for w, v in zip(words, values, strict=True):
        rgb = "214,39,40" if v > 0 else "31,119,180"
        spans.append(f'<span title="{v:+.3g}" style="background: rgba({rgb},{abs(v) / top:.2f}); padding: 1px 2px;'
                     f' border-radius: 3px">{html.escape(w)}</span>')
    return '<div class="text" style="line-height: 1.9">' + " ".join(spans) + "</div>"


def heatmaps(maps: list[torch.Tensor], names: list[str]) -> str:
    """A grid of images: one row per layer, one column per head; rows = queries, columns = keys."""
    plt = pyplot()
    layers, heads = len(maps), maps[0].shape[0]
    side = 2.4 if len(names) <= 12 else 3.4
    fig, axes = plt.subplots(layers, heads, figsize=(side * heads + 0.6, side * layers + 0.4), squeeze=False)
    ticks = len(names) <= TICK_LABELS
    for (i, j), ax in np.ndenumerate(axes):
        ax.imshow(maps[i][j].numpy(), cmap="viridis", vmin=0, vmax=1)
        ax.set_title(f"layer {i + 1} head {j + 1}", fontsize=8)
        ax.set_xticks(range(len(names)) if ticks else [], names if ticks else [], rotation=90, fontsize=6)
        ax.set_yticks(range(len(names)) if ticks else [], names if ticks else [], fontsize=6)
    return figure_html(fig, "attention weights per layer and head")


def attention_panel(run, text: str, note: str) -> str:
    ids, words = encoded(run, text)
    maps = attention_per_head(run.model, ids)
    names = with_cls(words, maps[0].shape[-1])
    with torch.no_grad():
        probs = run.model(ids[None]).softmax(-1)[0]
    pred = int(probs.argmax())
    body = (f"<p>{esc(note)}: predicted <b>{esc(run.classes[pred])}</b> ({float(probs[pred]):.3f}). Each map: row = "
            f"a position that looks (query), column = what it looks at (key); each row sums to 1.</p>")
    if names[0] == "[CLS]":
        rows = "".join(f"<p>layer {i + 1} head {j + 1}</p>" + shaded(names[1:], m[j, 0, 1:].numpy(), top=1.0)
                       for i, m in enumerate(maps) for j in range(m.shape[0]))
        body += "<h3>What [CLS] (the head's input) attends to (opacity = weight)</h3>" + rows
    return body + "<h3>Attention weights (dark 0 to yellow 1)</h3>" + heatmaps(maps, names)


def internals_text(run, p: SplitPredictions, index: int | None, text: str | None) -> list[Section]:
    """The attention panel of a text run: `text`, dataset sample `index`, or the split's highest-loss text."""
    if not attention_modules(run.model):
        return [("internals", "Inside the model",
                 f"<p>{esc(run.cfg.model.name)} has no attention layers: attention maps are drawn for "
                 f"Transformers</p>")]
    shown, note = (text, your_text(run, text)) if text is not None else sample_text(run, p, index)
    return [("internals", "Attention per head", attention_panel(run, shown, note))]


def attribution_text(run, p: SplitPredictions, text: str | None) -> list[Section]:
    """Token attributions (integrated gradients, for the predicted class): `text`, else the top-loss texts."""
    if text is not None:
        items = [(text, your_text(run, text), None)]
    else:
        rows = np.argsort(-p.losses, kind="stable")[:PANEL_TEXTS]
        items = [(describe_sample(p.data.bundle, p.where, int(p.indices[r]))["text"], f"#{int(p.indices[r])}",
                  run.classes[int(p.labels[r])]) for r in rows]
    body = "<p>Integrated gradients per token for the predicted class: red pushes toward it, blue away.</p>"
    for shown, name, true in items:
        ids, words = encoded(run, shown)
        with torch.no_grad():
            probs = run.model(ids[None]).softmax(-1)[0]
        pred = int(probs.argmax())
        attr = token_attribution(run.model, ids, pred).numpy()[: len(words)]
        label = f"{name}: predicted {run.classes[pred]} ({float(probs[pred]):.3f})"
        body += f"<h3>{esc(label + (f', true {true}' if true is not None else ''))}</h3>" + shaded(words, attr)
    return [("attribution", "Token attribution", body)]
