"""The `tune` section as a search space: validation, Optuna suggestions, and trial configs built like overrides.

    space = parse_space(raw, raw["tune"])       # every bound and choice checked against the config once
    values = suggest(trial, space)               # {"train.lr": 3e-3, "model.hidden": [256, 128]}
    cfg = trial_config(raw, values)              # the raw config with those values applied as overrides
"""
from __future__ import annotations

import copy
import json

import yaml

from trainlab.core.configfile import apply_overrides
from trainlab.core.errors import UserError
from trainlab.core.schema import coerce
from trainlab.run.config import build_config

SPEC_KEYS = ("type", "low", "high", "log", "step", "choices")
# keys that change which samples are validated or tested: scores under different values are not comparable
FIXED_KEYS = ("seed", "data.name", "data.path", "data.test_path", "data.val_fraction", "data.test_fraction",
              "data.stratify")


# ----------------------------------------------------------------------------- search space

def _check_spec(key: str, spec) -> dict:
    """One `tune` entry -> {type, low, high, log, step, choices}, or a UserError naming the bad key."""
    where = f"tune.{key}"
    if not isinstance(spec, dict):
        raise UserError(f"bad value for {where}: {spec!r}; expected a mapping like {{type: float, low: 0, high: 1}}")
    unknown = [k for k in spec if k not in SPEC_KEYS]
    if unknown:
        raise UserError(f"unknown key '{where}.{unknown[0]}'; allowed: {', '.join(SPEC_KEYS)}")
    kind = spec.get("type")
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices or set(spec) - {"type", "choices"}:
            raise UserError(f"{where}: categorical takes only a non-empty list of choices")
        return {"type": kind, "choices": choices}
    if kind not in ("float", "int"):
        raise UserError(f"bad value for {where}.type: {kind!r}; expected float, int or categorical")
    if "low" not in spec or "high" not in spec or "choices" in spec:
        raise UserError(f"{where}: {kind} needs low and high (and no choices)")
    num = float if kind == "float" else int
    low, high = coerce(spec["low"], num, f"{where}.low"), coerce(spec["high"], num, f"{where}.high")
    log = coerce(spec.get("log", False), bool, f"{where}.log")
    step = coerce(spec["step"], num, f"{where}.step") if spec.get("step") is not None else None
    if not low < high:
        raise UserError(f"{where}: low ({low}) must be < high ({high})")
    if log and (low <= 0 or step is not None):
        raise UserError(f"{where}: log scale needs low > 0 and no step")
    if step is not None and step <= 0:
        raise UserError(f"bad value for {where}.step: {step}; must be > 0")
    return {"type": kind, "low": low, "high": high, "log": log, "step": step}


def parse_space(raw: dict, tune: dict) -> dict[str, dict]:
    """Validate the `tune` section; every bound and choice is applied to the config once, like an override."""
    if not tune:
        raise UserError("the config has no tune section; add e.g. tune: {train.lr: {type: float, low: 1.0e-4, "
                        "high: 1.0e-2, log: true}}")
    space = {}
    for key, spec in tune.items():
        if key in FIXED_KEYS or key.startswith("tune"):
            raise UserError(f"tune.{key}: this key decides which samples are validated or tested (or the seed); "
                            f"scores under different values are not comparable - fix it in the config")
        space[key] = _check_spec(str(key), spec)
        values = space[key].get("choices") or [space[key]["low"], space[key]["high"]]
        for value in values:
            try:
                trial_config(raw, {key: value})
            except UserError as e:
                raise UserError(f"tune.{key}: {e}") from None
    return space


def _label(choice):
    """Optuna stores only scalars as categorical choices: lists and mappings travel as their JSON text."""
    return json.dumps(choice) if isinstance(choice, (list, dict)) else choice


def decode(space: dict, params: dict) -> dict:
    """Optuna params -> config values (JSON text of list choices back to lists)."""
    out = {}
    for key, value in params.items():
        spec = space.get(key, {})
        out[key] = {_label(c): c for c in spec["choices"]}.get(value, value) if "choices" in spec else value
    return out


def suggest(trial, space: dict) -> dict:
    for key, s in space.items():
        if s["type"] == "float":
            trial.suggest_float(key, s["low"], s["high"], log=s["log"], step=s["step"])
        elif s["type"] == "int":
            trial.suggest_int(key, s["low"], s["high"], log=s["log"], step=s["step"] or 1)
        else:
            trial.suggest_categorical(key, [_label(c) for c in s["choices"]])
    return decode(space, trial.params)


def trial_config(raw: dict, values: dict):
    """The raw config with `values` applied exactly as command-line overrides, validated."""
    # YAML flow text parses back to the same value: 1.0e-05, [256, 128], relu
    texts = [f"{k}={yaml.safe_dump(v, default_flow_style=True, width=10**9).splitlines()[0]}"
             for k, v in values.items()]
    return build_config(apply_overrides(copy.deepcopy(raw), texts))


def shown_url(url: str) -> str:
    """The storage URL without its password, for printing and result.json."""
    if "://" not in url:
        return url
    from sqlalchemy.engine import make_url  # optional heavy dependency (comes with optuna)

    return make_url(url).render_as_string(hide_password=True)


