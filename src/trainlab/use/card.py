"""`trainlab card RUN [--out DIR]`: a model card (Hugging Face's format) written only from the run's own files.

    trainlab card runs/demo                  # -> runs/demo/MODEL_CARD.md
    trainlab card runs/demo-seeds5 --out c   # a --seeds directory: c/MODEL_CARD.md and c/result.json
    result = build_card(Path("runs/demo"))   # {"card": path, "facts": {...}}: every number the card shows

RUN is a run directory (`trainlab train`), a `--seeds` directory or a `cv` directory. Every number comes from
its files (result.json, manifest.json, data.json, config.yaml, summary.txt, history.csv, an audit's
result.json); the calibration and the bootstrap intervals come from one uncounted pass of best.pt over the
test split (use/card_eval.py says why that pass is not a look). What is not there is written "not measured"
with the command that measures it. The Markdown itself is observe/card.py.
"""
from __future__ import annotations

import re
from pathlib import Path

from trainlab.core.errors import DamagedRun, UserError
from trainlab.core.files import COUNT, a, is_number, make_dir, read_json, read_run_json, write_text
from trainlab.core.schema import to_dict
from trainlab.observe.card import render_card
from trainlab.observe.plots import read_history, read_result
from trainlab.observe.report import write_report
from trainlab.observe.seeds import read_seeds
from trainlab.run.config import read_run_config
from trainlab.run.directory import read_data_description, read_manifest, read_splits, record_files
from trainlab.use.card_results import evaluation_facts, limitation_facts, read_audit

CARD = "MODEL_CARD.md"


def build_card(path: Path, out: Path | None = None, evaluate: bool = True, audit: Path | None = None) -> dict:
    """Write MODEL_CARD.md into `out` (default: `path`); return {"card", "kind", "facts"}."""
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"{path} is not a directory; give a run directory, a --seeds directory or a cv directory")
    kind = card_kind(path)
    facts = {"seeds": seeds_facts, "cv": cv_facts, "run": run_facts}[kind](path, evaluate, audit)
    target = Path(out) if out is not None else path
    make_dir(target)
    card = target / CARD
    if target.resolve() == path.resolve() and (path / "manifest.json").is_file():
        record_files(path, [CARD])  # a run's or cv's own file from now on: --overwrite may remove it
    write_text(card, render_card(facts))
    if kind == "run" and target.resolve() == path.resolve() and (path / "report.html").is_file():
        write_report(path)  # its overview now links the card
    return {"card": str(card), "kind": kind, "facts": facts}


def card_kind(path: Path) -> str:
    if read_seeds(path) is not None:
        return "seeds"
    if (path / "config.yaml").is_file() and (path / "result.json").is_file() and (path / "data.json").is_file():
        return "run"
    if (path / "config.yaml").is_file() and (path / "result.json").is_file() and any(path.glob("fold-*")):
        return "cv"
    missing = [f for f in ("config.yaml", "result.json", "data.json") if not (path / f).is_file()]
    raise UserError(f"{path} is not a finished trainlab run, --seeds or cv directory (no {', '.join(missing)}); "
                    f"train one first: trainlab train CONFIG --out {path}")


# ----------------------------------------------------------------------------- one run

def run_facts(run_dir: Path, evaluate: bool = True, audit: Path | None = None) -> dict:
    result, manifest, data = read_result(run_dir), read_manifest(run_dir), read_data_description(run_dir)
    cfg = read_run_config(run_dir)
    history = read_history(run_dir / "history.csv") if (run_dir / "history.csv").is_file() else []
    facts = {"kind": "run", "dir": str(run_dir), "name": run_dir.resolve().name, "config": str(run_dir / "config.yaml"),
             "model": model_facts(run_dir, cfg, data), "data": data_facts(run_dir, cfg, data, result),
             "training": training_facts(cfg, manifest, result, history),
             "evaluation": evaluation_facts(run_dir, result, manifest, evaluate),
             "variation": {"measured": False}}
    facts["limitations"] = limitation_facts(result, facts["evaluation"], read_audit(run_dir, audit, result))
    return facts


def model_facts(run_dir: Path, cfg, data: dict) -> dict:
    params = parameter_counts(run_dir / "summary.txt")
    return {"name": cfg.model.name, "options": _section(cfg.model), "task": data["task"], "kind": data["kind"],
            "classes": data.get("classes"), "num_outputs": data["num_outputs"], "raw_shape": data["raw_shape"],
            "raw_dtype": data["raw_dtype"], "input_shape": data["input_shape"],
            "eval_transforms": data["eval_transforms"], "model_expects": data.get("model_expects"),
            "output_activation": getattr(cfg.model.params, "output_activation", None), **params}


def parameter_counts(summary: Path) -> dict:
    """'Total params: 50,826' / 'Trainable params: ...' of torchinfo's summary.txt; {} when absent."""
    text = summary.read_text() if summary.is_file() else ""
    found = {key: int(m.group(1).replace(",", "")) for key, label in (("parameters", "Total"),
             ("trainable", "Trainable")) if (m := re.search(rf"^{label} params: ([\d,]+)", text, re.M))}
    return found


def data_facts(run_dir: Path, cfg, data: dict, result: dict) -> dict:
    overview = result.get("data") or {}
    splits = read_splits(run_dir)
    sizes = overview.get("sizes") or {k: len(v) for k, v in splits.items() if isinstance(v, list)}
    official = read_json(run_dir / "splits.json").get("official_test")
    return {"dataset": cfg.data.name, "source": source_of(cfg), "sizes": sizes,
            "class_counts": overview.get("class_counts"), "official_test": official,
            "val_fraction": cfg.data.val_fraction, "test_fraction": cfg.data.test_fraction,
            "leakage": leakage(result), "meta": _meta(data.get("meta") or {})}


def source_of(cfg) -> str:
    p = cfg.data.params
    for key in ("path", "series"):
        value = getattr(p, key, None)
        if value:
            return f"{cfg.data.name} ({key}: {value})"
    if cfg.data.name in ("mnist", "fashion_mnist", "cifar10"):  # read from data.root in torchvision's layout
        return f"{cfg.data.name} (root: {p.root})"
    return f"{cfg.data.name} (bundled or generated; no file)"


def _meta(meta: dict) -> dict:
    """The scalar and short facts of data.json's meta (not vocabularies or series tails)."""
    keep = ("task", "tokenizer", "max_len", "lookback", "horizon", "stride", "season", "steps", "target", "series")
    out = {k: meta[k] for k in keep if k in meta and not isinstance(meta[k], (list, dict))}
    if isinstance(meta.get("vocab"), list):
        out["vocabulary"] = len(meta["vocab"])
    if isinstance(meta.get("features"), list):
        out["features"] = len(meta["features"])
    return out


def leakage(result: dict) -> dict:
    """The exact-duplicate check across splits (content hashes, before the first epoch: engine/pitfalls.py)."""
    diag = result.get("diagnosis") or {}
    found = [f for f in diag.get("findings", []) if f.get("code") == "duplicates"]
    if not diag:
        return {"checked": False}
    return {"checked": True, "found": bool(found), "message": found[0]["cause"] if found else None}


def training_facts(cfg, manifest: dict, result: dict, history: list[dict]) -> dict:
    times = [r.get("time") for r in history if isinstance(r.get("time"), float)]
    config = {**_section(cfg.train), "batch_size": cfg.data.batch_size}  # the batch size is a data setting
    return {"config": config, "seed": cfg.seed, "git": manifest.get("git"),
            "versions": {k: manifest[k] for k in ("trainlab", "python", "torch", "torchvision", "timm")
                         if manifest.get(k)},
            "device": manifest.get("device"), "platform": manifest.get("platform"), "started": manifest.get("started"),
            "train_time_s": sum(times) if times else None, "epochs_run": result.get("epochs_run"),
            "best_epoch": result.get("best_epoch"), "monitor": result.get("monitor"),
            "best_value": result.get("best_value"), "stopped_early": result.get("stopped_early"),
            "error": result.get("error"), "tuned": manifest.get("tuned")}


def _section(section) -> dict:
    """A config section as plain values: its common keys and its registry entry's own options."""
    return to_dict(section)


# ----------------------------------------------------------------------------- --seeds and cv directories

def seeds_facts(path: Path, evaluate: bool = True, audit: Path | None = None) -> dict:
    """The first seed's run described in full; Variation: every aggregated metric over all seeds."""
    agg = read_seeds(path)
    first = path / agg["runs"][0]
    if card_kind(first) != "run":
        raise DamagedRun(f"{first} (the first seed of {path}) is not a finished run directory")
    facts = run_facts(first, evaluate, audit)
    facts.update(kind="seeds", dir=str(path), name=path.resolve().name, represents=first.name)
    facts["variation"] = {"measured": True, "over": "seeds", "n": agg["n"], "seeds": agg["seeds"],
                          "metrics": agg["metrics"], "std_is": agg.get("std_is"), "varies": agg.get("varies")}
    return facts


CV_FIELDS = {"method": a(str), "k": COUNT, "pool_size": COUNT, "folds": a(list), "mean": a(dict), "std": a(dict)}


def cv_facts(path: Path, evaluate: bool = True, audit: Path | None = None) -> dict:
    """K-fold CV never touches the test split: no test metrics; Variation: every metric over the folds."""
    result, cfg, manifest = read_run_json(path / "result.json", CV_FIELDS), read_run_config(path), read_manifest(path)
    folds = result["folds"]
    if not folds or not all(isinstance(f, dict) and isinstance(f.get("metrics"), dict) for f in folds):
        raise DamagedRun(f"{path / 'result.json'} holds no fold with metrics; rerun trainlab cv")
    issues = result.get("label_issues")
    task = "classification" if issues is not None or "val_accuracy" in result["mean"] else "regression"
    model = {"name": cfg.model.name, "options": _section(cfg.model), "task": task}
    data = {"dataset": cfg.data.name, "source": source_of(cfg), "pool_size": result["pool_size"],
            "method": result["method"], "k": result["k"],
            "fold_sizes": [{"fold": f["fold"] + 1, "train": f.get("train_size"), "val": f.get("val_size")}
                           for f in folds], "test_fraction": cfg.data.test_fraction}
    training = training_facts(cfg, manifest, {}, [])
    training.update(cv_time_s=result.get("time"), fold_epochs=[
        {"fold": f["fold"] + 1, "best_epoch": f.get("best_epoch"), "epochs_run": f.get("epochs_run")} for f in folds])
    values = {k: [f["metrics"].get(k) for f in folds] for k in result["mean"]}
    variation = {"measured": True, "over": "folds", "n": len(folds), "method": result["method"],
                 "metrics": {k: {"mean": result["mean"][k], "std": result["std"].get(k), "n": len(folds),
                                 "values": values[k]} for k in result["mean"]}}
    limitations = {"diagnosed": False, "findings": [], "pitfalls_checked": [], "pitfalls_failed": [],
                   "worst_classes": [], "confused_pairs": [], "audit": read_audit(path, audit, result),
                   "label_issues": label_issue_facts(issues)}
    return {"kind": "cv", "dir": str(path), "name": path.resolve().name, "config": str(path / "config.yaml"),
            "model": model, "data": data, "training": training, "evaluation": None, "variation": variation,
            "limitations": limitations}


def label_issue_facts(issues) -> dict | None:
    """cleanlab's likely label errors from the out-of-fold probabilities: how many, the lowest-quality few."""
    if not isinstance(issues, list):
        return None
    worst = sorted((i for i in issues if isinstance(i, dict) and is_number(i.get("quality"))),
                   key=lambda i: i["quality"])[:3]
    return {"count": len(issues), "worst": worst}
