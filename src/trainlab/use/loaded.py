"""A finished (or interrupted) run loaded back from its directory: config, data description, best weights.

    run = trainlab.load_run("runs/digits-mlp")
    run.predict_proba(images_uint8)     # eval preprocessing + best weights
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from trainlab.core.checkpoint import load_weights, safe_load
from trainlab.core.configfile import read_yaml
from trainlab.core.errors import UserError
from trainlab.core.files import read_json
from trainlab.data.transforms import Pipeline
from trainlab.models.catalog import architecture_only, build_model
from trainlab.run.config import Config, build_config


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
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise UserError(f"{run_dir} is not a trainlab run directory (no config.yaml)")
    cfg = build_config(read_yaml(run_dir / "config.yaml"))
    data = read_json(run_dir / "data.json")
    model = build_model(architecture_only(cfg.model), tuple(data["input_shape"]), data["num_outputs"],
                        **data.get("model_info", {}))  # the checkpoint's weights replace any starting weights
    path = run_dir / checkpoint
    if not path.is_file() and checkpoint == "best.pt":
        path = run_dir / "last.pt"
    load_weights(model, safe_load(path)["model"], str(path))
    model.eval()
    return Run(run_dir, cfg, data, model)
