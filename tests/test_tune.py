"""trainlab tune: search-space validation, resume, pruning, test-set discipline, a two-worker PostgreSQL study."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import uuid

import optuna
import pytest
import torch
import yaml

from conftest import assert_one_line_error, tiny_config
from trainlab.cli.main import main
from trainlab.core.errors import Interrupted, UserError
from trainlab.data.prepare import DataView
from trainlab.workflows.search_space import decode, parse_space, trial_config
from trainlab.workflows.tune import make_objective, resolve_storage_url

SPACE = {"train.lr": {"type": "float", "low": 1e-3, "high": 3e-2, "log": True},
         "model.hidden": {"type": "categorical", "choices": [[8], [16, 8]]}}
TINY = tiny_config(data={"batch_size": 128}, model={"hidden": [16]}, tune=SPACE)


@pytest.fixture
def tiny(tmp_path):
    """Write TINY with some sections replaced to tmp_path/tiny.yaml (the study is named after the file)."""
    def write(**sections) -> str:
        path = tmp_path / "tiny.yaml"
        path.write_text(yaml.safe_dump({**TINY, **sections}))
        return str(path)
    return write


# ----------------------------------------------------------------------------- search space

@pytest.mark.parametrize("spec, msg", [
    ({"model.hiddn": {"type": "int", "low": 8, "high": 64}}, "unknown key 'model.hiddn'"),
    ({"train.lr": {"type": "float", "low": 0.1, "high": 0.01}}, "low (0.1) must be < high (0.01)"),
    ({"train.lr": {"type": "float", "low": 0.0, "high": 0.1, "log": True}}, "log scale needs low > 0"),
    ({"train.lr": {"type": "normal", "low": 0.0, "high": 0.1}}, "bad value for tune.train.lr.type"),
    ({"train.lr": {"type": "float", "low": 0.0, "hi": 0.1}}, "unknown key 'tune.train.lr.hi'"),
    ({"model.dropout": {"type": "float", "low": 0.0, "high": 1.0}}, "model.dropout: 1.0; must be >= 0.0 and < 1.0"),
    ({"train.optimizer": {"type": "categorical", "choices": ["adam", "lion"]}}, "unknown optimizer 'lion'"),
    ({"seed": {"type": "int", "low": 0, "high": 9}}, "tune.seed: this key decides"),
    ({"data.val_fraction": {"type": "float", "low": 0.1, "high": 0.3}}, "tune.data.val_fraction"),
])
def test_bad_search_space_is_one_line_error(tmp_path, tiny, cli, spec, msg):
    code, _, err = cli("tune", tiny(tune=spec), "--trials", "1", "--out", tmp_path / "o")
    assert_one_line_error(code, err, msg)
    assert not (tmp_path / "o").exists()  # rejected before any work


def test_values_reach_the_config_like_overrides():
    space = parse_space(TINY, SPACE)
    cfg = trial_config(TINY, {"train.lr": 1e-05, "model.hidden": [16, 8]})
    assert cfg.train.lr == 1e-05 and cfg.model.params.hidden == [16, 8]
    assert decode(space, {"model.hidden": "[16, 8]", "train.lr": 0.002}) == {"model.hidden": [16, 8],
                                                                            "train.lr": 0.002}
    with pytest.raises(UserError, match="no tune section"):
        parse_space(TINY, {})


# ----------------------------------------------------------------------------- search, resume, test once

def test_search_resumes_and_evaluates_test_once(tmp_path, tiny, monkeypatch, capsys):
    cfg, out = tiny(), tmp_path / "tune"
    real = DataView.dataset
    touched = []
    monkeypatch.setattr(DataView, "dataset", lambda self, split: touched.append(split) or real(self, split))
    assert main(["tune", cfg, "--trials", "2", "--out", str(out), "--search-only"]) == 0
    assert "test" not in touched  # trials only ever see train and val
    first = json.loads((out / "result.json").read_text())
    assert first["n_trials"] == 2 and "test" not in first and not (out / "final").exists()

    assert main(["tune", cfg, "--trials", "3", "--out", str(out)]) == 0  # resumes: one more trial
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'study.db'}")
    assert [t.number for t in study.trials] == [0, 1, 2]
    result = json.loads((out / "result.json").read_text())
    values = [t.value for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert result["n_trials"] == 3 and result["best_value"] == min(values)
    assert result["best_params"]["model.hidden"] in ([8], [16, 8])
    assert 0.5 < result["test"]["accuracy"] <= 1.0 and result["test_evaluations"] == 1
    final = yaml.safe_load((out / "final" / "config.yaml").read_text())
    assert final["data"]["val_fraction"] == 0.0 and final["train"]["lr"] == result["best_params"]["train.lr"]
    assert len((out / "trials.csv").read_text().splitlines()) == 4
    assert json.loads((out / "manifest.json").read_text())["test_evaluations"] == 1
    assert (out / "optimization_history.png").stat().st_size > 1000
    assert_trials_in_tensorboard(out / "tb", study, "val_loss")

    capsys.readouterr()
    assert main(["tune", cfg, "--trials", "3", "--out", str(out)]) == 0  # nothing to do, test not re-evaluated
    assert "nothing to run" in capsys.readouterr().out
    assert json.loads((out / "final" / "manifest.json").read_text())["test_evaluations"] == 1
    assert main(["eval", str(out / "final")]) == 0  # looking at test again warns
    assert "warning:" in capsys.readouterr().err
    assert main(["tune", cfg, "--trials", "3", "--out", str(out), "train.epochs=3"]) == 2  # another objective


def test_interrupted_search_resumes_where_it_stopped(tmp_path, tiny, monkeypatch, cli):
    """Ctrl-C in trial 1 -> exit 130; the same command again keeps trial 0 and runs only what is missing."""
    import trainlab.workflows.tune

    cfg, out, calls = tiny(), tmp_path / "tune", []
    real = trainlab.workflows.tune.split_value

    def interrupt_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise Interrupted("(no run directory)")  # what the trainer raises on SIGINT/SIGTERM
        return real(*args, **kwargs)

    monkeypatch.setattr(trainlab.workflows.tune, "split_value", interrupt_second)
    code, _, err = cli("tune", cfg, "--trials", "2", "--out", out, "--search-only")
    assert code == 130 and "rerun the same command to resume" in err
    storage = f"sqlite:///{out / 'study.db'}"
    first = optuna.load_study(study_name="tiny", storage=storage).trials
    assert [t.state.name for t in first] == ["COMPLETE", "FAIL"]

    code, _, err = cli("tune", cfg, "--trials", "2", "--out", out, "--search-only")
    assert code == 0, err
    trials = optuna.load_study(study_name="tiny", storage=storage).trials
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "COMPLETE"] and len(calls) == 3
    assert (trials[0].params, trials[0].value) == (first[0].params, first[0].value)  # kept, not redone
    assert json.loads((out / "result.json").read_text())["n_trials"] == 2


def test_trial_of_a_killed_worker_is_failed_by_the_next_run(tmp_path, tiny, cli):
    """A RUNNING trial whose worker (same host) is gone becomes FAIL; a live worker's or another host's stays."""
    cfg, out = tiny(), tmp_path / "tune"
    code, _, err = cli("tune", cfg, "--trials", "1", "--out", out, "--search-only")
    assert code == 0, err
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'study.db'}")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        for worker in (f"{socket.gethostname()}:{gone.pid}", f"{socket.gethostname()}:{alive.pid}",
                       f"elsewhere.example:{gone.pid}"):
            study.ask().set_user_attr("worker", worker)  # what a worker records first in each trial
        code, stdout, err = cli("tune", cfg, "--trials", "2", "--out", out, "--search-only")
    finally:
        alive.kill()
        alive.wait()
    assert code == 0, err
    assert f"trial 1 was left running by a worker that is gone ({socket.gethostname()}:{gone.pid})" in stdout
    trials = optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'study.db'}").trials
    states = [t.state.name for t in trials]
    assert states == ["COMPLETE", "FAIL", "RUNNING", "RUNNING", "COMPLETE"]
    assert json.loads((out / "result.json").read_text())["n_failed"] == 1


@pytest.mark.parametrize("then", ["resume", "replace"])
def test_kill_during_the_final_retrain_keeps_the_true_test_count(tmp_path, tiny, monkeypatch, cli, then):
    """Killed after the final run's test evaluation: the rerun finishes that run without a second look (count 1),
    or, when the final config changed meanwhile, replaces it and counts the killed run's look too (count 2)."""
    from trainlab.observe import monitor

    cfg, out = tiny(), tmp_path / "tune"

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # as a kill right after the `test:` evaluation, before the report

    monkeypatch.setattr(monitor, "finalize", killed)
    code, _, err = cli("tune", cfg, "--trials", "2", "--out", out)
    assert code == 130, err
    final = json.loads((out / "final" / "manifest.json").read_text())
    assert final["test_evaluations"] == 1 and not (out / "final" / "result.json").exists()
    monkeypatch.undo()
    if then == "replace":  # e.g. more trials found another best config
        (out / "final" / "config.yaml").write_text((out / "final" / "config.yaml").read_text() + "# other\n")
    code, stdout, err = cli("tune", cfg, "--trials", "2", "--out", out)
    assert code == 0, err
    result = json.loads((out / "result.json").read_text())
    manifest = json.loads((out / "final" / "manifest.json").read_text())
    expected = 1 if then == "resume" else 2
    assert result["test_evaluations"] == manifest["test_evaluations"] == expected
    assert ("resuming the interrupted final run" in stdout) == (then == "resume")
    assert ("evaluated 2 times" in err) == (then == "replace")
    if then == "resume":
        assert result["test"] == final["test_metrics"]["metrics"]  # the numbers of the one look, from disk
    assert json.loads((out / "final" / "result.json").read_text())["test"] == result["test"]


def test_poor_trials_are_pruned_from_epoch_reports():
    raw = {**TINY, "train": {"epochs": 4, "lr": 0.01}}
    space = parse_space(raw, {**SPACE, "train.lr": {"type": "float", "low": 1e-6, "high": 3e-2, "log": True}})
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0),
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=2))
    for lr in (0.02, 0.02, 1e-6):  # the last one barely learns
        study.enqueue_trial({"train.lr": lr, "model.hidden": "[8]"})
    study.optimize(make_objective(raw, space, "val_loss", None), n_trials=3)
    good, _, bad = study.trials
    assert good.state.name == "COMPLETE" and sorted(good.intermediate_values) == [1, 2, 3, 4]
    assert bad.state.name == "PRUNED" and sorted(bad.intermediate_values) == [1, 2]  # stopped after epoch 2
    assert bad.intermediate_values[2] > 2 * good.intermediate_values[2]


def test_diverging_trial_is_pruned_not_fatal():
    raw = {**TINY, "train": {"epochs": 2, "optimizer": "sgd", "lr": 0.01}}
    space = parse_space(raw, {"train.lr": {"type": "float", "low": 1e-3, "high": 1e9, "log": True}})
    study = optuna.create_study()
    study.enqueue_trial({"train.lr": 1e9})
    study.optimize(make_objective(raw, space, "val_loss", None), n_trials=1)
    assert study.trials[0].state.name == "PRUNED"
    assert "non-finite" in study.trials[0].user_attrs["diverged"]


# ----------------------------------------------------------------------------- two workers, one PostgreSQL study

def postgres_url() -> str:
    url = os.environ.get("TRAINLAB_TEST_POSTGRES_URL")
    if url:
        return url
    if os.environ.get("CI"):
        pytest.fail("TRAINLAB_TEST_POSTGRES_URL is not set: .ci/run must start PostgreSQL for the shared-study test")
    pytest.skip("set TRAINLAB_TEST_POSTGRES_URL=postgresql://... to run the two-worker study (.ci/run does)")


@pytest.fixture
def fresh_postgres_database():
    """A new, empty database on the test server: the workers start together on it and race to create Optuna's
    tables, as the first workers of a real shared study do."""
    import psycopg2

    server, name = postgres_url(), f"pytest_{uuid.uuid4().hex[:10]}"
    conn = psycopg2.connect(server)
    conn.autocommit = True  # CREATE/DROP DATABASE cannot run inside a transaction
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {name}")
        yield server.rsplit("/", 1)[0] + "/" + name
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        conn.close()


@pytest.mark.slow
def test_two_workers_share_one_postgres_study(tmp_path, tiny, fresh_postgres_database):
    url, study_name, target = fresh_postgres_database, f"pytest-{uuid.uuid4().hex[:10]}", 6
    cfg = tiny(train={"epochs": 2, "lr": 0.01})
    # one torch thread per worker: two workers share 2 cores without oversubscribing them
    args = ["tune", cfg, "train.num_threads=1", "--trials", str(target), "--storage", url, "--study", study_name,
            "--search-only"]
    workers = [subprocess.Popen([sys.executable, "-m", "trainlab", *args, "--out", str(tmp_path / f"w{i}")],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(2)]
    try:
        logs = [w.communicate(timeout=300)[0] for w in workers]
        assert [w.returncode for w in workers] == [0, 0], logs
        trials = optuna.load_study(study_name=study_name, storage=resolve_storage_url(url)).trials
        numbers = sorted(t.number for t in trials)
        assert numbers == list(range(len(trials)))  # every trial recorded exactly once
        assert target <= len(trials) <= target + 1  # both may start a trial just before the target is reached
        assert all(t.state.name in ("COMPLETE", "PRUNED") for t in trials)
        # both workers contributed, or (on a slow machine) one finished the study before the other had opened it,
        # and the latecomer found it full: either way both worked on this one study
        assert len({t.user_attrs["worker"] for t in trials}) == 2 or any("already holds" in log for log in logs), logs
        assert len({json.dumps(t.params, sort_keys=True) for t in trials}) == len(trials)  # no duplicated proposals
        out, threads = tmp_path / "final", torch.get_num_threads()
        try:
            assert main([*args[:-1], "--out", str(out)]) == 0  # no new trial; retrain best, test once
        finally:
            torch.set_num_threads(threads)  # the config's num_threads=1 is process-wide
        result = json.loads((out / "result.json").read_text())
        values = [t.value for t in trials if t.state.name == "COMPLETE"]
        assert result["n_trials"] == len(trials) and result["best_value"] == min(values)
        assert "test" in result and result["test_evaluations"] == 1
    finally:
        for w in workers:
            w.kill()
        if study_name in [s.study_name for s in optuna.get_all_study_summaries(resolve_storage_url(url))]:
            optuna.delete_study(study_name=study_name, storage=resolve_storage_url(url))


def assert_trials_in_tensorboard(tb_dir, study, metric: str) -> None:
    """Every completed trial has its own TensorBoard run with its parameters (HPARAMS tab) and its value."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert sorted(p.name for p in tb_dir.iterdir()) == [f"trial-{t.number:04d}" for t in done]
    for t in done:
        ea = EventAccumulator(str(tb_dir / f"trial-{t.number:04d}"))
        ea.Reload()
        start = plugin_data_pb2.HParamsPluginData.FromString(
            ea.PluginTagToContent("hparams")["_hparams_/session_start_info"]).session_start_info
        assert start.hparams["train.lr"].number_value == pytest.approx(t.params["train.lr"])
        assert start.hparams["model.hidden"].string_value == t.params["model.hidden"]  # "[16, 8]"
        assert ea.Scalars(f"final/{metric}")[0].value == pytest.approx(t.value, rel=1e-6)
