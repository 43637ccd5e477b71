"""`make demo`'s config gives the same numbers every time: twice in one process and in a fresh process."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "examples" / "digits-mlp.yaml"


def _result(run_dir: Path) -> dict:
    r = json.loads((run_dir / "result.json").read_text())
    return {"test": r["test"], "best_epoch": r["best_epoch"], "epochs_run": r["epochs_run"]}


@pytest.mark.slow
def test_the_demo_config_is_reproducible_in_one_process_and_across_processes(tmp_path, cli):
    runs = []
    for name in ("a", "b"):  # twice in this process: no state leaks from one fit into the next
        code, _, err = cli("train", DEMO, "--out", tmp_path / name)
        assert code == 0, err
        runs.append(_result(tmp_path / name))
    proc = subprocess.run([sys.executable, "-m", "trainlab", "train", str(DEMO), "--out", str(tmp_path / "c")],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    runs.append(_result(tmp_path / "c"))
    assert runs[0] == runs[1] == runs[2], runs  # bit-identical metrics, not merely close
    assert runs[0]["test"]["accuracy"] >= 0.97
