"""Run directories: what a run writes (config, manifest, splits, history, result) and how it is loaded back.

    run = trainlab.load_run("runs/digits-mlp")
    run.predict_proba(images_uint8)     # eval preprocessing + best weights
"""
from __future__ import annotations

import csv
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from trainlab.checkpoint import load_weights, safe_load
from trainlab.config import Config, build_config, dump_config, read_yaml
from trainlab.data.transforms import Pipeline
from trainlab.errors import UserError

RUN_FILES = ("config.yaml", "manifest.json")


def default_run_dir(cfg: Config, root: str = "runs") -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path(root) / f"{cfg.data.name}-{cfg.model.name}-{stamp}"


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
    out.mkdir(parents=True, exist_ok=True)


def git_hash() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def manifest(cfg: Config, device: torch.device, argv: list[str] | None) -> dict:
    import torchvision

    from trainlab import __version__
    return {
        "command": argv if argv is not None else sys.argv, "cwd": os.getcwd(), "seed": cfg.seed,
        "trainlab": __version__, "git": git_hash(), "python": platform.python_version(),
        "torch": torch.__version__, "torchvision": torchvision.__version__, "platform": platform.platform(),
        "device": str(device), "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "test_evaluations": 0,
    }


def write_json(path: Path, obj) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=_json_default) + "\n")
    os.replace(tmp, path)


def _json_default(o):
    if isinstance(o, torch.Tensor):
        return o.tolist()
    if hasattr(o, "tolist"):
        return o.tolist()
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UserError(f"{path} not found; is {Path(path).parent} a trainlab run directory?") from None
    except json.JSONDecodeError as e:
        raise UserError(f"{path} is corrupted: {e}") from None


def write_history(path: Path, history: list[dict]) -> None:
    keys = list(dict.fromkeys(k for row in history for k in row))
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(history)


def count_test_evaluation(run_dir: Path) -> int:
    """The manifest counts test-split evaluations: test metrics are honest only the first time."""
    m = read_json(run_dir / "manifest.json")
    m["test_evaluations"] = m.get("test_evaluations", 0) + 1
    write_json(run_dir / "manifest.json", m)
    return m["test_evaluations"]


def mark_tuned(run_dir: Path, tuned: dict, earlier_test_evaluations: int = 0) -> int:
    """Record that this run's config was chosen by `trainlab tune` (study, trial, objective).

    A rerun of the search replaces the final run directory; `earlier_test_evaluations` carries the count of
    the replaced one, so looking at the test split again after more trials still counts as looking again.
    """
    m = read_json(run_dir / "manifest.json")
    m["tuned"] = tuned
    m["test_evaluations"] = m.get("test_evaluations", 0) + earlier_test_evaluations
    write_json(run_dir / "manifest.json", m)
    return m["test_evaluations"]


def test_reuse_warning(run_dir: Path, n: int) -> str | None:
    """The warning for the n-th test evaluation of a run (None for the first): test results must not steer choices."""
    if n <= 1:
        return None
    tuned = read_json(Path(run_dir) / "manifest.json").get("tuned")
    if tuned:
        return (f"this run's config was selected by `trainlab tune` (study {tuned.get('study')!r}) on validation data "
                f"and its test split has now been evaluated {n} times; only the first test score is an unbiased "
                f"estimate - do not tune or choose models on test results")
    return (f"the test split of this run has now been evaluated {n} times; decisions based on "
            f"repeated test results leak the test set into model selection")


@dataclass
class Run:
    """A finished (or interrupted) run loaded from disk: config, data description and the best model."""

    dir: Path
    cfg: Config
    data: dict  # data.json: task, kind, classes, raw_shape, input_shape, transforms state, meta
    model: nn.Module

    @property
    def classes(self) -> list[str] | None:
        return self.data.get("classes")

    @property
    def task(self) -> str:
        return self.data["task"]

    def eval_pipeline(self) -> Pipeline:
        return Pipeline(self.data["eval_transforms"], self.data["kind"] == "image")

    @torch.no_grad()
    def predict_outputs(self, x: torch.Tensor) -> torch.Tensor:
        """Raw inputs (as the dataset stores them: uint8 images, float features) -> model outputs."""
        self.model.eval()
        return self.model(self.eval_pipeline()(x))

    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        return self.predict_outputs(x).softmax(-1)


def load_run(run_dir: str | Path, checkpoint: str = "best.pt") -> Run:
    """Load a run directory: its resolved config, data description and weights (weights_only=True)."""
    from trainlab.models import build_model

    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise UserError(f"{run_dir} is not a trainlab run directory (no config.yaml)")
    cfg = build_config(read_yaml(run_dir / "config.yaml"))
    data = read_json(run_dir / "data.json")
    model = build_model(cfg.model, tuple(data["input_shape"]), data["num_outputs"], **data.get("model_info", {}))
    path = run_dir / checkpoint
    if not path.is_file() and checkpoint == "best.pt":
        path = run_dir / "last.pt"
    load_weights(model, safe_load(path)["model"], str(path))
    model.eval()
    return Run(run_dir, cfg, data, model)
