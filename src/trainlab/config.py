"""Typed, validated run configuration: YAML sections `data`, `model`, `train` (+ `tune`), top-level `seed`.

    cfg = load_config("examples/digits-mlp.yaml", ["train.epochs=3", "model.hidden=[256,64]"])

`data` and `model` hold the common keys below plus the options of the chosen dataset/model,
which come from that registry entry's own dataclass; every key is checked for name, type and range.
Any problem raises UserError with one line naming the key, the value and what is allowed.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from trainlab.errors import UserError


def opt(default: Any = dataclasses.MISSING, help: str = "", **checks) -> Any:
    """A dataclass field with a help text and range checks (ge, gt, le, lt) used by validation and docs."""
    kw = {"default_factory": default} if callable(default) else {"default": default}
    return field(metadata={"help": help, **checks}, **kw)


@dataclass
class TransformsConfig:
    train: list[dict] = opt(lambda: [{"name": "normalize"}],
                            help="pipeline for training samples (augmentations + preprocessing)")
    eval: list[dict] = opt(lambda: [{"name": "normalize"}],
                           help="deterministic pipeline for validation, test and predict")


@dataclass
class DataConfig:
    name: str = opt("digits", help="dataset (trainlab list datasets)")
    root: str = opt("data", help="folder holding downloaded datasets")
    download: bool = opt(False, help="download the dataset into root if missing")
    val_fraction: float = opt(0.1, help="share of the training pool held out for validation", ge=0.0, lt=1.0)
    test_fraction: float = opt(0.2, help="share held out for test when the dataset has no official test split",
                               gt=0.0, lt=1.0)
    stratify: bool = opt(True, help="stratify splits by class (classification only)")
    batch_size: int = opt(64, help="training batch size", ge=1)
    eval_batch_size: int = opt(512, help="batch size for validation/test/predict", ge=1)
    shuffle: bool = opt(True, help="reshuffle the training set every epoch")
    drop_last: bool = opt(False, help="drop the last incomplete training batch")
    num_workers: int = opt(0, help="DataLoader worker processes (streaming path)", ge=0)
    pin_memory: bool | Literal["auto"] = opt("auto", help="pinned host memory; auto = on with CUDA")
    persistent_workers: bool = opt(False, help="keep DataLoader workers alive between epochs")
    in_memory: bool | Literal["auto"] = opt("auto",
                                            help="decode once into tensors and slice batches; auto = if it fits")
    memory_limit_mb: int = opt(4096, help="largest dataset the in-memory path takes (auto mode)", ge=1)
    transforms: TransformsConfig = opt(TransformsConfig, help="transform pipelines (trainlab list transforms)")
    params: Any = None  # the dataset's own options (its registry dataclass), flattened into the YAML section


@dataclass
class ModelConfig:
    name: str = opt("mlp", help="model (trainlab list models)")
    params: Any = None  # the model's own options (its registry dataclass)


@dataclass
class TrainConfig:
    epochs: int = opt(10, help="passes over the training set", ge=1)
    optimizer: str = opt("adam", help="optimizer (trainlab list optimizers)")
    lr: float = opt(1e-3, help="learning rate", gt=0.0)
    momentum: float = opt(0.9, help="momentum for sgd and rmsprop", ge=0.0, lt=1.0)
    nesterov: bool = opt(False, help="Nesterov momentum (sgd)")
    weight_decay: float = opt(0.0, help="L2 penalty / decoupled decay (adamw)", ge=0.0)
    loss: str = opt("auto", help="loss (trainlab list losses); auto = cross_entropy or mse by task")
    label_smoothing: float = opt(0.0, help="label smoothing for cross_entropy", ge=0.0, lt=1.0)
    scheduler: str | None = opt(None, help="LR scheduler (trainlab list schedulers)")
    step_size: int = opt(10, help="epochs between LR drops (step scheduler)", ge=1)
    gamma: float = opt(0.1, help="LR factor (step, reduce_on_plateau)", gt=0.0, le=1.0)
    scheduler_patience: int = opt(2, help="epochs without improvement before reduce_on_plateau acts", ge=0)
    grad_clip: float | None = opt(None, help="clip the global gradient norm to this value", gt=0.0)
    metrics: Literal["auto"] | list[str] = opt("auto", help="evaluation metrics; auto = accuracy,f1 or mae,rmse,r2")
    monitor: str = opt("val_loss", help="history key that picks the best epoch (val_loss, val_accuracy, ...)")
    early_stopping: int | None = opt(None, help="stop after this many epochs without improvement", ge=1)
    min_delta: float = opt(0.0, help="smallest change of monitor that counts as improvement", ge=0.0)
    device: str = opt("auto", help="auto (cuda > mps > cpu), cpu, cuda, cuda:1, mps")
    precision: Literal["fp32", "bf16", "fp16"] = opt("fp32", help="autocast precision")
    compile: bool = opt(False, help="torch.compile the model")
    channels_last: bool = opt(False, help="channels_last memory format for 4-D inputs")
    checkpoint_every: int = opt(0, help="also write last.pt every N steps (0 = end of each epoch only)", ge=0)
    on_nan: Literal["stop", "skip"] = opt("stop", help="on a non-finite loss: stop the run or skip the step")
    deterministic: bool = opt(False, help="torch.use_deterministic_algorithms")
    num_threads: int = opt(0, help="CPU threads for torch (0 = all physical cores)", ge=0)
    log_interval: int = opt(50, help="steps between progress-bar refreshes (each one syncs the device)", ge=1)


@dataclass
class Config:
    seed: int = opt(0, help="seed for splits, initialization, shuffling and augmentation")
    data: DataConfig = opt(DataConfig)
    model: ModelConfig = opt(ModelConfig)
    train: TrainConfig = opt(TrainConfig)
    tune: dict = opt(dict, help="search space for `trainlab tune`: dotted key -> {type, low, high, log, choices}")


# ----------------------------------------------------------------------------- coercion

def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " or ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is list:
        return f"list of {_type_name(typing.get_args(tp)[0])}"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def coerce(value: Any, tp: Any, key: str) -> Any:
    """Return `value` as type `tp` or raise UserError naming `key`."""
    origin = typing.get_origin(tp)
    bad = UserError(f"bad value for {key}: {value!r}; expected {_type_name(tp)}")
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            try:
                return coerce(value, arg, key)
            except UserError:
                continue
        raise bad
    if origin is Literal:
        if value in typing.get_args(tp) and type(value) in {type(a) for a in typing.get_args(tp)}:
            return value
        raise bad
    if tp is type(None):
        if value is None or value in ("null", "none", "None"):
            return None
        raise bad
    if origin is list:
        if (isinstance(value, (str, int, float)) and not isinstance(value, bool)
                and typing.get_args(tp)[0] in (str, int, float)):
            value = [value] if not isinstance(value, str) else [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise bad
        return [coerce(v, typing.get_args(tp)[0], f"{key}[{i}]") for i, v in enumerate(value)]
    if tp is dict or origin is dict:
        if not isinstance(value, dict):
            raise bad
        return dict(value)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise bad
        return from_dict(tp, value, key)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise bad
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise bad
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 as a string
            try:
                return float(value)
            except ValueError:
                raise bad from None
        raise bad
    if tp is str:
        if isinstance(value, str):
            return value
        raise bad
    raise TypeError(f"unsupported config type {tp} for {key}")


def _check_range(value: Any, meta: dict, key: str) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return
    for name, ok, _word in (("ge", lambda v, b: v >= b, ">="), ("gt", lambda v, b: v > b, ">"),
                           ("le", lambda v, b: v <= b, "<="), ("lt", lambda v, b: v < b, "<")):
        if name in meta and not ok(value, meta[name]):
            allowed = " and ".join(f"{w} {meta[n]}" for n, w in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"))
                                   if n in meta)
            raise UserError(f"bad value for {key}: {value!r}; must be {allowed}")


def from_dict(cls: type, values: dict, prefix: str = "", extra_ok: bool = False) -> Any:
    """Build dataclass `cls` from `values`, validating every key; unknown keys are errors unless `extra_ok`."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "params"}
    unknown = [k for k in values if k not in fields]
    if unknown and not extra_ok:
        where = f"{prefix}.{unknown[0]}" if prefix else unknown[0]
        raise UserError(f"unknown key {where!r}; allowed: {', '.join(fields)}")
    kwargs = {}
    for name, f in fields.items():
        if name not in values:
            continue
        key = f"{prefix}.{name}" if prefix else name
        kwargs[name] = coerce(values[name], hints[name], key)
        _check_range(kwargs[name], f.metadata, key)
    try:
        return cls(**kwargs)
    except TypeError as e:  # a required field is missing
        raise UserError(f"{prefix or 'config'}: {e}") from None


def to_dict(obj: Any) -> Any:
    """Dataclass tree -> plain dict; `params` are flattened into their section."""
    if dataclasses.is_dataclass(obj):
        out = {}
        for f in dataclasses.fields(obj):
            v = getattr(obj, f.name)
            if f.name == "params":
                out.update(to_dict(v) if v is not None else {})
            else:
                out[f.name] = to_dict(v)
        return out
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


# ----------------------------------------------------------------------------- loading

def _section_with_params(common: type, registry, values: dict, section: str) -> Any:
    """Split a flat section into the common dataclass and the chosen entry's own options."""
    if not isinstance(values, dict):
        raise UserError(f"section {section!r} must be a mapping, got {values!r}")
    name = values.get("name", common().name)
    if not isinstance(name, str):
        raise UserError(f"bad value for {section}.name: {name!r}; expected str")
    entry = registry.entry(name)
    own = {f.name for f in dataclasses.fields(common)} - {"params"}
    param_fields = {f.name for f in dataclasses.fields(entry.config)} if entry.config else set()
    unknown = [k for k in values if k not in own and k not in param_fields]
    if unknown:
        allowed = sorted(own | param_fields)
        raise UserError(f"unknown key '{section}.{unknown[0]}' for {section} {name!r}; allowed: {', '.join(allowed)}")
    obj = from_dict(common, {k: v for k, v in values.items() if k in own}, section)
    params = {k: v for k, v in values.items() if k in param_fields}
    obj.params = from_dict(entry.config, params, section) if entry.config else None
    return obj


def build_config(raw: dict) -> Config:
    """Validate a raw dict (from YAML + overrides) into a Config."""
    from trainlab.data import DATASETS
    from trainlab.models import MODELS

    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise UserError(f"config must be a mapping with sections data, model, train; got {type(raw).__name__}")
    allowed = [f.name for f in dataclasses.fields(Config)]
    for k in raw:
        if k not in allowed:
            raise UserError(f"unknown key {k!r}; allowed: {', '.join(allowed)}")
    cfg = from_dict(Config, {k: v for k, v in raw.items() if k not in ("data", "model")})
    cfg.data = _section_with_params(DataConfig, DATASETS, raw.get("data") or {}, "data")
    cfg.model = _section_with_params(ModelConfig, MODELS, raw.get("model") or {}, "model")
    _check_names(cfg)
    return cfg


def _check_names(cfg: Config) -> None:
    """Registry names are checked on load, so a typo fails before any data is read."""
    from trainlab.data.transforms import TRANSFORMS, _register_augments
    from trainlab.losses import LOSSES
    from trainlab.metrics import METRICS
    from trainlab.optim import OPTIMIZERS, SCHEDULERS

    t = cfg.train
    OPTIMIZERS.entry(t.optimizer)
    if t.scheduler:
        SCHEDULERS.entry(t.scheduler)
    if t.loss != "auto":
        LOSSES.entry(t.loss)
    for name in [] if t.metrics == "auto" else t.metrics:
        METRICS.entry(name)
    _register_augments()
    for which in ("train", "eval"):
        for i, spec in enumerate(getattr(cfg.data.transforms, which)):
            name = spec.get("name") if isinstance(spec, dict) else spec
            if not isinstance(name, str):
                raise UserError(f"data.transforms.{which}[{i}] needs a name, e.g. {{name: normalize}}; got {spec!r}")
            TRANSFORMS.entry(name)


def parse_override(text: str) -> tuple[list[str], Any]:
    if "=" not in text:
        raise UserError(f"bad override {text!r}; expected key=value, e.g. train.epochs=3")
    key, value = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise UserError(f"bad override {text!r}; expected key=value, e.g. train.epochs=3")
    try:
        parsed = yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError:
        parsed = value
    return key.split("."), parsed


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    for text in overrides:
        path, value = parse_override(text)
        node = raw
        for part in path[:-1]:
            if not isinstance(node.get(part, {}), dict):
                raise UserError(f"bad override {text!r}: {part!r} is not a section")
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return raw


def read_yaml(path: str | Path) -> dict:
    p = Path(path)
    if not p.is_file():
        raise UserError(f"config file not found: {p}")
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        detail = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise UserError(f"cannot parse {p}{where}: {detail}") from None
    except UnicodeDecodeError:
        raise UserError(f"cannot read {p}: not UTF-8 text") from None
    return raw if raw is not None else {}


def load_config(path: str | Path | None, overrides: list[str] = ()) -> Config:
    raw = read_yaml(path) if path else {}
    if not isinstance(raw, dict):
        raise UserError(f"config {path} must be a mapping with sections data, model, train; got {type(raw).__name__}")
    return build_config(apply_overrides(raw, list(overrides)))


def dump_config(cfg: Config) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)
