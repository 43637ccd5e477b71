"""Healthy runs are not flagged: every shipped example that needs no download, 3 seeds, short epochs, raises no
warning it does not provoke on purpose (digits-overfit overfits by design). bench/false_alarms.py is the same
with a printed table (and --full for the examples' own epochs)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "false_alarms.py"
spec = importlib.util.spec_from_file_location("false_alarms", BENCH)
false_alarms = importlib.util.module_from_spec(spec)
spec.loader.exec_module(false_alarms)


def test_every_example_without_download_is_covered():
    shipped = {p.name for p in (BENCH.parents[1] / "examples").glob("*.yaml")}
    needs_download = {"mnist-mlp.yaml", "mnist-cnn.yaml", "mnist-rnn.yaml", "fashion-mnist-cnn.yaml",
                      "cifar10-cnn.yaml"}
    # templates for the user's own files (tests/test_own_data.py and test_finetune train them on generated data)
    needs_your_files = {"image-folder.yaml", "csv-classification.yaml", "csv-regression.yaml", "text-csv.yaml",
                        "finetune-image-folder.yaml"}
    assert set(false_alarms.EXAMPLES) == shipped - needs_download - needs_your_files


@pytest.mark.slow
@pytest.mark.parametrize("name", list(false_alarms.EXAMPLES))
def test_example_raises_no_false_alarm(name, tmp_path):
    rows = [false_alarms.run_example(name, seed, False, tmp_path) for seed in (0, 1, 2)]
    assert not [(r["seed"], r["false_alarms"]) for r in rows if r["false_alarms"]], rows
