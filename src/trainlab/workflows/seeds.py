"""`trainlab train CONFIG --seeds N`: one config trained with N seeds, every metric as mean ± std over them.

    trainlab train examples/digits-mlp.yaml --seeds 5 --out runs/digits-5seeds
    result = train_seeds(load_config("examples/digits-mlp.yaml"), Path("runs/digits-5seeds"), 5)

Seeds cfg.seed, cfg.seed + 1, ..., cfg.seed + N - 1 each train a complete, ordinary run directory
DIR/seed-<s>/ (`train_run`, exactly as `trainlab train CONFIG seed=<s>` would). DIR/result.json is written
last, once every seed has finished: a directory without it is not a finished aggregate. It holds, for
every test metric, the best monitored validation value and the training time: mean, std (the sample
standard deviation, ddof=1), min, max, n and the per-seed values; DIR/report.html shows the same table.
"""
from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import numpy as np

from trainlab.core import distributed
from trainlab.core.errors import UserError
from trainlab.core.files import is_number, make_dir, write_json, write_text
from trainlab.core.report import Reporter, print_progress
from trainlab.observe.compare import HEADLINE
from trainlab.observe.plots import read_history
from trainlab.observe.seeds import SEEDS_KIND, num, pm, render_report
from trainlab.observe.tracking import OFF, Tracking, open_tracker, summary_metrics
from trainlab.run.config import SEED_MAX, Config, TrackConfig
from trainlab.run.directory import data_paths, default_run_dir, is_own_file, own_files, remove_run_files
from trainlab.workflows.train import train_run

STD_IS = "std is the sample standard deviation over the seeds (ddof=1)"
VARIES = ("The seed sets the initialization, the shuffling, the augmentation and the train/val/test split "
          "(unless the dataset has an official test split), so the spread covers all of them.")


def stats(values: list[float]) -> dict:
    """mean, std (sample, ddof=1; None for one value), min, max, n and the values."""
    v = np.asarray(values, dtype=float)
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else None,
            "min": float(v.min()), "max": float(v.max()), "n": len(v), "values": [float(x) for x in v]}


def seed_metrics(result: dict, history: list[dict]) -> dict:
    """What is aggregated of one run: test_<metric>, best_<monitor>, train_time_s (sum of the epoch times)."""
    out = {f"test_{k}": v for k, v in (result.get("test") or {}).items() if is_number(v)}
    if is_number(result.get("best_value")):
        out[f"best_{result['monitor']}"] = result["best_value"]
    out["train_time_s"] = sum(r.get("time", 0.0) for r in history)
    return out


def aggregate(per_seed: list[dict]) -> dict:
    """{metric: stats} over the seeds, in the first seed's metric order."""
    keys = list(dict.fromkeys(k for r in per_seed for k in r["metrics"]))
    return {k: stats([r["metrics"][k] for r in per_seed if k in r["metrics"]]) for k in keys}


MAX_SEEDS = 1000  # = the CLI's bound (cli/arguments.MAX_RUNS): each seed is a whole training run


def check_seeds(cfg: Config, n: int) -> None:
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_SEEDS:
        raise UserError(f"--seeds must be a whole number from 1 to {MAX_SEEDS}, got {n!r}")
    if cfg.seed + n - 1 > SEED_MAX:
        raise UserError(f"--seeds {n} from seed {cfg.seed} goes past the largest seed {SEED_MAX}; lower seed")
    if distributed.from_env() is not None:
        raise UserError("--seeds trains the seeds one after another in one process; run it without torchrun")


def prepare_seeds_dir(out: Path, overwrite: bool, keep: tuple[Path, ...] = ()) -> None:
    """Create `out`; an existing non-empty one is replaced only with --overwrite and only if it holds
    nothing but what --seeds writes (seed-* run directories, result.json, report.html); each seed's run
    directory loses only what its manifest lists, and nothing in `keep` (the config and data used)."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise UserError(f"--out {out} is not empty; pass --overwrite to replace an earlier --seeds result")
        if not is_seeds_dir(out):
            foreign = [p.name for p in out.iterdir() if not is_seeds_dir(out, p)]
            raise UserError(f"--overwrite would have removed {', '.join(sorted(foreign)[:5])} from {out}, which "
                            f"--seeds did not write; move them away first - nothing removed")
        remove_seeds(out, keep)
    make_dir(out)


def is_seeds_dir(out: Path, entry: Path | None = None) -> bool:
    """Every entry of `out` (or just `entry`) is --seeds' own: its summary files or a seed's run directory."""
    own = {"result.json", "result.json.tmp", "report.html", "report.html.tmp", "MODEL_CARD.md", "MODEL_CARD.md.tmp"}
    return all(p.name in own or (p.is_dir() and not p.is_symlink() and p.name.startswith("seed-")
                                 and (p / "manifest.json").is_file())
               for p in ([entry] if entry is not None else out.iterdir()))


def remove_seeds(out: Path, keep: tuple[Path, ...]) -> None:
    """--overwrite of a --seeds result: each seed's run files (checked first, all of them), then the summary."""
    runs = sorted(p for p in out.iterdir() if p.is_dir())
    for run in runs:  # a seed directory holding a user's file stops it before anything is removed
        foreign = [p.name for p in run.iterdir() if not is_own_file(p.name, own_files(run))]
        if foreign:
            raise UserError(f"--overwrite would have removed {run / foreign[0]}, which trainlab did not write; "
                            f"move it away first - nothing removed")
    for run in runs:
        remove_run_files(run, keep)
        run.rmdir()
    for p in out.iterdir():
        p.unlink()


def train_seeds(cfg: Config, out: Path | None, n: int, overwrite: bool = False, argv: list[str] | None = None,
                dry_run: bool = False, report: Reporter = print_progress, keep: tuple[Path, ...] = (),
                track: TrackConfig | None = None) -> dict:
    """Train `cfg` with seeds cfg.seed .. cfg.seed + n - 1 into out/seed-<s>/; return what out/result.json holds.

    A seed that fails stops the whole: its error is raised, naming the seed, and no result.json is written.
    `track`: where the seeds are logged besides `out` (MLflow: a parent run, a child run per seed; the result's
    `mlflow` entry says where); None: the config's track section.
    """
    cfg = dataclasses.replace(cfg, track=track or cfg.track)  # each seed's config.yaml records it
    check_seeds(cfg, n)
    out = Path(out) if out is not None else Path(f"{default_run_dir(cfg)}-seeds{n}")
    prepare_seeds_dir(out, overwrite, (*keep, *data_paths(cfg)))
    seeds = [cfg.seed + i for i in range(n)]
    per_seed = []
    # MLflow (track.mlflow): a parent run, a child run per seed
    tracked = Tracking(cfg, out, tracker=open_tracker(cfg.track), params={"seeds": n})
    with tracked.failing():
        for i, seed in enumerate(seeds):
            run_dir = out / f"seed-{seed}"
            report(f"seed {seed} ({i + 1}/{n}): training into {run_dir}")
            per_seed.append(train_one(cfg, seed, run_dir, argv, dry_run, tracked.run))
            report(seed_line(per_seed[-1], i, n))
        result = finish(out, seeds, per_seed)
    return tracked.finish(result, summary_metrics(result["metrics"]))


def train_one(cfg: Config, seed: int, run_dir: Path, argv, dry_run: bool, track=OFF) -> dict:
    one = copy.deepcopy(cfg)  # train_run may change the config it is given (--dry-run: one epoch)
    one.seed = seed
    try:
        result = train_run(one, run_dir, argv=argv, dry_run=dry_run, quiet=True, track=track)
    except UserError as e:
        raise UserError(f"seed {seed}: {str(e).splitlines()[0] if str(e) else type(e).__name__} "
                        f"(no aggregate written; {run_dir} is that seed's run directory)") from e
    history = read_history(run_dir / "history.csv") if (run_dir / "history.csv").is_file() else []
    return {"seed": seed, "run": run_dir.name, "run_dir": str(run_dir), "test": result.get("test") or {},
            "monitor": result.get("monitor"), "best_epoch": result.get("best_epoch"),
            "epochs_run": result.get("epochs_run"),
            "problems": list((result.get("diagnosis") or {}).get("problems", [])),
            "metrics": seed_metrics(result, history)}


def seed_line(entry: dict, i: int, n: int) -> str:
    test = "  ".join(f"{k} {num(v)}" for k, v in entry["test"].items() if is_number(v))
    problems = f"  problems: {', '.join(entry['problems'])}" if entry["problems"] else ""
    return (f"seed {entry['seed']} ({i + 1}/{n}): test {test}  best epoch {entry['best_epoch']}/{entry['epochs_run']}"
            f"  {entry['metrics']['train_time_s']:.1f}s{problems}")


def finish(out: Path, seeds: list[int], per_seed: list[dict]) -> dict:
    metrics = aggregate(per_seed)
    tests = [k[len("test_"):] for k in metrics if k.startswith("test_")]
    headline = next((f"test_{m}" for m in HEADLINE if m in tests), None)
    result = {"kind": SEEDS_KIND, "n": len(seeds), "seeds": seeds, "runs": [r["run"] for r in per_seed],
              "headline": headline, "monitor": per_seed[0]["monitor"], "std_is": STD_IS, "varies": VARIES,
              "metrics": metrics, "per_seed": per_seed, "out": str(out)}
    write_text(out / "report.html", render_report(result))
    write_json(out / "result.json", result)  # last: its presence says every seed finished
    return result


def format_table(result: dict) -> str:
    """metric | mean ± std (n) | min | max, one row per aggregated metric."""
    rows = [("metric", "mean ± std (n)", "min", "max")]
    rows += [(k, pm(s, ""), num(s["min"]), num(s["max"])) for k, s in result["metrics"].items()]
    widths = [max(len(r[c]) for r in rows) for c in range(4)]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows)
