"""Name -> builder registries, shared by the CLI, the tuner, the docs and the tests.

    MODELS = Registry("model")

    @MODELS.register("mlp", config=MLPConfig)
    def build_mlp(cfg: MLPConfig, input_shape, num_outputs) -> nn.Module: ...
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

    def entry(self, name: str) -> Entry:
        if name not in self._entries:
            raise UserError(f"unknown {self.kind} {name!r}; choose from: {', '.join(self.names())}")
        return self._entries[name]

    def get(self, name: str) -> Callable[..., Any]:
        return self.entry(name).builder

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def __iter__(self):
        return iter(self.names())
