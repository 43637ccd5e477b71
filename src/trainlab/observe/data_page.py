"""show.html (`trainlab show`) and the augmentation strip of report.html, from what trainlab.data.preview computed.

    page = show_page("digits", sections)                  # sections: (id, title, html) from the builders below
    augmentation_html(preview.augmentation_preview(view))  # a table: stored | draw 1 | draw 2 | eval pipeline
    strip_png(preview.augmentation_preview(view), out / "augmentation.png")   # the same, as one small PNG

Images are inlined as base64 PNGs (observe.gallery): the page is one self-contained file.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from trainlab.core.files import make_dir, write_bytes
from trainlab.observe.gallery import gallery_page, png_base64
from trainlab.observe.report import counts_table, esc, image, table

CELL = 48  # px per image in the strip: digits (8x8) and photos alike stay recognisable and the PNG small
LABEL_W = 64  # px of the strip's row labels
TOKEN_CSS = """<style>
.tok { display: inline-block; font-family: ui-monospace, monospace; font-size: 12px; padding: 1px 4px; margin: 1px;
       border-radius: 3px; background: #eef2f8; }
.tok.unk { background: #fde2c4; } .tok.pad { background: #e3e6eb; color: #6b7385; }
td img { image-rendering: pixelated; }
</style>"""


def show_page(title: str, sections: list[tuple[str, str, str]], subtitle: str = "") -> str:
    """The whole page; `sections` are (id, title, body) tuples."""
    (sid, name, body), *rest = sections
    return gallery_page(title, [(sid, name, TOKEN_CSS + body), *rest], subtitle)


def _img(arr: np.ndarray, size: int = 72) -> str:
    return f'<img src="data:image/png;base64,{png_base64(arr, size)}" alt="">'


# ----------------------------------------------------------------------------- sections

def splits_html(sizes: dict[str, int], counts: dict | None, targets: dict | None, chart: Path | None) -> str:
    """Samples per split; per class (classification) or target statistics (regression); the bar chart."""
    parts = [table([[s, n] for s, n in sizes.items()], ["split", "samples"])]
    if counts:
        parts.append("<p>Samples per class (share of the split):</p>" + counts_table(counts, sizes))
    if targets:
        keys = ("samples", "mean", "std", "min", "max")
        rows = [[s, *[t.get(k, "") for k in keys]] for s, t in targets.items()]
        parts.append("<p>Targets per split:</p>" + table(rows, ["split", *keys]))
    if chart is not None:
        parts.append(image(chart, "samples per class and split"))
    return "".join(parts)


def augmentation_html(aug: dict) -> str:
    """One row per training sample: stored, each draw of the training pipeline, the eval pipeline."""
    draws = len(aug["train"])
    note = ("<p>The training pipeline has random steps: each draw below is a different pass, as in "
            "different epochs.</p>" if aug["random"] else
            "<p>No augmentation: <code>data.transforms.train</code> has no random step, so every epoch sees the "
            "same training images.</p>")
    shown = (f"<p>Pixels shown: training pipeline {esc(aug['display']['train'])}, eval pipeline "
             f"{esc(aug['display']['eval'])}.</p>")
    head = ["sample", "stored", *[f"training draw {d + 1}" for d in range(draws)], "eval pipeline"]
    rows = []
    for i, (idx, label) in enumerate(zip(aug["indices"], aug["labels"], strict=True)):
        cells = [f"#{idx}<br>{esc(label)}", _img(aug["raw"][i]), *[_img(t[i]) for t in aug["train"]],
                 _img(aug["eval"][i])]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    changed = ", ".join("-" if c is None else f"{c:.1%}" for c in aug["changed_vs_raw"])
    stats = aug["model_input"]
    ranges = "; ".join(f"{k}: shape {s['shape']}, values {s['min']:.3g}..{s['max']:.3g} (mean {s['mean']:.3g}, std "
                       f"{s['std']:.3g})" for k, s in stats.items() if s)
    return (note + shown + "<table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in head) + "</tr>" + "".join(rows)
            + f"</table><p>Pixels changed by each draw: {esc(changed)}. What the model receives: {esc(ranges)}.</p>")


def text_html(text: dict, chart: Path | None) -> str:
    """Vocabulary, coverage and truncation per split, then samples as written and as tokens."""
    rows = [[s, st["texts"], st["tokens"], _pct(st["coverage"]), _pct(st["oov_share"]), st["truncated"],
             st["length"].get("median", ""), st["length"].get("max", ""),
             ", ".join(f"{t} ({c})" for t, c in st["common_oov"][:5])] for s, st in text["splits"].items()]
    parts = [f"<p>Vocabulary: {text['vocab_size']} tokens (built from the training texts, with <code>&lt;pad&gt;"
             f"</code> and <code>&lt;unk&gt;</code>); tokenizer {esc(text['tokenizer'])}, max_len {text['max_len']}."
             "</p>",
             table(rows, ["split", "texts", "tokens", "in vocabulary", "out of vocabulary", "truncated",
                          "median length", "max length", "most common unknown tokens"])]
    if chart is not None:
        parts.append(image(chart, "text lengths against max_len"))
    for s in text["samples"]:
        toks = "".join(f'<span class="tok {k}">{esc(t)}</span>' for t, _, k in s["tokens"])
        pad = f'<span class="tok pad">&lt;pad&gt; x {s["pad"]}</span>' if s["pad"] else ""
        cut = f" <i>({s['cut']} tokens cut off by max_len)</i>" if s["cut"] else ""
        parts.append(f"<h3>#{s['index']} ({esc(s['label'])})</h3><pre>{esc(s['text'][:1000])}</pre><p>{toks}{pad}"
                     f"{cut}</p>")
    return "".join(parts)


def _pct(v) -> str:
    return "-" if v is None else f"{v:.1%}"


def windows_html(win: dict, chart: Path | None) -> str:
    parts = [f"<p>Each window: {win['lookback']} past steps in (columns {esc(', '.join(win['columns']))}), "
             f"the next {win['horizon']} step(s) of {esc(', '.join(win['targets']) or 'the target')} out; a new "
             f"window every {win['stride']} step(s).</p>"]
    if win.get("target_steps"):
        parts.append(table([[s, *(r or ["-", "-"])] for s, r in win["target_steps"].items()],
                           ["split", "first target step", "last target step"]))
    if chart is not None:
        parts.append(image(chart, "training windows"))
    return "".join(parts)


def rows_html(rows: dict) -> str:
    """The stored row and what the model gets (after the training pipeline), feature by feature."""
    head = ["sample", "target", *rows["features"]]
    body = []
    for r in rows["rows"]:
        body.append([f"#{r['index']} stored", r["target"], *map(float, r["values"])])
        body.append([f"#{r['index']} model input", "", *map(float, r["model_input"])])
    return f'<div style="overflow-x: auto">{table(body, head)}</div>'


# ----------------------------------------------------------------------------- the report's strip

def _cell(arr: np.ndarray) -> Image.Image:
    img = Image.fromarray(arr[0] if arr.shape[0] == 1 else arr.transpose(1, 2, 0))  # (H, W) or (H, W, C)
    scale = CELL / max(img.size)
    return img.convert("RGB").resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                                     Image.NEAREST)


def strip_png(aug: dict, path: Path, gap: int = 4) -> Path:
    """The samples as columns; rows: stored, each training draw, eval pipeline. Made with PIL: cheap enough to run
    after every training."""
    rows = [("stored", aug["raw"]), *[(f"draw {d + 1}", t) for d, t in enumerate(aug["train"])], ("eval", aug["eval"])]
    n = len(aug["raw"])
    sheet = Image.new("RGB", (LABEL_W + n * (CELL + gap), len(rows) * (CELL + gap)), "white")
    pen = ImageDraw.Draw(sheet)
    for r, (name, images) in enumerate(rows):
        y = r * (CELL + gap)
        pen.text((2, y + CELL // 2 - 5), name, fill="black")
        for c in range(n):
            sheet.paste(_cell(images[c]), (LABEL_W + c * (CELL + gap), y))
    make_dir(path.parent)
    png = io.BytesIO()
    sheet.save(png, format="PNG")
    write_bytes(path, png.getvalue())
    return path
