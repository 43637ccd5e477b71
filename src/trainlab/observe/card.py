"""A model card as Markdown with YAML front matter in Hugging Face's format, rendered from a facts dict.

    text = render_card(facts)     # facts: what trainlab.use.card gathers from a run, --seeds or cv directory

The front matter holds `library_name`, `tags`, `datasets`, `metrics` and `model-index` (the test results;
huggingface_hub's ModelCard reads it back, tests/test_card.py checks); then the sections Model, Data,
Training, Evaluation, Variation and Limitations. Nothing here measures anything: a fact missing from `facts`
is written "not measured" with the command that measures it, never a placeholder.
"""
from __future__ import annotations

import yaml

from trainlab.core.metrics import higher_is_better
from trainlab.observe.seeds import num

TASKS = {("image", "classification"): "image-classification", ("text", "classification"): "text-classification",
         ("tabular", "classification"): "tabular-classification", ("tabular", "regression"): "tabular-regression",
         ("sequence", "regression"): "time-series-forecasting"}
TRAIN_KEYS = ("optimizer", "lr", "weight_decay", "scheduler", "epochs", "batch_size", "loss", "label_smoothing",
              "precision", "early_stopping", "monitor", "grad_clip", "accumulate", "warmup", "ema", "freeze",
              "class_weights")
MAX_CLASSES = 20  # classes listed by name in the Model section


def render_card(facts: dict) -> str:
    parts = [front_matter(facts), f"# Model card: {facts['name']}", intro(facts), model_section(facts),
             data_section(facts), training_section(facts), evaluation_section(facts), variation_section(facts),
             limitations_section(facts)]
    return "\n\n".join(p.rstrip() for p in parts) + "\n"


def not_measured(what: str, command: str) -> str:
    return f"{what}: not measured; `{command}` measures it"


def fmt(v) -> str:
    """Numbers as the card prints them: 4 decimals (num), integers with thousands separators."""
    if isinstance(v, bool) or v is None:
        return {True: "yes", False: "no", None: "none"}[v]
    if isinstance(v, int):
        return f"{v:,}"
    return num(v) if isinstance(v, float) else str(v)


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- front matter

def task_type(model: dict) -> str:
    return TASKS.get((model.get("kind"), model["task"]), "other")


def index_metrics(facts: dict) -> list[dict]:
    """model-index metrics: the recorded test values (a --seeds directory: their mean; cv: validation means)."""
    if facts["kind"] == "cv":
        return [{"type": k.removeprefix("val_"), "value": s["mean"], "name": f"{k} (mean of {s['n']} folds)"}
                for k, s in facts["variation"]["metrics"].items() if k != "val_loss"]
    if facts["kind"] == "seeds":
        return [{"type": k.removeprefix("test_"), "value": s["mean"], "name": f"{k} (mean of {s['n']} seeds)"}
                for k, s in facts["variation"]["metrics"].items() if k.startswith("test_") and k != "test_loss"]
    return [{"type": k, "value": m["value"], "name": f"test {k}"} for k, m in facts["evaluation"]["metrics"].items()]


def front_matter(facts: dict) -> str:
    model, dataset = facts["model"], facts["data"]["dataset"]
    metrics = index_metrics(facts)
    split = f"validation ({facts['variation']['n']}-fold CV)" if facts["kind"] == "cv" else "test"
    task = task_type(model)
    library = "timm" if model["name"].startswith("timm:") else "pytorch"
    meta = {"library_name": library, "tags": ["trainlab", "pytorch", task, model["task"]],
            "datasets": [dataset], "metrics": sorted({m["type"] for m in metrics}),
            "model-index": [{"name": facts["name"], "results": [{
                "task": {"type": task, "name": model["task"]},
                "dataset": {"name": dataset, "type": dataset, "split": split},
                "metrics": metrics}] if metrics else []}]}
    return "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---"


def intro(facts: dict) -> str:
    what = {"run": "the run directory", "seeds": "the --seeds directory", "cv": "the cross-validation directory"}
    text = (f"Written by `trainlab card` from the files of {what[facts['kind']]} `{facts['dir']}`. Every number "
            f"comes from those files; what was not measured says so, with the command that measures it.")
    if facts.get("represents"):
        text += (f" The model described is `{facts['represents']}`, the first seed; Variation gives the spread "
                 f"over all {facts['variation']['n']} seeds.")
    return text


# ----------------------------------------------------------------------------- Model, Data, Training

def model_section(facts: dict) -> str:
    m, cfg = facts["model"], facts["config"]
    options = ", ".join(f"{k}: {setting(v)}" for k, v in m["options"].items() if k != "name")
    lines = [f"- Architecture: `{m['name']}` ({options or 'default options'})"]
    lines.append(f"- Parameters: {fmt(m['parameters'])} ({fmt(m.get('trainable'))} trainable; summary.txt)"
                 if "parameters" in m else "- " + not_measured("Parameters", f"trainlab summary {cfg}"))
    classes = m.get("classes")
    if m["task"] == "classification" and classes:
        shown = ", ".join(map(str, classes[:MAX_CLASSES])) + (f" and {len(classes) - MAX_CLASSES} more"
                                                               if len(classes) > MAX_CLASSES else "")
        lines.append(f"- Task: classification into {len(classes)} classes: {shown}; the model returns logits "
                     f"(`predict` applies softmax)")
    else:
        lines.append(f"- Task: {m['task']}" + (f" with {m['num_outputs']} output(s)" if "num_outputs" in m else ""))
    if "raw_shape" in m:
        lines.append(f"- Input: {m['kind']} samples of raw shape {m['raw_shape']} ({m['raw_dtype']}); the network "
                     f"sees shape {m['input_shape']}")
        lines.append("- Preprocessing (evaluation; what `trainlab export` puts inside the exported model): "
                     + " -> ".join(step_text(s) for s in m["eval_transforms"]) if m["eval_transforms"]
                     else "- Preprocessing: none")
    if m.get("model_expects"):
        lines.append(f"- The library model expects: {m['model_expects']}")
    what = f"{m['kind']} inputs" if "kind" in m else "inputs"
    lines.append(f"- Intended use, as far as the config tells it: {m['task']} of {what} like those of the "
                 f"`{facts['data']['dataset']}` data set; the run holds no measurement of other inputs.")
    return "## Model\n\n" + "\n".join(lines)


def step_text(step: dict) -> str:
    args = ", ".join(f"{k}={fmt_list(v)}" for k, v in step.items() if k != "name")
    return f"{step['name']}({args})" if args else step["name"]


def setting(v) -> str:
    """A config value as the YAML file spells it (0.005, not 0.0050)."""
    return "null" if v is None else str(v).lower() if isinstance(v, bool) else str(v)


def fmt_list(v) -> str:
    return "[" + ", ".join(fmt_list(x) for x in v) + "]" if isinstance(v, list) else fmt(v)


def data_section(facts: dict) -> str:
    d, cfg = facts["data"], facts["config"]
    lines = [f"- Source: {d['source']}"]
    if facts["kind"] == "cv":
        lines.append(f"- Pool (everything but the test split, data.test_fraction {setting(d['test_fraction'])}): "
                     f"{fmt(d['pool_size'])} samples in {d['k']} {d['method']} folds")
        lines.append("\n" + table(["fold", "train", "validation"], [[f["fold"], f["train"], f["val"]]
                                                                      for f in d["fold_sizes"]]) + "\n")
        lines.append("- " + not_measured("Class counts per split", f"trainlab show {cfg}"))
    else:
        sizes = ", ".join(f"{k} {fmt(v)}" for k, v in d["sizes"].items())
        held = ("the data set's official test split" if d.get("official_test")
                else f"data.test_fraction {setting(d['test_fraction'])} held out first, then data.val_fraction "
                     f"{setting(d['val_fraction'])} of the rest")
        lines.append(f"- Splits (splits.json): {sizes}; test: {held}")
        if d.get("meta"):
            lines.append("- Data facts (data.json): " + ", ".join(f"{k} {fmt(v)}" for k, v in d["meta"].items()))
        lines.append(class_counts(d["class_counts"]) if d.get("class_counts") else
                     "- Class counts: none (not a classification)" if facts["model"]["task"] != "classification"
                     else "- " + not_measured("Class counts per split", f"trainlab show {cfg}"))
        lines.append("- Leakage: " + leakage_text(d["leakage"], facts["dir"]))
    lines.append("- Data audit: " + audit_text(facts["limitations"].get("audit"), facts["dir"]))
    return "## Data\n\n" + "\n".join(lines)


def class_counts(counts: dict) -> str:
    splits = list(counts)
    classes = list(dict.fromkeys(c for s in splits for c in counts[s]))
    rows = [[c, *[counts[s].get(c, 0) for s in splits]] for c in classes]
    return "- Class counts per split:\n\n" + table(["class", *splits], rows) + "\n"


def leakage_text(leak: dict, run_dir: str) -> str:
    if not leak.get("checked"):
        return not_measured("the duplicate check across splits", f"trainlab train --resume {run_dir}")
    if leak["found"]:
        return leak["message"]
    return ("the exact-duplicate check across splits (content hashes of the raw samples, before the first "
            "epoch) found no sample in two splits; near-duplicates are what a data audit looks for")


def audit_text(audit: dict | None, run_dir: str) -> str:
    if not audit:
        return not_measured("near-duplicates, conflicting labels, outliers, shift", f"trainlab audit {run_dir}")
    kinds = ", ".join(f"{k} {v}" for k, v in audit["by_type"].items())
    return f"{audit['count']} finding(s) in {audit['source']}" + (f": {kinds}" if kinds else "")


def training_section(facts: dict) -> str:
    t = facts["training"]
    rows = [[k, setting(t["config"][k])] for k in TRAIN_KEYS if k in t["config"]]
    lines = ["Resolved config (config.yaml: the `train` section and data.batch_size):", "",
             table(["setting", "value"], rows), "",
             f"- Seed: {t['seed']}; git commit: {t['git'] or 'not recorded (not a git checkout)'}",
             "- Versions: " + ", ".join(f"{k} {v}" for k, v in t["versions"].items()),
             f"- Device: {t['device']} ({t['platform']})"]
    if facts["kind"] == "cv":
        lines.append(f"- Cross-validation time: {fmt(t.get('cv_time_s'))} s for all folds")
        lines.append("- Best epoch per fold: " + ", ".join(f"fold {f['fold']}: {f['best_epoch']} of {f['epochs_run']}"
                                                           for f in t["fold_epochs"]))
    else:
        time = f"{fmt(t['train_time_s'])} s (sum of the epoch times in history.csv)" if t["train_time_s"] is not None \
            else "none recorded (history.csv has no epoch)"
        lines.append(f"- Training time: {time}")
        lines.append(f"- Best epoch: {t['best_epoch']} of {t['epochs_run']} ({t['monitor']} = {fmt(t['best_value'])}); "
                     f"stopped early: {fmt(bool(t['stopped_early']))}")
    if t.get("tuned"):
        lines.append(f"- The config was chosen by `trainlab tune` (study {t['tuned'].get('study')!r})")
    if t.get("error"):
        lines.append(f"- Training stopped with an error: {t['error']}")
    return "## Training\n\n" + "\n".join(lines)


# ----------------------------------------------------------------------------- Evaluation

def evaluation_section(facts: dict) -> str:
    ev, cfg = facts["evaluation"], facts["config"]
    if ev is None:  # cv: the test split is never touched
        return ("## Evaluation\n\n- Test metrics: not measured; cross-validation never touches the test split. "
                f"`trainlab train {cfg} --out DIR` evaluates it once, then `trainlab card DIR`.\n"
                "- Validation metrics over the folds: see Variation.")
    if not ev["metrics"] and ev["loss"] is None:
        return "## Evaluation\n\n- " + not_measured("Test metrics", f"trainlab eval {facts['dir']} --split test")
    looks = ev["test_evaluations"]
    lines = [f"Test split: n = {fmt(ev['n'])} samples, evaluated {looks} time(s) with the best weights "
             f"(manifest.json `test_evaluations`)" + (
                 "; only the first look is an unbiased estimate." if isinstance(looks, int) and looks > 1 else "."),
             "", metrics_table(ev), ""]
    if ev["loss"] is not None:
        lines.append(f"- Test loss (the training objective): {fmt(ev['loss'])}")
    lines += interval_notes(ev, facts)
    lines.append(baselines_text(ev))
    if ev.get("per_class"):
        rows = [[c, s["precision"], s["recall"], s["f1"], s["support"]] for c, s in ev["per_class"].items()]
        lines += ["", "Per-class scores on the test split (result.json `per_class`):", "",
                  table(["class", "precision", "recall", "F1", "support"], rows), ""]
    lines.append("- Calibration: " + calibration_text(ev, facts))
    return "## Evaluation\n\n" + "\n".join(lines)


def metrics_table(ev: dict) -> str:
    rows = []
    for k, m in ev["metrics"].items():
        ci = f"{fmt(m['low'])} - {fmt(m['high'])}" if "low" in m else "not measured"
        rows.append([k, m["value"], ci, m.get("method", "not measured")])
    return table(["metric", "value", "95% interval", "interval method"], rows)


def interval_notes(ev: dict, facts: dict) -> list[str]:
    rec, notes = ev.get("recomputed"), []
    methods = {m.get("method") for m in ev["metrics"].values()}
    if "Wilson score interval from n" in methods:
        notes.append(f"- Accuracy's interval: Wilson's score interval for a proportion of n = {fmt(ev['n'])}.")
    if rec is None:
        notes.append("- " + not_measured("the intervals of the other metrics and the calibration",
                                         f"trainlab card {facts['dir']}") + " (this card was written with --no-eval)")
    elif not rec["matches"]:
        got = ", ".join(f"{k} {fmt(v)}" for k, v in rec["metrics"].items())
        notes.append(f"- best.pt re-run on the test split gave other metrics ({got}) than recorded: the weights "
                     "or the data changed since training, so no bootstrap interval or calibration is given")
    else:
        boot = next((m for m in ev["metrics"].values() if m.get("method") == "percentile bootstrap"), None)
        if boot:
            forecast = facts["model"].get("kind") == "sequence" and facts["model"]["task"] == "regression"
            series = (" (forecast windows overlap, so neighbouring samples are not independent: the interval is "
                      "likely too narrow)") if forecast else ""
            notes.append(f"- Other intervals: percentile bootstrap, {boot['resamples']} resamples of the "
                         f"{fmt(rec['n'])} test samples{series}.")
        notes.append("- Intervals and calibration come from best.pt run again on the same test indices by "
                     "`trainlab card`; it reproduced the recorded metrics and is not counted as a test look "
                     "(it describes the recorded evaluation and chooses nothing).")
    return notes


def baselines_text(ev: dict) -> str:
    parts = []
    for key, title in (("baselines", "fitted on the training split"),
                       ("forecast_baselines", "on the same test windows")):
        b = ev.get(key)
        if not b:
            continue
        rows = [["this model", b["network"], "-"]] + [[name, v, verdict(b, name)] for name, v in b["baselines"].items()]
        parts.append(f"Baselines ({title}), test {b['metric']}:\n\n"
                     + table(["model", b["metric"], "this model beats it"], rows))
    if not parts:
        return "- Baselines: " + "not measured; train with `train.baselines: true` (the default)"
    return "\n" + "\n\n".join(parts) + "\n"


def verdict(b: dict, name: str) -> str:
    """'yes', 'no: behind it', or 'no: ahead only within the noise' (accuracy: the baseline inside its 95% interval)."""
    if b["beats"].get(name):
        return "yes"
    sign = 1 if higher_is_better(b["metric"]) else -1
    if sign * (b["network"] - b["baselines"][name]) > 0:
        return f"no: ahead only within the 95% interval of accuracy on n = {fmt(b.get('n'))}"
    return "no: behind it"


def calibration_text(ev: dict, facts: dict) -> str:
    if facts["model"]["task"] != "classification":
        return "not applicable (not a classifier)"
    c = ev.get("calibration")
    if c is None:
        return not_measured("expected calibration error", f"trainlab card {facts['dir']}")
    gap = c["mean_confidence"] - c["accuracy"]
    lean = "overconfident" if gap > 0 else "underconfident" if gap < 0 else "neither over- nor underconfident"
    return (f"expected calibration error {fmt(c['ece'])} ({c['bins']} equal-width confidence bins, n = "
            f"{fmt(c['n'])}); mean top-class probability {fmt(c['mean_confidence'])} vs accuracy "
            f"{fmt(c['accuracy'])}: {lean} on average")


# ----------------------------------------------------------------------------- Variation, Limitations

def variation_section(facts: dict) -> str:
    v, cfg = facts["variation"], facts["config"]
    if not v["measured"]:
        return ("## Variation\n\nVariation was not measured: this is one training run with one seed, so how much "
                "the numbers above move with another seed or split is unknown. "
                f"`trainlab train {cfg} --seeds 5 --out DIR` measures it over seeds (then `trainlab card DIR`); "
                f"`trainlab cv {cfg} --folds 5` over folds.")
    over = f"{v['n']} seeds ({', '.join(map(str, v['seeds']))})" if v["over"] == "seeds" \
        else f"{v['n']} {v['method']} folds"
    rows = [[k, f"{fmt(s['mean'])} ± {fmt(s['std'])}", ", ".join(fmt(x) for x in s["values"])]
            for k, s in v["metrics"].items()]
    text = f"## Variation\n\nOver {over}: mean ± sample standard deviation (ddof=1).\n\n" + \
        table(["metric", "mean ± std", "values"], rows)
    if v.get("varies"):
        text += f"\n\n{v['varies']}"
    return text


def limitations_section(facts: dict) -> str:
    lim, lines = facts["limitations"], []
    if lim.get("error"):
        lines.append(f"- Training stopped: {lim['error']}")
    if lim["diagnosed"]:
        lines += [f"- Diagnosis ({f['severity']}, {f['code']}): {f['cause']}"
                  + (f" Try: {f['fix']}" if f["fix"] else "") for f in lim["findings"]] \
            or ["- Diagnosis: healthy; no problem found in the data, the model or the curves"]
        failed = lim["pitfalls_failed"]
        lines.append(f"- Pitfall checks before training ({', '.join(lim['pitfalls_checked'])}): "
                     + (f"failed: {', '.join(failed)}" if failed else "none failed"))
    else:  # a cv directory keeps no diagnosis: a training run makes one
        lines.append("- " + not_measured("Diagnosis and pitfall checks", f"trainlab train {facts['config']}"))
    if lim["worst_classes"]:
        lines.append("- Worst classes (test F1): " + ", ".join(
            f"{w['class']} (F1 {fmt(w['f1'])}, recall {fmt(w['recall'])}, support {w['support']})"
            for w in lim["worst_classes"]))
    if lim["confused_pairs"]:
        lines.append("- Most-confused pairs (test confusion matrix, true -> predicted): " + ", ".join(
            f"{p['true']} -> {p['predicted']} ({p['count']} of {p['of']})" for p in lim["confused_pairs"]))
    elif lim.get("confusion_measured"):
        lines.append("- Most-confused pairs: none; no test sample was misclassified")
    elif facts["model"]["task"] == "classification" and facts["kind"] != "cv":  # cv: no test split, no model
        lines.append("- " + not_measured("Worst classes and most-confused pairs on the test split",
                                         f"trainlab inspect {facts['dir']} --split test"))
    issues = lim.get("label_issues")
    if issues is not None:
        lines.append(f"- Likely label errors (cleanlab, out-of-fold probabilities): {issues['count']}" + (
            "; lowest label quality: " + ", ".join(f"sample {i['index']} labelled {i['given']}, maybe {i['suggested']} "
                                                    f"(quality {fmt(i['quality'])})" for i in issues["worst"])
            if issues["worst"] else ""))
    lines += audit_lines(lim.get("audit"), facts["dir"])
    return "## Limitations\n\n" + "\n".join(lines)


def audit_lines(audit: dict | None, run_dir: str) -> list[str]:
    if not audit:
        return ["- Data audit: " + audit_text(None, run_dir)]
    worst = [f"- Data audit ({w['type']}" + (f", {w['split']}" if w.get("split") else "")
             + (f", score {fmt(w['score'])}" if isinstance(w.get("score"), (int, float)) else "")
             + f"): {w['message']}" for w in audit["worst"]]
    return worst or [f"- Data audit: no finding ({audit['source']})"]
