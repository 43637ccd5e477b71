"""Run directories: creating one safely, its manifest, the count of test-split evaluations, and reading
its files back checked (a damaged or other-version file -> one line: DamagedRun).

    prepare_run_dir(Path("runs/demo"), cfg, overwrite=False)   # refuses to mix or delete other runs
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

from trainlab import __version__
from trainlab.core.errors import DamagedRun, UserError
from trainlab.core.files import COUNT, SHAPE, Check, a, is_count, make_dir, read_run_json, write_json
from trainlab.run.config import Config, dump_config

RUN_FILES = ("config.yaml", "manifest.json")


def run_name(cfg: Config) -> str:
    """'digits-mlp', 'digits-timm-convnext_atto': a folder name (no ':' from library model names)."""
    return f"{cfg.data.name}-{cfg.model.name.replace(':', '-')}"


def default_run_dir(cfg: Config, root: str = "runs") -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path(root) / f"{run_name(cfg)}-{stamp}"


def prepare_run_dir(out: Path, cfg: Config, overwrite: bool) -> None:
    """Create `out`; refuse to mix runs: an existing run with another config needs --overwrite (or --resume)."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        old = out / "config.yaml"
        same = old.is_file() and old.read_text() == dump_config(cfg)
        if not overwrite:
            what = "a run with the same config" if same else "a different run" if old.is_file() else "other files"
            raise UserError(f"--out {out} already holds {what}; pass --overwrite to replace it "
                            f"or --resume {out} to continue it")
        if old.is_file():  # only ever delete what looks like a trainlab run
            shutil.rmtree(out)
        else:
            raise UserError(f"--out {out} holds files that are not a trainlab run; refusing to delete them")
    make_dir(out)


def git_hash() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def manifest(cfg: Config, device: torch.device, argv: list[str] | None) -> dict:
    import torchvision  # optional heavy dependency: imported on use

    return {
        "command": argv if argv is not None else sys.argv, "cwd": os.getcwd(), "seed": cfg.seed,
        "trainlab": __version__, "git": git_hash(), "python": platform.python_version(),
        "torch": torch.__version__, "torchvision": torchvision.__version__,
        "timm": importlib.metadata.version("timm"), "platform": platform.platform(),
        "device": str(device), "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "test_evaluations": 0,
    }


# ----------------------------------------------------------------------------- reading a run back, checked

MANIFEST: dict[str, Check] = {"test_evaluations": COUNT, "tuned": a(dict), "test_metrics": a(dict)}
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
