"""`trainlab runs [DIR]`: a table of the runs under a directory; `trainlab compare RUN RUN...`: what differs.

    trainlab runs                         # every run under runs/, fitted to the terminal's width
    trainlab runs runs --sort test --reverse
    trainlab runs --wide                  # every column, however wide
    trainlab compare runs/a runs/b --out runs/a-vs-b    # config diff + overlaid curves (compare.png)
    trainlab compare runs/a-5seeds runs/b-5seeds        # multi-seed dirs: mean ± std, and within seed noise?

A run directory is one holding config.yaml and manifest.json (what `trainlab train` writes). The table
shows the config keys every run has (dataset, model, optimizer, lr, batch size) plus up to MAX_VARYING
other keys whose values differ between the listed runs - usually what the runs were made to compare.
`fit_table` shows what matters first (run, data/model, epochs, best validation value, test metric, time,
when) and adds the config keys that differ, the status and problems as far as the width allows; `--wide`
shows every column. A cross-validation directory (`trainlab cv`) lists its mean ± std of the monitored metric.
A multi-seed directory (`train --seeds N`) lists as its seed-<s> runs; `compare` takes it as one entry
shown as mean ± std over its seeds (observe/seeds.py).
"""
from __future__ import annotations

import math
import shutil
from pathlib import Path

from trainlab.core.configfile import read_yaml
from trainlab.core.errors import DamagedRun, UserError
from trainlab.core.files import is_number, read_run_json
from trainlab.observe.plots import compare_curves, metric_to_show, read_history, read_result
from trainlab.observe.seeds import mean_history, noise_notes, pm, read_seeds

FIXED_KEYS = {"data.name": "dataset", "model.name": "model", "train.optimizer": "optimizer", "train.lr": "lr",
              "data.batch_size": "batch"}
MAX_VARYING = 4
HEADLINE = ("accuracy", "f1", "r2", "mae", "rmse", "loss")  # the test metric shown, first one present


def flatten(tree: dict, prefix: str = "") -> dict:
    """{"train": {"lr": 0.1}} -> {"train.lr": 0.1}; lists stay values."""
    out = {}
    for key, value in (tree or {}).items():
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def find_runs(root: Path) -> list[Path]:
    """Run directories under `root` (or `root` itself), sorted by path."""
    if not root.is_dir():
        raise UserError(f"{root} is not a directory")
    found = {p.parent for p in root.rglob("config.yaml") if (p.parent / "manifest.json").is_file()}
    return sorted(found)


def load_run_info(run_dir: Path) -> dict:
    """Config (flattened), result, history and manifest of one run directory; missing files -> empty.
    A multi-seed directory: its first seed's config and manifest, the means as result, the mean history."""
    if not (run_dir / "config.yaml").is_file() and (agg := read_seeds(run_dir)) is not None:
        return load_seeds_info(run_dir, agg)
    if not (run_dir / "config.yaml").is_file():
        raise UserError(f"{run_dir} is not a trainlab run directory (no config.yaml)")
    try:
        raw = read_yaml(run_dir / "config.yaml")
    except UserError as e:
        raise DamagedRun(f"{run_dir / 'config.yaml'}: {e}") from None
    if not isinstance(raw, (dict, type(None))):
        raise DamagedRun(f"{run_dir / 'config.yaml'} holds a {type(raw).__name__}, not a mapping")
    cfg = flatten(raw or {})
    result = read_result(run_dir)
    history = read_history(run_dir / "history.csv") if (run_dir / "history.csv").is_file() else []
    manifest = read_run_json(run_dir / "manifest.json") if (run_dir / "manifest.json").is_file() else {}
    return {"dir": run_dir, "config": cfg, "result": result, "history": history, "manifest": manifest}


def load_seeds_info(folder: Path, agg: dict) -> dict:
    runs = [load_run_info(folder / r) for r in agg["runs"]]
    cfg = {**runs[0]["config"], "seed": f"{agg['seeds'][0]}..{agg['seeds'][-1]}"}
    means = {k: s["mean"] for k, s in agg["metrics"].items()}
    epochs = sorted({r["result"].get("epochs_run") for r in runs} - {None})
    problems = sorted({p for r in runs for p in r["result"].get("diagnosis", {}).get("problems", [])})
    result = {"test": {k[len("test_"):]: v for k, v in means.items() if k.startswith("test_")},
              "monitor": agg.get("monitor"), "best_value": means.get(f"best_{agg.get('monitor')}"),
              "epochs_run": epochs[0] if len(epochs) == 1 else f"{epochs[0]}-{epochs[-1]}" if epochs else None,
              "diagnosis": {"problems": problems}}
    return {"dir": folder, "config": cfg, "result": result, "seeds": agg, "manifest": runs[0]["manifest"],
            "history": mean_history([r["history"] for r in runs])}


def run_stats(info: dict) -> dict:
    """metric -> {mean, std, n}: a multi-seed directory's aggregate, a single run's numbers (n 1, no std)."""
    if info.get("seeds"):
        return info["seeds"]["metrics"]
    res, hist = info["result"], info["history"]
    values = {f"test_{k}": v for k, v in (res.get("test") or {}).items() if is_number(v)}
    if is_number(res.get("best_value")):
        values[f"best_{res.get('monitor')}"] = res["best_value"]
    values["train_time_s"] = sum(r.get("time", 0.0) for r in hist)
    return {k: {"mean": v, "std": None, "n": 1} for k, v in values.items()}


def run_row(info: dict, root: Path) -> dict:
    """One table row: identity, key config values, best validation value, test metric, epochs, time."""
    cfg, res, hist = info["config"], info["result"], info["history"]
    test = res.get("test") or {}
    metric = next((m for m in HEADLINE if m in test), None)
    status = "failed" if res.get("error") else "done" if res else "incomplete"
    row = {"run": _relative(info["dir"], root)}
    row.update({col: cfg.get(key) for key, col in FIXED_KEYS.items()})
    row.update({"monitor": res.get("monitor"), "best_val": res.get("best_value"),
                "test_metric": metric, "test": test.get(metric) if metric else None,
                "epochs": res.get("epochs_run", len(hist)), "time_s": sum(r.get("time", 0.0) for r in hist),
                "status": status, "problems": ",".join(res.get("diagnosis", {}).get("problems", [])) or "-",
                "mlflow": (res.get("mlflow") or {}).get("uri"),  # the tracking URI it was logged to, if any
                "kind": info["manifest"].get("kind"), "started": info["manifest"].get("started")})
    if isinstance(res.get("folds"), list) and isinstance(res.get("mean"), dict):  # trainlab cv: no epochs, no test
        monitor = str(cfg.get("train.monitor") or "val_loss")
        monitor = monitor if monitor in res["mean"] else "val_loss"
        row.update({"kind": "cv", "folds": len(res["folds"]), "monitor": monitor, "epochs": None,
                    "best_val": res["mean"].get(monitor), "best_std": (res.get("std") or {}).get(monitor),
                    "time_s": res.get("time")})
    return row


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root)) or "."
    except ValueError:
        return str(path)


def varying_keys(configs: list[dict], skip=()) -> list[str]:
    """Dotted keys whose values differ between configs (missing counts as different), in config order."""
    keys = list(dict.fromkeys(k for c in configs for k in c))
    return [k for k in keys if k not in skip and len({repr(c.get(k, "<missing>")) for c in configs}) > 1]


def runs_table(root: Path, sort: str | None = None, reverse: bool = False) -> tuple[list[str], list[dict]]:
    """(columns, rows) for every run under `root`."""
    infos = [load_run_info(d) for d in find_runs(root)]
    if not infos:
        raise UserError(f"no trainlab runs under {root} (a run directory holds config.yaml and manifest.json)")
    extra = varying_keys([i["config"] for i in infos], skip=set(FIXED_KEYS) | {"train.epochs"})[:MAX_VARYING]
    rows = []
    for info in infos:
        row = run_row(info, root)
        for key in extra:
            row[key] = info["config"].get(key)
        rows.append(row)
    columns = ["run", *FIXED_KEYS.values(), *extra, "monitor", "best_val", "test_metric", "test", "epochs",
               "time_s", "started", "status", "problems"]
    columns += ["mlflow"] if any(r["mlflow"] for r in rows) else []
    if sort:
        rows = sort_rows(rows, columns, sort, reverse)
    return columns, rows


def sort_rows(rows: list[dict], columns: list[str], key: str, reverse: bool) -> list[dict]:
    """Sort by one column: numbers numerically, everything else as text; empty values always last."""
    if key not in columns:
        raise UserError(f"cannot sort by {key!r}; columns: {', '.join(columns)}")

    def value(row):
        v = row.get(key)
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return None
        return (0, v, "") if isinstance(v, (int, float)) and not isinstance(v, bool) else (1, 0, str(v))

    present = sorted((r for r in rows if value(r) is not None), key=value, reverse=reverse)
    return present + [r for r in rows if value(r) is None]


def format_table(columns: list[str], rows: list[dict]) -> str:
    """Columns aligned with spaces; floats with 4 significant digits."""
    def fmt(v) -> str:
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v)

    cells = [columns] + [[fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in cells)


# ----------------------------------------------------------------------------- the table fitted to a terminal

FITTED = ("run", "data/model", "epochs", "best", "test", "time", "when")  # what a reader looks for first
SHRINK = {"when": 11, "best": 11, "test": 10, "epochs": 6, "run": 12, "data/model": 10}  # cut in this order, to this
DROPPED = ("when", "time", "epochs", "data/model")  # dropped in this order when cutting is not enough
OPTIONAL_WIDTH = 20  # the other columns are added while they fit, each cut to this
SHORT_NAMES = {"accuracy": "acc", "balanced_accuracy": "bacc", "loss": "loss"}


def fitted_forms(row: dict, column: str) -> list[str]:
    """One cell of the fitted table, longest form first: the narrowest column that holds a form shows it
    ('val_loss 0.0812' / 'loss 0.0812' / '0.0812'; '2026-12-07 06:37' / '12-07 06:37'), else its cut."""
    if column == "data/model":
        return [f"{row.get('dataset') or '-'}/{row.get('model') or '-'}"]
    if column == "epochs":
        return [f"{row['folds']}-fold cv", f"cv {row['folds']}"] if row.get("folds") else [_cell(row.get("epochs"))]
    if column == "best":
        if not is_number(row.get("best_val")):
            return ["-"]
        value = f"{row['best_val']:.4g}"
        std = f"±{row['best_std']:.2g}" if is_number(row.get("best_std")) else ""  # cv: over the folds
        return [*_metric_forms(str(row.get("monitor")), value + std), *([value] if std else [])]
    if column == "test":
        return _metric_forms(row["test_metric"], f"{row['test']:.4g}") if is_number(row.get("test")) else ["-"]
    if column == "time":
        return [_duration(row.get("time_s"))]
    if column == "when":  # manifest "2026-12-07T06:37:32" -> "2026-12-07 06:37", "12-07 06:37"
        when = str(row.get("started") or "-")[:16].replace("T", " ")
        return [when, when[5:]] if len(when) == 16 else [when]
    return [_cell(row.get(column))]


def _metric_forms(name: str, value: str) -> list[str]:
    short = name.removeprefix("val_")
    return [f"{name} {value}", f"{SHORT_NAMES.get(short, short)} {value}", value]


def _cell(v) -> str:
    if v is None:
        return "-"
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _duration(seconds) -> str:
    if not is_number(seconds) or seconds <= 0:
        return "-"
    s = round(seconds)
    if seconds < 10:
        return f"{seconds:.1f}s"
    return f"{s}s" if s < 60 else f"{s // 60}m{s % 60:02d}s" if s < 3600 else f"{s // 3600}h{s % 3600 // 60:02d}m"


def _fit(forms: list[str], width: int, middle: bool = False) -> str:
    """The longest form that fits `width`, else the shortest cut: a path loses its middle ('dig…-2026'),
    anything else its end."""
    text = next((f for f in forms if len(f) <= width), forms[-1])
    if len(text) <= width:
        return text
    if middle and width > 1:
        head = (width - 1) // 2
        return text[:head] + "…" + text[len(text) - (width - 1 - head):]
    return text[:width - 1] + "…" if width > 1 else text[:width]


def optional_columns(columns: list[str], rows: list[dict]) -> list[str]:
    """After the fitted ones, in order, when they say something: status (not all done), the problems the guide
    found, the config keys whose values differ between the runs, where MLflow has them."""
    fixed = [c for c in FIXED_KEYS.values() if c not in ("dataset", "model")]
    extra = [c for c in columns if "." in c]  # runs_table's varying config keys
    differ = [c for c in [*fixed, *extra] if len({repr(r.get(c)) for r in rows}) > 1]
    return (["status"] if any(r.get("status") != "done" for r in rows) else []) \
        + (["problems"] if any(r.get("problems") not in (None, "-") for r in rows) else []) + differ \
        + (["mlflow"] if any(r.get("mlflow") for r in rows) else [])


def fit_table(columns: list[str], rows: list[dict], width: int | None = None) -> str:
    """The runs table in at most `width` characters a line (default: the terminal's, 100 when not a terminal):
    the FITTED columns, cut (SHRINK) or dropped (DROPPED) until they fit, then what optional_columns adds."""
    width = width or shutil.get_terminal_size((100, 24)).columns
    forms = {c: [fitted_forms(r, c) for r in rows] for c in [*FITTED, *optional_columns(columns, rows)]}
    size = {c: max(len(c), *(len(f[0]) for f in cells)) for c, cells in forms.items()}
    shown = list(FITTED)

    def over() -> int:
        return sum(size[c] for c in shown) + 2 * (len(shown) - 1) - width

    for c in SHRINK:  # cut the long ones first: a path, a timm model name, a metric's name
        size[c] -= max(0, min(over(), size[c] - max(SHRINK[c], len(c))))
    for c in DROPPED:
        if over() > 0:
            shown.remove(c)
    for c in ("run", "best", "test"):  # a very narrow terminal: cut what is left to fit
        size[c] -= max(0, min(over(), size[c] - 4))
    for c in forms:
        need = over() + 2 + min(size[c], OPTIONAL_WIDTH)
        if c in ("status", "problems") and need > 0:  # worth a shorter date and metric names
            for soft in (k for k in ("when", "best", "test") if k in shown):
                size[soft] -= max(0, min(need, size[soft] - max(SHRINK[soft], len(soft))))
                need = over() + 2 + min(size[c], OPTIONAL_WIDTH)
        if c not in FITTED and need <= 0:
            size[c] = min(size[c], OPTIONAL_WIDTH)
            shown.append(c)
    paths = {c for c in shown if c in ("run", "mlflow") or c.endswith("path")}
    lines = [[_fit([c], size[c]) for c in shown]]
    lines += [[_fit(forms[c][i], size[c], c in paths) for c in shown] for i in range(len(rows))]
    table = "\n".join("  ".join(v.ljust(size[c]) for v, c in zip(line, shown, strict=True)).rstrip()[:width]
                      for line in lines)
    return table + tracked_footer(rows, shown)


def tracked_footer(rows: list[dict], shown: list[str]) -> str:
    """Where MLflow has the runs, when its column did not fit: the URIs are what a user looks for."""
    uris = sorted({r["mlflow"] for r in rows if r.get("mlflow")})
    if "mlflow" in shown or not uris:
        return ""
    n = sum(1 for r in rows if r.get("mlflow"))
    return f"\nmlflow: {', '.join(uris)} ({n} of {len(rows)} runs; --wide shows which)"


# ----------------------------------------------------------------------------- compare

def compare(run_dirs: list[Path], out: Path) -> dict:
    """Config differences, the key results side by side, and overlaid learning curves in out/compare.png."""
    if len(run_dirs) < 2:
        raise UserError("compare needs at least two run directories")
    infos = [load_run_info(Path(d)) for d in run_dirs]
    labels = _labels([i["dir"] for i in infos])
    diff = {k: [i["config"].get(k) for i in infos] for k in varying_keys([i["config"] for i in infos])}
    rows = [{**run_row(i, Path(".")), "seeds": i["seeds"]["n"] if i.get("seeds") else 1, "stats": run_stats(i)}
            for i in infos]
    histories = {label: i["history"] for label, i in zip(labels, infos, strict=True) if i["history"]}
    result = {"runs": [str(i["dir"]) for i in infos], "labels": labels, "config_diff": diff, "results": rows,
              "plots": [], "noise": noise_notes(labels, [r["stats"] for r in rows])}
    if histories:
        first = next(iter(histories.values()))
        metric = metric_to_show(first, infos[0]["result"].get("monitor", "val_loss"))
        path = compare_curves(histories, out / "compare.png", metric)
        result["plots"].append(str(path))
    return result


def _labels(dirs: list[Path]) -> list[str]:
    names = [d.name for d in dirs]
    return names if len(set(names)) == len(names) else [str(d) for d in dirs]


def format_compare(result: dict) -> str:
    labels = result["labels"]
    diff_rows = [{"key": k, **dict(zip(labels, v, strict=True))} for k, v in result["config_diff"].items()]
    parts = ["config differences:" if diff_rows else "config: identical"]
    if diff_rows:
        parts.append(format_table(["key", *labels], diff_rows))
    if not any(r.get("seeds", 1) > 1 for r in result["results"]):
        keys = ("monitor", "best_val", "test_metric", "test", "epochs", "time_s", "problems")
        res_rows = [{"": k, **{lab: r.get(k) for lab, r in zip(labels, result["results"], strict=True)}}
                    for k in keys]
        return "\n".join([*parts, "results:", format_table(["", *labels], res_rows)])
    return "\n".join([*parts, "results (mean ± std over seeds; std: sample std, ddof=1):",
                      format_table(["", *labels], seeds_rows(labels, result["results"])), *result["noise"]])


def seeds_rows(labels: list[str], rows: list[dict]) -> list[dict]:
    """The results table when an entry has several seeds: one row per metric, mean ± std (n seeds)."""
    def row(name: str, cell) -> dict:
        return {"": name, **{lab: cell(r) for lab, r in zip(labels, rows, strict=True)}}

    metrics = list(dict.fromkeys(k for r in rows for k in r["stats"]))
    return [row("seeds", lambda r: r.get("seeds", 1)),
            *[row(k, lambda r, k=k: pm(r["stats"][k]) if k in r["stats"] else None) for k in metrics],
            row("epochs", lambda r: r.get("epochs")), row("problems", lambda r: r.get("problems"))]
