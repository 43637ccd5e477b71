"""Reading YAML config files safely, and dotted `key=value` overrides.

    raw = read_yaml("examples/digits-mlp.yaml")           # a plain dict; no Python objects, no alias bombs
    apply_overrides(raw, ["train.epochs=3", "model.hidden=[256,64]"])

A config is data, so the loader refuses what data does not need: more than MAX_ALIASES alias
references (a 1 KB "billion laughs" file expands to gigabytes), files over MAX_BYTES, and duplicate
keys (YAML lets the last one win silently).
"""
from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import yaml

from trainlab.core.errors import UserError
from trainlab.core.paths import short_path

MAX_BYTES = 1_000_000  # a config is a few KB; a run's config.yaml with a long tune section stays far below
MAX_ALIASES = 100  # *anchor references per document; enough for shared transform lists
MAX_NODES = 100_000  # values after alias expansion: six levels of 8-fold aliases (1 KB) would be 300,000


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that counts alias references and refuses duplicate mapping keys."""

    def __init__(self, stream):
        super().__init__(stream)
        self.aliases = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise UserError(f"more than {MAX_ALIASES} YAML aliases (*name); write the values out instead")
        return super().compose_node(parent, index)

    def compose_document(self):
        node = super().compose_document()
        if node is not None and _expanded_size(node, {}) > MAX_NODES:
            raise UserError(f"YAML aliases expand to more than {MAX_NODES} values; write the config out plainly")
        return node

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, (str, int, float, bool)) and key in seen:
                raise UserError(f"duplicate key {key!r} (line {key_node.start_mark.line + 1}); "
                                f"YAML would keep only the last one")
            seen.add(key)
        return super().construct_mapping(node, deep)


def _expanded_size(node, memo: dict) -> int:
    """Values in `node` once every alias is expanded; memo[id] keeps it linear in the file's size."""
    if id(node) in memo:
        return memo[id(node)]
    memo[id(node)] = 1  # a cycle counts once (SafeLoader builds recursive structures)
    if isinstance(node, yaml.SequenceNode):
        size = 1 + sum(_expanded_size(n, memo) for n in node.value)
    elif isinstance(node, yaml.MappingNode):
        size = 1 + sum(_expanded_size(k, memo) + _expanded_size(v, memo) for k, v in node.value)
    else:
        size = 1
    memo[id(node)] = min(size, MAX_NODES + 1)
    return memo[id(node)]


def load_yaml_text(text: str, where: str) -> Any:
    """Parse YAML text with the strict loader; errors name `where` and the line."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f" (line {mark.line + 1})" if mark else ""
        detail = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise UserError(f"cannot parse {where}{line}: {detail}") from None
    except RecursionError:
        raise UserError(f"cannot parse {where}: nested too deeply") from None
    except ValueError as e:  # e.g. an integer of more than 4300 digits (Python's int conversion limit)
        raise UserError(f"cannot parse {where}: {(str(e).splitlines() or ['bad value'])[0][:120]}") from None


def read_yaml(path: str | Path) -> dict:
    """A config file -> dict ({} for an empty file); one-line errors for every way a file can be unusable."""
    p = Path(path)
    text = _read_text(p)
    raw = load_yaml_text(text, str(p))
    return raw if raw is not None else {}


def _read_text(p: Path) -> str:
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise UserError(f"config file not found: {p}") from None
    except OSError as e:  # ENAMETOOLONG, ELOOP, EACCES on a parent folder, ...
        raise UserError(f"cannot read config {short_path(p)}: {e.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        raise UserError(f"config {p} is a directory, not a YAML file")
    if not stat.S_ISREG(st.st_mode):
        raise UserError(f"config {p} is not a regular file (a FIFO or device); give a YAML file")
    if st.st_size > MAX_BYTES:
        raise UserError(f"config {p} is {st.st_size} bytes; a config is at most {MAX_BYTES} bytes")
    try:
        return p.read_bytes().decode("utf-8")
    except PermissionError:
        raise UserError(f"cannot read config {p}: permission denied") from None
    except UnicodeDecodeError:
        raise UserError(f"cannot read {p}: not UTF-8 text") from None
    except OSError as e:
        raise UserError(f"cannot read config {short_path(p)}: {e.strerror}") from None


def parse_override(text: str) -> tuple[list[str], Any]:
    if "=" not in text:
        raise UserError(f"bad override {text!r}; expected key=value, e.g. train.epochs=3")
    key, value = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise UserError(f"bad override {text!r}; expected key=value, e.g. train.epochs=3")
    try:
        parsed = load_yaml_text(value, f"override {key}") if value.strip() else ""
    except UserError:
        parsed = value
    return key.split("."), parsed


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    for text in overrides:
        path, value = parse_override(text)
        node = raw
        for part in path[:-1]:
            if not isinstance(node.get(part, {}), dict):
                raise UserError(f"bad override {text!r}: {part!r} is not a section")
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return raw
