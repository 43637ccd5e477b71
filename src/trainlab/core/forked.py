"""Helper processes forked ahead of time to do part of a run's work beside it; used to draw a run's plots.

Matplotlib draws on one core, and importing it took 0.33 s at the end of every run. The helpers are forked
while the run loads its data on one core; the first imports matplotlib on the other, the rest are forked from
it once it is warm, and at the end each draws half the plots. A helper shares the parent's memory
copy-on-write, writes only its own files and leaves with os._exit, so it never runs the parent's exit code or
flushes its buffers. Where fork() is not available or not safe (Windows, macOS, a Jupyter kernel, whose
threads may hold locks at fork time) there are no helpers and the work runs in this process.
"""
from __future__ import annotations

import os
import pickle
import sys


def _can_fork() -> bool:
    return sys.platform.startswith("linux") and "ipykernel" not in sys.modules


class Helpers:
    """Processes forked ahead of time that wait for lists of jobs (function, *args) on a pipe.

        helpers = forked.Helpers(2, warm=import_matplotlib)   # while this process loads its data on one core
        ...
        helpers.run([jobs_a, jobs_b])                           # each helper runs one list; then they exit

    One helper is forked and runs `warm` (importing matplotlib took 0.33 s at the end of every run); the others
    are forked from it once it is warm, so the import is paid once, on the core this process leaves idle while
    it loads data. A helper that fails or dies has its list run here instead; where fork() is not used there
    are no helpers and `run` does everything here.
    """

    def __init__(self, n: int, warm=None):
        self.conns: list = []
        self.pid: int | None = None
        if not _can_fork():
            return
        from multiprocessing import Pipe  # start-up time: only runs that draw need it

        pipes = [Pipe() for _ in range(n)]
        pid = os.fork()
        if pid == 0:
            for mine, _ in pipes:
                mine.close()
            _first_helper([theirs for _, theirs in pipes], warm)
        for _, theirs in pipes:
            theirs.close()
        self.pid, self.conns = pid, [mine for mine, _ in pipes]

    def run(self, lists: list[list[tuple]]) -> None:
        """Each helper runs one of `lists` (the rest, and any a helper could not finish, run here)."""
        try:
            sent, here = [], list(lists[len(self.conns):])
            for conn, jobs in zip(self.conns, lists, strict=False):
                try:
                    conn.send_bytes(pickle.dumps(jobs))  # plain pickle: tensors travel as bytes, not shared memory
                    sent.append((conn, jobs))
                except Exception:  # noqa: BLE001 - a helper that is gone, or jobs pickle cannot take: here
                    here.append(jobs)
            for jobs in here:
                _run_all(jobs)
            for conn, jobs in sent:
                try:
                    ok = pickle.loads(conn.recv_bytes())
                except (EOFError, OSError):
                    ok = False
                if not ok:
                    _run_all(jobs)  # same files either way; an error now is raised where it can be seen
        finally:
            self.close()

    def close(self) -> None:
        """Let the helpers go (they leave when their pipe closes) and wait for them."""
        conns, self.conns = self.conns, []
        for conn in conns:
            conn.close()
        pid, self.pid = self.pid, None
        if pid is not None:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass


def _run_all(jobs: list[tuple]) -> None:
    for fn, *args in jobs:
        fn(*args)


def _first_helper(conns: list, warm) -> None:
    """Warm up, fork the other helpers from this warm process, serve conns[0], wait for the others, leave."""
    others = []
    try:
        if warm is not None:
            try:
                warm()
            except Exception:  # noqa: BLE001 - the jobs will import what they need
                pass
        for conn in conns[1:]:
            pid = os.fork()
            if pid == 0:
                for c in conns:
                    if c is not conn:
                        c.close()
                _serve(conn)
                os._exit(0)
            conn.close()
            others.append(pid)
        _serve(conns[0])
        for pid in others:
            os.waitpid(pid, 0)
    except BaseException:  # noqa: BLE001 - Ctrl-C reaches the whole process group: leave quietly
        pass
    finally:
        os._exit(0)


def _serve(conn) -> None:
    """Run the one list of jobs this helper is sent and answer True (done) or False."""
    try:
        jobs = pickle.loads(conn.recv_bytes())
    except (EOFError, OSError):  # let go without work
        return
    try:
        _run_all(jobs)
        conn.send_bytes(pickle.dumps(True))
    except Exception:  # noqa: BLE001 - the parent runs the list itself and shows any error
        conn.send_bytes(pickle.dumps(False))
