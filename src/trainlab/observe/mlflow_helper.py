"""The MLflow helper process of observe/tracking.py: the only code that imports mlflow.

    Tracker(uri, experiment) spawns `worker(inbox, done, uri, experiment)`; nothing else calls it.

It applies the Tracker's messages to MLflow in order: ("open", key, parent_key, name, params, tags),
("metrics", key, values, step, ms), ("params" | "tags", key, values), ("artifacts", key, paths, folder),
("end", key, status), ("close",) -> it answers {ok, runs: {key: run_id}, error} and exits. Metrics are held and
sent in batches. The first failure is said once on stderr; after it nothing more is tried.
"""
from __future__ import annotations

import os
import queue
import signal
import time
import urllib.request

from trainlab.core.report import print_progress

FLUSH_S = 1.0  # the helper sends the metrics it holds at most this often (and before any other request)
PROBE_TIMEOUT_S = 5.0
BATCH = {"params": 100, "tags": 100, "metrics": 1000}  # MLflow's limits per log_batch request


def say(line: str) -> None:
    """A warning on stderr (core.report), from the helper process or the Tracker's."""
    print_progress(line, warning=True)


def worker(inbox, done, uri: str, experiment: str) -> None:
    """Serve one Tracker: apply its messages to MLflow in order; metrics are held and sent in batches."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the training, which then ends the runs here
    # this process only: give up on a dead server in seconds (MLflow's default retries take minutes), and the
    # training's console gets one line about the run, not MLflow's own "View run" line per child run
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
    session = _Session(uri, experiment)
    for message in _messages(inbox):
        if message[0] == "close":
            session.guard(session.flush)
            done.send({"ok": session.error is None, "runs": session.run_ids, "error": session.error})
            return
        if message[0] != "flush":
            session.guard(session.handle, *message)
        if time.monotonic() - session.flushed >= FLUSH_S:  # epochs shorter than FLUSH_S: one request per FLUSH_S
            session.guard(session.flush)


def _messages(inbox):
    """The Tracker's messages in order, and ("flush",) whenever FLUSH_S pass without one."""
    while True:
        try:
            yield inbox.get(timeout=FLUSH_S)
        except queue.Empty:
            yield ("flush",)


class _Session:
    def __init__(self, uri: str, experiment: str):
        self.uri, self.experiment = uri, experiment
        self.client, self.experiment_id, self.error = None, None, None
        self.run_ids: dict[int, str] = {}
        self.pending: dict[int, list] = {}
        self.flushed = time.monotonic()

    def guard(self, fn, *args) -> None:
        """After the first failure nothing more is tried: said once, and the training is never held up."""
        if self.error is not None:
            return
        try:
            fn(*args)
        except Exception as e:  # any MLflow or network error: the run itself must go on
            self.error = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"[:300]
            say(f"warning: MLflow at {self.uri} is not reachable or failed ({self.error}); training goes on "
                f"without tracking; log the run afterwards with: trainlab track RUN_DIR --mlflow {self.uri}")

    def connect(self) -> None:
        probe(self.uri)
        from mlflow.tracking import MlflowClient  # optional heavy dependency (seconds): only in this helper

        self.client = MlflowClient(self.uri)
        found = self.client.get_experiment_by_name(self.experiment)
        self.experiment_id = found.experiment_id if found else self.client.create_experiment(self.experiment)

    def handle(self, kind: str, key: int, *args) -> None:
        if self.client is None:
            self.connect()
        if kind == "open":
            parent, name, params, tags = args
            tags = {**tags, "mlflow.parentRunId": self.run_ids[parent]} if parent else tags
            self.run_ids[key] = self.client.create_run(self.experiment_id, run_name=name, tags=tags).info.run_id
            self.batch(key, params=params)
        elif kind == "metrics":
            values, step, stamp = args
            self.pending.setdefault(key, []).extend((k, v, stamp, step or 0) for k, v in values.items())
        elif kind == "params":
            self.batch(key, params=args[0])
        elif kind == "tags":
            self.batch(key, tags=args[0])
        elif kind == "artifacts":
            for path in args[0]:
                self.client.log_artifact(self.run_ids[key], path, args[1])
        elif kind == "end":
            self.flush()
            self.client.set_terminated(self.run_ids[key], args[0])

    def batch(self, key: int, params: dict | None = None, tags: dict | None = None) -> None:
        from mlflow.entities import Param, RunTag  # optional heavy dependency: only in this helper

        items = [("params", Param(k, v)) for k, v in (params or {}).items()]
        items += [("tags", RunTag(k, v)) for k, v in (tags or {}).items()]
        for kind in ("params", "tags"):
            chosen = [e for k, e in items if k == kind]
            for i in range(0, len(chosen), BATCH[kind]):
                self.client.log_batch(self.run_ids[key], **{kind: chosen[i:i + BATCH[kind]]})

    def flush(self) -> None:
        """Every held metric of the runs that exist, in requests of at most 1000."""
        if self.client is None:
            return
        from mlflow.entities import Metric  # optional heavy dependency: only in this helper

        self.flushed = time.monotonic()
        for key in [k for k in self.pending if k in self.run_ids]:
            rows, self.pending[key] = self.pending[key], []
            metrics = [Metric(name, value, stamp, step) for name, value, stamp, step in rows]
            for i in range(0, len(metrics), BATCH["metrics"]):
                self.client.log_batch(self.run_ids[key], metrics=metrics[i:i + BATCH["metrics"]])


def probe(uri: str) -> None:
    """An http(s) server that does not answer /health within seconds counts as unreachable (one clear line
    instead of minutes of MLflow's retries)."""
    if not uri.startswith(("http://", "https://")):
        return
    with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=PROBE_TIMEOUT_S):
        pass
