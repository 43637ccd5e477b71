"""Stopping `trainlab tensorboard` (Ctrl-C, SIGTERM) stops TensorBoard: its port closes and no process of it is left
behind to refuse the next `trainlab tensorboard` on that port."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from trainlab.observe import tb

pytestmark = pytest.mark.skipif(os.name != "posix" or not Path("/proc").is_dir(), reason="reads /proc, sends signals")
SRC = str(Path(tb.__file__).parents[2])  # this checkout's trainlab, for the child process


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def generated_run(root: Path) -> Path:
    """root/run/tb: the event file of a run with 3 epochs of loss (what the command serves)."""
    writer = tb.open_writer(root / "run" / "tb")
    for epoch, loss in enumerate((1.0, 0.6, 0.4), start=1):
        writer.add_scalar("loss/train", loss, epoch)
    writer.close()
    return root


def processes_naming(text: str) -> list[int]:
    """Live processes whose command line holds `text` (this test's own logdir: no one else's process matches)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = next(line for line in (entry / "status").read_text().splitlines() if line.startswith("State:"))
        except (OSError, StopIteration):
            continue
        if text in cmdline and "Z" not in state.split()[1]:  # a zombie holds no port
            found.append(int(entry.name))
    return found


def answers(port: int) -> bool:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/data/plugin/scalars/tags", timeout=2).read()
        return True
    except OSError:
        return False


def start(logdir: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-m", "trainlab", "tensorboard", str(logdir), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    deadline = time.monotonic() + 60
    while not answers(port):
        assert proc.poll() is None and time.monotonic() < deadline, "TensorBoard did not answer within 60 s"
        time.sleep(0.2)
    return proc


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 128 + signal.SIGTERM), (signal.SIGINT, 0)])
def test_signal_stops_tensorboard_and_frees_its_port(tmp_path, sig, code):
    logdir, port = generated_run(tmp_path), free_port()
    proc = start(logdir, port)
    try:
        assert processes_naming(str(logdir))  # the command and its TensorBoard
        proc.send_signal(sig)
        assert proc.wait(10) == code
        deadline = time.monotonic() + 5
        while (answers(port) or processes_naming(str(logdir))) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not answers(port), "the port still answers after the command was stopped"
        assert processes_naming(str(logdir)) == [], "a TensorBoard process outlived the command"
        with socket.socket() as s:  # free for the next `trainlab tensorboard --port` at once
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))
    finally:
        for pid in processes_naming(str(logdir)):  # only if the test failed: leave nothing running
            os.kill(pid, signal.SIGKILL)


def test_serving_keeps_serving_and_says_one_line(tmp_path):
    """Healthy: until it is stopped, TensorBoard keeps answering and the command says only where it serves."""
    logdir, port = generated_run(tmp_path), free_port()
    proc = start(logdir, port)
    try:
        time.sleep(2)
        assert proc.poll() is None and answers(port)
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/data/plugin/scalars/tags", timeout=5).read()
        assert b"loss/train" in body
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=10)
    assert out.splitlines() == [f"TensorBoard for {logdir} on http://127.0.0.1:{port}/ (Ctrl-C stops it)"]
