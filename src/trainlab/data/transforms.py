"""Transform pipelines from config, run on whole batches.

    transforms:
      train: [{name: random_affine, degrees: 10}, {name: normalize}]   # training samples only
      eval:  [{name: normalize}]                                     # val, test, predict

Every step maps a batch (B, C, H, W) / (B, F) / (B, T, F) to a batch. Deterministic steps (steps.py) come from
torchvision.transforms.v2.functional; random augmentations come from trainlab.data.augment, which draws
parameters per sample from an explicit torch.Generator (v2 would draw one set per batch), so the
in-memory and streaming paths both augment batched and a resumed run replays the same randomness.
`normalize` without mean/std fits them on the training split only (Pipeline.fit).
"""
from __future__ import annotations

import torch

from trainlab.core.errors import UserError
from trainlab.data.catalog import TRANSFORMS
from trainlab.data.steps import Normalize, ToFloat


def build_step(spec: dict | str):
    spec = {"name": spec} if isinstance(spec, str) else dict(spec)
    name = spec.pop("name", None)
    if name is None:
        raise UserError(f"transform {spec!r} has no name; e.g. {{name: normalize}}")
    builder = TRANSFORMS.get(name)()  # the step's class or factory
    try:
        step = builder(**spec)
    except TypeError as e:
        raise UserError(f"bad arguments for transform {name!r}: {e}") from None
    except ValueError as e:
        raise UserError(f"bad arguments for transform {name!r}: {e}") from None
    if not hasattr(step, "random"):
        step.random = TRANSFORMS.entry(name).meta["random"]  # batch augmentations from trainlab.data.augment
    return step


class Pipeline:
    """An ordered list of steps applied to a batch; `prefix()` / `rest()` split off what can run once up front."""

    def __init__(self, specs: list, uint8_input: bool):
        self.specs = [dict(s) if isinstance(s, dict) else {"name": s} for s in specs]
        self.steps = [build_step(s) for s in self.specs]
        if uint8_input and not any(isinstance(s, ToFloat) for s in self.steps):
            self.steps.insert(0, ToFloat())
            self.specs.insert(0, {"name": "to_tensor"})

    @property
    def random(self) -> bool:
        return any(s.random for s in self.steps)

    def _first_random(self) -> int:
        return next((i for i, s in enumerate(self.steps) if s.random), len(self.steps))

    def prefix(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the deterministic steps before the first random one (done once for in-memory data). A normalize
        right after ToFloat made a new float tensor from uint8 works in place on it: a float copy of MNIST's
        training split is 162 MB, and (x - mean) / std would hold two more at once."""
        fresh = False  # x is a new tensor ToFloat made from uint8 (never the caller's, nor a view of it)
        for s in self.steps[: self._first_random()]:
            if fresh and isinstance(s, Normalize) and not torch.compiler.is_compiling():  # (export traces: as is)
                x = s.apply_(x)
            else:
                out = s(x)
                fresh, x = isinstance(s, ToFloat) and x.dtype == torch.uint8 and out is not x, out
        return x

    def rest(self, x: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
        """Apply the remaining steps to a batch that went through `prefix`."""
        for s in self.steps[self._first_random():]:
            x = s(x, g)
        return x

    def __call__(self, x: torch.Tensor, g: torch.Generator | None = None) -> torch.Tensor:
        return self.rest(self.prefix(x), g)

    def fit(self, x: torch.Tensor) -> None:
        """Fit `normalize` statistics on training inputs x (N, ...), skipping random augmentations."""
        fitted = [i for i, s in enumerate(self.steps) if isinstance(s, Normalize)]
        steps = self.steps[:fitted[-1] + 1] if fitted else []  # nothing after the last normalize is needed
        if len(steps) == 2 and isinstance(steps[0], ToFloat) and x.dtype == torch.uint8 and x.ndim == 4:
            return steps[1].fit_bytes(x)  # the usual image pipeline: bytes -> float -> normalize
        for s in steps:
            if isinstance(s, Normalize):
                s.fit(x)
            if not s.random:
                x = s(x)

    def fit_like(self, other: Pipeline) -> None:
        """Take the fitted statistics of a pipeline with the same steps (train and eval both `[normalize]`)."""
        for mine, theirs in zip(self.steps, other.steps, strict=True):
            if isinstance(mine, Normalize):
                mine.mean, mine.std = theirs.mean, theirs.std

    def state(self) -> list[dict]:
        """The specs with fitted statistics filled in: enough to rebuild the same pipeline for predict/export."""
        out = []
        for spec, step in zip(self.specs, self.steps, strict=False):
            out.append({**spec, **step.state()} if isinstance(step, Normalize) else spec)
        return out


def transform_kinds() -> dict[str, str]:
    return {n: TRANSFORMS.entry(n).help for n in TRANSFORMS.names()}
