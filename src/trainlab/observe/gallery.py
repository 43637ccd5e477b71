"""Sample galleries as self-contained HTML: image thumbnails (base64 PNG), texts and table rows as cards.

    page = gallery_page("inspect runs/demo", [("top", "Top losses", cards_html(samples))])
    write_text(out / "inspect.html", page)         # core.files: atomic

A sample is the dict `trainlab.data.describe.describe_sample` returns plus any labels to print under it
(`true`, `predicted`, `probability`, `loss`, ...). Used by `trainlab inspect` and the cv report.
"""
from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

from trainlab.observe.plots import DPI, pyplot
from trainlab.observe.report import PAGE, esc, section

THUMB = 64  # px: an 8x8 digit or a 224x224 photo both read at this size
CARD_CSS = """<style>
.cards { display: flex; flex-wrap: wrap; gap: 10px; }
.card { background: #fafbfc; border: 1px solid #e3e6eb; border-radius: 6px; padding: 6px; width: 150px;
        font-size: 12px; overflow-wrap: anywhere; }
.card img { image-rendering: pixelated; display: block; margin-bottom: 4px; }
.card .text { font-family: ui-monospace, monospace; max-height: 7em; overflow: hidden; }
</style>"""
LABELS = ("true", "predicted", "probability", "true_probability", "loss", "given", "suggested", "quality")
SHOWN_AS = {"probability": "p(predicted)", "true_probability": "p(true)"}  # which class each probability is of


def png_base64(image: np.ndarray, size: int = THUMB) -> str:
    """(C, H, W) uint8 -> a PNG scaled (nearest) so its longer side is `size`, base64-encoded."""
    arr = np.asarray(image, dtype=np.uint8)
    arr = arr[0] if arr.shape[0] == 1 else arr.transpose(1, 2, 0)  # (H, W) or (H, W, C)
    img = Image.fromarray(arr)
    scale = size / max(img.size)
    img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def figure_html(fig, alt: str) -> str:
    """A matplotlib figure as an <img> with its PNG embedded (base64); the figure is closed."""
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=DPI)
    pyplot().close(fig)
    return f'<img src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode("ascii")}" alt="{esc(alt)}">'


def sample_view(sample: dict) -> str:
    """The sample itself: an <img>, the text, or a small feature table."""
    if "image" in sample:
        return f'<img src="data:image/png;base64,{png_base64(sample["image"])}" alt="sample {sample["index"]}">'
    if "text" in sample:
        return f'<div class="text">{esc(sample["text"][:300])}</div>'
    values = sample.get("values", {})
    return "<br>".join(f"{esc(k)} = {esc(v)}" for k, v in values.items())


def card(sample: dict) -> str:
    lines = [f"#{sample['index']}" + (f" ({sample['split_source']})" if sample.get("split_source") == "test" else "")]
    if sample.get("path"):
        lines.append(esc(sample["path"]))
    for key in LABELS:
        if key in sample:
            v = sample[key]
            name = SHOWN_AS.get(key, key)
            lines.append(f"{name}: {v:.3f}" if isinstance(v, float) else f"{name}: {esc(v)}")
    return f'<div class="card">{sample_view(sample)}{"<br>".join(lines)}</div>'


def cards_html(samples: list[dict]) -> str:
    return '<div class="cards">' + "".join(card(s) for s in samples) + "</div>" if samples else "<p>(none)</p>"


def gallery_page(title: str, sections: list[tuple[str, str, str]], subtitle: str = "") -> str:
    """A whole page: `sections` are (id, title, html body) tuples, shown in order with a nav bar."""
    built = [section(sid, name, body) for sid, name, body in sections]
    return PAGE.substitute(title=esc(title), subtitle=esc(subtitle),
                           nav="".join(f'<a href="#{sid}">{esc(name)}</a>' for sid, name, _ in built),
                           body=CARD_CSS + "\n".join(body for _, _, body in built))


def json_safe(sample: dict) -> dict:
    """The sample without its pixel array (result.json keeps index, path, text, labels)."""
    return {k: v for k, v in sample.items() if k != "image"}
