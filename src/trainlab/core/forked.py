"""Run a function in a forked child while this process goes on; used to draw a run's figures in parallel.

    job = forked.start(draw, out, history)   # Linux: a fork() child runs draw(out, history) now
    ...                                      # this process does its own share of the work meanwhile
    job.wait()                               # the child is done; if it failed, draw(...) runs here instead

Matplotlib draws on one core; at the end of a run the other core is idle, so the learning curves, gradient
and activation plots are drawn by a child while this process scores the test split and draws the confusion
matrix (0.3-0.4 s less wall time per run on 2 cores). The child shares the parent's memory copy-on-write,
writes only its own files and leaves with os._exit, so it never runs the parent's exit code or flushes its
buffers. Where fork() is not available or not safe (Windows, macOS, a Jupyter kernel) the function simply runs in
this process.
"""
from __future__ import annotations

import os
import pickle
import sys


class Job:
    def __init__(self, fn, args: tuple, pid: int | None):
        self.fn, self.args, self.pid = fn, args, pid

    def wait(self) -> None:
        """Block until the child has finished; run the function here if it did not succeed there."""
        if self.pid is None:
            return
        pid, self.pid = self.pid, None
        _, status = os.waitpid(pid, 0)
        if not (os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0):
            self.fn(*self.args)  # same files either way; an error now is raised where it can be seen


def start(fn, *args) -> Job:
    """fn(*args) in a forked child (Linux), or right now in this process (elsewhere)."""
    # a Jupyter kernel's threads (heartbeat, output) may hold locks at fork time: draw in the kernel itself
    if not sys.platform.startswith("linux") or "ipykernel" in sys.modules:
        fn(*args)
        return Job(fn, args, None)
    pid = os.fork()
    if pid == 0:  # the child: do the work, then leave without touching anything of the parent's
        code = 1
        try:
            fn(*args)
            code = 0
        except BaseException:  # noqa: BLE001 - the parent redoes the work and shows any error
            pass
        finally:
            os._exit(code)
    return Job(fn, args, pid)


class Helpers:
    """Processes forked ahead of time that wait for lists of jobs (function, *args) on a pipe.

        helpers = forked.Helpers(2, warm=import_matplotlib)   # while this process loads its data on one core
        ...
        helpers.run([jobs_a, jobs_b])                           # each helper runs one list; then they exit

    One helper is forked and runs `warm` (importing matplotlib took 0.33 s at the end of every run); the others
    are forked from it once it is warm, so the import is paid once, on the core this process leaves idle while
    it loads data. A helper that fails or dies has its list run here instead; where fork() is not used (see
    `start`) there are no helpers and `run` does everything here.
    """

    def __init__(self, n: int, warm=None):
        self.conns: list = []
        self.pid: int | None = None
        if not sys.platform.startswith("linux") or "ipykernel" in sys.modules:
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
