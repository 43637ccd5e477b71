"""`trainlab show CONFIG`: the data as the model sees it, without training.

    trainlab show examples/image-folder.yaml data.path=photos --out runs/photos-show --n 12

Loads the data exactly as `trainlab train` does (same splits for the same seed, transforms fitted on the training
split, the same data checks) and writes OUT/show.html (and the CLI OUT/result.json): samples per split and class; for
images, training samples stored, in two draws of the training augmentation and through the eval pipeline; for
texts, samples as tokens, the vocabulary and its coverage of the val/test texts, truncation by max_len; for a
series, windows with their targets; for a table, rows as stored and as the model gets them.
"""
from __future__ import annotations

from pathlib import Path

from trainlab.core.files import make_dir, write_text
from trainlab.data import preview
from trainlab.data.prepare import load_data
from trainlab.observe import data_page, data_plots
from trainlab.observe.report import audit_overview
from trainlab.run.config import Config
from trainlab.workflows.audit import cheap_run_audit
from trainlab.workflows.checks import check_fit

DRAWS = 2  # passes of the training pipeline shown per image: two are enough to see that it is random


def show_data(cfg: Config, out: Path, n: int = 8, config_name: str = "") -> dict:
    """Write out/show.html for `cfg`'s data; returns the result (`trainlab show` writes it to out/result.json)."""
    data = load_data(cfg)
    view = data.view(data.splits.train, data.splits.val)
    check_fit(cfg, view, check_model=False)  # the same refusals as train (bad crop, one class, ...), model aside
    out = Path(out)
    make_dir(out)
    bundle = view.bundle
    result = {"dataset": cfg.data.name, "config": config_name, "task": bundle.task, "kind": bundle.kind,
              "seed": cfg.seed, "classes": bundle.classes, "sizes": preview.split_sizes(view),
              "class_counts": preview.split_counts(view), "targets": preview.target_summary(view),
              "input_shape": list(view.input_shape), "train_transforms": view.train_pipe.state(),
              "eval_transforms": view.eval_pipe.state()}
    counts = result["class_counts"]
    chart = data_plots.counts_chart(counts, out / "class_counts.png") if counts else None
    sections = [("splits", "Splits", data_page.splits_html(result["sizes"], result["class_counts"],
                                                            result["targets"], chart))]
    sections += kind_sections(view, out, n, result)
    sections.append(("transforms", "Transforms", transforms_html(result)))
    sections.append(("audit", "Data audit", audit_section(data, out, config_name, result)))
    page = data_page.show_page(f"trainlab show {config_name or cfg.data.name}", sections,
                               f"dataset {cfg.data.name}, seed {cfg.seed}: what `trainlab train` would feed the model")
    write_text(out / "show.html", page)
    result["files"] = sorted(p.name for p in out.iterdir() if p.suffix in (".html", ".png"))
    result["out"] = str(out)
    return result


def kind_sections(view, out: Path, n: int, result: dict) -> list[tuple[str, str, str]]:
    """The samples section for the data's kind; fills the result's matching key."""
    kind, seed = view.bundle.kind, view.data.cfg.seed
    if kind == "image":
        aug = preview.augmentation_preview(view, n, DRAWS, seed)
        result["augmentation"] = {k: v for k, v in aug.items() if k not in ("raw", "train", "eval")}
        return [("images", "Training samples before and after augmentation", data_page.augmentation_html(aug))]
    if kind == "text":
        text = preview.text_preview(view, n, seed)
        chart = data_plots.lengths_chart(text["splits"], text["max_len"], out / "lengths.png")
        result["text"] = {**text, "splits": {s: {k: v for k, v in st.items() if k != "lengths"}
                                             for s, st in text["splits"].items()}}
        return [("texts", "Texts and tokens", data_page.text_html(text, chart))]
    if kind == "sequence":
        win = preview.window_preview(view, min(n, 6))
        result["windows"] = win
        chart = data_plots.windows_chart(win, out / "windows.png")
        return [("windows", "Windows and targets", data_page.windows_html(win, chart))]
    rows = preview.table_preview(view, n, seed)
    result["rows"] = rows
    return [("rows", "Rows", data_page.rows_html(rows))]


def audit_section(data, out: Path, config_name: str, result: dict) -> str:
    """The cheap audit (near-duplicates across splits, conflicting labels) and a link to the full audit's page."""
    audit = cheap_run_audit(data, out)
    if audit is None:
        return "<p>The data audit reads image and table data sets.</p>"
    result["audit"] = {"counts": audit["counts"], "file": "audit.json"}
    full = out.parent / f"{Path(config_name).stem or data.cfg.data.name}-audit" / "audit.html"
    link = (f'<p>Full audit: <a href="../{full.parent.name}/audit.html">{full.parent.name}/audit.html</a></p>'
            if full.is_file() else "")
    return link + audit_overview(audit)


def transforms_html(result: dict) -> str:
    def steps(specs: list[dict]) -> str:
        return ", ".join(s.get("name", "?") for s in specs) or "(none)"
    return (f"<p>Training pipeline: {steps(result['train_transforms'])}<br>Eval pipeline: "
            f"{steps(result['eval_transforms'])}<br>Model input shape per sample: {result['input_shape']}</p>")


def summary_lines(result: dict) -> list[str]:
    """A few lines for the console: sizes per split, the kind's key facts, where the page is."""
    sizes = result["sizes"]
    lines = [f"{result['dataset']}: {result['task']} ({result['kind']}), input {result['input_shape']}; "
             + ", ".join(f"{s} {n}" for s, n in sizes.items())]
    counts = result.get("class_counts")
    if counts:
        for split, per_class in counts.items():
            shown = ", ".join(f"{c} {k}" for c, k in list(per_class.items())[:10])
            more = f", ... ({len(per_class)} classes)" if len(per_class) > 10 else ""
            lines.append(f"  {split}: {shown}{more}")
    if "augmentation" in result:
        aug = result["augmentation"]
        lines.append("augmentation: " + ("random steps in data.transforms.train; pixels changed per draw: "
                                         + ", ".join("-" if c is None else f"{c:.1%}" for c in aug["changed_vs_raw"])
                                         if aug["random"] else "none (data.transforms.train has no random step)"))
    if "text" in result:
        lines.append(text_line(result["text"]))
    if "windows" in result:
        w = result["windows"]
        lines.append(f"windows: {w['lookback']} past steps of {', '.join(w['columns'])} -> the next {w['horizon']} "
                     f"of {', '.join(w['targets']) or 'the target'}, one every {w['stride']} step(s)")
    if "rows" in result:
        names = result["rows"]["features"]
        lines.append(f"{len(names)} features: {', '.join(names[:8])}{', ...' if len(names) > 8 else ''}")
    lines.append(f"wrote {Path(result['out']) / 'show.html'}")
    return lines


def text_line(text: dict) -> str:
    cov = ", ".join(f"{s} {st['coverage']:.1%}" for s, st in text["splits"].items() if st["coverage"] is not None)
    cut = sum(st["truncated"] for st in text["splits"].values())
    total = sum(st["texts"] for st in text["splits"].values())
    return (f"vocabulary {text['vocab_size']} tokens; tokens in vocabulary: {cov}; {cut} of {total} texts longer "
            f"than max_len {text['max_len']} (truncated)")
