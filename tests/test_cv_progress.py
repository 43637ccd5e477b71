"""`trainlab cv` says how far it is: a line as each fold ends and, in a log or pipe, a line per epoch of each fold
(a terminal gets the Trainer's live bar instead, as train does); library callers (tune's folds) stay quiet."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import trainlab
from conftest import tiny_config
from trainlab.core.report import silent
from trainlab.run.config import build_config
from trainlab.workflows.cv import cross_validate

FOLD_END = re.compile(r"^fold (\d)/3  val_loss (\d\.\d{4})  val_accuracy (\d\.\d{4}).*best epoch \d/2  \d+\.\ds$")
EPOCH = re.compile(r"^fold (\d)/3  epoch +(\d)/2  train_loss ")


def test_cv_to_a_log_reports_every_fold_and_epoch(cli, write_config, tmp_path):
    """stdout captured (not a terminal): fold 1, 2, 3 each end with one line, after that fold's 2 epoch lines."""
    code, out, err = cli("cv", write_config(tiny_config()), "--folds", "3", "--out", tmp_path / "cv")
    assert code == 0, err
    lines = out.splitlines()
    ends = [(i, m) for i, line in enumerate(lines) if (m := FOLD_END.match(line))]
    assert [m.group(1) for _, m in ends] == ["1", "2", "3"]  # one line per fold, in order
    epochs = [(i, m.group(1), m.group(2)) for i, line in enumerate(lines) if (m := EPOCH.match(line))]
    assert [(f, e) for _, f, e in epochs] == [(f, e) for f in "123" for e in "12"]
    for (end, m), fold_epochs in zip(ends, (epochs[0:2], epochs[2:4], epochs[4:6]), strict=True):
        assert all(i < end for i, _, _ in fold_epochs)  # each epoch said before its fold ended, not at the end
        assert 0.8 < float(m.group(3)) <= 1.0  # the fold's real score: tiny digits MLP
    result = json.loads((tmp_path / "cv" / "result.json").read_text())
    assert [f"{f['metrics']['val_accuracy']:.4f}" for f in result["folds"]] == [m.group(3) for _, m in ends]


def test_library_folds_stay_quiet(capsys):
    """cross_validate as tune calls it (report=silent, not live): no epoch line, no bar, no diagnosis."""
    result = cross_validate(build_config(tiny_config()), 3, report=silent)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    assert len(result["folds"]) == 3 and result["mean"]["val_accuracy"] > 0.8


def run_in_a_terminal(argv: list[str], columns: int = 120) -> str:
    """Run `argv` with stdin, stdout and stderr on a pseudo-terminal `columns` wide; what it wrote there."""
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))  # tqdm sizes its bar by it
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(trainlab.__file__).parents[1]),
                                                        os.environ.get("PYTHONPATH", "")])}
    env.pop("COLUMNS", None)
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env)
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    assert proc.wait(300) == 0, b"".join(chunks)[-2000:]
    return b"".join(chunks).decode(errors="replace").replace("\r", "\n")


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")
def test_cv_in_a_terminal_shows_the_live_bar_instead_of_epoch_lines(write_config, tmp_path):
    text = run_in_a_terminal([sys.executable, "-m", "trainlab", "cv", str(write_config(tiny_config())),
                              "--folds", "3", "--out", str(tmp_path / "cv")])
    assert [m.group(1) for m in re.finditer(r"^fold (\d)/3  val_loss", text, re.M)] == ["1", "2", "3"]
    assert not re.search(r"fold \d/3  epoch", text)  # the bar says it here; a log gets the lines
    assert re.search(r"epoch 2/2: +\d+%\|.*batch", text)  # the Trainer's live bar, as in train
