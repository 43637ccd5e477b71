"""audit.html (`trainlab audit`): every finding with the samples it concerns, from the result of data/audit_full.py.

    page = audit_html("trainlab audit digits", result, data)    # data: the AuditInput (its raw samples)
    write_audit(out, title, result, data, facts)                # out/audit.html; -> what result.json holds

Pairs are shown side by side, outliers next to their nearest training samples, label issues with the label
the neighbours suggest, and the class counts per split. Images are inlined (one self-contained file);
table rows are shown as their feature values.
"""
from __future__ import annotations

from pathlib import Path

from trainlab.core.files import make_dir, write_text
from trainlab.data.audit import AuditInput
from trainlab.data.audit_full import public
from trainlab.observe.gallery import gallery_page, png_base64
from trainlab.observe.report import counts_table, esc, table

SHOWN = 40  # findings of one type drawn on the page (result.json lists up to the result's max_listed)
VALUES = 8  # feature values shown per table row
TITLES = {"near_duplicate": "Near-duplicates", "conflicting_labels": "Conflicting labels",
          "label_shift": "Label shift", "input_shift": "Input shift", "label_issue": "Label issues",
          "outlier": "Outliers", "image_issue": "Image problems"}
EXPLAIN = {
    "near_duplicate": "Pairs closer than the near-duplicate threshold. Across splits they leak: the model is "
                      "scored on what it trained on. Deduplicate before splitting, or split by group.",
    "conflicting_labels": "(Near-)identical inputs with different labels: at most one label is right.",
    "label_shift": "Classes whose share differs between the splits, or that training never sees.",
    "input_shift": "A nearest-neighbour classifier tells the splits apart: shown, the samples most unlike "
                   "training.",
    "label_issue": "Samples whose label disagrees with their neighbours' (cleanlab's confident learning).",
    "outlier": "Samples far from all others, with their nearest training samples.",
    "image_issue": "Near-blank, very dark or bright, blurry, grayscale among colour, odd sizes.",
}
CSS = """<style>
.pair { display: flex; gap: 8px; align-items: flex-start; margin: 6px 0; padding: 6px; border-bottom: 1px solid #eee; }
.smp { font-size: 12px; text-align: center; max-width: 160px; overflow-wrap: anywhere; }
.smp img { image-rendering: pixelated; display: block; margin: 0 auto 2px; }
.msg { font-size: 13px; max-width: 520px; } .nb { opacity: .75; }
</style>"""


def write_audit(out: Path, title: str, result: dict, data: AuditInput, facts: dict) -> dict:
    """Write out/audit.html; -> the public result (the user's references, not positions) with the page's path."""
    out = Path(out)
    make_dir(out)
    write_text(out / "audit.html", audit_html(title, {**result, **facts}, data))
    return {**facts, **public(result, data), "out": str(out), "page": str(out / "audit.html")}


def audit_html(title: str, result: dict, data: AuditInput) -> str:
    sizes = {s: n for s, n in result["sizes"].items() if n}
    counts = result["counts"]
    overview = (table([[TITLES.get(t, t), n] for t, n in counts.items()], ["finding", "count"])
                if counts else "<p>No findings: the audit found nothing that clean data does not also show.</p>")
    overview += table([[s, n] for s, n in sizes.items()], ["split", "samples"])
    sections = [("overview", "Overview", CSS + overview + thresholds_html(result))]
    if result.get("label_counts"):
        sections.append(("labels", "Labels per split", counts_table(result["label_counts"], sizes)))
    for kind in TITLES:
        found = [f for f in result["findings"] if f["type"] == kind]
        if found:
            more = f"<p>Showing {min(SHOWN, len(found))} of {counts[kind]}.</p>" if counts[kind] > SHOWN else ""
            body = f"<p>{esc(EXPLAIN[kind])}</p>{more}" + "".join(finding_html(f, data) for f in found[:SHOWN])
            sections.append((kind, TITLES[kind], body))
    return gallery_page(title, sections, f"{result.get('dataset', '')}: features from {result['features']}")


def thresholds_html(result: dict) -> str:
    rows = [[k, v] for k, v in result["thresholds"].items()]
    return ("<p>Thresholds (docs/audit.md says why each is where it is); distances are in units of the median "
            f"distance from a training sample to its 10th nearest neighbour ({result['typical_distance']:.4g}).</p>"
            + table(rows, ["threshold", "value"]))


def finding_html(f: dict, data: AuditInput) -> str:
    parts = [sample_html(s, data) for s in f["samples"]]
    parts += [sample_html(s, data, "nearest train", "nb") for s in f.get("neighbours", [])]
    return f'<div class="pair">{"".join(parts)}<div class="msg">{esc(f["message"])}</div></div>'


def sample_html(s: int, data: AuditInput, note: str = "", cls: str = "") -> str:
    label = "" if data.y is None else f"<br>label {esc(data.classes[int(data.y[s])] if data.classes else data.y[s])}"
    caption = f"{esc(note + ': ' if note else '')}{esc(data.split[s])} {esc(data.ids[s])}{label}"
    if data.kind == "image":
        view = f'<img src="data:image/png;base64,{png_base64(data.x[s].numpy(), 72)}" alt="">'
    else:
        values = data.x[s].reshape(-1)[:VALUES].tolist()
        view = "<br>".join(f"{v:.4g}" for v in values) + ("<br>..." if data.x[s].numel() > VALUES else "")
    return f'<div class="smp {cls}">{view}<br>{caption}</div>'
