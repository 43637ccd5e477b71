"""MLflow tracking: a run's config, epoch metrics, test metrics, tags and files, logged without slowing training.

    trainlab train examples/digits-mlp.yaml track.mlflow=http://127.0.0.1:5000
    tracker = Tracker("sqlite:///mlflow.db", "digits-mlp"); run = tracker.open("demo", params); ...; tracker.close()

Everything that talks to MLflow runs in one spawned, low-priority helper process (observe/mlflow_helper.py).
That process (an interpreter, then mlflow's seconds of imports) is started only when the run ends or, for a
long run, at the first epoch boundary after START_AFTER_S: until then each epoch's metrics are one list append
in the training process, so a short run's epochs never share the CPU with it. Once started, the helper sends
the metrics it receives in batches at most once a second (no GIL contention, no network wait in training).
An unreachable or failing server is said once on stderr; the run trains on and `trainlab track RUN_DIR` logs it
afterwards. Nested runs (seeds, folds, trials) are MLflow child runs: the `mlflow.parentRunId` tag, which the
MLflow UI shows as a tree.
"""
from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import time
from pathlib import Path

from trainlab.core.configfile import read_yaml
from trainlab.core.files import is_number, read_run_json, write_json
from trainlab.core.schema import to_dict
from trainlab.observe.mlflow_helper import say, worker

CLOSE_WAIT_S = 120.0  # the longest a finished run waits for its uploads; then it says so and goes on
MAX_PARAM_CHARS = 6000  # MLflow's limit on a parameter value
ARTIFACTS = ("config.yaml", "result.json", "report.html", "MODEL_CARD.md", "label_issues.html")
DEFAULT_EXPERIMENT = "trainlab"
# the helper process starts only when the run ends or this long after the Tracker: spawning it (an interpreter and
# mlflow's imports, seconds of CPU) took a core from a 2-core run's epochs (measured: +5.3% per digits epoch)
START_AFTER_S = 10.0


def resolve_uri(setting: str | bool | None) -> str | None:
    """track.mlflow -> the tracking URI, or None when tracking is off."""
    if setting is None or setting is False or setting == "":
        return None
    if setting is True:
        return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"
    return str(setting)


def flat_params(tree: dict, prefix: str = "") -> dict[str, str]:
    """{"train": {"lr": 0.1}} -> {"train.lr": "0.1"}: every resolved config key as one MLflow parameter."""
    out = {}
    for key, value in (tree or {}).items():
        if isinstance(value, dict) and value:
            out.update(flat_params(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = str(value)[:MAX_PARAM_CHARS]
    return out


def numbers(values: dict, prefix: str = "") -> dict[str, float]:
    """The finite numbers of a dict (MLflow metrics), keys prefixed."""
    return {f"{prefix}{k}": float(v) for k, v in values.items() if is_number(v) and math.isfinite(v)}


def mlflow_line(entry: dict) -> str:
    """Where a run was logged (result.json's `mlflow`), in one line."""
    return f"mlflow: run {entry['run_id']} in experiment {entry['experiment']!r} at {entry['uri']}"


def epoch_metrics(record: dict) -> dict[str, float]:
    """One epoch's history row as metrics (train_loss, val_loss, val_accuracy, lr, time), logged at step=epoch."""
    return numbers({k: v for k, v in record.items() if k != "epoch"})


# ----------------------------------------------------------------------------- the training process's side

class Tracker:
    """One connection to an MLflow tracking server, served by a helper process; `open` starts runs in it."""

    def __init__(self, uri: str, experiment: str):
        self.uri, self.experiment = uri, experiment
        self.process, self.inbox, self.replies = None, None, None
        self.held: list[tuple] = []  # messages before the helper starts, in order
        self.started = time.monotonic()
        self.keys = 0
        self.run_dirs: dict[int, Path] = {}  # result.json files that record where their run was logged
        self.summary: dict | None = None

    def start(self) -> None:
        """Spawn the helper process and hand it every message held so far."""
        ctx = multiprocessing.get_context("spawn")  # a fork would copy torch's thread pool state into the helper
        self.inbox, (self.replies, done) = ctx.Queue(), ctx.Pipe(duplex=False)
        self.process = ctx.Process(target=worker, args=(self.inbox, done, self.uri, self.experiment), daemon=True,
                                   name="trainlab-mlflow")
        self.process.start()
        lower_priority(self.process.pid)
        done.close()
        for message in self.held:
            self.inbox.put(message)
        self.held = []

    def open(self, name: str, params: dict | None = None, tags: dict | None = None,
             parent: TrackedRun | None = None, run_dir: Path | None = None) -> TrackedRun:
        self.keys += 1
        self.send("open", self.keys, parent.key if parent else None, name, params or {}, tags or {})
        if run_dir is not None:
            self.run_dirs[self.keys] = Path(run_dir)
        return TrackedRun(self, self.keys)

    def send(self, *message) -> None:
        if self.summary is not None:
            return
        if self.process is None:
            self.held.append(message)
            if time.monotonic() - self.started >= START_AFTER_S:  # a long run: upload as it goes from now on
                self.start()
        else:
            self.inbox.put(message)  # pickled by the queue's feeder thread: the caller does not wait

    def close(self, wait: float = CLOSE_WAIT_S) -> dict:
        """Wait (at most `wait` seconds) for everything to be sent; record it in the runs' result.json files.
        Returns {uri, experiment, ok, runs: {key: run_id}, error}."""
        if self.summary is not None:
            return self.summary
        self.send("close")
        if self.process is None:
            self.start()
        summary = None
        if self.replies.poll(wait):
            try:
                summary = self.replies.recv()  # the helper has said any error of its own already
            except EOFError:
                pass
        if summary is None:  # still uploading after `wait` seconds, or the helper died (killed, out of memory)
            error = f"no answer from the MLflow helper process within {wait:.0f}s" if self.process.is_alive() \
                else "the MLflow helper process ended unexpectedly"
            summary = {"ok": False, "runs": {}, "error": error}
            say(f"warning: MLflow: {error}; log the run later with: trainlab track RUN_DIR --mlflow {self.uri}")
        if self.process.is_alive():
            self.process.terminate()
        self.process.join(5)
        self.summary = {"uri": self.uri, "experiment": self.experiment, **summary}
        self.record()
        return self.summary

    def entry(self, key: int) -> dict | None:
        """{uri, experiment, run_id} of a run that was logged completely (after `close`), else None."""
        run_id = self.summary["runs"].get(key) if self.summary and self.summary["ok"] else None
        return {"uri": self.uri, "experiment": self.experiment, "run_id": run_id} if run_id else None

    def record(self) -> None:
        """`mlflow: {uri, experiment, run_id}` into each logged run's result.json (`trainlab runs` shows it)."""
        for key, run_dir in self.run_dirs.items():
            entry = self.entry(key)
            if entry and (run_dir / "result.json").is_file():
                result = read_run_json(run_dir / "result.json")
                write_json(run_dir / "result.json", {**result, "mlflow": entry})


def lower_priority(pid: int) -> None:
    """Nice 10 from its first instruction (the interpreter's start-up included): on a busy machine the training
    gets the CPU first; the helper only has to be done when the run ends."""
    try:
        os.setpriority(os.PRIO_PROCESS, pid, min(19, os.getpriority(os.PRIO_PROCESS, 0) + 10))
    except (AttributeError, OSError):  # no setpriority (Windows), or not allowed: same priority, still correct
        pass


class TrackedRun:
    """One MLflow run (or child run) of a Tracker."""

    def __init__(self, tracker: Tracker | None, key: int = 0):
        self.tracker, self.key = tracker, key

    def __bool__(self) -> bool:
        return self.tracker is not None

    def child(self, name: str, params: dict | None = None, run_dir: Path | None = None) -> TrackedRun:
        return self.tracker.open(name, params, parent=self, run_dir=run_dir) if self else OFF

    def metrics(self, values: dict, step: int | None = None) -> None:
        if self and values:
            self.tracker.send("metrics", self.key, values, step, int(time.time() * 1000))

    def params(self, values: dict) -> None:
        if self and values:
            self.tracker.send("params", self.key, values)

    def tags(self, values: dict) -> None:
        if self and values:
            self.tracker.send("tags", self.key, {k: str(v) for k, v in values.items() if v is not None})

    def artifacts(self, paths: list[Path], folder: str | None = None) -> None:
        found = [str(Path(p).resolve()) for p in paths if Path(p).is_file()]
        if self and found:
            self.tracker.send("artifacts", self.key, found, folder)

    def end(self, status: str = "FINISHED") -> None:
        if self:
            self.tracker.send("end", self.key, status)

    def __call__(self, trainer, record: dict) -> None:
        """The Trainer's epoch hook: this epoch's metrics at step=epoch (a queue put; the helper sends them)."""
        self.metrics(epoch_metrics(record), record["epoch"])


OFF = TrackedRun(None)  # tracking is off: every call does nothing


def open_tracker(track) -> Tracker | None:
    """A Tracker for a config's `track` section, or None when track.mlflow is off."""
    uri = resolve_uri(track.mlflow)
    return Tracker(uri, track.experiment or DEFAULT_EXPERIMENT) if uri else None


def outcome(result: dict) -> dict[str, float]:
    """A finished run's headline numbers: test_<metric> and best_<monitor>."""
    values = numbers(result.get("test") or {}, "test_")
    if is_number(result.get("best_value")) and result.get("monitor"):
        values.update(numbers({f"best_{result['monitor']}": result["best_value"]}))
    return values


def run_tags(run_dir: Path) -> dict:
    """Tags from the run's manifest and config: git commit, device, precision, versions, the run directory.

    The precision is the one the run trained with: the manifest records what `train.precision: auto` resolved
    to (engine/precision.py); the config's value stands in only for a run without that record, and never `auto`."""
    m = read_run_json(run_dir / "manifest.json") if (run_dir / "manifest.json").is_file() else {}
    train = (read_yaml(run_dir / "config.yaml") or {}).get("train") or {} if (run_dir / "config.yaml").is_file() else {}
    configured = train.get("precision") if train.get("precision") != "auto" else None
    return {"mlflow.source.git.commit": m.get("git"), "git_commit": m.get("git"), "device": m.get("device"),
            "precision": m.get("precision") or configured, "trainlab_version": m.get("trainlab"),
            "torch_version": m.get("torch"), "run_dir": str(Path(run_dir).resolve())}


def log_files(run: TrackedRun, run_dir: Path) -> None:
    """Tags and artifacts of a run directory: config.yaml, result.json, report.html, the model card; plots/."""
    run.tags(run_tags(run_dir))
    run.artifacts([run_dir / name for name in ARTIFACTS])
    run.artifacts(sorted(run_dir.glob("*.png")), "plots")


class Tracking:
    """One tracked piece of work (a training, a --seeds set, a CV, a study) and its MLflow run: a child run under
    `parent`, or a run of `tracker` (`open_tracker(cfg.track)`: None when track.mlflow is off, and then nothing
    is logged). Params: every resolved config key, plus `params`. `finish` or `failed` ends it."""

    def __init__(self, cfg, out: Path, parent: TrackedRun = OFF, tracker: Tracker | None = None,
                 params: dict | None = None):
        self.tracker = None if parent else tracker
        params = {**flat_params(to_dict(cfg)), **flat_params(params or {})}
        self.out, name = Path(out), Path(out).name
        self.run = parent.child(name, params, run_dir=out) if parent \
            else self.tracker.open(name, params, run_dir=out) if self.tracker else OFF

    @property
    def hooks(self) -> list:
        """The Trainer's epoch hooks: this run's metrics at step=epoch."""
        return [self.run] if self.run else []

    def finish(self, result: dict, metrics: dict | None = None) -> dict:
        """Final metrics (default: test_* and best_<monitor>), tags and files; the run ended. A run of its own
        waits for its uploads, and `result` (as its result.json: `Tracker.record`) gets where it was logged."""
        self.run.metrics(outcome(result) if metrics is None else metrics)
        log_files(self.run, self.out)
        self.run.end("FINISHED")
        if self.tracker is not None and self.tracker.close() and self.tracker.entry(self.run.key):
            result["mlflow"] = self.tracker.entry(self.run.key)
        return result

    def failed(self) -> None:
        log_files(self.run, self.out)
        self.run.end("FAILED")
        if self.tracker is not None:
            self.tracker.close()

    @contextlib.contextmanager
    def failing(self):
        """Any error inside (Ctrl-C too) marks the MLflow run FAILED, with what was written so far."""
        try:
            yield self
        except BaseException:
            self.failed()
            raise


def summary_metrics(stats: dict[str, dict]) -> dict[str, float]:
    """{metric: {mean, std, ...}} (over seeds or folds) -> {metric_mean, metric_std} for the parent run."""
    out = {}
    for name, s in stats.items():
        out.update(numbers({f"{name}_mean": s.get("mean"), f"{name}_std": s.get("std")}))
    return out
