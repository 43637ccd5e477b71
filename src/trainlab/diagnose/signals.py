"""The numbers a run records for its diagnosis, measured on the model without changing its training:
per-layer gradient RMS, activation distributions (dead ReLUs, saturated sigmoid/tanh) on a fixed probe
batch, the loss of a constant prediction, how far the weights moved in the first epoch, and the labels of a
batch source.

    sizes = weight_layers(model); rms = gradient_rms(trainer.last_grad_norms, sizes)
    stats = activation_stats(model, probe_x)               # {"layers.1": {"kind": "relu", "q": [...], "dead": 0.02}}
    dead = dead_relu_fractions(stats)                       # {"layers.1": 0.02, ...}

Everything runs in eval mode under `torch.no_grad()` and draws no random numbers, so a run's losses are the
same with and without it.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.utils.data import Subset

from trainlab.data.batches import LoaderBatches, TensorBatches

PROBE_SIZE = 256  # validation samples pushed through the model once per epoch to find dead units


def weight_layers(model: nn.Module) -> dict[str, int]:
    """Trainable weight matrices / kernels in forward order -> element count. Embeddings are left out:
    only the looked-up rows get gradients, which would read as 'vanishing'."""
    out = {}
    for mod_name, mod in model.named_modules():
        if isinstance(mod, nn.Embedding):
            continue
        for p_name, p in mod.named_parameters(recurse=False):
            if p.requires_grad and p.ndim >= 2:
                out[f"{mod_name}.{p_name}" if mod_name else p_name] = p.numel()
    order = [n for n, _ in model.named_parameters()]
    return {n: out[n] for n in order if n in out}


NORMALIZATION = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)


def has_normalization(model: nn.Module) -> bool:
    """BatchNorm / InstanceNorm / LayerNorm / GroupNorm anywhere: then a weight's gradient scales with 1 / its own
    norm (the layer after it undoes the weight's scale), so per-layer gradient sizes no longer compare."""
    return any(isinstance(m, NORMALIZATION) for m in model.modules())


def layer_labels(model: nn.Module) -> dict[str, str]:
    """Weight parameter name -> a readable legend: '1 Linear 64->256', '2 Conv2d 1->32 3x3', '3 LSTM weight_ih_l0'."""
    out = {}
    for mod_name, mod in model.named_modules():
        for p_name, p in mod.named_parameters(recurse=False):
            if not (p.requires_grad and p.ndim >= 2) or isinstance(mod, nn.Embedding):
                continue
            if isinstance(mod, nn.Linear):
                what = f"Linear {mod.in_features}->{mod.out_features}"
            elif isinstance(mod, nn.modules.conv._ConvNd):
                kernel = "x".join(map(str, mod.kernel_size))
                what = f"{type(mod).__name__} {mod.in_channels}->{mod.out_channels} {kernel}"
            else:
                what = f"{type(mod).__name__} {p_name}" if p_name != "weight" else type(mod).__name__
            out[f"{mod_name}.{p_name}" if mod_name else p_name] = f"{len(out) + 1} {what}"
    return out


def gradient_rms(norms: dict[str, float], sizes: dict[str, int]) -> dict[str, float]:
    """L2 norm -> root-mean-square per element, so layers of different sizes compare."""
    return {n: norms[n] / math.sqrt(sizes[n]) for n in sizes if n in norms}


def _unit_alive(out: torch.Tensor) -> torch.Tensor:
    """(B, F) / (B, T, F) -> (F,), (B, C, H, W) -> (C,): does the unit output > 0 for some sample?"""
    if out.ndim == 2:
        return (out > 0).any(0)
    if out.ndim == 3:
        return (out > 0).flatten(0, 1).any(0)
    return (out > 0).transpose(0, 1).flatten(1).any(1)


RELUS = (nn.ReLU, nn.ReLU6)
SQUASHING = (nn.Sigmoid, nn.Tanh)
OBSERVED = (*RELUS, *SQUASHING, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU)
SATURATED_SLOPE = 0.05  # slope below 5% of its peak = saturated, the zone `trainlab plot activations` greys out
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
QUANTILE_SAMPLE = 100_000  # outputs per layer the quantiles are read from (torch.quantile caps at 16M)


def _relative_slope(module: nn.Module, out: torch.Tensor) -> torch.Tensor:
    """Sigmoid/tanh outputs -> each output's slope over the function's peak slope (0.25 and 1), from the output."""
    return out * (1 - out) / 0.25 if isinstance(module, nn.Sigmoid) else 1 - out * out


def layer_activity(module: nn.Module, out: torch.Tensor) -> dict:
    """One activation module's output on the probe -> {"kind", "q": quantiles, "dead"? (ReLU), "saturated"?}.

    dead: share of units that output 0 for every probe sample (they get no gradient, so they stay dead);
    saturated: share of outputs where the slope is below 5% of its peak (sigmoid/tanh: the gradient through
    them nearly vanishes)."""
    flat = out.detach().float().flatten()
    step = max(1, flat.numel() // QUANTILE_SAMPLE)
    row = {"kind": type(module).__name__.lower(),
           "q": torch.quantile(flat[::step], torch.tensor(QUANTILES, device=flat.device)).tolist()}
    if isinstance(module, RELUS):
        row["dead"] = float(1 - _unit_alive(out).float().mean())
    elif isinstance(module, SQUASHING):
        row["saturated"] = float((_relative_slope(module, out) < SATURATED_SLOPE).float().mean())
    return row


@torch.no_grad()
def activation_stats(model: nn.Module, x: torch.Tensor) -> dict[str, dict]:
    """Every activation module's output distribution on `x`, in eval mode (no dropout, no RNG), in forward
    order: {"layers.1": {"kind": "relu", "q": [5%, 25%, 50%, 75%, 95%], "dead": 0.02}, ...}. A module
    called twice (one ReLU object reused) gets "name#2" for its second call."""
    mods = [(name, m) for name, m in model.named_modules() if isinstance(m, OBSERVED)]
    if not mods:
        return {}
    stats: dict[str, dict] = {}

    def hook_for(name):
        def hook(module, inputs, out):
            if isinstance(out, torch.Tensor):
                key = name if name not in stats else f"{name}#{sum(k.startswith(name) for k in stats) + 1}"
                stats[key] = layer_activity(module, out)
        return hook

    forward_with_hooks(model, x, [(m, hook_for(name)) for name, m in mods])
    return stats


def forward_with_hooks(model: nn.Module, x: torch.Tensor, hooks: list) -> None:
    """One eval-mode forward pass of `x` with forward hooks [(module, hook)] attached, then removed; the model's
    training mode is restored. What the probes (activation_stats, feature maps) look through."""
    handles = [m.register_forward_hook(h) for m, h in hooks]
    was_training = model.training
    try:
        model.eval()
        model(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)


def dead_relu_fractions(stats: dict[str, dict]) -> dict[str, float]:
    """activation_stats -> share of dead units of every ReLU module: {"layers.1": 0.02, ...}."""
    return {name: s["dead"] for name, s in stats.items() if "dead" in s}


def constant_prediction_loss(loss_fn: nn.Module, loss_name: str, task: str, y: torch.Tensor,
                             num_outputs: int) -> float | None:
    """Loss of the best constant guess (class priors / mean target): the yardstick for 'learned little'."""
    if len(y) == 0:
        return None
    with torch.no_grad():
        if task == "multilabel":  # each label's base rate, as a logit
            out = torch.logit(y.float().mean(0, keepdim=True).clamp(0.01, 0.99)).expand_as(y)
        elif task == "classification":
            prior = torch.bincount(y.long().reshape(-1), minlength=num_outputs).float().clamp_min(0.5)
            prior = prior / prior.sum()  # (K,)
            row = torch.logit(prior) if loss_name == "bce_with_logits" else prior.log()
            out = row.expand(len(y), -1)  # (N, K)
        else:
            y = y.float()
            out = y.mean(0, keepdim=True).expand_as(y)
        value = float(loss_fn(out, y))
    return value if math.isfinite(value) else None


def batch_targets(batches) -> torch.Tensor | None:
    """All labels of a batch source without decoding its inputs, when it can tell them (else None)."""
    if isinstance(batches, TensorBatches):
        return batches.y
    if isinstance(batches, LoaderBatches):
        ds = batches.dataset
        base = ds.dataset if isinstance(ds, Subset) else ds
        t = getattr(base, "targets", None)
        if t is not None:
            t = torch.as_tensor(t)
            return t[torch.as_tensor(list(ds.indices), dtype=torch.long)] if isinstance(ds, Subset) else t
    return None


def take_samples(batches, limit: int, max_batches: int = 4) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Up to `limit` samples (x, y) from the first batches, in natural order, through the batch source's own
    transforms with a private generator (the Trainer's is not touched)."""
    xs, ys, n = [], [], 0
    with torch.random.fork_rng(devices=[]):
        for b, (xb, yb) in enumerate(batches.iterate(None, 0, torch.Generator().manual_seed(0))):
            xs.append(xb)
            ys.append(yb)
            n += len(xb)
            if n >= limit or b + 1 >= max_batches:
                break
    return (torch.cat(xs)[:limit], torch.cat(ys)[:limit]) if xs else None


@torch.no_grad()
def update_ratio(model: nn.Module, initial: dict[str, torch.Tensor]) -> float | None:
    """|w - w0| / |w0| over all trainable weights: how far training has moved the model."""
    num, den = 0.0, 0.0
    for name, p in model.named_parameters():
        if name in initial:
            num += float((p.detach().float() - initial[name]).square().sum())
            den += float(initial[name].square().sum())
    return math.sqrt(num / den) if den > 0 else None
