"""train.precision and train.channels_last as one object, resolved once per run (the anchor: Lightning
Fabric's precision plugins). The Trainer asks it for the autocast context, the gradient scaler and the
dtype of inputs; nothing else compares precision strings.

    choice = resolve(settings, device, probe)   # RunChoice(precision=Precision("fp32", ...), channels_last=False)
    with choice.precision.autocast(): loss = loss_fn(model(x), y)
    scaler = choice.precision.grad_scaler()

`auto` is decided by the machine, not by the example: on a CPU bf16 only where oneDNN runs it natively and
it measures faster for this model (a few timed steps on a copy of the model, cached per machine and model
shape, core/machine.Choices); on CUDA bf16 where supported, else fp32 with TF32 matmuls; on MPS fp32.
An explicit value is obeyed, with a warning when it measures much slower than fp32.
A new precision is one entry in PRECISIONS.
"""
from __future__ import annotations

import contextlib
import copy
import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from trainlab.core.errors import DamagedRun
from trainlab.core.machine import Choices, fingerprint, native_bf16


@dataclass(frozen=True)
class Case:
    dtype: torch.dtype | None  # autocast dtype; None = no autocast
    scaled: bool  # needs a gradient scaler (fp16 gradients underflow without one)


PRECISIONS: dict[str, Case] = {
    "fp32": Case(None, False),
    "bf16": Case(torch.bfloat16, False),
    "fp16": Case(torch.float16, True),
}
SMALL = 5e6  # multiply-adds per training batch below which bf16 cannot pay for its casts: fp32, not measured
FASTER = 1.2  # auto takes bf16 / channels_last only when it measures at least this much faster
MUCH_SLOWER = 1.5  # an explicit setting measured this much slower than the alternative gets a warning
NO_CONV = "no 2-D convolution in the model"  # the layout needs no saying then


@dataclass(frozen=True)
class Precision:
    name: str  # a key of PRECISIONS
    device_type: str
    reason: str = ""

    @property
    def input_dtype(self) -> torch.dtype:
        """Inputs stay float32 under autocast: the autocast-eligible ops cast them, the rest need full precision."""
        return torch.float32

    def autocast(self):
        dtype = PRECISIONS[self.name].dtype
        return contextlib.nullcontext() if dtype is None else torch.autocast(self.device_type, dtype=dtype)

    def grad_scaler(self) -> torch.amp.GradScaler:
        return torch.amp.GradScaler(self.device_type, enabled=PRECISIONS[self.name].scaled)


@dataclass(frozen=True)
class RunChoice:
    """What `auto` (or the config) became on this machine, with the reasons printed at the start of a run."""
    precision: Precision
    channels_last: bool
    layout_reason: str = ""
    warnings: tuple[str, ...] = ()
    measured: dict = field(default_factory=dict)  # seconds per training step, by variant, when measured

    def inputs(self, xb: torch.Tensor) -> torch.Tensor:
        """A batch in the dtype and memory layout of this choice (float64 data becomes float32)."""
        if xb.is_floating_point() and xb.dtype != self.precision.input_dtype:
            xb = xb.to(self.precision.input_dtype)
        if self.channels_last and xb.ndim == 4:
            xb = xb.contiguous(memory_format=torch.channels_last)
        return xb

    def lines(self) -> list[str]:
        layout = [] if self.layout_reason == NO_CONV else [
            f"channels_last {str(self.channels_last).lower()}: {self.layout_reason}"]
        return [f"precision {self.precision.name}: {self.precision.reason}", *layout]

    def to_dict(self) -> dict:
        return {"precision": self.precision.name, "precision_reason": self.precision.reason,
                "channels_last": self.channels_last, "channels_last_reason": self.layout_reason,
                "measured_step_seconds": self.measured}


Probe = Callable[[list[tuple[str, bool]]], dict]  # [(precision, channels_last), ...] -> seconds per step of each


def step_probe(model: nn.Module, loss_fn: Callable, xb: torch.Tensor, yb: torch.Tensor, device_type: str) -> Probe:
    """Times forward + backward of a COPY of `model` on one batch, the variants in turn (A B A B ...: a busy
    machine slows all of them alike) and the fastest step of each. The real model, its BatchNorm statistics,
    its gradients and every random generator stay untouched, so a measured run trains bit-identically."""
    def seconds(variants: list[tuple[str, bool]]) -> dict:
        copies = {v: _copy(model, xb, v[1]) for v in variants}
        best = {v: float("inf") for v in variants}
        with torch.random.fork_rng(devices=[]):  # dropout draws from the global generator
            for round_ in range(4):
                for v, (m, x) in copies.items():
                    t = time.perf_counter()
                    with Precision(v[0], device_type).autocast():
                        loss = loss_fn(m(x), yb)
                    loss.float().backward()
                    m.zero_grad(set_to_none=True)
                    if round_:  # the first step allocates and picks kernels
                        best[v] = min(best[v], time.perf_counter() - t)
                if round_ and max(best.values()) > 0.5:  # a big model: one timed step of each tells enough
                    break
        return best
    return seconds


def _copy(model: nn.Module, xb: torch.Tensor, channels_last: bool) -> tuple[nn.Module, torch.Tensor]:
    m = copy.deepcopy(model).train()
    if channels_last:
        return m.to(memory_format=torch.channels_last), xb.contiguous(memory_format=torch.channels_last)
    return m, xb


def multiply_adds(model: nn.Module, xb: torch.Tensor) -> int:
    """Multiply-adds of one forward pass over the batch xb in the model's Linear and Conv layers (their
    output elements x the inputs each one sums), counted with hooks in eval mode: nothing is updated."""
    total = 0

    def count(module, inputs, output):
        nonlocal total
        if isinstance(module, nn.Linear):
            total += output.numel() * module.in_features
        elif isinstance(module, nn.modules.conv._ConvNd):
            total += output.numel() * (module.in_channels // module.groups) * math.prod(module.kernel_size)

    handles = [m.register_forward_hook(count) for m in model.modules()
               if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd))]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            model(xb)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return total


def shape_key(model: nn.Module, xb: torch.Tensor) -> str:
    """The machine, the model's parameter shapes and the batch's shape: what a measured choice depends on.
    Shapes only, not class or parameter names: the same network written by hand (a course's nn.Module) and
    built from a config gets the same choice, so both train the same numbers."""
    shapes = repr([(tuple(xb.shape), str(xb.dtype))] + [tuple(p.shape) for p in model.parameters()])
    return f"{fingerprint()}|{hashlib.sha256(shapes.encode()).hexdigest()[:16]}"


def _label(variant: tuple[str, bool]) -> str:
    return f"{variant[0]}{'+channels_last' if variant[1] else ''}"


class Measurements:
    """Step times of one model on this machine, measured on demand and cached (core/machine.Choices);
    `macs`: the multiply-adds of one training batch's forward pass (None: unknown)."""

    def __init__(self, probe: Probe | None, key: str | None, choices: Choices | None = None,
                 macs: int | None = None):
        self.probe, self.key, self.macs = probe, key, macs
        self.choices = choices or Choices()
        self.values = dict((self.choices.get(key) or {}) if key else {})
        self.loaded = dict(self.values)

    def __call__(self, *variants: tuple[str, bool]) -> list[float | None]:
        """Seconds per step of each (precision, channels_last) variant; the missing ones measured together."""
        missing = [v for v in variants if _label(v) not in self.values]
        if missing and self.probe is not None:
            for v, seconds in (self.probe(missing) or {}).items():
                self.values[_label(v)] = round(seconds, 6)
        return [self.values.get(_label(v)) for v in variants]

    def save(self) -> None:
        if self.key and self.values != self.loaded:
            self.choices.put(self.key, self.values)


def resolve(precision: str, channels_last: bool | str, device: torch.device, has_conv2d: bool,
            measure: Measurements | None = None) -> RunChoice:
    """The run's precision and memory layout: `auto` decided here, explicit values checked (warnings)."""
    measure = measure or Measurements(None, None)
    if precision == "auto" and channels_last == "auto" and has_conv2d and device.type == "cpu" and native_bf16() \
            and (measure.macs is None or measure.macs >= SMALL):
        measure(("fp32", False), ("bf16", False), ("fp32", True), ("bf16", True))  # one interleaved session
    warnings: list[str] = []
    if precision == "auto":
        p = _auto_precision(device, measure)
    else:
        p = Precision(precision, device.type, "set in the config")
        warnings += _slower_warning(p, device, measure)
    layout, why = (_auto_layout(p, device, has_conv2d, measure) if channels_last == "auto"
                   else (bool(channels_last), "set in the config"))
    if p.name == "fp32" and device.type == "cuda":
        # TF32 matmuls and convolutions on Ampere and later: fp32 storage, 10-bit mantissa products
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    measure.save()
    return RunChoice(p, layout, why, tuple(warnings), dict(measure.values))


def choose(precision: str, channels_last: bool | str, model: nn.Module, loss_fn: Callable, batches,
           device: torch.device, recorded_choice: dict | None = None) -> RunChoice:
    """The run's choice: a checkpoint's record as it is, else `resolve` with step timings of `model` on the
    first of `batches` (the Batches protocol, data/batches.py) where a choice depends on them."""
    if recorded_choice:
        return recorded(recorded_choice, device)
    has_conv2d = any(isinstance(m, nn.Conv2d) for m in model.modules())
    needs = precision != "fp32" or (channels_last == "auto" and has_conv2d)
    measure = _measurements(model, loss_fn, batches, device) if needs and batches is not None else None
    return resolve(precision, channels_last, device, has_conv2d, measure)


def _measurements(model: nn.Module, loss_fn: Callable, batches, device: torch.device) -> Measurements | None:
    """Step timings on one training batch: CPU only (CUDA and MPS are decided by capability)."""
    if device.type != "cpu":
        return None
    # a random augmentation of the sample batch draws from a throwaway generator, nothing of the run's
    with torch.random.fork_rng(devices=[]):
        try:
            xb, yb = next(iter(batches.iterate(None, 0, torch.Generator().manual_seed(0))))
        except StopIteration:
            return None
    try:
        macs = multiply_adds(model, xb)
    except (RuntimeError, ValueError, TypeError, IndexError):  # the guide's own check names the misfit
        return None
    return Measurements(_safe(step_probe(model, loss_fn, xb, yb, device.type)), shape_key(model, xb), macs=macs)


def _safe(probe: Probe) -> Probe:
    """A probe whose failure means 'not measured': a model that cannot take the batch is reported by the guide's
    own one-line check, not by a timing run."""
    def seconds(variants):
        try:
            return probe(variants)
        except (RuntimeError, ValueError, TypeError, IndexError):
            return None
    return seconds


def recorded(choice: dict, device: torch.device) -> RunChoice:
    """The choice a checkpoint recorded: a resumed run keeps it, whatever this machine would pick now."""
    reason = "recorded in the checkpoint (a resumed run keeps its precision)"
    if not isinstance(choice, dict) or choice.get("precision") not in PRECISIONS \
            or not isinstance(choice.get("channels_last"), bool):
        raise DamagedRun(f"the checkpoint's recorded precision is not one of {', '.join(PRECISIONS)}: {choice!r:.80}")
    return RunChoice(Precision(choice["precision"], device.type, reason), bool(choice["channels_last"]), reason)


def _auto_precision(device: torch.device, measure: Measurements) -> Precision:
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return Precision("bf16", "cuda", "this GPU supports bfloat16")
        return Precision("fp32", "cuda", "this GPU has no bfloat16; TF32 matmuls where the GPU has them")
    if device.type != "cpu":
        return Precision("fp32", device.type, f"mixed precision on {device.type} is not measured by trainlab")
    if not native_bf16():
        return Precision("fp32", "cpu", "this CPU has no native bfloat16 (oneDNN); bf16 would be emulated, "
                                        "several times slower")
    if measure.macs is not None and measure.macs < SMALL:
        return Precision("fp32", "cpu", f"a batch takes {measure.macs / 1e6:.1f}M multiply-adds, too few for "
                                        f"bf16 to pay for its casts")
    t32, t16 = measure(("fp32", False), ("bf16", False))
    if t32 is None or t16 is None:
        return Precision("fp32", "cpu", "no batch to measure bf16 on; fp32 is exact")
    ratio = t32 / t16
    if ratio >= FASTER:
        return Precision("bf16", "cpu", f"native bfloat16, measured {ratio:.1f}x faster than fp32 for this model")
    return Precision("fp32", "cpu", f"bf16 measured {_speed(ratio)} fp32 for this model; fp32 is exact")


def _slower_warning(p: Precision, device: torch.device, measure: Measurements) -> list[str]:
    if device.type != "cpu" or p.name == "fp32" or measure.probe is None and not measure.values:
        return []
    t, t32 = measure((p.name, False), ("fp32", False))
    if t is None or t32 is None or t < MUCH_SLOWER * t32:
        return []
    why = "" if native_bf16() else " (this CPU has no native bfloat16)"
    return [f"train.precision={p.name} measured {t / t32:.1f}x slower than fp32 for this model on this "
            f"CPU{why}; train.precision=auto picks the faster one"]


def _auto_layout(p: Precision, device: torch.device, has_conv2d: bool, measure: Measurements) -> tuple[bool, str]:
    if not has_conv2d:
        return False, NO_CONV
    if device.type == "cuda":
        on = p.name != "fp32"
        return on, "tensor-core convolutions prefer NHWC" if on else "fp32 convolutions gain little from NHWC"
    if device.type != "cpu":
        return False, f"not measured on {device.type}"
    if measure.macs is not None and measure.macs < SMALL:
        return False, f"a batch takes {measure.macs / 1e6:.1f}M multiply-adds, too few for the layout to matter"
    t, t_cl = measure((p.name, False), (p.name, True))
    if t is None or t_cl is None:
        return False, "no batch to measure on"
    ratio = t / t_cl
    if ratio >= FASTER:
        return True, f"NHWC measured {ratio:.1f}x faster than the default layout for this model"
    return False, f"NHWC measured {_speed(ratio)} the default layout for this model"


def _speed(ratio: float) -> str:
    return f"{1 / ratio:.2f}x slower than" if ratio < 1 else f"only {ratio:.2f}x faster than"
