"""report.html: one self-contained page per run (images embedded as data URIs, no scripts, no requests).

    write_report(Path("runs/demo"))          # rebuild from the run directory's files

Sections: overview, diagnosis, learning curves, test metrics, confusion matrix, per-class metrics,
predictions, gradients, data (class counts, augmentation strip), model summary, config, environment.
Written by `trainlab train` (observe.finalize).
"""
from __future__ import annotations

import base64
import html
import json
import string
from pathlib import Path

import yaml

from trainlab.core.files import read_json, write_text
from trainlab.diagnose import checks
from trainlab.diagnose.diagnosis import Diagnosis  # (importing it registers every check: diagnose/catalog.py)

PAGE = string.Template("""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>$title</title>
<style>
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #1d2433; background: #f6f7f9; }
header { background: #1d2433; color: #fff; padding: 18px 32px; }
header h1 { margin: 0 0 4px; font-size: 22px; }
header p { margin: 0; color: #c7cedb; }
nav { padding: 8px 32px; background: #e9ecf1; font-size: 14px; }
nav a { margin-right: 14px; color: #2b5cab; text-decoration: none; }
main { padding: 8px 32px 40px; max-width: 1200px; }
section { background: #fff; border-radius: 8px; padding: 4px 20px 16px; margin: 16px 0;
          box-shadow: 0 1px 2px rgba(0,0,0,.08); }
h2 { font-size: 18px; border-bottom: 1px solid #e3e6eb; padding-bottom: 6px; }
table { border-collapse: collapse; font-size: 14px; }
td, th { padding: 4px 12px; border-bottom: 1px solid #eceef2; text-align: left; }
th { background: #f2f4f7; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
pre { background: #f2f4f7; padding: 12px; overflow-x: auto; font-size: 12px; line-height: 1.35; }
img { max-width: 100%; height: auto; }
.check { border-left: 5px solid #9aa3b2; padding: 6px 12px; margin: 8px 0; background: #fafbfc; }
.check.warning { border-color: #e08a00; background: #fff7e8; }
.check.ok { border-color: #2e9e5b; }
.badge { font-size: 12px; font-weight: 600; text-transform: uppercase; margin-right: 8px; }
.check.note { border-color: #2b5cab; background: #f1f5fc; }
.warning .badge { color: #b56f00; } .ok .badge { color: #2e9e5b; } .skipped .badge { color: #6b7385; }
.note .badge { color: #2b5cab; }
.error { background: #fdecec; border-left: 5px solid #c62828; padding: 8px 12px; }
.headline { font-size: 28px; font-weight: 600; }
</style>
</head>
<body>
<header><h1>$title</h1><p>$subtitle</p></header>
<nav>$nav</nav>
<main>
$body
</main>
</body>
</html>
""")

STAGES = {"before": "before training", "during": "the curves", "after": "after training"}


def esc(value) -> str:
    return html.escape(str(value))


def image(path: Path, alt: str) -> str:
    """An <img> with the PNG embedded as base64, or '' when the plot was not made."""
    if not path.is_file():
        return ""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{esc(alt)}">'


def table(rows: list[list], header: list[str] | None = None) -> str:
    def cell(v, tag="td"):
        if isinstance(v, float):
            return f'<{tag} class="num">{v:.4g}</{tag}>'
        return f"<{tag}>{esc(v)}</{tag}>"
    head = "<tr>" + "".join(cell(h, "th") for h in header) + "</tr>" if header else ""
    return "<table>" + head + "".join("<tr>" + "".join(cell(v) for v in row) + "</tr>" for row in rows) + "</table>"


def section(sid: str, title: str, content: str) -> tuple[str, str, str]:
    return sid, title, f'<section id="{sid}"><h2>{esc(title)}</h2>{content}</section>'


# ----------------------------------------------------------------------------- sections

def overview(result: dict, data: dict) -> str:
    test = result.get("test") or {}
    key = next((k for k in ("accuracy", "f1", "r2", "mae", "rmse") if k in test), None)
    lines = []
    if result.get("error"):
        lines.append(f'<p class="error">Training stopped: {esc(result["error"])}</p>')
    if key:
        lines.append(f'<p><span class="headline">{test[key]:.4f}</span> test {esc(key)}</p>')
    rows = [["task", data.get("task", "?")], ["data kind", data.get("kind", "?")],
            ["input shape", data.get("input_shape", "?")], ["epochs run", result.get("epochs_run", "?")],
            ["best epoch", f"{result.get('best_epoch')} ({result.get('monitor')} = {_num(result.get('best_value'))})"],
            ["stopped early", "yes" if result.get("stopped_early") else "no"]]
    if result.get("baseline_comparison"):
        rows.append(["baselines", result["baseline_comparison"]])
    return "".join(lines) + table(rows)


def _num(v) -> str:
    return f"{v:.4g}" if isinstance(v, (int, float)) else str(v)


def diagnosis(diag: dict) -> str:
    """The run's diagnosis as the console prints it (diagnose/diagnosis.py): each finding with its fix, then
    the status of every curve check."""
    if not diag:
        return "<p>No diagnosis recorded.</p>"
    d = Diagnosis.from_dict(diag)
    problems = diag.get("problems", d.problems)
    verdict = (f"<p>{esc(d.lines()[0])}</p>" if d.dry_run and not problems else
               "<p><b>Healthy run:</b> no problem found.</p>" if not problems else
               f"<p><b>{len(problems)} problem(s) found:</b> {esc(', '.join(problems))}</p>")
    parts = [verdict]
    for f in d.findings:
        fixes = "".join(f"<li>{esc(r)}</li>" for r in f.fix)
        head = f"{checks.title(f.code)} ({STAGES.get(f.stage, f.stage)})"
        parts.append(f'<div class="check {esc(f.severity)}"><span class="badge">{esc(f.severity)}</span>'
                     f"<b>{esc(head)}</b><p>{esc(f.cause)}</p>"
                     + (f"<p>Try:</p><ul>{fixes}</ul>" if fixes and f.severity == "warning" else "") + "</div>")
    rows = [[checks.title(name, name), c.get("status", "?"), c.get("message", "")]
            for name, c in diag.get("checks", {}).items()]
    if rows:
        parts.append("<p>Every check on the curves:</p>" + table(rows, ["check", "status", "what it found"]))
    return "".join(parts)


def baselines(result: dict) -> str:
    """The network next to the majority-class / mean and linear baselines, per split."""
    rows = []
    for split, cmp in (result.get("baseline_models") or {}).items():
        if cmp:
            rows.append([split, cmp["metric"], "network", float(cmp["network"]), ""])
            rows += [[split, cmp["metric"], name, float(v), "beaten" if cmp["beats"][name] else "NOT beaten"]
                     for name, v in cmp["baselines"].items()]
    return table(rows, ["split", "metric", "model", "score", "by the network"]) if rows else ""


def test_metrics(result: dict) -> str:
    test = result.get("test") or {}
    if not test and result.get("dry_run"):
        return "<p>No test evaluation: a dry run leaves the test split to the real run, which looks at it once.</p>"
    if not test:
        return "<p>No test evaluation (the run did not finish, or the data has no test split).</p>"
    return table([[k, float(v)] for k, v in test.items()], ["metric", "test"])


def per_class_table(per_class: dict) -> str:
    rows = [[c, m["precision"], m["recall"], m["f1"], m["support"]] for c, m in per_class.items()]
    return table(rows, ["class", "precision", "recall", "F1", "support"])


def activity_table(activity: dict) -> str:
    """The last epoch's activation outputs per layer: quartiles and the dead / saturated share."""
    rows = [[name, a.get("kind", ""), *(_num(v) for v in a.get("q", [])[1:4]),
             f"{a['dead']:.0%} dead" if "dead" in a else f"{a['saturated']:.0%} saturated" if "saturated" in a
             else "-"] for name, a in activity.items()]
    note = ("<p>dead: units that output 0 for every probe sample (no gradient reaches them); saturated: outputs "
            "where the slope is below 5% of its peak (sigmoid beyond |x| &#8776; 4.4, tanh beyond 2.2).</p>")
    return (table(rows, ["layer", "activation", "25%", "median", "75%", "dead / saturated"]) + note) if rows else ""


def counts_table(counts: dict[str, dict[str, int]], sizes: dict[str, int]) -> str:
    """Samples per class (rows) and split (columns), with each class's share of its split."""
    splits = list(counts)
    rows = [[c, *[f"{counts[s][c]} ({counts[s][c] / max(sizes[s], 1):.0%})" for s in splits]]
            for c in counts[splits[0]]]
    return table(rows, ["class", *[f"{s} ({sizes[s]})" for s in splits]])


def data_overview(run_dir: Path, result: dict) -> str:
    """The Data section: class counts per split, and training images before and after the augmentation."""
    data = result.get("data") or {}
    parts = []
    if data.get("class_counts"):
        parts.append(counts_table(data["class_counts"], data["sizes"]))
    elif data.get("sizes"):
        parts.append(table([[s, n] for s, n in data["sizes"].items()], ["split", "samples"]))
    strip = image(run_dir / "augmentation.png", "training samples before and after augmentation")
    if strip:
        parts.append("<p>The same training samples as stored (top row), in two draws of the training pipeline "
                     "(<code>data.transforms.train</code>) and through the eval pipeline (bottom row).</p>" + strip)
    elif data.get("augmentation") == "none":
        parts.append("<p>No augmentation: <code>data.transforms.train</code> has no random step.</p>")
    return "".join(parts)


def audit_overview(audit: dict, shown: int = 20) -> str:
    """The cheap data audit `trainlab train` ran (RUN/audit.json): across-split near-duplicates, conflicts."""
    counts = audit.get("counts") or {}
    intro = ("<p>Checked before training: near-duplicates across splits (a leak: the model is scored on what it "
             "trained on) and identical inputs with different labels. <code>trainlab audit CONFIG</code> (or "
             "<code>trainlab audit RUN_DIR</code>) runs the full audit: outliers, label issues, shift between "
             "splits, image problems, with the samples side by side.</p>")
    if not counts:
        return intro + "<p>No findings.</p>"
    rows = [[f["type"], ", ".join(map(str, f.get("splits", []))), f["message"]]
            for f in audit.get("findings", [])[:shown]]
    return (intro + table([[t, n] for t, n in counts.items()], ["finding", "count"])
            + table(rows, ["type", "splits", "message"]))


def mistakes_overview(run_dir: Path, m: dict) -> str:
    """The validation split's highest-loss samples and most-confused class pairs (from result["mistakes"])."""
    where = ' (path)' if any(s.get("path") for s in m.get("top_losses", [])) else ""
    rows = [[s["index"], s.get("path") or esc(str(s.get("text", ""))[:80]), s["true"], s["predicted"],
             _num(s["probability"]), _num(s["loss"])] for s in m.get("top_losses", [])]
    pairs = [[c["true"], c["predicted"], c["count"]] for c in m.get("confused_pairs", [])]
    return (f"<p>validation split: {m.get('errors', 0)} of {m.get('samples', 0)} misclassified. "
            "<code>trainlab inspect RUN_DIR</code> shows every mistake, per class, with attribution maps "
            "(<code>--attribution</code>) and the model's internals (<code>--internals</code>).</p>"
            + image(run_dir / "mistakes.png", "highest-loss validation samples")
            + "<h3>Highest losses</h3>" + table(rows, ["index", f"sample{where}", "true", "predicted as",
                                                          "probability", "loss"])
            + ("<h3>Most-confused class pairs</h3>" + table(pairs, ["true", "predicted as", "count"])
               if pairs else ""))


def card_link(run_dir: Path) -> str:
    """The model card beside the report (`trainlab card RUN_DIR` writes it, and rewrites this report)."""
    if (run_dir / "MODEL_CARD.md").is_file():
        return '<p>Model card: <a href="MODEL_CARD.md">MODEL_CARD.md</a></p>'
    return f"<p>Model card: none yet; <code>trainlab card {esc(str(run_dir))}</code> writes MODEL_CARD.md</p>"


def environment(manifest: dict) -> str:
    keys = ("trainlab", "python", "torch", "torchvision", "platform", "device", "seed", "git", "started", "cwd",
            "test_evaluations")
    rows = [[k, manifest[k]] for k in keys if k in manifest]
    if "command" in manifest:
        rows.append(["command", " ".join(map(str, manifest["command"] or []))])
    return table(rows)


# ----------------------------------------------------------------------------- the page

def build_sections(run_dir: Path, result: dict) -> list[tuple[str, str, str]]:
    data = _json(run_dir / "data.json")
    cfg_text = _text(run_dir / "config.yaml")
    out = [section("overview", "Overview", overview(result, data) + card_link(run_dir)),
           section("diagnosis", "Diagnosis", diagnosis(result.get("diagnosis", {}))),
           section("curves", "Learning curves", image(run_dir / "curves.png", "learning curves")
                   or "<p>No completed epoch.</p>"),
           section("test", "Test metrics", test_metrics(result) + baselines(result))]
    if (run_dir / "confusion_matrix.png").is_file():
        out.append(section("confusion", "Confusion matrix", image(run_dir / "confusion_matrix.png",
                                                                   "confusion matrix")))
    if result.get("per_class"):
        content = image(run_dir / "per_class.png", "per-class metrics") + per_class_table(result["per_class"])
        out.append(section("per-class", "Per-class metrics", content))
    if (run_dir / "predictions.png").is_file():
        out.append(section("predictions", "Predictions vs actual", image(run_dir / "predictions.png",
                                                                         "predictions vs actual")))
    if (run_dir / "gradients.png").is_file():
        out.append(section("gradients", "Gradients per layer", image(run_dir / "gradients.png", "gradient norms")))
    if (run_dir / "activations.png").is_file():
        out.append(section("activations", "Activations per layer", image(run_dir / "activations.png",
                                                                          "activation distributions")
                           + activity_table(result.get("activity", {}))))
    if result.get("mistakes"):
        out.append(section("mistakes", "Mistakes", mistakes_overview(run_dir, result["mistakes"])))
    if result.get("data"):
        out.append(section("data", "Data", data_overview(run_dir, result)))
    if (run_dir / "audit.json").is_file():
        out.append(section("audit", "Data audit", audit_overview(_json(run_dir / "audit.json"))))
    out += [section("model", "Model", f"<pre>{esc(_text(run_dir / 'summary.txt'))}</pre>"),
            section("config", "Config", f"<pre>{esc(cfg_text)}</pre>"),
            section("environment", "Environment", environment(_json(run_dir / "manifest.json")))]
    return out


def write_report(run_dir: Path, result: dict | None = None) -> Path:
    """Write RUN_DIR/report.html from the run's files (`result` defaults to RUN_DIR/result.json)."""
    run_dir = Path(run_dir)
    result = result if result is not None else read_json(run_dir / "result.json")
    sections = build_sections(run_dir, result)
    started = _json(run_dir / "manifest.json").get("started")
    subtitle = esc(", ".join(x for x in (_dataset_model(run_dir), f"started {started}" if started else "") if x))
    page = PAGE.substitute(title=esc(f"trainlab run {run_dir.name}"), subtitle=subtitle,
                           nav="".join(f'<a href="#{sid}">{esc(title)}</a>' for sid, title, _ in sections),
                           body="\n".join(body for _, _, body in sections))
    path = run_dir / "report.html"
    write_text(path, page)
    return path


def _dataset_model(run_dir: Path) -> str:

    try:
        cfg = yaml.safe_load(_text(run_dir / "config.yaml")) or {}
        return f"dataset {cfg['data']['name']}, model {cfg['model']['name']}"
    except (yaml.YAMLError, KeyError, TypeError):
        return ""


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8") if path.is_file() else ""


def _json(path: Path) -> dict:
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except json.JSONDecodeError:
        return {}
