"""The fault battery: full disks, extreme numbers, resumes with more epochs, foreign weights, odd file systems.

Each case ends in one `error:` line (exit 2) naming the file or key and what to do, and nothing saved
before is lost or left half-written. README's "Reliability" section points at these tests.
"""
from __future__ import annotations

import dataclasses
import types
import typing

import pytest

from conftest import assert_one_line_error, tiny_config
from trainlab.core.errors import UserError
from trainlab.core.schema import NUMBER_LIMIT
from trainlab.data.catalog import DATASETS, TRANSFORMS
from trainlab.data.config import DataConfig
from trainlab.engine.catalog import LOSSES, OPTIMIZERS, SCHEDULERS
from trainlab.engine.settings import TrainConfig
from trainlab.models.catalog import ACTIVATIONS, MODELS
from trainlab.models.config import ModelConfig
from trainlab.run.config import Config, build_config


# ----------------------------------------------------------------------------- extreme numbers, from the schema

def _is_numeric(tp) -> bool:
    if typing.get_origin(tp) in (typing.Union, types.UnionType, list):
        return any(_is_numeric(a) for a in typing.get_args(tp))
    return tp in (int, float)


def _numeric_fields(cls: type) -> list[str]:
    hints = typing.get_type_hints(cls)
    return [f.name for f in dataclasses.fields(cls) if not f.name.endswith("params") and _is_numeric(hints[f.name])]


# section -> (its common dataclass, the registries whose chosen entry adds options, and the key choosing it)
SECTIONS = {"data": (DataConfig, [(DATASETS, "name")]), "model": (ModelConfig, [(MODELS, "name")]),
            "train": (TrainConfig, [(OPTIMIZERS, "optimizer"), (SCHEDULERS, "scheduler")])}


def numeric_settings() -> list[tuple[str, str, dict]]:
    """Every number setting of every section and of every registry entry's own options: (section, key, choice)."""
    cases = [("", name, {}) for name in _numeric_fields(Config)]
    for section, (common, registries) in SECTIONS.items():
        cases += [(section, name, {}) for name in _numeric_fields(common)]
        for registry, key in registries:
            for entry_name in registry.names():
                config = registry.entry(entry_name).config
                choice = {key: entry_name.replace(":*", ":resnet18") if entry_name.endswith(":*") else entry_name}
                cases += [(section, name, choice) for name in (_numeric_fields(config) if config else [])]
    return cases


SETTINGS = numeric_settings()
HUGE = [10**70, -10**70, 10**400, 10**5000, NUMBER_LIMIT + 1]


def test_the_schema_list_covers_the_settings_the_issue_names():
    keys = {f"{s}.{k}" if s else k for s, k, _ in SETTINGS}
    for key in ("train.lr", "train.lr_mult", "train.accumulate", "train.ema", "train.warmup", "train.class_weights",
                "data.batch_size", "data.val_fraction", "model.dropout", "seed", "train.momentum"):
        assert key in keys
    assert len(SETTINGS) > 50
    # registries without numeric options still exist; they are listed so a new one with numbers is noticed here
    assert {r.kind for r in (LOSSES, ACTIVATIONS, TRANSFORMS)} == {"loss", "activation", "transform"}


@pytest.mark.parametrize("section,key,choice", SETTINGS, ids=[f"{s}.{k}[{c}]" for s, k, c in SETTINGS])
@pytest.mark.parametrize("value", HUGE, ids=["e70", "-e70", "e400", "e5000", "limit+1"])
def test_every_numeric_setting_refuses_a_huge_number_in_one_line(section, key, choice, value):
    raw = {section: {**choice, key: value}} if section else {key: value}
    with pytest.raises(UserError) as e:
        build_config(raw)
    message = str(e.value)
    assert "\n" not in message and len(message) < 300
    assert (f"{section}.{key}" if section else key) in message
    assert ("must be" in message) or ("expected" in message)


@pytest.mark.parametrize("section,key,choice", SETTINGS[:1] + [s for s in SETTINGS if s[2] == {}])
def test_every_numeric_setting_still_takes_its_default(section, key, choice):
    """The bounds must not refuse a value trainlab itself chose."""
    build_config({section: {**choice}} if section else {})


@pytest.mark.parametrize("override", ["train.lr", "data.batch_size", "data.val_fraction", "model.dropout",
                                      "train.class_weights", "train.ema", "train.warmup"])
def test_cli_refuses_a_70_digit_number_in_one_line(cli, write_config, tmp_path, override):
    code, _, err = cli("train", write_config(), f"{override}={10**70}", "--dry-run", "--out", tmp_path / "r")
    assert_one_line_error(code, err, override)
    assert not (tmp_path / "r").exists()
