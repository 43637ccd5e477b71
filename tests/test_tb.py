"""TensorBoard: a run's event files hold its curves, gradient norms and hparams; `trainlab tensorboard` serves
them on 127.0.0.1 only."""
from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from conftest import assert_one_line_error
from trainlab.observe import tb
from trainlab.run.config import build_config
from trainlab.workflows.train import train_run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("tbrun")
    cfg = {"seed": 0, "data": {"name": "digits", "batch_size": 128}, "model": {"name": "mlp", "hidden": [32, 16]},
           "train": {"epochs": 2, "lr": 0.01, "num_threads": 1}}
    train_run(build_config(cfg), out=out, quiet=True)
    return out


def events(path) -> EventAccumulator:
    ea = EventAccumulator(str(path), size_guidance={"scalars": 0})
    ea.Reload()
    return ea


def test_run_logs_curves_gradients_and_steps(run_dir):
    ea = events(run_dir / "tb")
    tags = set(ea.Tags()["scalars"])
    assert {"loss/train", "loss/val", "accuracy/train", "accuracy/val", "f1/val", "lr", "time/epoch",
            "time/data_wait_share"} <= tags
    assert {"grad_norm/1.weight", "grad_norm/3.weight", "grad_norm/5.weight", "dead_relu/2", "dead_relu/4"} <= tags
    assert [e.step for e in ea.Scalars("loss/val")] == [1, 2]
    steps = ea.Scalars("loss/train_step")  # 1,293 training images / 128 = 11 steps per epoch
    assert [e.step for e in steps] == list(range(1, 23))
    hist = (run_dir / "history.csv").read_text().splitlines()
    val_loss_epoch2 = float(hist[2].split(",")[hist[0].split(",").index("val_loss")])
    assert ea.Scalars("loss/val")[1].value == pytest.approx(val_loss_epoch2, rel=1e-6)


def test_run_logs_hparams_and_final_metrics(run_dir):
    ea = events(run_dir / "tb")
    content = ea.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    hp = start.session_start_info.hparams
    assert hp["train.lr"].number_value == pytest.approx(0.01) and hp["model.name"].string_value == "mlp"
    assert hp["model.hidden"].string_value == "[32, 16]"
    assert {"final/test_accuracy", "final/best_val_loss"} <= set(ea.Tags()["scalars"])


def test_write_hparams_for_a_tuning_trial(tmp_path):
    tb.write_hparams(tmp_path, {"train": {"lr": 0.1, "scheduler": None}, "trial": 3}, {"val_loss": 0.5, "note": "x"})
    ea = events(tmp_path)
    assert ea.Scalars("final/val_loss")[0].value == pytest.approx(0.5)
    assert "final/note" not in ea.Tags()["scalars"]  # only numbers are metrics
    assert tb.flat_hparams({"a": {"b": None, "c": [1, 2]}, "d": True}) == {"a.b": "none", "a.c": "[1, 2]", "d": True}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def other_addresses() -> list[str]:
    """This machine's non-loopback IPv4 addresses (where a 0.0.0.0 bind would also answer)."""
    try:
        out = subprocess.run(["hostname", "-I"], capture_output=True, text=True, timeout=5).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return []
    return [a for a in out if "." in a and not a.startswith("127.")]


def listening_addresses(port: int) -> list[str]:
    """Local addresses (hex, as in /proc/net/tcp*) of the sockets listening on `port`; [] off Linux."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            local, state = row.split()[1], row.split()[3]
            addr, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A = LISTEN
                found.append(addr)
    return found


def test_tensorboard_serves_on_loopback_only(run_dir):
    port = free_port()
    argv = tb.tensorboard_argv(run_dir, port)
    assert argv[argv.index("--host") + 1] == "127.0.0.1"
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline, body = time.monotonic() + 30, None
        while body is None and time.monotonic() < deadline and proc.poll() is None:
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/data/plugin/scalars/tags", timeout=2).read()
            except OSError:
                time.sleep(0.2)
        assert body is not None, "TensorBoard did not answer within 30 s"
        assert b"loss/train" in body
        if os.path.exists("/proc/net/tcp"):  # the kernel's own view: one IPv4 loopback listener, no wildcard
            assert listening_addresses(port) == ["0100007F"]
        for addr in other_addresses():
            with pytest.raises(OSError):
                socket.create_connection((addr, port), timeout=1).close()
    finally:
        proc.terminate()
        proc.wait(10)


def test_tensorboard_command(cli, tmp_path, monkeypatch):
    calls = []

    class FakeTensorBoard:  # exits at once, status 0
        def __init__(self, argv, **kw):
            calls.append(argv)
            self.pid = os.getpid()

        def wait(self, timeout=None):
            return 0

    monkeypatch.setattr(subprocess, "Popen", FakeTensorBoard)
    monkeypatch.setattr(tb, "stop_group", lambda child: None)  # the fake's pid is this process: nothing to stop
    code, out, err = cli("tensorboard", tmp_path, "--port", "6123")
    assert code == 0 and calls == [tb.tensorboard_argv(tmp_path, 6123)] and "http://127.0.0.1:6123/" in out
    assert_one_line_error(*cli("tensorboard", tmp_path / "missing")[::2], "is not a directory")
    assert_one_line_error(*cli("tensorboard", tmp_path, "--port", "70000")[::2], "--port")
