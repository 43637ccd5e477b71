"""The course notebooks: stored without outputs, and each one executes top to bottom without an error.

Execution uses nbclient with the `python3` kernel; jupyter_client starts it with this interpreter
(sys.executable), so the kernel sees the same virtual environment and the installed trainlab.
TRAINLAB_FAST=1 makes every notebook run the same code on less data and fewer epochs.
"""
from __future__ import annotations

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
LESSONS = ("01_environment", "02_tensors_autograd", "03_dataset_dataloader", "04_transforms", "05_course_network",
           "06_overfitting_regularization", "07_splits_cv_tuning", "08_cnn", "09_rnn_time_series",
           "10_attention_transformer", "11_transfer_learning")
CELL_TIMEOUT_S = 300


def test_every_lesson_has_a_notebook():
    assert tuple(p.stem for p in NOTEBOOKS) == LESSONS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stored_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, "a lesson without code"
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not dirty, f"cells {dirty} hold outputs or execution counts; clear them before committing"
    assert nb.metadata["kernelspec"]["name"] == "python3"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes(path, tmp_path, monkeypatch):
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    monkeypatch.setenv("TRAINLAB_FAST", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")  # figures are drawn but not shown
    monkeypatch.delenv("TRAINLAB_DATA", raising=False)
    nb = nbformat.read(path, as_version=4)
    # the kernel runs in tmp_path: notebooks write runs/notebooks/... there, and use no files of the repository
    client = NotebookClient(nb, kernel_name="python3", timeout=CELL_TIMEOUT_S,
                            resources={"metadata": {"path": str(tmp_path)}})
    try:
        client.execute()
    except CellExecutionError as e:  # names the cell, its source and the traceback
        pytest.fail(f"{path.name} failed:\n{e}", pytrace=False)
