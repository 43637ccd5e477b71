"""Config loading: types, ranges, unknown keys, overrides, model/dataset options, round trip."""
from __future__ import annotations

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trainlab.core.errors import UserError
from trainlab.core.schema import to_dict
from trainlab.models.catalog import MLPConfig
from trainlab.run.config import build_config, dump_config, load_config


def test_defaults_and_overrides(write_config):
    cfg = load_config(write_config(), ["train.epochs=3", "model.hidden=[256,64]", "train.lr=1e-3", "seed=7"])
    assert cfg.train.epochs == 3 and cfg.train.lr == pytest.approx(1e-3) and cfg.seed == 7
    assert isinstance(cfg.model.params, MLPConfig) and cfg.model.params.hidden == [256, 64]
    assert cfg.data.batch_size == 64 and cfg.data.params is None  # digits has no own options


def test_resolved_config_round_trips(write_config):
    cfg = load_config(write_config(), ["model.dropout=0.3"])
    again = build_config(yaml.safe_load(dump_config(cfg)))
    assert to_dict(again) == to_dict(cfg)
    assert to_dict(cfg)["model"]["dropout"] == 0.3  # model options are flat in the section


@pytest.mark.parametrize("override, needles", [
    (["train.epochs=0"], ["train.epochs", "0", ">= 1"]),
    (["train.lr=-0.1"], ["train.lr", "-0.1", "> 0"]),
    (["data.val_fraction=1.5"], ["data.val_fraction", "1.5", "< 1"]),
    (["data.test_fraction=0"], ["data.test_fraction", "> 0"]),
    (["train.epoch=3"], ["train.epoch", "allowed", "epochs"]),
    (["model.hiden=[3]"], ["model.hiden", "hidden"]),
    (["train.epochs=three"], ["train.epochs", "three", "int"]),
    (["model.name=nosuch"], ["nosuch", "mlp"]),
    (["data.name=nosuch"], ["nosuch", "digits"]),
    (["train.precision=fp8"], ["train.precision", "fp8"]),
    (["bogus=1"], ["bogus"]),
    (["train.epochs"], ["key=value"]),
])
def test_bad_values_name_the_key(write_config, override, needles):
    with pytest.raises(UserError) as e:
        load_config(write_config(), override)
    msg = str(e.value)
    assert "\n" not in msg
    for needle in needles:
        assert needle in msg, msg


def test_yaml_1e_notation_is_a_float(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("train:\n  lr: 1e-4\n")  # PyYAML reads this as a string
    assert load_config(p).train.lr == pytest.approx(1e-4)


@pytest.mark.parametrize("text, needle", [
    ("data: [1, 2\n", "cannot parse"),
    ("- a\n- b\n", "mapping"),
    ("data: 3\n", "mapping"),
])
def test_broken_files(tmp_path, text, needle):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    with pytest.raises(UserError, match=needle):
        load_config(p)


def test_missing_file():
    with pytest.raises(UserError, match="not found"):
        load_config("/nonexistent/config.yaml")


def test_cli_bad_config_exit_2(cli, write_config):
    from conftest import assert_one_line_error

    code, _, err = cli("train", write_config(), "train.lr=-1")
    assert_one_line_error(code, err, "train.lr")


yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=10)
sections = st.dictionaries(st.sampled_from(["data", "model", "train", "seed", "tune", "other"]), yaml_values,
                          max_size=4)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=sections | yaml_values)
def test_any_yaml_loads_or_fails_cleanly(raw):
    """Property: whatever YAML a user writes, the loader returns a Config or raises a one-line UserError."""
    try:
        build_config(raw)
    except UserError as e:
        assert "\n" not in str(e)


@settings(max_examples=60, deadline=None)
@given(text=st.text(max_size=40))
def test_any_text_file_loads_or_fails_cleanly(tmp_path_factory, text):
    p = tmp_path_factory.mktemp("y") / "c.yaml"
    p.write_text(text, encoding="utf-8")
    try:
        load_config(p)
    except UserError as e:
        assert "\n" not in str(e)
