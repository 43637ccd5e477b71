"""Cases and the contract check of the adversarial battery (tests/test_adversarial.py runs them).

    PYTHONPATH=src python tests/adversarial.py      # every case in-process, then the tally (tried, clean, ...)

The contract for bad input: exit 2, exactly one `error: ` line on stderr, no traceback, no file changed
outside --out (the finished run in the world included). Cases are generated: every config key, walked from
the dataclasses behind the registries, x bad values for its type and declared range; each run-directory
file x ways to damage it x the commands that read it; hostile command lines and config files. A case marked
ANY is an edge value validation may accept (an empty list, a huge count): then the run may also succeed
(exit 0), but it still must not crash.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import os
import shutil
import sys
import time
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from PIL import Image

from trainlab.cli.commands import registries
from trainlab.cli.docs import REGISTRY_FIELDS
from trainlab.data.config import DataConfig
from trainlab.engine.settings import TrainConfig
from trainlab.models.config import ModelConfig
from trainlab.run.config import Config

REFUSE, ANY = "refuse", "any"
LONG = "x" * 5000
NESTED = {"a": {"b": 1}}
BASE = {"seed": 0, "data": {"name": "digits", "batch_size": 32}, "model": {"name": "mlp", "hidden": [8]},
        "train": {"epochs": 1}}


@dataclass
class World:
    """A folder every case runs in: data files, a finished run, a working directory and a temp directory."""

    root: Path

    def __getattr__(self, name: str) -> Path:
        return self.root / {"run": "run", "csv": "data/t.csv", "images": "data/img", "texts": "data/text.csv",
                            "png": "data/digit.png", "cwd": "cwd", "tmp": "tmp"}[name]


@dataclass
class Case:
    id: str
    expect: str  # REFUSE: exit 2 with one `error:` line; ANY: exit 0 is fine too
    build: Callable[[World, Path], list]  # (world, the case's own empty folder) -> argv; may write files there
    run_may_change: bool = False  # a damaged run copy may be rewritten by a command that succeeds (eval counts)


def make_world(root: Path) -> World:
    from trainlab.run.config import build_config  # start-up time: torch only once the world is built
    from trainlab.workflows.train import train_run

    w = World(root)
    for d in ("data/img/a", "data/img/b", "cwd", "tmp"):
        (root / d).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rows = [f"{a:.3f},{b:.3f},{int(a + b > 0)}" for a, b in rng.normal(size=(60, 2))]
    w.csv.write_text("a,b,y\n" + "\n".join(rows) + "\n")
    for i in range(6):
        for c, value in (("a", 40), ("b", 200)):
            Image.fromarray(np.full((8, 8), value + i, np.uint8)).save(w.images / c / f"{i}.png")
    w.texts.write_text("text,label\n" + "".join(f"{'good fine' if i % 2 else 'bad awful'} {i},{i % 2}\n"
                                                 for i in range(40)))
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(w.png)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        train_run(build_config(BASE), w.run, quiet=True)
    return w


# ----------------------------------------------------------------------------- config keys x bad values

def contexts(w: World) -> dict[str, dict]:
    """Config sections that make each registry entry's own keys apply (data.name=csv for data.path, ...)."""
    seq = {"model": {"name": "rnn", "hidden": 8}}
    no_norm = {"transforms": {"train": [], "eval": []}}
    data = {"csv": {"name": "csv", "path": str(w.csv)},
            "image_folder": {"name": "image_folder", "path": str(w.images), "image_size": [8, 8], "channels": 1},
            "text": {"name": "text", "path": str(w.texts), **no_norm},
            "first_marker": {"name": "first_marker", "samples": 100, **no_norm},
            "timeseries": {"name": "timeseries"}}
    out = {"": {}}
    for name, section in data.items():
        out[f"data.name={name}"] = {"data": section, **(seq if name in ("text", "first_marker", "timeseries") else {})}
    regs = registries()
    out.update({f"model.name={n}": {"model": {"name": n}} for n in regs["models"].names()})
    out.update({f"train.optimizer={n}": {"train": {"epochs": 1, "optimizer": n}} for n in regs["optimizers"].names()})
    out.update({f"train.scheduler={n}": {"train": {"epochs": 1, "scheduler": n}} for n in regs["schedulers"].names()})
    return out


def config_keys() -> list[tuple[str, str, Any, dict]]:
    """(context, dotted key, type, opt metadata) for every key a config can hold."""
    regs, keys = registries(), []

    def walk(cls, prefix: str, ctx: str, skip=()) -> None:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.name in skip or f.name.endswith("params"):
                continue
            key = f"{prefix}.{f.name}" if prefix else f.name
            if dataclasses.is_dataclass(hints[f.name]):
                walk(hints[f.name], key, ctx)
            else:
                keys.append((ctx, key, hints[f.name], dict(f.metadata)))

    walk(Config, "", "", skip=("data", "model", "train"))
    sections = ((DataConfig, "data", "datasets", "name"), (ModelConfig, "model", "models", "name"),
                (TrainConfig, "train", "optimizers", "optimizer"), (None, "train", "schedulers", "scheduler"))
    for cls, section, kind, field in sections:
        if cls is not None:
            walk(cls, section, "")
        for name in regs[kind].names():
            entry = regs[kind].entry(name)
            if entry.config is not None:
                walk(entry.config, section, f"{section}.{field}={name}")
    return keys


def _strip_none(tp: Any) -> Any:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0] if len(args) == 1 else typing.Union[tuple(args)]  # noqa: UP007 - rebuilt from parts
    return tp


def _range_values(meta: dict, number: type) -> list[tuple[str, Any, str]]:
    out = []
    if "ge" in meta:
        out.append(("below-ge", number(meta["ge"] - 1), REFUSE))
    if "gt" in meta:
        out.append(("at-gt", number(meta["gt"]), REFUSE))
    if "le" in meta:
        out += [("above-le", number(meta["le"] + 1), REFUSE), ("huge", number(10**30), REFUSE)]
    if "lt" in meta:
        out.append(("at-lt", number(meta["lt"]), REFUSE))
    if "le" not in meta and "lt" not in meta:
        out.append(("huge", number(10**30), ANY))
    if not {"ge", "gt"} & set(meta):
        out.append(("negative", number(-1), ANY))
    return out


def bad_values(section: str, name: str, tp: Any, meta: dict) -> list[tuple[str, Any, str]]:
    """(label, value, expectation) for one key: wrong types, out-of-range, non-finite, empty, long, nested."""
    base, registry = _strip_none(tp), REGISTRY_FIELDS.get((section, name)) or REGISTRY_FIELDS.get((None, name))
    origin, args = typing.get_origin(base), typing.get_args(base)
    out = [("mapping", NESTED, ANY if base is dict else REFUSE)]
    if base is dict:
        return out + [("string", "abc", REFUSE), ("list", [1, 2], REFUSE)]
    if base is bool:
        return out + [("string", "maybe", REFUSE), ("int", 2, REFUSE), ("list", [True], REFUSE)]
    if base is int:
        return out + [("string", "abc", REFUSE), ("fraction", 1.5, REFUSE), ("bool", True, REFUSE),
                      ("list", [1, 2], REFUSE), ("nan", float("nan"), REFUSE), ("inf", float("inf"), REFUSE),
                      *_range_values(meta, int)]
    if base is float:
        return out + [("string", "abc", REFUSE), ("bool", True, REFUSE), ("list", [0.5], REFUSE),
                      ("nan", float("nan"), REFUSE), ("inf", float("inf"), REFUSE), ("-inf", float("-inf"), REFUSE),
                      ("nan-string", "nan", REFUSE), ("overflow-string", "1e999", REFUSE), *_range_values(meta, float)]
    if base is str:
        named = REFUSE if registry else ANY  # a registry name is checked on load; a path or column when read
        return out + [("list", [1, 2], REFUSE), ("int", 5, REFUSE), ("unknown", "no_such_thing", named),
                      ("long", LONG, named)]
    if origin is Literal:
        return out + [("unknown", "no_such_choice", REFUSE), ("int", 1, REFUSE), ("long", LONG, REFUSE)]
    if origin is list and args[0] is int:
        elem = [(f"element-{label}", [v], e) for label, v, e in _range_values(meta, int)]
        return out + [("string", "abc", REFUSE), ("nested-list", [[1]], REFUSE), ("fractions", [1.5], REFUSE),
                      ("bools", [True], REFUSE), ("empty", [], ANY), *elem]
    if origin is list and args[0] is str:
        return out + [("ints", [1, 2], REFUSE), ("nested-list", [["a"]], REFUSE), ("empty", [], ANY),
                      ("long", [LONG], ANY)]
    if origin is list and args[0] is dict:
        return out + [("string", "abc", REFUSE), ("ints", [1], REFUSE), ("no-name", [{}], REFUSE),
                      ("unknown", [{"name": "no_such_transform"}], REFUSE),
                      ("bad-argument", [{"name": "normalize", "bogus": 1}], REFUSE),
                      ("nan-mean", [{"name": "normalize", "mean": float("nan"), "std": 1.0}], REFUSE),
                      ("huge-resize", [{"name": "resize", "size": 10**6}], REFUSE), ("empty", [], ANY)]
    if origin in (typing.Union, types.UnionType):  # bool | "auto", "auto" | list of metric names, int | "auto", URI
        # a union that takes any string (track.mlflow: a URI) or any int in range (num_threads) accepts those
        string = ANY if str in args else REFUSE
        ints = [*_range_values(meta, int)] if int in args else [("int", 7, REFUSE)]
        return out + [("string", "no_such_choice", string), *ints, ("nested-list", [[1]], REFUSE)]
    raise AssertionError(f"no bad values for {section}.{name}: {tp}")


def yaml_text(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=10**9).strip()
    return text[: -len("...")].strip() if text.endswith("...") else text


def set_key(raw: dict, key: str, value: Any) -> None:
    *path, last = key.split(".")
    node = raw
    for part in path:
        node = node.setdefault(part, {})
    node[last] = value


def config_cases() -> list[Case]:
    cases = []
    for ctx_name, key, tp, meta in config_keys():
        section, name = (key.split(".")[0], key.split(".")[-1]) if "." in key else (None, key)
        for i, (label, value, expect) in enumerate(bad_values(section, name, tp, meta)):
            cid = f"{key}={label}" + (f"[{ctx_name}]" if ctx_name else "")
            cases.append(Case(cid, expect, _config_build(ctx_name, key, value, override=i % 2 == 1)))
    return cases


def _config_build(ctx_name: str, key: str, value: Any, override: bool):
    def build(w: World, folder: Path) -> list:
        raw = yaml.safe_load(yaml.safe_dump(BASE))
        for section, values in contexts(w)[ctx_name].items():
            raw[section] = dict(values)
        extra = [f"{key}={yaml_text(value)}"] if override else []
        if not override:
            set_key(raw, key, value)
        (folder / "config.yaml").write_text(yaml.safe_dump(raw))
        return ["train", folder / "config.yaml", *extra, "--out", folder / "out", "--dry-run"]
    return build


# ----------------------------------------------------------------------------- the contract

def snapshot(root: Path, skip: Path) -> dict[str, str]:
    """Relative path -> content hash of every file and folder under root, except under `skip`."""
    found = {}
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        dirs[:] = [d for d in dirs if here / d != skip]
        for d in dirs:
            found[str((here / d).relative_to(root)) + "/"] = "dir"
        for f in files:
            p = here / f
            found[str(p.relative_to(root))] = hashlib.sha1(p.read_bytes()).hexdigest() if p.is_file() else "other"
    return found


def check(case: Case, w: World, run_cli: Callable[..., tuple[int, str, str]]) -> str:
    """Run `case` in world `w`; return 'clean' (refused as promised) or 'accepted'; AssertionError otherwise."""
    folder = w.root / "cases" / case.id.replace("/", "_")[:100]
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    argv = case.build(w, folder)
    out = folder / "out"
    before = snapshot(w.root, out)
    code, _, err = run_cli(*argv)
    after = snapshot(w.root, out)
    lines = [line for line in err.splitlines() if line.strip()]
    problems = []
    if "Traceback" in err or code == 1 or "internal error" in err:
        problems.append("traceback or internal error")
    accepted = case.expect == ANY and code == 0
    if not accepted and not (code == 2 and len(lines) == 1 and lines[0].startswith("error: ")):
        problems.append(f"exit {code} with {len(lines)} stderr line(s)")
    own_run = str((folder / "run").relative_to(w.root))  # a damaged copy a successful command may update
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k)
                     and not (accepted and case.run_may_change and k.startswith(own_run)))
    if changed:
        problems.append(f"changed outside --out: {changed[:4]}")
    shutil.rmtree(folder, ignore_errors=True)
    assert not problems, f"{case.id}: {'; '.join(problems)}; stderr: {err[-600:]!r}"
    return "accepted" if accepted else "clean"


def in_process(*args) -> tuple[int, str, str]:
    """`trainlab ARGS` in this process, outside pytest: (exit code, stdout, stderr)."""
    from trainlab.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


if __name__ == "__main__":
    import tempfile

    from test_adversarial import all_cases, render_nothing  # the full list: config keys, run dirs, command lines
    from trainlab.observe import plots

    plots._save = render_nothing  # figures are built, not rendered (as in the pytest run)
    with tempfile.TemporaryDirectory() as tmp:
        world = make_world(Path(tmp))
        os.chdir(world.cwd)
        tempfile.tempdir = str(world.tmp)
        tally, seconds = {"tried": 0, "clean": 0, "accepted": 0, "broken": 0, "tracebacks": 0}, {}
        for c in all_cases():
            tally["tried"] += 1
            start = time.perf_counter()
            try:
                tally[check(c, world, in_process)] += 1
            except AssertionError as e:
                tally["broken"] += 1
                tally["tracebacks"] += "traceback" in str(e)
                print("BROKEN", str(e)[:400], file=sys.stderr)
            seconds[c.id] = time.perf_counter() - start
        print(tally)
        print(f"{sum(seconds.values()):.0f}s in cases; slowest:",
              ", ".join(f"{k} {v:.1f}s" for k, v in sorted(seconds.items(), key=lambda kv: -kv[1])[:12]))
