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
