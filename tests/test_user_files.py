"""trainlab never deletes or overwrites what is not its own (issue: --overwrite, --out into a run, unbounded counts,
long and non-UTF-8 arguments, the crash guard, a stalled request body, odd tensor dtypes in model.weights).

Each case is replayed with several file names and sizes: a user's file beside a config, `--out` pointing at a run,
4294967296 for every count, arguments over 255 bytes or not UTF-8, a raw socket that stalls mid-body.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import socket
import time
import typing
from pathlib import Path

import pytest
import torch
import yaml

from conftest import assert_one_line_error, tiny_config
from trainlab.cli import arguments
from trainlab.cli.commands import registries
from trainlab.cli.main import main
from trainlab.cli.outputs import output_kind
from trainlab.core.errors import UserError
from trainlab.core.paths import path_kind
from trainlab.data.config import DataConfig
from trainlab.engine.settings import TrainConfig
from trainlab.models.config import ModelConfig
from trainlab.run.config import Config
from trainlab.run.directory import TRAIN_FILES, read_manifest, remove_run_files

HUGE = "4294967296"  # 2**32: accepted once, it grew to 20 GB before the kernel killed the process


def run_cli(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under `folder` (relative path -> sha256 of its bytes; folders too): what must not change."""
    found = {}
    for p in sorted(folder.rglob("*")):
        rel = str(p.relative_to(folder))
        found[rel] = "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return found


def write_yaml(path: Path, cfg: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A finished digits run (2 epochs of a small MLP, about a second)."""
    root = tmp_path_factory.mktemp("run")
    cfg = write_yaml(root / "cfg" / "digits.yaml", tiny_config(model={"hidden": [16]}))
    assert main(["train", str(cfg), "--out", str(root / "run")]) == 0
    return root / "run"


@pytest.fixture(scope="module")
def text_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("text")
    cfg = {"seed": 0, "data": {"name": "first_marker", "samples": 300, "tokenizer": "char", "max_len": 32,
                               "batch_size": 64, "transforms": {"train": [], "eval": []}},
           "model": {"name": "transformer", "d_model": 16, "heads": 2, "layers": 1, "ff_dim": 16},
           "train": {"epochs": 1, "lr": 0.003}}
    path = write_yaml(root / "text.yaml", cfg)
    assert main(["train", str(path), "--out", str(root / "run")]) == 0
    return root / "run"


# ----------------------------------------------------------------------------- 1. --overwrite

@pytest.mark.parametrize("own_file,data_dir", [("thesis.txt", "data"), ("notes on the run.md", "my data"),
                                               ("x" * 200 + ".bin", "d")])
def test_overwrite_never_deletes_a_folder_that_holds_a_users_config_and_files(tmp_path, capsys, own_file, data_dir):
    """The issue's case: a scratch folder with the config, a data folder and a user's file; --out there with
    --overwrite must stop with one line naming them, and remove nothing."""
    folder = tmp_path / "p"
    (folder / data_dir).mkdir(parents=True)
    (folder / data_dir / "train.csv").write_text("a,b\n1,2\n")
    config = write_yaml(folder / "config.yaml", tiny_config())
    (folder / own_file).write_bytes(os.urandom(4096))
    before = snapshot(folder)
    code, _, err = run_cli(capsys, "train", config, "--out", folder, "--overwrite", "--dry-run")
    assert_one_line_error(code, err, "--overwrite would have removed", own_file[:20], f"{data_dir}/")
    assert snapshot(folder) == before


def test_overwrite_replaces_a_run_by_its_manifest_and_stops_at_anything_else(tmp_path, capsys):
    config = write_yaml(tmp_path / "cfg.yaml", tiny_config(train={"epochs": 1}))
    out = tmp_path / "run"
    assert run_cli(capsys, "train", config, "--out", out)[0] == 0  # a real run: a dry run draws no plots
    listed = set(read_manifest(out)["files"])
    assert {p.name for p in out.iterdir()} <= listed and set(TRAIN_FILES) <= listed
    assert {"curves.png", "confusion_matrix.png"} <= listed  # the plots are added as they are drawn
    for name, content in (("thesis.txt", b"mine"), ("best.pt.bak", b"a copy"), ("tb2", None)):
        (out / name).mkdir() if content is None else (out / name).write_bytes(content)
        before = snapshot(out)
        code, _, err = run_cli(capsys, "train", config, "--out", out, "--overwrite", "--dry-run", "train.lr=0.5")
        assert_one_line_error(code, err, "--overwrite would have removed", name, "nothing removed")
        assert snapshot(out) == before
        (out / name).rmdir() if content is None else (out / name).unlink()
    # what a kill left behind (temporary files of listed names) goes with the run
    (out / "result.json.tmp").write_text("{")
    (out / ".last.pt.k2j4x9.tmp").write_bytes(b"\0" * 10)
    code, _, err = run_cli(capsys, "train", config, "--out", out, "--overwrite", "--dry-run", "train.lr=0.5")
    assert code == 0, err
    assert not list(out.glob("*.tmp")) and not list(out.glob(".*.tmp"))
    assert yaml.safe_load((out / "config.yaml").read_text())["train"]["lr"] == 0.5


def test_overwrite_never_removes_the_config_being_trained(run_dir, tmp_path, capsys):
    run = tmp_path / "copy"
    run.mkdir()
    for p in run_dir.iterdir():
        if p.is_file():
            (run / p.name).write_bytes(p.read_bytes())
    before = snapshot(run)
    code, _, err = run_cli(capsys, "train", run / "config.yaml", "--out", run, "--overwrite", "--dry-run")
    assert_one_line_error(code, err, "config.yaml", "holds the config or data this run uses", "nothing removed")
    assert snapshot(run) == before


def test_remove_run_files_keeps_data_and_follows_no_link(tmp_path):
    run, outside = tmp_path / "run", tmp_path / "outside"
    run.mkdir()
    outside.mkdir()
    (outside / "precious.txt").write_text("keep")
    (run / "manifest.json").write_text(json.dumps({"files": ["manifest.json", "tb", "data.csv", "result.json"]}))
    (run / "tb").symlink_to(outside, target_is_directory=True)
    (run / "data.csv").write_text("a\n1\n")
    with pytest.raises(UserError, match=r"data\.csv, which holds the config or data"):
        remove_run_files(run, keep=(run / "data.csv",))
    assert (run / "data.csv").is_file() and (run / "manifest.json").is_file()
    assert sorted(remove_run_files(run)) == ["data.csv", "manifest.json", "tb"]
    assert (outside / "precious.txt").read_text() == "keep" and not any(run.iterdir())


def test_seeds_overwrite_stops_at_a_users_file_inside_a_seed_run(tmp_path, capsys):
    config = write_yaml(tmp_path / "cfg.yaml", tiny_config(train={"epochs": 1}))
    out = tmp_path / "seeds"
    assert run_cli(capsys, "train", config, "--seeds", 2, "--out", out, "--dry-run")[0] == 0
    (out / "seed-1" / "my notes.txt").write_text("mine")
    before = snapshot(out)
    code, _, err = run_cli(capsys, "train", config, "--seeds", 2, "--out", out, "--overwrite", "--dry-run")
    assert_one_line_error(code, err, "my notes.txt", "nothing removed")
    assert snapshot(out) == before
    (out / "seed-1" / "my notes.txt").unlink()
    assert run_cli(capsys, "train", config, "--seeds", 2, "--out", out, "--overwrite", "--dry-run")[0] == 0
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "result.json", "seed-0", "seed-1"]


def test_inspect_and_export_outputs_inside_a_run_are_listed(run_dir, capsys):
    assert run_cli(capsys, "inspect", run_dir, "--top", 2)[0] == 0
    assert "inspect-val" in read_manifest(run_dir)["files"]


# ----------------------------------------------------------------------------- 2. --out into a run

def _out_commands(run: Path, config: Path, tune_config: Path) -> list[list]:
    return [["eval", run, "--split", "val"], ["predict", run], ["inspect", run, "--top", 2],
            ["plot", "curves", run], ["plot", "activations", "relu"], ["compare", run, run], ["runs", run.parent],
            ["lr-find", config, "--dry-run"], ["show", config], ["tune", tune_config, "--trials", 2, "--dry-run"]]


@pytest.mark.parametrize("index", range(10))
@pytest.mark.parametrize("where", ["run", "seeds", "cv"])
def test_no_command_writes_over_a_runs_files(run_dir, tmp_path, capsys, index, where):
    """`trainlab eval R --out R` and the same for every command that takes --out: one line, nothing changed."""
    config = write_yaml(tmp_path / "cfg.yaml", tiny_config())
    tune_config = write_yaml(tmp_path / "tune.yaml",
                             tiny_config(tune={"train.lr": {"type": "float", "low": 1e-3, "high": 1e-1}}))
    target = {"run": run_dir, "seeds": tmp_path / "seeds", "cv": tmp_path / "cv"}[where]
    if where == "seeds":  # a --seeds result: its seed-* runs and the aggregate result.json
        (target / "seed-0").mkdir(parents=True)
        (target / "seed-0" / "manifest.json").write_text(json.dumps({"kind": "run", "files": []}))
        (target / "result.json").write_text('{"kind": "seeds"}')
    elif where == "cv":
        target.mkdir()
        (target / "manifest.json").write_text(json.dumps({"kind": "cv", "files": ["result.json"]}))
        (target / "result.json").write_text('{"folds": []}')
    command = _out_commands(run_dir, config, tune_config)[index]
    before = snapshot(target)
    code, _, err = run_cli(capsys, *command, "--out", target)
    assert_one_line_error(code, err, f"--out {target}", "choose a new or empty folder")
    assert snapshot(target) == before


def test_out_into_a_new_folder_inside_a_run_is_fine(run_dir, capsys):
    before = (run_dir / "result.json").read_bytes()
    code, _, err = run_cli(capsys, "eval", run_dir, "--split", "val", "--out", run_dir / "eval-val")
    assert code == 0, err
    assert json.loads((run_dir / "eval-val" / "result.json").read_text())["split"] == "val"
    assert (run_dir / "result.json").read_bytes() == before
    code, _, err = run_cli(capsys, "eval", run_dir, "--split", "val", "--out", run_dir / "eval-val")  # again: its own
    assert code == 0, err


def test_kinds_of_trainlab_output(run_dir, tmp_path):
    assert output_kind(run_dir) == "run" and output_kind(tmp_path) is None
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "manifest.json").write_text(json.dumps({"kind": "tune"}))
    assert output_kind(tmp_path / "t") == "tune"
    (tmp_path / "user").mkdir()
    (tmp_path / "user" / "config.yaml").write_text("seed: 0\n")  # a user's config alone is not a run
    assert output_kind(tmp_path / "user") is None


# ----------------------------------------------------------------------------- 3. bounded counts

CLI_COUNTS = [
    ("train", "{config}", "--seeds", HUGE, "--dry-run"), ("cv", "{config}", "--folds", HUGE),
    ("cv", "{config}", "--jobs", HUGE), ("tune", "{config}", "--trials", HUGE),
    ("tune", "{config}", "--trials", "2", "--cv", HUGE), ("inspect", "{run}", "--top", HUGE),
    ("inspect", "{run}", "--internals", "--index", HUGE), ("predict", "{run}", "--top", HUGE),
    ("lr-find", "{config}", "--steps", HUGE), ("export", "{run}", "--samples", HUGE), ("show", "{config}", "--n", HUGE),
    ("serve", "{run}", "--port", HUGE), ("serve", "{run}", "--max-bytes", HUGE), ("tensorboard", "--port", HUGE),
    ("serve", "{run}", "--body-timeout", HUGE),
]


@pytest.mark.parametrize("argv", CLI_COUNTS, ids=lambda a: f"{a[0]}{[x for x in a if x.startswith('--')][-1]}")
def test_every_command_line_count_is_bounded(argv, run_dir, tmp_path, capsys):
    config = write_yaml(tmp_path / "cfg.yaml", tiny_config())
    start = time.perf_counter()
    code, _, err = run_cli(capsys, *[a.format(config=config, run=run_dir) for a in argv])
    assert_one_line_error(code, err, HUGE)
    assert time.perf_counter() - start < 5  # refused before any work


CONFIG_COUNTS = ["train.epochs", "train.early_stopping", "train.accumulate", "train.warmup", "train.freeze_epochs",
                 "train.checkpoint_every", "train.log_interval", "data.batch_size", "data.eval_batch_size",
                 "data.memory_limit_mb", "model.hidden", "seed"]


@pytest.mark.parametrize("key", CONFIG_COUNTS)
def test_every_config_count_is_bounded(key, tmp_path, capsys):
    config = write_yaml(tmp_path / "cfg.yaml", tiny_config())
    value = f"[{HUGE}]" if key == "model.hidden" else HUGE
    code, _, err = run_cli(capsys, "train", config, f"{key}={value}", "--dry-run", "--out", tmp_path / "r")
    assert_one_line_error(code, err, key, HUGE)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("model", [{"name": "rnn", "layers": int(HUGE)}, {"name": "mlp", "hidden": [8] * 257},
                                   {"name": "cnn", "channels": [8] * 10_001}])
def test_layer_counts_are_bounded(model, tmp_path, capsys):
    cfg = tiny_config(model=model)
    cfg["model"] = model
    code, _, err = run_cli(capsys, "summary", write_yaml(tmp_path / "cfg.yaml", cfg))
    assert_one_line_error(code, err, "model.")


def _int_fields(cls, seen) -> list[str]:
    if cls in seen or not dataclasses.is_dataclass(cls):
        return []
    seen.add(cls)
    hints, found = typing.get_type_hints(cls), []
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            found += _int_fields(hints[f.name], seen)
        elif "int" in str(hints[f.name]) and "Literal" not in str(hints[f.name]) \
                and "le" not in f.metadata and "lt" not in f.metadata:
            found.append(f"{cls.__name__}.{f.name}")
    return found


def test_every_integer_setting_has_an_upper_bound():
    seen: set = set()
    unbounded = [n for c in (Config, DataConfig, TrainConfig, ModelConfig) for n in _int_fields(c, seen)]
    for registry in registries().values():
        for name in registry.names():
            unbounded += _int_fields(getattr(registry.entry(name), "config", None), seen)
    assert unbounded == []


def test_count_type_names_its_range():
    parse = arguments.count(2, 10)
    assert parse("10") == 10
    for bad in ("1", "11", HUGE, "-3", "2.5", "x"):
        with pytest.raises(Exception, match="from 2 to 10"):
            parse(bad)


# ----------------------------------------------------------------------------- 4. predict: path or text

@pytest.mark.parametrize("n", [256, 300, 4096])
def test_predict_takes_a_text_longer_than_a_file_name_as_text(text_run, capsys, n):
    long = ("ab" * n)[:n]
    code, out, err = run_cli(capsys, "predict", text_run, long, long + ".txt", long + ".csv", "a\0b", "cab")
    assert code == 0, err
    assert len(out.strip().splitlines()) == 5 and "Traceback" not in err


def test_predict_names_a_text_that_is_not_utf8(text_run, capsys):
    code, out, err = run_cli(capsys, "predict", text_run, "caf\udce9", "abc")
    assert code == 3
    assert "'caf\\udce9': error: not valid UTF-8 text" in out


@pytest.mark.parametrize("name", ["a" * 300, "a" * 300 + ".png", "dir/" + "b" * 256 + "/x.png", "nul\0.png"])
def test_predict_on_an_image_run_gives_a_long_name_an_error_row(run_dir, capsys, name):
    code, out, err = run_cli(capsys, "predict", run_dir, name, "missing.png")
    assert_one_line_error(code, err, "no input could be predicted")


def test_path_kind_never_raises(tmp_path):
    assert path_kind(tmp_path) == "dir" and path_kind("a" * 5000) is None and path_kind("x\0y") is None
    assert path_kind("") is None and path_kind(tmp_path / ("n" * 300) / "f") is None


# ----------------------------------------------------------------------------- 5. the crash guard

@pytest.mark.parametrize("argv", [["eval", "a" * 300], ["eval", "é" * 200], ["eval", "a" * 300, "--out", "b" * 300],
                                  ["predict", "a" * 256, "x"], ["train", "c" * 300 + ".yaml"],
                                  ["eval", "\udcff\udcfe"], ["summary", "\udcff" * 300]])
def test_long_or_non_utf8_arguments_are_one_line(argv, capsys):
    code, out, err = run_cli(capsys, *argv)
    assert_one_line_error(code, err)
    assert "Traceback" not in err


def test_inspect_text_that_is_not_utf8_is_one_line(text_run, capsys):
    code, _, err = run_cli(capsys, "inspect", text_run, "--internals", "--text", "\udcff")
    assert_one_line_error(code, err, "--text", "not valid UTF-8")


@pytest.mark.parametrize("cache", ["folder", "a file", "unset"])
def test_an_internal_error_keeps_its_traceback_out_of_the_run(run_dir, tmp_path, capsys, monkeypatch, cache):
    """The guard never raises and never writes error.log into a user's run directory."""
    import trainlab.use.evaluate

    def bug(*args, **kwargs):
        raise RuntimeError("boom \udcff " + "z" * 400)

    monkeypatch.setattr(trainlab.use.evaluate, "evaluate_run", bug)
    monkeypatch.setattr("sys.argv", ["trainlab", "eval", str(run_dir), "\udcff" * 300])
    if cache == "folder":
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    elif cache == "a file":  # the cache cannot be created: the temporary folder takes the log
        (tmp_path / "cache").write_text("")
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
        monkeypatch.setenv("TMPDIR", str(tmp_path))
        import tempfile
        monkeypatch.setattr(tempfile, "tempdir", None)
    else:
        monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
        monkeypatch.setenv("HOME", str(tmp_path / "home"))
    code, _, err = run_cli(capsys, "eval", run_dir, "--out", tmp_path / "e")
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and "internal error (RuntimeError: boom" in lines[0]
    log = Path(lines[0].split("traceback in ")[1].split(" (or rerun")[0])
    assert "Traceback" in log.read_text() and "boom" in log.read_text()
    assert not (run_dir / "error.log").exists() and run_dir not in log.parents
    want = {"folder": tmp_path / "cache" / "trainlab", "a file": tmp_path,
            "unset": tmp_path / "home" / ".cache" / "trainlab"}[cache]
    assert log.parent == want


# ----------------------------------------------------------------------------- 7. serve: a stalled body

def test_serve_answers_408_to_a_body_that_stalls(run_dir):
    from trainlab.use.serve import create_app, running_server

    with running_server(create_app(run_dir, body_timeout=0.5)) as url:
        port = int(url.rsplit(":", 1)[1])
        for sent in (b"", b"--xx\r\n", b"a" * 500):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                start = time.perf_counter()
                s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                          b"Content-Length: 100000\r\n\r\n" + sent)
                answer = b""
                while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    answer += chunk
                waited = time.perf_counter() - start
            assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
            assert b"request body not received within 0.5 s" in answer
            assert 0.4 < waited < 5
        import urllib.request  # a normal request on the same server still works
        assert json.loads(urllib.request.urlopen(url + "/health", timeout=10).read())["status"] == "ok"


def test_serve_body_timeout_default_agrees():
    from trainlab.use.serve import DEFAULT_BODY_TIMEOUT

    assert arguments.SERVE_BODY_TIMEOUT == DEFAULT_BODY_TIMEOUT


# ----------------------------------------------------------------------------- 8. model.weights dtypes

@pytest.mark.parametrize("dtype", [torch.int64, torch.bool, torch.complex64, torch.int32])
@pytest.mark.parametrize("fmt", ["pt", "safetensors"])
def test_weights_of_another_dtype_kind_are_refused_naming_the_tensor(tmp_path, dtype, fmt):
    from trainlab.models.catalog import LibraryModelConfig
    from trainlab.models.library import build_library_model

    torch.manual_seed(0)
    state = build_library_model("timm:test_convnext", LibraryModelConfig(), (1, 32, 32), 4).state_dict()
    key = "stages.1.blocks.0.conv_dw.weight"
    state[key] = state[key].to(dtype)
    path = tmp_path / f"w.{fmt}"
    if fmt == "pt":
        torch.save(state, path)
    else:
        from safetensors.torch import save_file
        save_file(state, str(path))
    with pytest.raises(UserError) as e:
        build_library_model("timm:test_convnext", LibraryModelConfig(weights=str(path)), (1, 32, 32), 4)
    assert f"refusing tensor {key!r}" in str(e.value) and str(dtype).replace("torch.", "") in str(e.value)
    assert "\n" not in str(e.value)
