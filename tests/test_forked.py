"""core/forked.py: work done by a forked child, or by this process when the child cannot do it."""
from __future__ import annotations

import os

from trainlab.core import forked


def _write(path, text):
    path.write_text(f"{text} {os.getpid()}")


def test_the_child_does_the_work_in_another_process(tmp_path):
    job = forked.start(_write, tmp_path / "a.txt", "child")
    job.wait()
    text, pid = (tmp_path / "a.txt").read_text().split()
    assert text == "child" and int(pid) != os.getpid()
    job.wait()  # a second wait is a no-op


def test_a_failed_child_is_redone_here(tmp_path):
    calls = tmp_path / "calls"

    def fails_in_a_child(path):
        if os.getpid() != parent:
            raise RuntimeError("broken in the child")
        _write(path, "parent")
    parent = os.getpid()
    job = forked.start(fails_in_a_child, calls)
    assert not calls.exists() or calls.read_text().startswith("parent")
    job.wait()
    assert calls.read_text() == f"parent {parent}"


def test_without_fork_the_work_runs_right_away(tmp_path, monkeypatch):
    monkeypatch.setattr(forked.sys, "platform", "win32")
    job = forked.start(_write, tmp_path / "b.txt", "here")
    assert (tmp_path / "b.txt").read_text() == f"here {os.getpid()}"
    job.wait()


def test_in_a_jupyter_kernel_the_work_runs_right_away(tmp_path, monkeypatch):
    monkeypatch.setitem(forked.sys.modules, "ipykernel", object())
    job = forked.start(_write, tmp_path / "c.txt", "kernel")
    assert (tmp_path / "c.txt").read_text() == f"kernel {os.getpid()}" and job.pid is None
