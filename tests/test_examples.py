"""Every example config validates, and the ones whose data ships with a package train end to end (dry run)."""
from __future__ import annotations

from pathlib import Path

import pytest

from trainlab.run.config import load_config

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.yaml"))


def test_there_are_examples():
    names = {p.name for p in EXAMPLES}
    assert {"digits-mlp.yaml", "mnist-mlp.yaml", "mnist-cnn.yaml", "fashion-mnist-cnn.yaml", "cifar10-cnn.yaml",
            "wine-csv.yaml", "image-folder.yaml", "csv-classification.yaml", "csv-regression.yaml",
            "text-csv.yaml"} <= names  # the last four: trained end to end in test_own_data.py


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_config_is_valid(path):
    load_config(path)


def test_csv_example_dry_run(tmp_path, cli, monkeypatch):
    from sklearn.datasets import load_wine

    load_wine(as_frame=True).frame.to_csv(tmp_path / "wine.csv", index=False)
    monkeypatch.chdir(tmp_path)
    example = Path(__file__).resolve().parents[1] / "examples" / "wine-csv.yaml"
    code, out, err = cli("train", example, "--dry-run", "--out", tmp_path / "run")
    assert code == 0, err
    assert "dry run passed" in out and "loss stayed finite" in out
