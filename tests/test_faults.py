"""The fault battery: full disks, extreme numbers, resumes with more epochs, foreign weights, odd file systems.

Each case ends in one `error:` line (exit 2) naming the file or key and what to do, and nothing saved
before is lost or left half-written. README's "Reliability" section points at these tests.
"""
from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import os
import shutil
import struct
import subprocess
import sys
import types
import typing
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from conftest import assert_one_line_error, tiny_config
from trainlab.core.checkpoint import safe_load
from trainlab.core.errors import UserError
from trainlab.core.schema import NUMBER_LIMIT
from trainlab.data.catalog import DATASETS, TRANSFORMS
from trainlab.data.config import DataConfig
from trainlab.engine.catalog import LOSSES, OPTIMIZERS, SCHEDULERS
from trainlab.engine.settings import TrainConfig
from trainlab.models.activations import ACTIVATIONS
from trainlab.models.catalog import MODELS
from trainlab.models.config import ModelConfig
from trainlab.models.library import build_library_model
from trainlab.models.options import LibraryModelConfig
from trainlab.run.config import Config, build_config
from trainlab.workflows.train import train_run

# ----------------------------------------------------------------------------- extreme numbers, from the schema

def _is_numeric(tp) -> bool:
    if typing.get_origin(tp) in (typing.Union, types.UnionType, list):
        return any(_is_numeric(a) for a in typing.get_args(tp))
    return tp in (int, float)


def _numeric_fields(cls: type) -> list[str]:
    hints = typing.get_type_hints(cls)
    return [f.name for f in dataclasses.fields(cls) if not f.name.endswith("params") and _is_numeric(hints[f.name])]


# section -> (its common dataclass, the registries whose chosen entry adds options, and the key choosing it)
SECTIONS = {"data": (DataConfig, [(DATASETS, "name")]), "model": (ModelConfig, [(MODELS, "name")]),
            "train": (TrainConfig, [(OPTIMIZERS, "optimizer"), (SCHEDULERS, "scheduler")])}


def numeric_settings() -> list[tuple[str, str, dict]]:
    """Every number setting of every section and of every registry entry's own options: (section, key, choice)."""
    cases = [("", name, {}) for name in _numeric_fields(Config)]
    for section, (common, registries) in SECTIONS.items():
        cases += [(section, name, {}) for name in _numeric_fields(common)]
        for registry, key in registries:
            for entry_name in registry.names():
                config = registry.entry(entry_name).config
                choice = {key: entry_name.replace(":*", ":resnet18") if entry_name.endswith(":*") else entry_name}
                cases += [(section, name, choice) for name in (_numeric_fields(config) if config else [])]
    return cases


SETTINGS = numeric_settings()
HUGE = [10**70, -10**70, 10**400, 10**5000, NUMBER_LIMIT + 1]


def test_the_schema_list_covers_the_settings_the_issue_names():
    keys = {f"{s}.{k}" if s else k for s, k, _ in SETTINGS}
    for key in ("train.lr", "train.lr_mult", "train.accumulate", "train.ema", "train.warmup", "train.class_weights",
                "data.batch_size", "data.val_fraction", "model.dropout", "seed", "train.momentum"):
        assert key in keys
    assert len(SETTINGS) > 50
    # registries without numeric options still exist; they are listed so a new one with numbers is noticed here
    assert {r.kind for r in (LOSSES, ACTIVATIONS, TRANSFORMS)} == {"loss", "activation", "transform"}


@pytest.mark.parametrize("section,key,choice", SETTINGS, ids=[f"{s}.{k}[{c}]" for s, k, c in SETTINGS])
@pytest.mark.parametrize("value", HUGE, ids=["e70", "-e70", "e400", "e5000", "limit+1"])
def test_every_numeric_setting_refuses_a_huge_number_in_one_line(section, key, choice, value):
    raw = {section: {**choice, key: value}} if section else {key: value}
    with pytest.raises(UserError) as e:
        build_config(raw)
    message = str(e.value)
    assert "\n" not in message and len(message) < 300
    assert (f"{section}.{key}" if section else key) in message
    assert ("must be" in message) or ("expected" in message)


@pytest.mark.parametrize("section,key,choice", SETTINGS[:1] + [s for s in SETTINGS if s[2] == {}])
def test_every_numeric_setting_still_takes_its_default(section, key, choice):
    """The bounds must not refuse a value trainlab itself chose."""
    build_config({section: {**choice}} if section else {})


@pytest.mark.parametrize("override", ["train.lr", "data.batch_size", "data.val_fraction", "model.dropout",
                                      "train.class_weights", "train.ema", "train.warmup"])
def test_cli_refuses_a_70_digit_number_in_one_line(cli, write_config, tmp_path, override):
    code, _, err = cli("train", write_config(), f"{override}={10**70}", "--dry-run", "--out", tmp_path / "r")
    assert_one_line_error(code, err, override)
    assert not (tmp_path / "r").exists()


# ----------------------------------------------------------------------------- full disk

BIG_MODEL = tiny_config(model={"hidden": [512, 512]}, data={"batch_size": 256},  # best.pt 1.2 MB, last.pt 4.7 MB
                        train={"epochs": 2, "num_threads": 1})


@contextlib.contextmanager
def small_disk(folder: Path, free_kb: int | None, size_mb: int = 8):
    """A tmpfs of `size_mb` at `folder` with about `free_kb` left (a filler file takes the rest); unmounted after.
    Skips where it cannot be mounted (not root, no mount permission): the size-limited-file tests still run."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root; the RLIMIT_FSIZE tests cover a failing write")
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(folder)],
                          capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.strip()[:100]}")
    try:
        if free_kb is not None:
            fill(folder, free_kb)
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(folder: Path, free_kb: int) -> None:
    """Grow folder/filler until about `free_kb` KB are left on its file system."""
    (folder / "filler").unlink(missing_ok=True)
    free = shutil.disk_usage(folder).free
    with open(folder / "filler", "wb") as f:
        f.write(b"\0" * max(0, free - free_kb * 1024))


def leftovers(folder: Path) -> list[str]:
    """Temporary files, and files under a final name that do not load: what a full disk must never leave."""
    bad = [str(p) for p in folder.rglob("*.tmp")]
    for p in folder.rglob("*"):
        if p.suffix == ".pt":
            try:
                safe_load(p)
            except UserError:
                bad.append(str(p))
        elif p.suffix == ".json":
            try:
                json.loads(p.read_text())
            except ValueError:
                bad.append(str(p))
    return bad


def saved(run: Path) -> dict[str, bytes]:
    return {n: (run / n).read_bytes() for n in ("best.pt", "last.pt", "result.json", "history.csv")}


@pytest.mark.parametrize("free_kb", [20, 1000, 3000, 5500])
def test_fresh_run_into_a_full_disk_is_one_line_and_leaves_nothing_half_written(cli, write_config, tmp_path,
                                                                                  free_kb):
    with small_disk(tmp_path / "disk", free_kb) as disk:
        code, _, err = cli("train", write_config(BIG_MODEL), "--out", disk / "run")
        assert_one_line_error(code, err, "disk full", str(disk / "run"), "free")
        assert leftovers(disk) == []


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("finished") / "run"
    train_run(build_config(BIG_MODEL), run, quiet=True)
    return run


@pytest.mark.parametrize("free_kb", [100, 1500, 3000])
def test_resume_into_a_full_disk_keeps_best_last_and_result(cli, finished_run, tmp_path, free_kb):
    with small_disk(tmp_path / "disk", None, size_mb=24) as disk:
        shutil.copytree(finished_run, disk / "run")
        before = saved(disk / "run")
        fill(disk, free_kb)
        code, _, err = cli("train", "--resume", disk / "run", "train.epochs=4")
        assert_one_line_error(code, err, "disk full", str(disk / "run"))
        assert leftovers(disk) == []
        after = saved(disk / "run")
        assert after["last.pt"] == before["last.pt"] and after["result.json"] == before["result.json"]
        if free_kb < 1200:  # no room for even best.pt: every file is byte for byte what it was
            assert after == before
        (disk / "filler").unlink()  # room again: the same command completes the run
        code, _, err = cli("train", "--resume", disk / "run", "train.epochs=4")
        assert code == 0, err
        assert json.loads((disk / "run" / "result.json").read_text())["epochs_run"] == 4


def test_export_torchscript_into_a_full_disk(cli, finished_run, tmp_path):
    with small_disk(tmp_path / "disk", 200) as disk:
        code, _, err = cli("export", finished_run, "--format", "torchscript", "--out", disk / "m.pt")
        assert_one_line_error(code, err, "disk full", str(disk / "m.pt"))
        assert not (disk / "m.pt").exists() and leftovers(disk) == []


LIMITED = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead of killing us
resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
from trainlab.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def run_limited(limit: int, *args) -> subprocess.CompletedProcess:
    """`trainlab ARGS` where no file may grow past `limit` bytes: every write past it fails (EFBIG), although
    the disk reports free space, so the failing write itself (not the check before it) is exercised."""
    return subprocess.run([sys.executable, "-c", LIMITED.format(limit=limit), *map(str, args)],
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("limit", [40_000, 2_000_000])  # splits.json, or last.pt (best.pt fits), cannot be written
def test_a_write_failing_midway_is_one_line_and_leaves_no_temporary(write_config, tmp_path, limit):
    proc = run_limited(limit, "train", write_config(BIG_MODEL), "--out", tmp_path / "run")
    assert_one_line_error(proc.returncode, proc.stderr, "disk full", str(tmp_path / "run"))
    assert leftovers(tmp_path / "run") == []


def test_resume_with_a_failing_write_keeps_what_was_saved(finished_run, tmp_path):
    shutil.copytree(finished_run, tmp_path / "run")
    before = saved(tmp_path / "run")
    proc = run_limited(2_000_000, "train", "--resume", tmp_path / "run", "train.epochs=3")
    assert_one_line_error(proc.returncode, proc.stderr, "disk full", "last.pt")
    assert leftovers(tmp_path / "run") == []
    after = saved(tmp_path / "run")
    assert after["last.pt"] == before["last.pt"] and after["result.json"] == before["result.json"]


def test_export_torchscript_with_a_failing_write(finished_run, tmp_path):
    proc = run_limited(100_000, "export", finished_run, "--format", "torchscript", "--out", tmp_path / "m.pt")
    assert_one_line_error(proc.returncode, proc.stderr, "disk full", "m.pt")
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- resume with more epochs

@pytest.mark.parametrize("scheduler", [None, *SCHEDULERS.names()])
def test_resume_with_more_epochs_for_every_scheduler(cli, tmp_path, scheduler):
    """cosine and onecycle are planned over the whole run: lengthening them is refused in one line that says
    what to do, nothing changes; the others continue with the same LR rule and finish the longer run."""
    cfg = tiny_config(train={"epochs": 2, "scheduler": scheduler, "num_threads": 1}, data={"batch_size": 128})
    run = tmp_path / "run"
    train_run(build_config(cfg), run, quiet=True)
    before = saved(run)
    code, _, err = cli("train", "--resume", run, "train.epochs=3")
    if SCHEDULERS.entry(scheduler).meta["fixed_length"] if scheduler else False:
        assert_one_line_error(code, err, "train.epochs=3", f"{scheduler} schedule planned over 2 epochs",
                              "train.epochs=2", "new run")
        assert saved(run) == before
        return
    assert code == 0, err
    history = json.loads((run / "result.json").read_text())
    assert history["epochs_run"] == 3
    ckpt = safe_load(run / "last.pt")
    assert ckpt["epoch"] == 3 and len(ckpt["history"]) == 3


def test_every_scheduler_says_whether_it_can_be_lengthened():
    assert {n: SCHEDULERS.entry(n).meta["fixed_length"] for n in SCHEDULERS.names()} == {
        "cosine": True, "onecycle": True, "reduce_on_plateau": False, "step": False}


# ----------------------------------------------------------------------------- model.weights from other sources

def _resnet(channels: int = 3, name: str = "torchvision:resnet18", weights: str | None = None):
    torch.manual_seed(0)
    return build_library_model(name, LibraryModelConfig(weights=weights), (channels, 32, 32), 4)


def _safetensors_cases(good: bytes) -> dict[str, bytes]:
    """Truncated, garbage, an oversized header length, overlapping data offsets, empty."""
    n = struct.unpack("<Q", good[:8])[0]
    header = json.loads(good[8:8 + n])
    a, b = [k for k in header if k != "__metadata__"][:2]
    start = header[a]["data_offsets"][0]
    width = header[b]["data_offsets"][1] - header[b]["data_offsets"][0]
    header[b] = {**header[b], "data_offsets": [start, start + width]}  # b's bytes now overlap a's
    crafted = json.dumps(header).encode()
    return {"truncated": good[: len(good) // 2], "garbage": bytes(range(256)) * 10,
            "huge-header": struct.pack("<Q", 2**62) + b"{}", "overlapping": struct.pack("<Q", len(crafted)) + crafted
            + good[8 + n:], "empty": b"", "header-only": good[: 8 + n], "not-json": struct.pack("<Q", 4) + b"\xff{[x"}


@pytest.fixture(scope="module")
def weight_files(tmp_path_factory) -> dict[str, Path]:
    from safetensors.torch import save_file

    folder = tmp_path_factory.mktemp("weights")
    state = _resnet().state_dict()
    save_file(state, str(folder / "good.safetensors"))
    files = {}
    for name, data in _safetensors_cases((folder / "good.safetensors").read_bytes()).items():
        files[f"{name}.safetensors"] = folder / f"{name}.safetensors"
        files[f"{name}.safetensors"].write_bytes(data)
    torch_files = {"empty.pt": b"", "garbage.pt": b"\x80\x02garbage" * 10,
                   "truncated.pt": None,
                   "partial.pt": {k: v for k, v in state.items() if k.startswith(("conv1", "bn1"))},
                   "resnet34.pt": _resnet(name="torchvision:resnet34").state_dict(),
                   "prefixed.pt": {f"module.{k}": v for k, v in state.items()},
                   "stem1.pt": _resnet(1).state_dict(), "stem4.pt": _resnet(4).state_dict(),
                   "stem6.pt": _resnet(6).state_dict()}
    for name, content in torch_files.items():
        files[name] = folder / name
        if isinstance(content, bytes):
            files[name].write_bytes(content)
        elif content is None:
            torch.save(state, files[name])
            files[name].write_bytes(files[name].read_bytes()[:5000])
        else:
            torch.save(content, files[name])
    return files


WEIGHT_CASES = [  # (file, input channels, words the one line must hold)
    ("truncated.safetensors", 3, ["truncated"]), ("garbage.safetensors", 3, ["not a readable safetensors"]),
    ("huge-header.safetensors", 3, ["header claims"]), ("overlapping.safetensors", 3, ["overlap", "122 tensors"]),
    ("empty.safetensors", 3, ["empty"]), ("header-only.safetensors", 3, ["damaged"]),
    ("not-json.safetensors", 3, ["not JSON"]), ("empty.pt", 3, ["empty"]),
    ("garbage.pt", 3, ["not a plain weights file"]), ("truncated.pt", 3, ["truncated"]),
    ("partial.pt", 3, ["lacks tensor 'layer1.0.conv1.weight'", "the file holds 6 tensors", "has 122"]),
    ("resnet34.pt", 3, ["has tensor 'layer1.2.conv1.weight'", "218 tensors", "another architecture"]),
    ("prefixed.pt", 3, ["'module.'", "strip the prefix"]),
    ("stem1.pt", 3, ["takes 1 input channel ", "(64, 1, 7, 7)", "this data has 3", "(64, 3, 7, 7)"]),
    ("stem4.pt", 3, ["takes 4 input channels", "this data has 3", "data with 4 channels"]),
    ("stem6.pt", 3, ["takes 6 input channels", "(64, 6, 7, 7)"]),
    ("stem4.pt", 1, ["takes 4 input channels", "this data has 1"]),
    ("stem1.pt", 4, ["takes 1 input channel ", "this data has 4"]),
]


@pytest.mark.parametrize("name,channels,words", WEIGHT_CASES, ids=[f"{n}-{c}ch" for n, c, _ in WEIGHT_CASES])
def test_foreign_weights_are_one_line_naming_what_does_not_fit(weight_files, name, channels, words):
    with pytest.raises(UserError) as e:
        _resnet(channels, weights=str(weight_files[name]))
    message = str(e.value)
    assert "\n" not in message and str(weight_files[name]) in message
    for word in words:
        assert word in message, (word, message)


def test_an_rgb_stem_is_still_adapted_to_one_channel(weight_files, tmp_path):
    torch.save(_resnet(3).state_dict(), tmp_path / "rgb.pt")
    model = _resnet(1, weights=str(tmp_path / "rgb.pt"))
    assert torch.allclose(model.state_dict()["conv1.weight"], _resnet(3).state_dict()["conv1.weight"].sum(1, True))


# ----------------------------------------------------------------------------- file-system oddities

def _png(path: bytes, seed: int) -> None:
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 255, (12, 12, 3), dtype=np.uint8)
    with open(path, "wb") as f:  # a bytes path: names that are not UTF-8 stay as the bytes they are
        Image.fromarray(pixels).save(f, format="PNG")


@pytest.fixture
def odd_folder(tmp_path) -> Path:
    """photos/<cat, d\\xffog>/ with PNGs, one named with bytes that are not UTF-8, and a FIFO named pipe.png."""
    root = os.fsencode(tmp_path / "photos")
    for c, cls in enumerate((b"cat", b"d\xffog")):
        os.makedirs(root + b"/" + cls)
        for i in range(10):
            _png(root + b"/" + cls + b"/img%d.png" % i, 10 * c + i)
        _png(root + b"/" + cls + b"/bad\xfe\xffname.png", 100 + c)
    os.mkfifo(root + b"/cat/pipe.png")
    new = os.fsencode(tmp_path / "new")
    os.makedirs(new)
    _png(new + b"/x\xff.png", 7)
    os.mkfifo(new + b"/pipe.png")
    return tmp_path


def _trainlab(*args, cwd: Path, timeout: int = 180) -> subprocess.CompletedProcess:
    """The CLI in a subprocess with a UTF-8 locale: a hang fails the test (timeout) instead of stopping the suite."""
    env = {**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8", "MPLBACKEND": "Agg"}
    return subprocess.run([sys.executable, "-m", "trainlab", *map(str, args)], cwd=cwd, capture_output=True,
                          timeout=timeout, env=env)


IMAGE_CFG = {"seed": 0, "data": {"name": "image_folder", "path": "photos", "image_size": [12, 12], "channels": 3,
                                 "val_fraction": 0.2, "test_fraction": 0.2, "batch_size": 8},
             "model": {"name": "mlp", "hidden": [16]}, "train": {"epochs": 1, "num_threads": 1}}


def test_fifo_and_non_utf8_names_in_an_image_folder(odd_folder):
    """train --dry-run, show and predict finish (a FIFO is never opened), show undecodable bytes as U+FFFD and
    write the input names of predictions.csv back byte for byte."""
    (odd_folder / "cfg.yaml").write_text(yaml.safe_dump(IMAGE_CFG))
    done = _trainlab("train", "cfg.yaml", "--dry-run", "--out", "run", cwd=odd_folder)
    assert done.returncode == 0, done.stderr[-600:]
    assert b"cat/pipe.png (not an image file" in done.stdout + done.stderr
    assert json.loads((odd_folder / "run" / "data.json").read_text())["classes"] == ["cat", "d\ufffdog"]
    shown = _trainlab("show", "cfg.yaml", "--out", "shown", cwd=odd_folder)
    assert shown.returncode == 0, shown.stderr[-600:]
    predicted = _trainlab("predict", "run", "new", "--out", "pred", cwd=odd_folder)
    assert predicted.returncode == 3, predicted.stderr[-600:]  # 3: some inputs (the FIFO) could not be predicted
    csv_bytes = (odd_folder / "pred" / "predictions.csv").read_bytes()
    assert b"new/x\xff.png," in csv_bytes and b"new/pipe.png,,,,not an image file" in csv_bytes
    rows = json.loads((odd_folder / "pred" / "result.json").read_text())["predictions"]
    assert [r["input"] for r in rows] == ["new/x\udcff.png", "new/pipe.png"]  # JSON: the name as Python reads it


@pytest.mark.parametrize("out", ["afile/sub", "/proc/trainlab-test/x"])
def test_out_that_cannot_be_a_folder_is_one_line(cli, finished_run, tmp_path, monkeypatch, out):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("a user's file")
    code, _, err = cli("inspect", finished_run, "--out", out)
    assert_one_line_error(code, err, "cannot create the folder", out)
    assert (tmp_path / "afile").read_text() == "a user's file"


def test_inspect_text_with_a_lone_surrogate(cli, tmp_path):
    rng = np.random.default_rng(0)
    words = {"pos": ["good", "great", "fine"], "neg": ["bad", "awful", "poor"]}
    labels = rng.choice(["pos", "neg"], 120)
    texts = [" ".join(rng.choice(words[label], 4)) for label in labels]
    rows = "".join(f"{t},{lab}\n" for t, lab in zip(texts, labels, strict=True))
    (tmp_path / "texts.csv").write_text("text,label\n" + rows)
    cfg = {"seed": 0, "data": {"name": "text", "path": str(tmp_path / "texts.csv"), "text_column": "text",
                               "label_column": "label", "max_len": 8, "batch_size": 16,
                               "transforms": {"train": [], "eval": []}},
           "model": {"name": "transformer"}, "train": {"epochs": 1, "num_threads": 1}}
    train_run(build_config(cfg), tmp_path / "run", quiet=True)
    # --text must be UTF-8 (cli/arguments.utf8_text): refused in one line naming what is wrong, nothing written
    for text, what in (("\ud800 good", "lone surrogate U+D800 at character 0"),
                       ("ab\udcffc bad", "byte 0xff at character 2")):
        code, _, err = cli("inspect", tmp_path / "run", "--internals", "--text", text, "--out", tmp_path / "i")
        assert code == 2 and err.count("\n") == 1 and "--text" in err and what in err, err
        assert not (tmp_path / "i").exists()
    code, _, err = cli("inspect", tmp_path / "run", "--internals", "--text", "\ufffd good", "--out", tmp_path / "i")
    assert code == 0, err
    page = (tmp_path / "i" / "inspect.html").read_bytes()
    page.decode("utf-8")  # strict: U+FFFD itself (what a decoder puts for bad bytes) is drawn
    assert b"<img" in page


# ----------------------------------------------------------------------------- exactly-once data accounting

class Killed(Exception):
    """Stands for SIGKILL: the process stops at once, nothing after the last checkpoint is kept."""


def _record_steps(monkeypatch, seen: list, kill_at: int | None = None) -> None:
    """Spy on Trainer._train_step: seen gets (epoch, batch index, hashes of the batch's rows); raise Killed
    after the `kill_at`-th step (1-based), as a SIGKILL there would."""
    from trainlab.engine.trainer import Trainer

    original = Trainer._train_step

    def spy(self, xb, yb, i, n_steps):
        seen.append((self.epoch, i, [hash(row.numpy().tobytes()) for row in xb.cpu()]))
        if kill_at is not None and len(seen) == kill_at:
            raise Killed
        return original(self, xb, yb, i, n_steps)

    monkeypatch.setattr(Trainer, "_train_step", spy)


def _per_epoch(steps) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for epoch, _, rows in steps:
        out.setdefault(epoch, []).extend(rows)
    return {e: sorted(rows) for e, rows in out.items()}


@pytest.mark.parametrize("in_memory", [True, False], ids=["in-memory", "streaming"])
@pytest.mark.parametrize("drop_last", [False, True], ids=["keep-last", "drop-last"])
def test_a_run_killed_and_resumed_at_random_steps_trains_every_sample_exactly_once_per_epoch(
        tmp_path, monkeypatch, in_memory, drop_last):
    cfg = tiny_config(data={"batch_size": 100, "drop_last": drop_last, "in_memory": in_memory},
                      train={"epochs": 3, "checkpoint_every": 2, "num_threads": 1})
    reference: list = []
    _record_steps(monkeypatch, reference)
    ref = train_run(build_config(cfg), tmp_path / "ref", quiet=True)
    monkeypatch.undo()
    expected = _per_epoch(reference)
    n_train = json.loads((tmp_path / "ref" / "splits.json").read_text())
    n_train = len(n_train["train"]) if isinstance(n_train.get("train"), list) else None
    steps_per_epoch = len(reference) // 3
    history = list(csv.DictReader((tmp_path / "ref" / "history.csv").open()))
    for e, row in enumerate(history):  # the counts history.csv records are the rows the steps saw
        assert int(row["samples_train"]) == len(expected[e])
        assert int(row["samples_val"]) > 0
    if n_train:
        assert len(expected[0]) == (n_train // 100 * 100 if drop_last else n_train)
    rng = np.random.default_rng(int(in_memory) * 2 + int(drop_last))
    run = tmp_path / "run"
    committed: list = []
    kills = sorted(rng.choice(np.arange(2, 3 * steps_per_epoch), 2, replace=False).tolist())
    for kill_at in kills:  # kill, resume, kill again later, resume to the end
        seen: list = []
        _record_steps(monkeypatch, seen, kill_at=kill_at - len(committed))
        with pytest.raises(Killed):
            if run.exists():
                train_run(build_config(cfg), resume=run, quiet=True)
            else:
                train_run(build_config(cfg), run, quiet=True)
        monkeypatch.undo()
        ckpt = torch.load(run / "last.pt", weights_only=True)
        done_batches = ckpt["resume_point"]["batch"] if ckpt["resume_point"] else 0
        keep = [s for s in seen if s[0] < ckpt["epoch"] or (s[0] == ckpt["epoch"] and s[1] < done_batches)]
        committed = [s for s in committed if s[0] < ckpt["epoch"] or (s[0] == ckpt["epoch"] and s[1] < done_batches)]
        committed += [s for s in keep if s not in committed]
    rest: list = []
    _record_steps(monkeypatch, rest)
    result = train_run(build_config(cfg), resume=run, quiet=True)
    monkeypatch.undo()
    assert _per_epoch(committed + rest) == expected  # every sample once per epoch: none lost, none repeated
    assert result["final"]["samples_train"] == ref["final"]["samples_train"]
    assert [int(r["samples_train"]) for r in csv.DictReader((run / "history.csv").open())] == \
        [len(expected[e]) for e in range(3)]


def test_torchrun_records_each_ranks_samples(tmp_path):
    """Two CPU processes (gloo): history.csv holds each rank's count; together they are the single run's."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(tiny_config(data={"batch_size": 32}, train={"epochs": 2, "checkpoint_every": 5})))
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29537"]
    proc = subprocess.run([*torchrun, "-m", "trainlab", "train", str(cfg), "--out", str(tmp_path / "ddp")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    single = train_run(build_config(yaml.safe_load(cfg.read_text())), tmp_path / "single", quiet=True)
    rows = list(csv.DictReader((tmp_path / "ddp" / "history.csv").open()))
    for row in rows:
        ranks = int(row["samples_train_rank0"]), int(row["samples_train_rank1"])
        assert min(ranks) > 0 and abs(ranks[0] - ranks[1]) <= 32
        # DDP drops a last batch that cannot give every rank a row; the rest is the single run's count
        assert sum(ranks) == int(row["samples_train"]) > single["final"]["samples_train"] - 32


# ----------------------------------------------------------------------------- library models on inputs too small

@pytest.mark.parametrize("name,side", [("timm:test_vit", 16), ("torchvision:vit_b_16", 224)])
def test_a_vit_on_8x8_images_says_its_smallest_input_and_the_image_size_that_fits(cli, write_config, tmp_path,
                                                                                     name, side):
    cfg = tiny_config(model={"name": name, "pretrained": False})  # nothing is downloaded
    cfg["model"].pop("hidden")
    code, _, err = cli("train", write_config(cfg), "--dry-run", "--out", tmp_path / "r")
    assert_one_line_error(code, err, name, "inputs 1x8x8", f"smallest input is {side}x{side}",
                          f"model.image_size={side}", "model.preprocess=model")


def test_the_suggested_image_size_trains(cli, write_config, tmp_path):
    cfg = tiny_config(model={"name": "timm:test_vit", "image_size": 16, "preprocess": "model"})
    cfg["model"].pop("hidden")
    code, _, err = cli("train", write_config(cfg), "--dry-run", "--out", tmp_path / "r")
    assert code == 0, err
