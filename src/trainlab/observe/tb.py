"""TensorBoard: every run logs to RUN_DIR/tb/; `trainlab tensorboard` serves a runs directory on 127.0.0.1.

    trainlab tensorboard runs            # then open http://127.0.0.1:6006
    trainlab tensorboard runs --port 6007

Logged per epoch: loss/{train,val}, <metric>/{train,val}, lr, per-layer gradient norms (grad_norm/<param>),
dead ReLU shares (dead_relu/<layer>), epoch and data-wait time; per step: loss/train_step. At the end of
a run its flattened config and final metrics go to the HPARAMS tab (`log_hparams`, also used by tuning).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from trainlab.core.errors import UserError
from trainlab.core.report import Reporter, print_progress

HOST = "127.0.0.1"  # never 0.0.0.0: TensorBoard has no authentication
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))
GRACE_S = 5.0  # TensorBoard's time to close its port after SIGTERM before its process group is killed
SCALAR_TYPES = (bool, int, float, str)


def open_writer(log_dir: Path):
    """A SummaryWriter on `log_dir` (created); flush it per epoch so an interrupted run keeps its curves."""
    from torch.utils.tensorboard import SummaryWriter  # optional heavy dependency: imported on use

    return SummaryWriter(log_dir=str(log_dir))


def log_epoch(writer, record: dict, grad_norms: dict[str, float], dead: dict[str, float],
              step_losses: list[float], first_step: int) -> None:
    """One epoch's scalars; `first_step` is the global step of step_losses[0] (1-based)."""
    epoch = record["epoch"]
    for key, value in record.items():
        if key in ("epoch", "train_data_time") or not isinstance(value, (int, float)):
            continue
        split, _, name = key.partition("_")
        tag = f"{name}/{split}" if split in ("train", "val") else {"time": "time/epoch"}.get(key, key)
        writer.add_scalar(tag, value, epoch)
    if record.get("time"):
        busy = record.get("train_time", record["time"])
        writer.add_scalar("time/data_wait_share", record.get("train_data_time", 0.0) / busy, epoch)
    for name, value in grad_norms.items():
        writer.add_scalar(f"grad_norm/{name}", value, epoch)
    for name, value in dead.items():
        writer.add_scalar(f"dead_relu/{name}", value, epoch)
    for i, value in enumerate(step_losses):
        writer.add_scalar("loss/train_step", value, first_step + i)
    writer.flush()


def flat_hparams(tree: dict, prefix: str = "") -> dict:
    """Nested config dict -> {"train.lr": 0.001, "model.hidden": "[256, 128]", ...} with TensorBoard-able values."""
    out = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flat_hparams(value, f"{name}."))
        elif value is None or isinstance(value, SCALAR_TYPES):
            out[name] = "none" if value is None else value
        else:
            out[name] = str(value)
    return out


def log_hparams(writer, hparams: dict, metrics: dict[str, float]) -> None:
    """Write hyperparameters + final metrics into `writer`'s own run (SummaryWriter.add_hparams would make a
    sub-run per call); metric names become scalars `final/<name>` shown in the HPARAMS tab."""
    from torch.utils.tensorboard.summary import hparams as hparams_summary  # optional heavy dependency: imported on use

    metrics = {f"final/{k}": float(v) for k, v in metrics.items() if isinstance(v, (int, float))}
    exp, ssi, sei = hparams_summary(flat_hparams(hparams), metrics)
    for summary in (exp, ssi, sei):
        writer.file_writer.add_summary(summary)
    for tag, value in metrics.items():
        writer.add_scalar(tag, value)
    writer.flush()


def write_hparams(log_dir: Path, hparams: dict, metrics: dict[str, float]) -> None:
    """`log_hparams` for a directory (e.g. one tuning trial), closing the writer afterwards."""
    writer = open_writer(log_dir)
    try:
        log_hparams(writer, hparams, metrics)
    finally:
        writer.close()


# ----------------------------------------------------------------------------- the command

def tensorboard_argv(logdir: Path, port: int) -> list[str]:
    """The command that serves `logdir` on 127.0.0.1:`port` only."""
    return [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir), "--host", HOST, "--port", str(port)]


class _Stopped(Exception):
    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _raise_stopped(signum, frame) -> None:
    raise _Stopped(signum)


def serve_tensorboard(logdir: Path, port: int, report: Reporter = print_progress) -> int:
    """Serve `logdir` on 127.0.0.1:`port` until Ctrl-C; TensorBoard's exit status (0 after Ctrl-C, 128 + N after
    signal N such as SIGTERM). TensorBoard runs in its own process group (it starts a data server of its own),
    which is stopped whenever this process stops: SIGINT, SIGTERM, SIGHUP, an error; a port left open by an
    orphaned TensorBoard would refuse the next `trainlab tensorboard` on it."""
    if not logdir.is_dir():
        raise UserError(f"{logdir} is not a directory; train a run first (trainlab train CONFIG --out runs/x)")
    if not 1 <= port <= 65535:
        raise UserError(f"--port must be 1..65535, got {port}")
    report(f"TensorBoard for {logdir} on http://{HOST}:{port}/ (Ctrl-C stops it)")
    previous = _catch(STOP_SIGNALS, _raise_stopped)  # before the start: a signal now must still stop the child
    child = None
    try:
        child = subprocess.Popen(tensorboard_argv(logdir, port), start_new_session=os.name == "posix")
        return child.wait()
    except _Stopped as e:
        return 0 if e.signum == signal.SIGINT else 128 + e.signum
    except KeyboardInterrupt:  # no handler could be installed (not the main thread)
        return 0
    finally:
        _catch(STOP_SIGNALS, signal.SIG_IGN)  # a second Ctrl-C must not cut the cleanup short
        if child is not None:
            stop_group(child)
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _catch(signals: tuple, handler) -> dict:
    """Install `handler` for `signals`; the handlers they had (none changed outside the main thread)."""
    previous = {}
    for signum in signals:
        try:
            previous[signum] = signal.signal(signum, handler)
        except ValueError:  # not the main thread: Python lets only it set handlers
            break
    return previous


def stop_group(child: subprocess.Popen, grace: float = GRACE_S) -> None:
    """SIGTERM to the child's process group (TensorBoard and its data server), SIGKILL after `grace` seconds."""
    group = os.name == "posix"
    for sig, wait in ((signal.SIGTERM, grace), (getattr(signal, "SIGKILL", signal.SIGTERM), grace)):
        try:
            os.killpg(child.pid, sig) if group else child.send_signal(sig)
        except (ProcessLookupError, PermissionError):  # the whole group is gone already
            return
        try:
            child.wait(wait)
        except subprocess.TimeoutExpired:
            continue
        if not group or not _group_alive(child.pid):
            return


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)  # signal 0: only asks whether a process of the group exists
    except (ProcessLookupError, PermissionError):
        return False
    return True
