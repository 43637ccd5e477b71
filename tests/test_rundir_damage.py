"""Damaged or other-version run directories: every reader checks what it reads and says so in one line.

Each case copies a finished run, damages one file the way a crash, a hand edit or another trainlab version
would, runs the command that reads it, and asserts the contract: exit 2, one `error: this run directory is
damaged or from another version: <what>` line, and not one byte of the run directory changed.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from conftest import assert_one_line_error, tiny_config
from trainlab.core.errors import DamagedRun
from trainlab.run.config import build_config
from trainlab.workflows.train import train_run

DAMAGED = "this run directory is damaged or from another version"


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("damage") / "run"
    train_run(build_config(tiny_config(train={"epochs": 1, "num_threads": 1})), run, quiet=True)
    return run


def digest(run: Path) -> dict[str, str]:
    return {str(p.relative_to(run)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(run.rglob("*")) if p.is_file()}


def edit_json(name, change):
    def damage(run: Path) -> None:
        path = run / name
        path.write_text(json.dumps(change(json.loads(path.read_text()))))
    return damage


def edit_checkpoint(name, change):
    def damage(run: Path) -> None:
        ckpt = torch.load(run / name, weights_only=True)
        torch.save(change(ckpt), run / name)
    return damage


def edit_config(change):
    def damage(run: Path) -> None:
        raw = yaml.safe_load((run / "config.yaml").read_text())
        change(raw)
        (run / "config.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return damage


def without(key):
    return lambda d: {k: v for k, v in d.items() if k != key}


def other_param_groups(ckpt):
    opt = ckpt["optimizer"]
    group = opt["param_groups"][0]
    opt["param_groups"] = [{**group, "params": group["params"][:1]}, {**group, "params": group["params"][1:]}]
    return ckpt


def moment_of_other_shape(ckpt):
    state = ckpt["optimizer"]["state"][0]
    state["exp_avg"] = state["exp_avg"][:, :3].clone()
    return ckpt


def bad_rng(ckpt):
    ckpt["rng"]["numpy"] = ["MT19937"]
    return ckpt


def fewer_classes(d):
    return {**d, "classes": d["classes"][:-1]}


def dict_update(**kv):
    return lambda d: {**d, **kv}


def set_key(section, key, value):
    return lambda raw: raw[section].__setitem__(key, value)


EVAL, RESUME = ("eval",), ("train", "--resume")
CASES = {  # name: (command, damage, what the message names)
    "best.pt model is a list": (EVAL, edit_checkpoint("best.pt", lambda c: {**c, "model": [1, 2]}),
                                "best.pt: 'model' is a list"),
    "best.pt is a list": (EVAL, lambda run: torch.save([torch.zeros(2)], run / "best.pt"), "best.pt holds a list"),
    "data.json without input_shape": (EVAL, edit_json("data.json", without("input_shape")), "no 'input_shape'"),
    "data.json is a list": (EVAL, edit_json("data.json", lambda d: [d]), "data.json holds a list"),
    "data.json with fewer classes than outputs": (EVAL, edit_json("data.json", fewer_classes),
                                                  "names 9 classes for a model with 10 outputs"),
    "data.json input_shape of strings": (EVAL, edit_json("data.json", dict_update(input_shape=["64"])),
                                         "'input_shape' is a list, not a list of positive integers"),
    "data.json not JSON": (EVAL, lambda run: (run / "data.json").write_text("{\"task\": "), "not valid JSON"),
    "data.json with an unknown transform": (
        EVAL, edit_json("data.json", dict_update(eval_transforms=[{"name": "teleport"}])), "does not fit"),
    "manifest test_evaluations many": (EVAL, edit_json("manifest.json", dict_update(test_evaluations="many")),
                                       "'test_evaluations' is 'many'"),
    "splits.json is a list": (EVAL, edit_json("splits.json", lambda d: [d]), "splits.json holds a list"),
    "config.yaml no longer validates": (EVAL, edit_config(set_key("train", "lr", -1)), "config.yaml does not validate"),
    "config.yaml with a removed key": (RESUME, edit_config(set_key("model", "width", 3)),
                                       "config.yaml does not validate"),
    "last.pt without rng": (RESUME, edit_checkpoint("last.pt", without("rng")), "last.pt has no 'rng'"),
    "last.pt with another numpy rng": (RESUME, edit_checkpoint("last.pt", bad_rng), "random-number state"),
    "last.pt optimizer with other parameter groups": (RESUME, edit_checkpoint("last.pt", other_param_groups),
                                                      "optimizer state does not fit"),
    "last.pt optimizer moments of another shape": (RESUME, edit_checkpoint("last.pt", moment_of_other_shape),
                                                   "'exp_avg' has shape (32, 3)"),
    "last.pt history shorter than its epochs": (RESUME, edit_checkpoint("last.pt", dict_update(history=[])),
                                                "0 history records for 1 epochs"),
    "last.pt epoch is text": (RESUME, edit_checkpoint("last.pt", dict_update(epoch="one")), "'epoch' is 'one'"),
    "result.json is a list": (("runs",), edit_json("result.json", lambda d: [d]), "result.json holds a list"),
    "result.json test is a number": (("runs",), edit_json("result.json", dict_update(test=3)), "'test' is 3"),
    "history.csv garbage": (("plot", "curves"), lambda run: (run / "history.csv").write_text("epoch,x\nfoo,1\n"),
                            "history.csv is not a table of numbers"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_damaged_run_directory_is_one_line_and_untouched(finished, tmp_path, cli, case):
    command, damage, needle = CASES[case]
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    if command == RESUME:
        (run / "result.json").unlink()  # a run killed before it ended: resume must read last.pt
    damage(run)
    before = digest(run)
    code, out, err = cli(*command, run)
    assert_one_line_error(code, err, DAMAGED, needle)
    assert digest(run) == before  # nothing written, no test evaluation counted


def test_compare_names_the_damaged_run(finished, tmp_path, cli):
    good, bad = tmp_path / "good", tmp_path / "bad"
    shutil.copytree(finished, good)
    shutil.copytree(finished, bad)
    (bad / "manifest.json").write_text("[]")
    (bad / "result.json").write_text(json.dumps({"diagnosis": {"checks": []}}))
    code, _, err = cli("compare", good, bad, "--out", tmp_path / "cmp")
    assert_one_line_error(code, err, DAMAGED, f"{bad / 'result.json'}: 'diagnosis'")


def test_load_run_raises_damaged_run(finished, tmp_path):
    import trainlab

    run = tmp_path / "run"
    shutil.copytree(finished, run)
    edit_json("data.json", without("num_outputs"))(run)
    with pytest.raises(DamagedRun, match="data.json has no 'num_outputs'"):
        trainlab.load_run(run)
    assert trainlab.load_run(finished).predict_proba(torch.zeros(2, 1, 8, 8, dtype=torch.uint8)).shape == (2, 10)


# ----------------------------------------------------------------------------- --out checked before any work

def test_eval_out_existing_file_refuses_before_the_test_look(finished, tmp_path, cli):
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    target = tmp_path / "taken.txt"
    target.write_text("mine")
    before = digest(run)
    code, _, err = cli("eval", run, "--out", target)
    assert_one_line_error(code, err, f"--out {target} exists and is not a directory")
    assert digest(run) == before and target.read_text() == "mine"
    assert json.loads((run / "manifest.json").read_text())["test_evaluations"] == 1


@pytest.mark.parametrize("args", [
    ("cv", "{config}", "--folds", "2"), ("tune", "{config}", "--trials", "1"), ("lr-find", "{config}"),
    ("runs", "{runs}"), ("compare", "{run}", "{run}"), ("plot", "curves", "{run}"), ("plot", "activations", "relu"),
    ("train", "{config}"), ("predict", "{run}"),
])
@pytest.mark.parametrize("where", ["file", "below a file"])
def test_every_out_is_checked_before_any_work(finished, tmp_path, cli, args, where, write_config):
    taken = tmp_path / "taken.txt"
    taken.write_text("mine")
    out = taken if where == "file" else taken / "sub"
    values = {"config": write_config(tiny_config()), "runs": finished.parent, "run": finished}
    before = digest(finished)
    code, _, err = cli(*(a.format(**values) for a in args), "--out", out)
    assert_one_line_error(code, err, f"--out {out}")
    assert taken.read_text() == "mine" and digest(finished) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml", "taken.txt"]  # nothing else written


def test_export_out_checked_before_any_work(finished, tmp_path, cli):
    code, _, err = cli("export", finished, "--out", tmp_path)
    assert_one_line_error(code, err, "is a directory; name the file")
    (tmp_path / "f").write_text("x")
    code, _, err = cli("export", finished, "--out", tmp_path / "f" / "model.onnx")
    assert_one_line_error(code, err, "is not a directory")
