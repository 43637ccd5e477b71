"""MLflow tracking against a real `mlflow server` (SQLite backend, 127.0.0.1): what train, --seeds, cv and tune
log, read back with MlflowClient; an unreachable server; `trainlab track RUN_DIR` afterwards.

The server starts once per session (tens of seconds on a busy machine). Without mlflow installed, or when the
server does not start, the tests are skipped locally and FAIL under CI=true.
"""
from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from conftest import tiny_config
from trainlab.cli.main import main
from trainlab.observe.tracking import flat_params, resolve_uri, run_tags

SERVER_START_S = 300  # mlflow server creates its tables and imports for tens of seconds on a busy 2-core box


def _missing(reason: str):
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI: {reason}")
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(uri: str) -> bool:
    try:
        with urllib.request.urlopen(f"{uri}/health", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """A real MLflow tracking server on a free port; killed (its whole process group) afterwards."""
    try:
        import mlflow  # noqa: F401
    except ImportError:
        _missing("mlflow is not installed (pip install -e .)")
    folder = tmp_path_factory.mktemp("mlflow-server")
    port = _free_port()
    uri = f"http://127.0.0.1:{port}"
    log = open(folder / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--backend-store-uri",
                             f"sqlite:///{folder / 'mlflow.db'}", "--artifacts-destination", str(folder / "artifacts"),
                             "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + SERVER_START_S
    while not _answers(uri):
        if proc.poll() is not None or time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL) if proc.poll() is None else None
            _missing(f"mlflow server did not start: {(folder / 'server.log').read_text()[-2000:]}")
        time.sleep(0.5)
    yield uri
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
    log.close()


@pytest.fixture(scope="session")
def client(server):
    from mlflow.tracking import MlflowClient

    return MlflowClient(server)


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_config(data={"batch_size": 128}, model={"hidden": [16]},
                                               train={"metrics": ["accuracy"]})))
    return path


def run_cli(capfd, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out = capfd.readouterr()  # capfd: the tracking helper process writes to the same file descriptors
    return code, out.out, out.err


def read_csv(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def children(client, run) -> dict:
    found = client.search_runs([run.info.experiment_id], f"tags.mlflow.parentRunId = '{run.info.run_id}'")
    return {r.info.run_name: r for r in found}


def artifacts(client, run_id: str, folder: str | None = None) -> set[str]:
    return {f.path for f in client.list_artifacts(run_id, folder)}


# ----------------------------------------------------------------------------- without a server

def test_uri_and_params_resolution(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_uri(None) is None and resolve_uri(False) is None
    assert resolve_uri(True) == f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://example:5000")
    assert resolve_uri(True) == "http://example:5000"
    assert resolve_uri("http://127.0.0.1:5000") == "http://127.0.0.1:5000"
    assert flat_params({"train": {"lr": 0.01, "betas": [0.9, 0.99]}, "seed": 3, "tune": {}}) == \
        {"train.lr": "0.01", "train.betas": "[0.9, 0.99]", "seed": "3", "tune": "{}"}


def test_precision_tag_is_the_resolved_precision_never_auto(tmp_path):
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"train": {"precision": "auto"}}))
    (tmp_path / "manifest.json").write_text(json.dumps({"precision": "bf16", "device": "cpu"}))
    assert run_tags(tmp_path)["precision"] == "bf16"  # manifest.json: what auto resolved to on that machine
    (tmp_path / "manifest.json").write_text(json.dumps({"device": "cpu"}))
    assert run_tags(tmp_path)["precision"] is None  # no record: no tag (TrackedRun.tags drops None), not "auto"
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"train": {"precision": "fp32"}}))
    assert run_tags(tmp_path)["precision"] == "fp32"  # an explicit precision is what the run trained with


def test_track_section_validates_and_defaults_to_the_config_name(config):
    from trainlab.core.errors import UserError
    from trainlab.run.config import load_config

    cfg = load_config(config, ["track.mlflow=http://127.0.0.1:5000"])
    assert (cfg.track.mlflow, cfg.track.experiment) == ("http://127.0.0.1:5000", "tiny")
    assert load_config(config, ["track.mlflow=true", "track.experiment=x"]).track.mlflow is True
    with pytest.raises(UserError, match="track.mlflow"):
        load_config(config, ["track.mlflow=[1]"])


# ----------------------------------------------------------------------------- a real server

def test_train_logs_config_epochs_test_metrics_tags_and_files(server, client, config, tmp_path, capfd):
    out = tmp_path / "run"
    code, stdout, _ = run_cli(capfd, "train", config, f"track.mlflow={server}", "--out", out)
    assert code == 0
    result = json.loads((out / "result.json").read_text())
    entry = result["mlflow"]
    assert entry["uri"] == server and entry["experiment"] == "tiny"
    assert f"mlflow: run {entry['run_id']}" in stdout
    run = client.get_run(entry["run_id"])
    assert run.info.status == "FINISHED" and run.info.run_name == "run"
    assert client.get_experiment(run.info.experiment_id).name == "tiny"
    p = run.data.params  # every resolved config key, flat
    assert (p["train.lr"], p["data.batch_size"], p["model.name"], p["model.hidden"]) == ("0.01", "128", "mlp", "[16]")
    assert p["track.mlflow"] == server and len(p) > 40
    history = read_csv(out / "history.csv")
    for name in ("train_loss", "val_loss", "val_accuracy", "lr"):
        logged = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, name))
        assert logged == [(int(r["epoch"]), pytest.approx(float(r[name]))) for r in history], name
    assert run.data.metrics["test_accuracy"] == pytest.approx(result["test"]["accuracy"])
    assert run.data.metrics["test_loss"] == pytest.approx(result["test"]["loss"])
    assert run.data.metrics["best_val_loss"] == pytest.approx(result["best_value"])
    manifest = json.loads((out / "manifest.json").read_text())
    tags = run.data.tags
    assert tags["device"] == "cpu" and tags["run_dir"] == str(out.resolve())
    assert tags["precision"] == manifest["precision"] and tags["precision"] in ("fp32", "bf16")  # what auto chose
    assert tags["torch_version"] == manifest["torch"] and tags["trainlab_version"] == manifest["trainlab"]
    assert tags.get("git_commit") == manifest["git"] or manifest["git"] is None
    assert {"config.yaml", "result.json", "report.html"} <= artifacts(client, run.info.run_id)
    assert "plots/curves.png" in artifacts(client, run.info.run_id, "plots")
    code, table, _ = run_cli(capfd, "runs", tmp_path, "--wide")
    assert code == 0 and "mlflow" in table.splitlines()[0] and server in table
    code, table, _ = run_cli(capfd, "runs", tmp_path)  # 100 columns: the URI is said below the table if cut
    lines = table.splitlines()
    assert code == 0 and ("mlflow" in lines[0] or lines[-1].startswith(f"mlflow: {server} (1 of "))


def test_seeds_are_child_runs_with_mean_and_std_on_the_parent(server, client, config, tmp_path, capfd):
    out = tmp_path / "seeds"
    code, _, _ = run_cli(capfd, "train", config, "--seeds", "2", f"track.mlflow={server}",
                         "track.experiment=seeds", "--out", out, "train.epochs=1")  # a dry run has no test
    assert code == 0
    result = json.loads((out / "result.json").read_text())
    parent = client.get_run(result["mlflow"]["run_id"])
    assert parent.data.params["seeds"] == "2" and parent.info.status == "FINISHED"
    acc = result["metrics"]["test_accuracy"]
    assert parent.data.metrics["test_accuracy_mean"] == pytest.approx(acc["mean"])
    assert parent.data.metrics["test_accuracy_std"] == pytest.approx(acc["std"])
    kids = children(client, parent)
    assert sorted(kids) == ["seed-0", "seed-1"]
    for seed in (0, 1):
        kid = kids[f"seed-{seed}"]
        assert kid.data.params["seed"] == str(seed)
        assert kid.data.metrics["test_accuracy"] == pytest.approx(acc["values"][seed])
        assert json.loads((out / f"seed-{seed}" / "result.json").read_text())["mlflow"]["run_id"] == kid.info.run_id


def test_cv_is_a_parent_run_with_a_child_per_fold(server, client, config, tmp_path, capfd):
    out = tmp_path / "cv"
    code, _, _ = run_cli(capfd, "cv", config, "--folds", "2", f"track.mlflow={server}", "track.experiment=cv",
                         "--out", out)
    assert code == 0
    result = json.loads((out / "result.json").read_text())
    parent = client.get_run(result["mlflow"]["run_id"])
    assert parent.data.params["cv.folds"] == "2"
    for key in ("val_accuracy", "val_loss"):
        assert parent.data.metrics[f"{key}_mean"] == pytest.approx(result["mean"][key])
        assert parent.data.metrics[f"{key}_std"] == pytest.approx(result["std"][key])
    kids = children(client, parent)
    assert sorted(kids) == ["fold-1", "fold-2"]
    for fold in result["folds"]:
        kid = kids[f"fold-{fold['fold'] + 1}"]
        assert kid.data.metrics["fold_val_accuracy"] == pytest.approx(fold["metrics"]["val_accuracy"])
        steps = [m.step for m in client.get_metric_history(kid.info.run_id, "val_loss")]
        assert sorted(steps) == list(range(1, fold["epochs_run"] + 1))
    code, _, err = run_cli(capfd, "track", out, "--mlflow", server)  # its folds are logged only while it runs
    assert code == 2 and "output of `trainlab cv`" in err


def test_tune_is_a_parent_run_with_a_child_per_trial_and_the_final_run(server, client, tmp_path, capfd):
    import optuna

    space = {"train.lr": {"type": "float", "low": 1e-3, "high": 3e-2, "log": True},
             "model.hidden": {"type": "categorical", "choices": [[8], [16, 8]]}}
    config = tmp_path / "study.yaml"
    config.write_text(yaml.safe_dump(tiny_config(data={"batch_size": 128}, tune=space)))
    out = tmp_path / "tune"
    code, _, _ = run_cli(capfd, "tune", config, "--trials", "2", f"track.mlflow={server}", "--out", out)
    assert code == 0
    result = json.loads((out / "result.json").read_text())
    parent = client.get_run(result["mlflow"]["run_id"])
    assert client.get_experiment(parent.info.experiment_id).name == "study"
    assert parent.data.metrics["best_value"] == pytest.approx(result["best_value"])
    assert parent.data.metrics["test_accuracy"] == pytest.approx(result["test"]["accuracy"])
    kids = children(client, parent)
    assert sorted(kids) == ["final", "trial-0000", "trial-0001"]
    study = optuna.load_study(study_name="study", storage=f"sqlite:///{out / 'study.db'}")
    for trial in study.trials:
        kid = kids[f"trial-{trial.number:04d}"]
        assert kid.data.params["trial"] == str(trial.number)
        assert float(kid.data.params["train.lr"]) == pytest.approx(trial.params["train.lr"])
        assert kid.data.params["model.hidden"] in ("[8]", "[16, 8]")
        assert kid.data.tags["state"] == trial.state.name.lower()
        assert kid.data.metrics["value"] == pytest.approx(trial.value)
        reported = client.get_metric_history(kid.info.run_id, "val_loss")
        assert sorted((m.step, m.value) for m in reported) == \
            [(s, pytest.approx(v)) for s, v in sorted(trial.intermediate_values.items())]
    final = json.loads((out / "final" / "result.json").read_text())
    assert kids["final"].data.metrics["test_accuracy"] == pytest.approx(final["test"]["accuracy"])


def test_unreachable_server_trains_on_says_so_once_then_track_logs_it(server, client, config, tmp_path, capfd):
    closed = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    out = tmp_path / "offline"
    code, _, err = run_cli(capfd, "train", config, f"track.mlflow={closed}", "--out", out)
    assert code == 0  # the run finished and wrote everything
    result = json.loads((out / "result.json").read_text())
    assert "mlflow" not in result and result["test"]["accuracy"] > 0.5
    said = [line for line in err.splitlines() if "MLflow" in line]
    assert len(said) == 1 and closed in said[0] and "trainlab track" in said[0], err
    code, stdout, _ = run_cli(capfd, "track", out, "--mlflow", server, "--experiment", "later")
    assert code == 0
    entry = json.loads((out / "result.json").read_text())["mlflow"]
    assert entry["uri"] == server and entry["experiment"] == "later" and entry["run_id"] in stdout
    run = client.get_run(entry["run_id"])
    assert run.info.status == "FINISHED" and run.data.params["train.lr"] == "0.01"
    history = read_csv(out / "history.csv")
    logged = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, "val_loss"))
    assert logged == [(int(r["epoch"]), pytest.approx(float(r["val_loss"]))) for r in history]
    assert run.data.metrics["test_accuracy"] == pytest.approx(result["test"]["accuracy"])
    assert {"config.yaml", "result.json", "report.html"} <= artifacts(client, run.info.run_id)


def test_true_logs_to_a_local_sqlite_file_without_a_server(config, tmp_path, monkeypatch, capfd):
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        _missing("mlflow is not installed (pip install -e .)")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    code, _, _ = run_cli(capfd, "train", config, "track.mlflow=true", "train.epochs=1", "--out", tmp_path / "r")
    assert code == 0
    result = json.loads((tmp_path / "r" / "result.json").read_text())
    entry = result["mlflow"]
    assert entry["uri"] == f"sqlite:///{tmp_path / 'mlflow.db'}" and (tmp_path / "mlflow.db").is_file()
    run = MlflowClient(entry["uri"]).get_run(entry["run_id"])
    assert run.data.metrics["test_accuracy"] == pytest.approx(result["test"]["accuracy"])
    assert [m.step for m in MlflowClient(entry["uri"]).get_metric_history(entry["run_id"], "train_loss")] == [1]


def test_track_refuses_a_folder_that_is_not_a_run(tmp_path, capfd):
    code, _, err = run_cli(capfd, "track", tmp_path, "--mlflow", "http://127.0.0.1:1")
    assert code == 2 and "not a trainlab run directory" in err


@pytest.mark.parametrize("start_after", [3600.0, 0.0])
def test_helper_process_starts_at_the_end_of_a_short_run_or_after_a_while_of_a_long_one(tmp_path, monkeypatch,
                                                                                        start_after):
    """A short run's epochs never share the CPU with the helper's start-up: it is spawned at close (or, in a run
    longer than START_AFTER_S, at the first message after it), and every message held until then arrives in order."""
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        _missing("mlflow is not installed (pip install -e .)")
    from trainlab.observe import tracking

    monkeypatch.setattr(tracking, "START_AFTER_S", start_after)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = tracking.Tracker(uri, "lazy")
    run = tracker.open("r", {"train.lr": "0.1"})
    for epoch in (1, 2, 3):
        run({}, {"epoch": epoch, "train_loss": 1.0 / epoch})
    assert (tracker.process is None) == (start_after > 0)  # held in this process: a list, no helper yet
    assert len(tracker.held) == (4 if start_after > 0 else 0)
    run.end()
    summary = tracker.close(wait=300)
    assert summary["ok"], summary
    client = MlflowClient(uri)
    history = client.get_metric_history(summary["runs"][run.key], "train_loss")
    assert [(m.step, m.value) for m in sorted(history, key=lambda m: m.step)] == [(1, 1.0), (2, 0.5),
                                                                                 (3, pytest.approx(1 / 3))]
    assert client.get_run(summary["runs"][run.key]).data.params == {"train.lr": "0.1"}
