"""The committed reference docs equal what the code generates (python -m trainlab.cli.docs rewrites them)."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from trainlab.cli import docs
from trainlab.cli.main import build_parser, registries
from trainlab.data.config import DataConfig
from trainlab.engine.settings import TrainConfig

DOCS = Path(__file__).resolve().parents[1] / "docs"


@pytest.fixture(scope="module")
def generated() -> dict[str, str]:
    return docs.generated_files()


@pytest.mark.parametrize("name", ["config.md", "cli.md"])
def test_committed_docs_are_up_to_date(generated, name):
    committed = (DOCS / name).read_text(encoding="utf-8")
    assert committed == generated[name], f"docs/{name} is stale: run `python -m trainlab.cli.docs` and commit it"


def test_generation_is_deterministic(generated):
    assert docs.generated_files() == generated


def test_config_reference_has_every_key_with_default_and_range(generated):
    text = generated["config.md"]
    for cls, section in ((TrainConfig, "train"), (DataConfig, "data")):
        for f in dataclasses.fields(cls):
            if not f.name.endswith("params"):
                assert f"| `{section}.{f.name}` |" in text, f.name
    assert "| `train.lr` | float | `0.001` | > 0.0 | learning rate |" in text
    assert "| `data.val_fraction` | float | `0.1` | >= 0.0 and < 1.0 |" in text
    assert "| `train.precision` | str | `auto` | auto, fp32, bf16, fp16 |" in text
    assert "| `train.optimizer` | str | `adam` | adam, adamw, rmsprop, sgd |" in text


def test_config_reference_has_every_registered_entry_and_its_own_keys(generated):
    text = generated["config.md"]
    regs = registries()
    for kind, section, key in (("datasets", "data", "name"), ("models", "model", "name"),
                               ("optimizers", "train", "optimizer"), ("schedulers", "train", "scheduler")):
        for name in regs[kind].names():
            entry = regs[kind].entry(name)
            assert f"### {section}.{key}: {name}\n" in text
            for f in dataclasses.fields(entry.config) if entry.config else []:
                assert f"| `{section}.{f.name}` |" in text, (name, f.name)
    for kind, reg in regs.items():
        assert f"### {kind}\n" in text
        for name in reg.names():
            assert f"| `{name}` |" in text, (kind, name)


def test_cli_reference_has_every_command_and_argument(generated):
    text = generated["cli.md"]
    parser = build_parser()
    (sub,) = [a for a in parser._actions if a.dest == "command"]
    assert len(sub.choices) >= 15
    for name, p in sub.choices.items():
        assert f"## trainlab {name}\n" in text
        for action in p._actions:
            for flag in action.option_strings:
                if flag not in ("-h", "--help"):
                    assert f"{flag}" in text, (name, flag)
    assert "trainlab tune CONFIG [OVERRIDES ...] --trials TRIALS" in text  # required option without brackets
    assert "| `--split SPLIT` | `test` | val, test |" in text


def test_check_mode_reports_stale_docs_and_writes_nothing(tmp_path, capsys):
    assert docs.main(["--out", str(tmp_path), "--check"]) == 1
    assert not any(tmp_path.iterdir())
    assert docs.main(["--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cli.md", "config.md"]
    assert docs.main(["--out", str(tmp_path), "--check"]) == 0
    assert "up to date" in capsys.readouterr().out
