"""The typed-config machinery every layer uses: `opt` fields with help and ranges, coercion and validation.

    @dataclass
    class MLPConfig:
        hidden: list[int] = opt(lambda: [256, 128], help="hidden layer sizes")

    from_dict(MLPConfig, {"hidden": [64]}, "model")   # -> MLPConfig(hidden=[64]); bad keys/types raise UserError

Light on purpose (no torch): config errors and `trainlab --help` must be instant.
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import field
from typing import Any, Literal

from trainlab.core.errors import UserError

# The largest magnitude a number setting may have when its declaration gives no bound on that side: no count or
# rate trainlab reads needs more, every integer up to it is exact as a float, and it fits a C int64.
NUMBER_LIMIT = 2**53


def opt(default: Any = dataclasses.MISSING, help: str = "", **checks) -> Any:
    """A dataclass field with a help text and range checks (ge, gt, le, lt) used by validation and docs.

    On a list field the checks apply to every element: `opt(lambda: [64], ge=1, le=65536)` for layer sizes;
    `max_items` bounds its length (default MAX_ITEMS).
    """
    kw = {"default_factory": default} if callable(default) else {"default": default}
    return field(metadata={"help": help, **checks}, **kw)


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
    bad = UserError(f"bad value for {key}: {_shown_number(value)}; expected {_type_name(tp)}")
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
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 as a string
            try:
                value = float(value)
            except ValueError:
                raise bad from None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if isinstance(value, int) and abs(value) > NUMBER_LIMIT:  # float(10**400) raises OverflowError
                raise UserError(f"bad value for {key}: {_shown_number(value)}; expected a number between "
                                f"-{NUMBER_LIMIT} and {NUMBER_LIMIT}")
            if not math.isfinite(value):  # .inf / .nan would train and write NaN into result.json
                raise UserError(f"bad value for {key}: {value!r}; expected a finite number")
            return float(value)
        raise bad
    if tp is str:
        if isinstance(value, str):
            return value
        raise bad
    raise TypeError(f"unsupported config type {tp} for {key}")


MAX_ITEMS = 10_000  # any list in a config (layer sizes, features, metrics): a typo must not allocate for hours


def _check_range(value: Any, meta: dict, key: str) -> None:
    """The declared bounds (ge, gt, le, lt) and, on a side without one, +-NUMBER_LIMIT. Called on the value as
    given too, before coercion: Python compares a 70-digit int with a float exactly, float() of it may overflow."""
    if isinstance(value, (list, tuple)):
        most = meta.get("max_items", MAX_ITEMS)
        if len(value) > most:
            raise UserError(f"bad value for {key}: a list of {len(value)} items; at most {most}")
        for i, v in enumerate(value):
            _check_range(v, meta, f"{key}[{i}]")
        return
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return
    bounds = [(n, meta[n]) for n in ("ge", "gt", "le", "lt") if n in meta]
    if not any(n in meta for n in ("ge", "gt")):
        bounds.insert(0, ("ge", -NUMBER_LIMIT))
    if not any(n in meta for n in ("le", "lt")):
        bounds.append(("le", NUMBER_LIMIT))
    tests = {"ge": (lambda v, b: v >= b, ">="), "gt": (lambda v, b: v > b, ">"),
             "le": (lambda v, b: v <= b, "<="), "lt": (lambda v, b: v < b, "<")}
    if all(tests[n][0](value, b) for n, b in bounds if not (isinstance(value, float) and math.isnan(value))):
        return
    allowed = " and ".join(f"{tests[n][1]} {b}" for n, b in bounds)
    raise UserError(f"bad value for {key}: {_shown_number(value)}; must be {allowed}")


def _shown_number(value: Any) -> str:
    """A 4,300-digit int cannot even be printed (ValueError since Python 3.11): show its size instead."""
    if isinstance(value, int) and abs(value) >= 10**30:
        digits = int(abs(value).bit_length() * math.log10(2)) + 1  # about; str() is refused past 4,300 digits
        return f"a{' negative' if value < 0 else 'n'} integer of about {digits} digits"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def from_dict(cls: type, values: dict, prefix: str = "", extra_ok: bool = False) -> Any:
    """Build dataclass `cls` from `values`, validating every key; unknown keys are errors unless `extra_ok`."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if not f.name.endswith("params")}
    unknown = [k for k in values if k not in fields]
    if unknown and not extra_ok:
        where = f"{prefix}.{unknown[0]}" if prefix else unknown[0]
        raise UserError(f"unknown key {where!r}; allowed: {', '.join(fields)}")
    kwargs = {}
    for name, f in fields.items():
        if name not in values:
            continue
        key = f"{prefix}.{name}" if prefix else name
        _check_range(values[name], f.metadata, key)  # before coercion: float(10**400) would overflow
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
            if f.name.endswith("params"):  # a registry entry's own options, flattened
                out.update(to_dict(v) if v is not None else {})
            else:
                out[f.name] = to_dict(v)
        return out
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def section_with_params(common: type, values: dict, section: str, choices: dict) -> Any:
    """A flat YAML section -> the `common` dataclass, with each chosen registry entry's own options set on it.

    choices: params field -> (registry, key naming the entry), e.g. {"params": (MODELS, "name")} or
    {"optimizer_params": (OPTIMIZERS, "optimizer"), "scheduler_params": (SCHEDULERS, "scheduler")}.
    The entry that owns an option declares it (its dataclass), so `train.momentum` is a key of sgd, not of adam.
    """
    if not isinstance(values, dict):
        raise UserError(f"section {section!r} must be a mapping, got {values!r}")
    defaults = common()
    chosen = {}
    for fld, (registry, key) in choices.items():
        name = values.get(key, getattr(defaults, key))
        if name is None:
            continue
        if not isinstance(name, str):
            raise UserError(f"bad value for {section}.{key}: {name!r}; expected str")
        chosen[fld] = (registry, key, registry.entry(name))
    own = {f.name for f in dataclasses.fields(common)} - set(choices)
    keys = {fld: _field_names(entry.config) for fld, (_, _, entry) in chosen.items()}
    allowed = own.union(*keys.values())
    unknown = [k for k in values if k not in allowed]
    if unknown:
        raise UserError(_unknown_key(section, unknown[0], sorted(allowed), choices, chosen))
    obj = from_dict(common, {k: v for k, v in values.items() if k in own}, section)
    for fld, (_, _, entry) in chosen.items():
        params = {k: v for k, v in values.items() if k in keys[fld]}
        setattr(obj, fld, from_dict(entry.config, params, section) if entry.config else None)
    return obj


def _field_names(cls: type | None) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)} if cls else set()


def _unknown_key(section: str, key: str, allowed: list[str], choices: dict, chosen: dict) -> str:
    """'unknown key 'train.momentum' for train optimizer 'adam'; it belongs to optimizer sgd, rmsprop; allowed: ...'"""
    what = ", ".join(f"{k} {e.name!r}" for _, k, e in chosen.values())
    owners = [f"{k} {name}" for registry, k in choices.values() for name in registry.names()
              if key in _field_names(registry.entry(name).config)]
    hint = f"; it belongs to {', '.join(owners)}" if owners else ""
    where = f" for {section} {what}" if what else ""
    return f"unknown key '{section}.{key}'{where}{hint}; allowed: {', '.join(allowed)}"
