"""Name -> builder registries, shared by the CLI, the tuner, the docs and the tests.

    MODELS = Registry("model")

    @MODELS.register("mlp", config=MLPConfig)
    def build_mlp(cfg: MLPConfig, input_shape, num_outputs) -> nn.Module: ...

A name ending in ":*" registers a family: `MODELS.entry("timm:convnext_atto")` finds the "timm:*" entry,
whose builder resolves the rest of the name in its library (which models exist is the library's business).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from trainlab.core.errors import UserError


@dataclass(frozen=True)
class Entry:
    name: str
    builder: Callable[..., Any]
    config: type | None  # dataclass of the builder's own options, or None
    help: str
    meta: dict = field(default_factory=dict)  # e.g. models: {"inputs": ("image", "tabular")}

    @property
    def family(self) -> bool:
        """A "prefix:*" entry standing for every "prefix:NAME" (e.g. timm:* for timm's models)."""
        return self.name.endswith(":*")


class Registry:
    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry] = {}

    def register(self, name: str, config: type | None = None, help: str | None = None, **meta):
        def wrap(fn):
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            doc = help or "".join((fn.__doc__ or "").strip().splitlines()[0:1])
            self._entries[name] = Entry(name, fn, config, doc, meta)
            return fn
        return wrap

    def add(self, name: str, builder: Callable[..., Any], config: type | None = None, help: str = "", **meta):
        self.register(name, config, help or None, **meta)(builder)

    def _lookup(self, name: str) -> Entry | None:
        prefix, colon, rest = name.partition(":")
        return self._entries.get(name) or (self._entries.get(f"{prefix}:*") if colon and rest else None)

    def entry(self, name: str) -> Entry:
        found = self._lookup(name)
        if found is None:
            raise UserError(f"unknown {self.kind} {name!r}; choose from: {', '.join(self.names())}")
        return found

    def get(self, name: str) -> Callable[..., Any]:
        return self.entry(name).builder

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        return self._lookup(name) is not None

    def __iter__(self):
        return iter(self.names())
