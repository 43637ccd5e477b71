"""`trainlab cv` says how far it is: a line as each fold ends and, in a log or pipe, a line per epoch of each fold
(a terminal gets the Trainer's live bar instead, as train does); library callers (tune's folds) stay quiet."""
from __future__ import annotations

import json
import re

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
