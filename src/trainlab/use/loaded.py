"""A finished (or interrupted) run loaded back from its directory: config, data description, best weights.

    run = trainlab.load_run("runs/photos")
    run.predict(["cat.jpg", pil_image])       # -> ["cat", "dog"]: class names (values for regression)
    run.predict_proba(np.asarray(pil_image))  # -> (1, classes): decoded and preprocessed as in training

`predict` / `predict_proba` take what a user holds (see trainlab.use.inputs: paths, PIL images, numpy
arrays, tensors, one sample or a batch; texts; dicts or DataFrames of table rows); `predict_outputs`
takes the raw batch exactly as the dataset stores it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from trainlab.core.checkpoint import load_weights, safe_load
from trainlab.core.errors import DamagedRun, UserError
from trainlab.data.transforms import Pipeline
from trainlab.models.catalog import architecture_only, build_model
from trainlab.run.config import Config, read_run_config
from trainlab.run.directory import read_data_description, read_manifest
from trainlab.use.inputs import as_batch


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

    @property
    def choice(self) -> dict | None:
        """The precision and layout the run trained and was tested with (manifest.json), for a Trainer that
        evaluates it again: `trainer.prepare(choice=run.choice)` gives the same numbers on this machine."""
        m = read_manifest(self.dir)
        return {"precision": m["precision"], "channels_last": m["channels_last"]} if "precision" in m else None

    def eval_pipeline(self) -> Pipeline:
        return Pipeline(self.data["eval_transforms"], self.data["kind"] == "image")

    @torch.no_grad()
    def predict_outputs(self, x: torch.Tensor) -> torch.Tensor:
        """Raw inputs (as the dataset stores them: uint8 images, float features) -> model outputs."""
        self.model.eval()
        return self.model(self.eval_pipeline()(x))

    def predict_proba(self, x) -> torch.Tensor:
        """Inputs (paths, PIL images, arrays, tensors, texts, table rows; one or a batch) -> (B, classes)."""
        if self.task != "classification":
            raise UserError(f"{self.dir} is a {self.task} run: it has no class probabilities; use predict")
        return self.predict_outputs(as_batch(self.data, x)).softmax(-1)

    def predict(self, x) -> list[str] | torch.Tensor:
        """Inputs as for predict_proba -> a class name per sample, or the predicted values (B, ...) for regression."""
        out = self.predict_outputs(as_batch(self.data, x))
        if self.task == "classification":
            return [self.classes[int(i)] for i in out.argmax(-1)]
        return out.squeeze(-1) if out.shape[-1] == 1 else out


def load_run(run_dir: str | Path, checkpoint: str = "best.pt") -> Run:
    """Load a run directory: its resolved config, data description and weights (weights_only=True).
    Files that are damaged or from another version of trainlab raise DamagedRun naming the file."""
    run_dir = Path(run_dir)
    cfg = read_run_config(run_dir)
    data = read_data_description(run_dir)
    try:
        Pipeline(data["eval_transforms"], data["kind"] == "image")
        model = build_model(architecture_only(cfg.model), tuple(data["input_shape"]), data["num_outputs"],
                            **data.get("model_info", {}))  # the checkpoint's weights replace any starting weights
    except (UserError, TypeError, ValueError, KeyError, RuntimeError) as e:
        raise DamagedRun(f"{run_dir / 'data.json'} does not fit its config.yaml ({str(e)[:160]})") from None
    path = run_dir / checkpoint
    if not path.is_file() and checkpoint == "best.pt":
        path = run_dir / "last.pt"
    load_weights(model, safe_load(path)["model"], str(path))
    model.eval()
    return Run(run_dir, cfg, data, model)
