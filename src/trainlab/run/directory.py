"""Run directories: creating one safely, its manifest, the count of test-split evaluations, and reading
its files back checked (a damaged or other-version file -> one line: DamagedRun).

    prepare_run_dir(Path("runs/demo"), cfg, overwrite=False)   # refuses to mix runs; --overwrite removes only
                                                              # the files the run's manifest lists
    write_json(out / "manifest.json", manifest(cfg, device, sys.argv))
    read_data_description(run_dir); read_manifest(run_dir); read_splits(run_dir)

Loading a finished run back is `trainlab.use.loaded.load_run`.
"""
from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch

from trainlab.core.errors import DamagedRun, UserError
from trainlab.core.files import COUNT, SHAPE, Check, a, is_count, make_dir, read_run_json, write_json
from trainlab.core.version import __version__
from trainlab.run.config import Config, dump_config

RUN_FILES = ("config.yaml", "manifest.json")
# What `trainlab train` may write into its run directory (top-level names). The manifest lists them from the
# start, so a run killed at any point can still be replaced with --overwrite; plots and later outputs
# (inspect-val/, model.onnx) are added to its "files" when they are written.
TRAIN_FILES = ("config.yaml", "manifest.json", "splits.json", "data.json", "summary.txt", "last.pt", "best.pt",
               "history.csv", "diagnostics.jsonl", "tb", "result.json", "report.html",
               "audit.json", "audit")  # the cheap data audit of every run; `trainlab audit RUN`'s default --out


def run_name(cfg: Config) -> str:
    """'digits-mlp', 'digits-timm-convnext_atto': a folder name (no ':' from library model names)."""
    return f"{cfg.data.name}-{cfg.model.name.replace(':', '-')}"


def default_run_dir(cfg: Config, root: str = "runs") -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path(root) / f"{run_name(cfg)}-{stamp}"


def prepare_run_dir(out: Path, cfg: Config, overwrite: bool, keep: tuple[Path, ...] = ()) -> None:
    """Create `out`; refuse to mix runs: an existing run with another config needs --overwrite (or --resume).

    --overwrite removes only what the run's manifest lists (remove_run_files); `keep` (the config file being
    used) and the config's data paths are never removed.
    """
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        old = out / "config.yaml"
        same = old.is_file() and old.read_text() == dump_config(cfg)
        if not overwrite:
            what = "a run with the same config" if same else "a different run" if old.is_file() else "other files"
            raise UserError(f"--out {out} already holds {what}; pass --overwrite to replace it "
                            f"or --resume {out} to continue it")
        remove_run_files(out, (*keep, *data_paths(cfg)))
    make_dir(out)


def data_paths(cfg: Config) -> list[Path]:
    """The files and folders the config reads its data from (never removed by --overwrite)."""
    params = cfg.data.params
    paths = [getattr(params, key, None) for key in ("path", "test_path")] + [cfg.data.root]
    return [Path(p) for p in paths if isinstance(p, str) and p]


def own_files(run_dir: Path) -> set[str]:
    """The top-level names trainlab wrote into `run_dir`, as its manifest lists them (older manifests, without
    the list: what `trainlab train` writes, plus its plots)."""
    return _listed_files(read_manifest(run_dir), Path(run_dir))


def _listed_files(m: dict, run_dir: Path) -> set[str]:
    if "files" in m:
        return set(m["files"])
    return {*TRAIN_FILES, *(p.name for p in run_dir.glob("*.png"))}


def record_files(run_dir: Path, names) -> None:
    """Add `names` (top-level entries trainlab has just written into `run_dir`) to its manifest's file list."""
    m = read_manifest(run_dir)
    m["files"] = sorted(_listed_files(m, Path(run_dir)) | {str(n) for n in names})
    write_json(Path(run_dir) / "manifest.json", m)


def is_own_file(name: str, own: set[str]) -> bool:
    """An entry the manifest lists, or a temporary file of one (NAME.tmp from write_text, .NAME.*.tmp from
    atomic_save) that a kill left behind."""
    if name in own:
        return True
    if name.endswith(".tmp"):
        base = name[:-len(".tmp")]
        return base in own or (name.startswith(".") and base[1:].rsplit(".", 1)[0] in own)
    return False


def _inside(path: Path, folder: Path) -> bool:
    path, folder = path.absolute().resolve(), folder.absolute().resolve()
    return path == folder or folder in path.parents


def check_overwrite(out: Path | None, cfg: Config, keep: tuple[Path, ...] = ()) -> None:
    """Before any work: would --overwrite of `out` stop (see remove_run_files)? Then say so now."""
    if out is not None and out.is_dir() and any(out.iterdir()):
        removable(out, (*keep, *data_paths(cfg)))


def remove_run_files(out: Path, keep: tuple[Path, ...] = ()) -> list[str]:
    """--overwrite: delete exactly the entries of `out` its manifest lists; anything else there (a user's file,
    the config or data being used) stops it with one line naming what it would have removed, nothing removed."""
    entries = removable(out, keep)
    for p in entries:  # the manifest last: a kill part-way leaves a run that --overwrite can still replace
        if p.name != "manifest.json":
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
    (out / "manifest.json").unlink()
    return [p.name for p in entries]


def removable(out: Path, keep: tuple[Path, ...] = ()) -> list[Path]:
    """The entries of run directory `out` that --overwrite removes: all of them, or UserError naming the first
    that is not trainlab's (not in its manifest) or that holds something in `keep`."""
    if not (out / "manifest.json").is_file():
        names = sorted(p.name + ("/" if p.is_dir() else "") for p in out.iterdir())
        raise UserError(f"--out {out} is not a trainlab run (no manifest.json); --overwrite would have removed "
                        f"{_listed(names)} - refusing, nothing removed (choose an empty or new --out)")
    own = own_files(out)
    entries = sorted(out.iterdir())
    foreign = [p.name + ("/" if p.is_dir() else "") for p in entries if not is_own_file(p.name, own)]
    if foreign:
        raise UserError(f"--overwrite would have removed {_listed(foreign)} from {out}, which trainlab did not "
                        f"write (not in its manifest.json); move them away first - nothing removed")
    used = [p for p in entries if any(_inside(k, p) for k in keep)]
    if used:
        raise UserError(f"--overwrite would have removed {used[0]}, which holds the config or data this run "
                        f"uses; copy it elsewhere first - nothing removed")
    return entries


def _listed(names: list[str], n: int = 5) -> str:
    more = f" and {len(names) - n} more" if len(names) > n else ""
    return ", ".join(names[:n]) + more


def git_hash() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def manifest(cfg: Config, device: torch.device, argv: list[str] | None, kind: str = "run",
             files: tuple[str, ...] = TRAIN_FILES) -> dict:
    """What ran where; `kind` (run, cv, tune) and `files`: what the command writes into the directory."""
    return {
        "command": argv if argv is not None else sys.argv, "cwd": os.getcwd(), "seed": cfg.seed,
        "trainlab": __version__, "git": git_hash(), "python": platform.python_version(),
        "torch": torch.__version__, "torchvision": importlib.metadata.version("torchvision"),
        "timm": importlib.metadata.version("timm"), "platform": platform.platform(),
        "device": str(device), "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "test_evaluations": 0,
        "kind": kind, "files": sorted(files),
    }


# ----------------------------------------------------------------------------- reading a run back, checked

MANIFEST: dict[str, Check] = {"test_evaluations": COUNT, "tuned": a(dict), "test_metrics": a(dict),
                              "precision": a(str), "channels_last": a(bool), "num_threads": COUNT, "kind": a(str),
                              "files": ("a list of file names", lambda v: isinstance(v, list) and all(
                                  isinstance(n, str) and n and "/" not in n and n not in (".", "..") for n in v))}
DATA: dict[str, Check] = {  # data.json as workflows/train.data_description writes it
    "task": ("'classification' or 'regression'", lambda v: v in ("classification", "regression")),
    "kind": a(str), "classes": a(list, type(None)),
    "num_outputs": ("a positive integer", lambda v: is_count(v) and v > 0),
    "raw_shape": a(list), "raw_dtype": a(str), "input_shape": SHAPE, "eval_transforms": a(list),
    "train_transforms": a(list), "meta": a(dict), "model_info": a(dict)}
SPLITS: dict[str, Check] = {name: ("a list of sample indices or null", lambda v: v is None or (
    isinstance(v, list) and all(is_count(i) for i in v))) for name in ("train", "val", "test")}


def read_manifest(run_dir: Path) -> dict:
    return read_run_json(Path(run_dir) / "manifest.json", MANIFEST, optional=tuple(MANIFEST))


def read_data_description(run_dir: Path) -> dict:
    """data.json: what the model was built for (input shape, outputs, classes, preprocessing)."""
    path = Path(run_dir) / "data.json"
    data = read_run_json(path, DATA, optional=("train_transforms", "meta", "model_info"))
    classes = data["classes"]
    if data["task"] == "classification" and (classes is None or len(classes) != data["num_outputs"]):
        raise DamagedRun(f"{path} names {0 if classes is None else len(classes)} classes for a model with "
                         f"{data['num_outputs']} outputs")
    return data


def read_splits(run_dir: Path) -> dict:
    return read_run_json(Path(run_dir) / "splits.json", SPLITS, optional=("val", "test"))


def count_test_evaluation(run_dir: Path, metrics: dict | None = None, epochs_run: int | None = None) -> int:
    """The manifest counts test-split evaluations: test metrics are honest only the first time.

    The training's own evaluation passes its `metrics` (and how many epochs the weights had): they are kept in
    the manifest in the same write as the count, so a run killed right after it completes without looking again.
    """
    m = read_manifest(run_dir)
    m["test_evaluations"] = m.get("test_evaluations", 0) + 1
    if metrics is not None:
        m["test_metrics"] = {"epochs_run": epochs_run, "metrics": metrics}
    write_json(Path(run_dir) / "manifest.json", m)
    return m["test_evaluations"]


def record_machine_choice(run_dir: Path, choice: dict, num_threads: int) -> None:
    """What `auto` became on this machine (precision, channels_last, threads) and why, in the manifest:
    `"precision": "fp32"` is what a reader of the run checks, the reasons say why."""
    m = read_manifest(run_dir)
    m.update({**choice, "num_threads": num_threads})
    write_json(Path(run_dir) / "manifest.json", m)


def recorded_test_metrics(run_dir: Path, epochs_run: int) -> dict | None:
    """The test metrics the training recorded for weights after `epochs_run` epochs, or None (not evaluated yet)."""
    saved = read_manifest(run_dir).get("test_metrics") or {}
    return saved.get("metrics") if saved.get("epochs_run") == epochs_run else None


def mark_tuned(run_dir: Path, tuned: dict, earlier_test_evaluations: int = 0) -> int:
    """Record that this run's config was chosen by `trainlab tune` (study, trial, objective).

    A rerun of the search replaces the final run directory; `earlier_test_evaluations` carries the count of
    the replaced one, so looking at the test split again after more trials still counts as looking again.
    """
    m = read_manifest(run_dir)
    m["tuned"] = tuned
    m["test_evaluations"] = m.get("test_evaluations", 0) + earlier_test_evaluations
    write_json(run_dir / "manifest.json", m)
    return m["test_evaluations"]


def test_reuse_warning(run_dir: Path, n: int) -> str | None:
    """The warning for the n-th test evaluation of a run (None for the first): test results must not steer choices."""
    if n <= 1:
        return None
    tuned = read_manifest(run_dir).get("tuned")
    if tuned:
        return (f"this run's config was selected by `trainlab tune` (study {tuned.get('study')!r}) on validation data "
                f"and its test split has now been evaluated {n} times; only the first test score is an unbiased "
                f"estimate - do not tune or choose models on test results")
    return (f"the test split of this run has now been evaluated {n} times; decisions based on "
            f"repeated test results leak the test set into model selection")
