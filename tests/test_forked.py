"""core/forked.py: work done by a forked child, or by this process when the child cannot do it."""
from __future__ import annotations

import os
from pathlib import Path

from trainlab.core import forked


def _write(path, text):
    path.write_text(f"{text} {os.getpid()}")


def test_without_fork_there_are_no_helpers_and_the_work_runs_here(tmp_path, monkeypatch):
    monkeypatch.setattr(forked.sys, "platform", "win32")
    helpers = forked.Helpers(2)
    helpers.run([[(_write, tmp_path / "b.txt", "here")], []])
    assert helpers.pid is None and (tmp_path / "b.txt").read_text() == f"here {os.getpid()}"


def _children() -> list[int]:
    """Live (not zombie) child processes of this one, from /proc."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == os.getpid() and fields[0] != "Z":
            out.append(int(stat.parent.name))
    return out


def _write_pid(path):
    path.write_text(f"{os.getpid()} {os.getppid()}")


def test_helpers_warm_up_once_and_each_runs_one_list(tmp_path):
    before = set(_children())  # other tests may leave children of their own (servers, workers)
    warm = tmp_path / "warm"
    helpers = forked.Helpers(2, warm=lambda: _write(warm / str(os.getpid()), "warm"))
    warm.mkdir()
    helpers.run([[(_write_pid, tmp_path / "a")], [(_write_pid, tmp_path / "b"), (_write_pid, tmp_path / "c")]])
    (a_pid, a_parent), (b_pid, b_parent) = [(tmp_path / n).read_text().split() for n in ("a", "b")]
    assert a_parent == str(os.getpid()) and b_parent == a_pid  # the second helper is forked from the warm first
    assert (tmp_path / "c").read_text().split()[0] == b_pid
    assert len(list(warm.iterdir())) <= 1  # warm-up ran in the first helper only (its file may not exist yet
    assert helpers.conns == [] and set(_children()) <= before  # when the directory did not): never twice


PARENT = os.getpid()


def _only_in_the_test_process(path):
    if os.getpid() != PARENT:
        raise RuntimeError("not in a helper")
    _write(path, "here")


def test_a_list_a_helper_cannot_run_is_run_here(tmp_path):
    before = set(_children())
    parent = os.getpid()
    assert parent == PARENT
    helpers = forked.Helpers(2)
    helpers.run([[(_only_in_the_test_process, tmp_path / "x")], [(_write_pid, tmp_path / "y")],
                 [(_write_pid, tmp_path / "z")]])
    assert (tmp_path / "x").read_text() == f"here {parent}"  # failed in the helper: redone here
    assert int((tmp_path / "y").read_text().split()[0]) != parent  # done by the second helper
    assert int((tmp_path / "z").read_text().split()[0]) == parent  # a third list, with two helpers: here
    assert set(_children()) <= before


def test_jobs_pickle_cannot_take_run_here(tmp_path):
    before = set(_children())
    helpers = forked.Helpers(2)
    helpers.run([[(lambda p: _write(p, "local"), tmp_path / "l")]])  # a lambda cannot be pickled
    assert (tmp_path / "l").read_text() == f"local {os.getpid()}" and set(_children()) <= before


def test_helpers_let_go_without_work_leave(tmp_path):
    before = set(_children())
    helpers = forked.Helpers(2)
    assert helpers.pid is not None and len(helpers.conns) == 2 and helpers.pid in _children()
    helpers.close()
    assert set(_children()) <= before


def test_a_failed_training_run_leaves_no_helper_behind(tmp_path, cli, write_config):
    before = set(_children())
    bad = write_config({"data": {"name": "csv", "path": str(tmp_path / "missing.csv")}, "model": {"name": "mlp"}})
    code, _, err = cli("train", bad, "--out", tmp_path / "run")
    assert code == 2 and err.startswith("error:")
    assert set(_children()) <= before


def test_in_a_jupyter_kernel_there_are_no_helpers(tmp_path, monkeypatch):
    monkeypatch.setitem(forked.sys.modules, "ipykernel", object())
    helpers = forked.Helpers(2)
    helpers.run([[(_write, tmp_path / "d.txt", "kernel")]])
    assert helpers.pid is None and (tmp_path / "d.txt").read_text() == f"kernel {os.getpid()}"
