"""The whole run configuration: YAML sections `data`, `model`, `train` (+ `tune`, `track`) and a top-level `seed`.

    cfg = load_config("examples/digits-mlp.yaml", ["train.epochs=3", "model.hidden=[256,64]"])

Each section is declared and validated by the layer that owns it (data.config, models.config,
engine.settings); this module only puts them together. Any problem raises UserError with one line
naming the key, the value and what is allowed; nothing here imports torch.
"""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import yaml

from trainlab.core.configfile import apply_overrides, read_yaml
from trainlab.core.errors import DamagedRun, UserError
from trainlab.core.schema import from_dict, opt, to_dict
from trainlab.data.config import DataConfig, TransformsConfig, data_settings
from trainlab.engine.settings import TrainConfig, train_settings
from trainlab.models.catalog import is_library_model
from trainlab.models.config import ModelConfig, model_settings

SEED_MAX = 2**32 - 1  # numpy's seeding takes 32-bit seeds


@dataclass
class TrackConfig:
    """Where a run is logged besides its run directory (observe/tracking.py); off unless track.mlflow is set."""
    mlflow: str | bool | None = opt(None, help="MLflow tracking URI (http://127.0.0.1:5000, sqlite:///mlflow.db, "
                                    "...); true: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db in the working "
                                    "directory; null or false: no tracking")
    experiment: str | None = opt(None, help="MLflow experiment the runs go to (default: the config file's name)")


@dataclass
class Config:
    seed: int = opt(0, help="seed for splits, initialization, shuffling and augmentation", ge=0, le=SEED_MAX)
    data: DataConfig = opt(DataConfig)
    model: ModelConfig = opt(ModelConfig)
    train: TrainConfig = opt(TrainConfig)
    tune: dict = opt(dict, help="search space for `trainlab tune`: dotted key -> {type, low, high, log, choices}")
    track: TrackConfig = opt(TrackConfig)


SECTIONS = {"data": data_settings, "model": model_settings, "train": train_settings}


def build_config(raw: dict) -> Config:
    """Validate a raw dict (from YAML + overrides) into a Config."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise UserError(f"config must be a mapping with sections data, model, train; got {type(raw).__name__}")
    allowed = [f.name for f in dataclasses.fields(Config)]
    for k in raw:
        if k not in allowed:
            raise UserError(f"unknown key {k!r}; allowed: {', '.join(allowed)}")
    cfg = from_dict(Config, {k: v for k, v in raw.items() if k not in SECTIONS})
    for name, settings in SECTIONS.items():
        section = raw.get(name) or {}
        if not isinstance(section, dict):
            raise UserError(f"section {name!r} must be a mapping, got {section!r}")
        setattr(cfg, name, settings(section))
    if "transforms" not in (raw.get("data") or {}):
        use_model_preprocessing(cfg)
    return cfg


def use_model_preprocessing(cfg: Config) -> None:
    """A timm/torchvision model's own input size and normalization become data.transforms (train and eval).

    With `model.preprocess: model`, or `auto` when it starts from pretrained weights (they were trained on
    inputs prepared that way); the config's own data.transforms, when given, always win (checked by the
    caller). The resolved steps are written into the run's config.yaml and data.json.
    """
    p = cfg.model.params
    if not is_library_model(cfg.model.name) or p.preprocess == "data":
        return
    if p.preprocess == "auto" and not (p.pretrained or p.weights):
        return
    from trainlab.models.library import input_config  # start-up time: timm and torchvision import torch

    want = input_config(cfg.model.name, p.image_size)
    steps = [{"name": "resize", "size": want["resize"]}, {"name": "center_crop", "size": want["crop"]},
             {"name": "normalize", "mean": want["mean"], "std": want["std"]}]
    cfg.data.transforms = TransformsConfig(train=steps, eval=[dict(s) for s in steps])


def load_config(path: str | Path | None, overrides: list[str] = ()) -> Config:
    raw = read_yaml(path) if path else {}
    if not isinstance(raw, dict):
        raise UserError(f"config {path} must be a mapping with sections data, model, train; got {type(raw).__name__}")
    cfg = build_config(apply_overrides(raw, list(overrides)))
    if path and not cfg.track.experiment:  # the resolved config.yaml keeps it: `trainlab track RUN` reuses it
        cfg.track.experiment = Path(path).stem
    return cfg


def read_run_config(run_dir: Path, overrides: list[str] = ()) -> Config:
    """config.yaml of a run, validated by this version of trainlab; then `overrides` (their errors are the user's)."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise UserError(f"{run_dir} is not a trainlab run directory (no config.yaml)")
    try:
        raw = read_yaml(path)
        if not raw:  # an emptied file would validate as all defaults: another model than the one in last.pt
            raise UserError("it is empty")
        build_config(copy.deepcopy(raw))
    except UserError as e:
        raise DamagedRun(f"{path} does not validate: {e}") from None
    return build_config(apply_overrides(raw, list(overrides)))


def dump_config(cfg: Config) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)
