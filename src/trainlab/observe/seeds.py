"""Reading and showing a multi-seed directory (`trainlab train CONFIG --seeds N --out DIR`).

    agg = read_seeds(Path("runs/digits-5seeds"))     # DIR/result.json, or None for any other directory
    print(pm(agg["metrics"]["test_accuracy"]))       # 0.9611 ± 0.0040 (5 seeds)

DIR holds one complete run directory per seed (DIR/seed-<s>/) and DIR/result.json, written last, whose
`kind` is "seeds": per metric the mean, the sample standard deviation (ddof=1), min, max, n and the values.
`trainlab compare` shows such a directory as mean ± std and says whether two entries differ by more than
their seed spread. The aggregation itself is workflows/seeds.py.
"""
from __future__ import annotations

import html
import math
from pathlib import Path

from trainlab.core.errors import DamagedRun
from trainlab.core.files import COUNT, a, read_run_json

SEEDS_KIND = "seeds"
SEEDS_FIELDS = {"kind": a(str), "n": COUNT, "seeds": a(list), "runs": a(list), "metrics": a(dict)}
STAT_FIELDS = ("mean", "std", "min", "max", "n")


def read_seeds(folder: Path) -> dict | None:
    """DIR/result.json of a multi-seed directory, checked; None when `folder` is not one."""
    path = Path(folder) / "result.json"
    if not path.is_file():
        return None
    try:
        obj = read_run_json(path)
    except DamagedRun:  # not readable: not a seeds aggregate either; the caller says what the folder lacks
        return None
    if not isinstance(obj, dict) or obj.get("kind") != SEEDS_KIND:
        return None
    return read_run_json(path, SEEDS_FIELDS)


def num(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:.4f}" if abs(v) < 1e4 else f"{v:.4g}"


def pm(stat: dict, unit: str = " seeds") -> str:
    """'0.9611 ± 0.0040 (3 seeds)'; a single run's number alone."""
    if stat.get("n", 1) <= 1 or stat.get("std") is None:
        return num(stat["mean"])
    return f"{num(stat['mean'])} ± {num(stat['std'])} ({stat['n']}{unit})"


def interval(stat: dict) -> tuple[float, float]:
    """mean ± std (a single run: its value)."""
    std = stat.get("std") or 0.0
    return stat["mean"] - std, stat["mean"] + std


def within_noise(x: dict, y: dict) -> bool:
    """True when the mean ± std intervals overlap: the difference of the means is no larger than the spread."""
    (lo1, hi1), (lo2, hi2) = interval(x), interval(y)
    return lo1 <= hi2 and lo2 <= hi1


def noise_notes(labels: list[str], stats: list[dict]) -> list[str]:
    """One line per entry after the first and per shared metric, when either entry has several seeds:
    the difference of the means and whether it is within seed noise."""
    notes = []
    for label, other in zip(labels[1:], stats[1:], strict=True):
        for key in [k for k in stats[0] if k in other and k != "train_time_s"]:
            x, y = stats[0][key], other[key]
            if max(x.get("n", 1), y.get("n", 1)) < 2 or None in (x["mean"], y["mean"]):
                continue
            verdict = ("within seed noise (the mean ± std intervals overlap)" if within_noise(x, y)
                       else "larger than the seed spread (the mean ± std intervals do not overlap)")
            notes.append(f"{label} vs {labels[0]}: {key} {pm(y)} vs {pm(x)}: difference "
                         f"{y['mean'] - x['mean']:+.4g}, {verdict}")
    return notes


def mean_history(histories: list[list[dict]]) -> list[dict]:
    """Epoch-wise mean of the seeds' histories, over the epochs every seed ran (early stopping may differ)."""
    histories = [h for h in histories if h]
    if not histories:
        return []
    epochs = min(len(h) for h in histories)
    keys = [k for k in histories[0][0] if all(k in h[0] for h in histories)]
    return [{k: (histories[0][e][k] if k == "epoch" else sum(h[e][k] for h in histories) / len(histories))
             for k in keys} for e in range(epochs)]


# ----------------------------------------------------------------------------- report.html

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>{title}</title>
<style>body {{ font-family: system-ui, sans-serif; margin: 24px 32px; color: #1d2433; }}
table {{ border-collapse: collapse; font-size: 14px; margin: 8px 0 20px; }}
td, th {{ padding: 4px 12px; border-bottom: 1px solid #e3e6eb; text-align: left; }}
td.n {{ text-align: right; font-variant-numeric: tabular-nums; }} p {{ max-width: 900px; }}</style></head>
<body><h1>{title}</h1><p>{what}</p>
<h2>Metrics over the seeds</h2><table><tr><th>metric</th><th>mean ± std (n)</th><th>min</th><th>max</th>
<th>per seed</th></tr>{rows}</table>
<h2>Runs</h2><table><tr><th>seed</th><th>run</th><th>best epoch</th><th>epochs</th><th>problems</th></tr>{runs}</table>
</body></html>
"""


def render_report(result: dict) -> str:
    """A self-contained page: the aggregate table and one row per seed linking to that run's report."""
    e = html.escape
    rows = "".join(
        f"<tr><td>{e(k)}</td><td class=n>{e(pm(s))}</td><td class=n>{num(s['min'])}</td>"
        f"<td class=n>{num(s['max'])}</td><td class=n>{e(', '.join(num(v) for v in s['values']))}</td></tr>"
        for k, s in result["metrics"].items())
    runs = "".join(
        f"<tr><td>{r['seed']}</td><td><a href=\"{e(r['run'])}/report.html\">{e(r['run'])}</a></td>"
        f"<td>{r['best_epoch']}</td><td>{r['epochs_run']}</td><td>{e(', '.join(r['problems']) or '-')}</td></tr>"
        for r in result["per_seed"])
    title = f"{result['n']} seeds: {Path(result['out']).name}"
    return PAGE.format(title=e(title), what=e(result["std_is"] + ". " + result["varies"]), rows=rows, runs=runs)
