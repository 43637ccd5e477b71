"""`trainlab lr-find CONFIG`: learning-rate range test - suggests train.lr before a real run.

    trainlab lr-find examples/digits-mlp.yaml --out runs/digits-lr     # -> lr_find.png, result.json

The LR grows exponentially from --start to --end over --steps training steps (Smith, "Cyclical Learning
Rates", 2017); the loss is smoothed with an exponential moving average and the test stops once it exceeds
4x its best value (divergence). Suggested LR (`RULE`) = the point of steepest descent of the smoothed loss against
log(LR), first 10% of steps skipped; fastai's `valley` (halfway into the longest falling stretch) and `minimum`
(a tenth of the LR at the lowest loss) are reported next to it (`result["rules"]`). bench/lr_check.py checks them
against short training runs at a grid of LRs (bench/notes.md): steepest was kept, valley came out 10-50x too low.
The model's initial weights are restored afterwards, and the same seed gives the same curve and suggestion.
"""
from __future__ import annotations

import copy
import io
import math
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from trainlab.core.checkpoint import seed_everything
from trainlab.core.device import select_device
from trainlab.core.errors import UserError
from trainlab.core.files import make_dir, write_bytes
from trainlab.data.prepare import load_data
from trainlab.engine.catalog import LOSSES, OPTIMIZERS, loss_for
from trainlab.models.catalog import build_model
from trainlab.workflows.checks import check_fit
from trainlab.workflows.train import configure_torch

BETA = 0.9  # smoothing of the loss curve: an EMA over ~10 steps (more lags the curve by decades of LR)
DIVERGE = 4.0  # stop once the smoothed loss exceeds this multiple of its best value


def run_lr_find(cfg, out: Path, start: float = 1e-7, end: float = 10.0, steps: int = 200,
                dry_run: bool = False) -> dict:
    """`trainlab lr-find`: the range test and out/lr_find.png; the result, which the CLI prints and writes
    to out/result.json."""
    if not 0 < start < end:
        raise UserError(f"--start ({start:g}) must be > 0 and < --end ({end:g})")
    if steps < 10:
        raise UserError(f"--steps must be >= 10, got {steps}")
    make_dir(out)
    result = lr_range_test(cfg, start, end, 10 if dry_run else steps)
    plot(result, out / "lr_find.png")
    return result


def format_lr_find(result: dict, out: Path) -> str:
    """The lines `trainlab lr-find` prints: where the loss was lowest, the suggestion and how it was picked, the
    other rules' values, the plot."""
    others = ", ".join(f"{name} {lr:.2e}" for name, lr in result["rules"].items() if name != result["rule"])
    return (f"{result['steps_run']} steps, {result['stopped']}; loss lowest at lr {result['lr_min_loss']:.2e}\n"
            f"suggested learning rate: {result['suggested_lr']:.2e} = the {result['rule_means']} "
            f"-> train.lr={result['suggested_lr']:.2g}\n"
            f"other rules on the same curve: {others} ({alternative(result)}); in short sweeps of small tasks the "
            f"best lr was 2-4x the steepest-descent one (bench/notes.md): with a one-cycle or warm-up schedule, "
            f"whose train.lr is a peak, go higher\n"
            f"plot: {out / 'lr_find.png'}")


def alternative(result: dict) -> str:
    """'more cautious: 3.5e-04 = lowest-loss lr / 10' - or 'bolder' when that rate is the larger one."""
    alt = result["lr_min_loss"] / 10
    kind = "more cautious" if alt < result["suggested_lr"] else "bolder"
    return f"{kind}: {alt:.2e} = lowest-loss lr / 10"


def lr_range_test(cfg, start: float = 1e-7, end: float = 10.0, steps: int = 200, model=None) -> dict:
    """Sweep the LR on the config's training split; `model` (optional) gets its initial weights back."""
    configure_torch(cfg)
    device = select_device(cfg.train.device)
    data = load_data(cfg)
    view = data.view(data.splits.train, data.splits.val)  # never the test split
    check_fit(cfg, view, check_model=model is None)
    seed_everything(cfg.seed)
    if model is None:
        model = build_model(cfg.model, view.input_shape, view.bundle.num_outputs, **view.model_info)
    model.to(device)
    initial = copy.deepcopy(model.state_dict())
    try:
        curves = sweep(cfg, model, view.batches("train", device), view.bundle.task, start, end, steps)
    finally:
        model.load_state_dict(initial)  # the range test must not leave a half-trained model behind
    return analyse(*curves, steps)


def _batches(batches, generator):
    """Endless (x, y) batches: a new shuffled epoch whenever one ends."""
    while True:
        yield from batches.iterate(batches.order(generator), 0, generator)


def sweep(cfg, model, batches, task: str, start: float, end: float, steps: int) -> tuple[list, list, list]:
    """One optimizer step per LR value start * (end/start)^(i/(steps-1)) until divergence -> (lrs, losses, smoothed).

    smoothed: bias-corrected exponential moving average of the loss (what the stop rule and the suggestion use).
    """


    t = cfg.train
    loss_fn = LOSSES.get(loss_for(t.loss, task))(label_smoothing=t.label_smoothing)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = OPTIMIZERS.get(t.optimizer)(params, start, t.weight_decay, t.optimizer_params)
    generator = torch.Generator().manual_seed(cfg.seed)
    factor = (end / start) ** (1 / (steps - 1))
    lrs, losses, smoothed, avg, best = [], [], [], 0.0, math.inf
    model.train()
    bar = tqdm(range(steps), desc="lr-find", unit="step", leave=False, disable=None)  # a bar in a terminal only
    for i, (xb, yb) in zip(bar, _batches(batches, generator), strict=False):
        lr = start * factor ** i
        for group in opt.param_groups:
            group["lr"] = lr
        loss = loss_fn(model(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if t.grad_clip:
            torch.nn.utils.clip_grad_norm_(params, t.grad_clip)
        opt.step()
        value = loss.item()  # one sync per step: divergence must be seen at once
        avg = BETA * avg + (1 - BETA) * value
        current = avg / (1 - BETA ** (i + 1))  # the EMA starts at 0: correct its bias
        if not math.isfinite(value) or current > DIVERGE * best:
            break
        lrs.append(lr)
        losses.append(value)
        smoothed.append(current)
        best = min(best, current)
    return lrs, losses, smoothed


def steepest(lrs: list[float], smoothed: list[float]) -> int:
    """Index of the steepest descent of the smoothed loss against log(lr) (Smith; fastai's `steep`)."""
    slope = np.gradient(np.array(smoothed), np.log(np.array(lrs)))
    return int(np.argmin(slope))


def valley(lrs: list[float], smoothed: list[float]) -> int:
    """Index halfway into the longest valley (fastai's `valley`): the longest run of steps, not necessarily
    adjacent, along which the smoothed loss keeps falling (a longest decreasing subsequence), then the point
    1/3 + 1/6 of the way from its start to its end - past the flat start, before the bottom where it turns up.
    O(n^2) in the steps (200: 20k comparisons)."""
    n = len(smoothed)
    run = [1] * n  # run[i]: length of the longest decreasing subsequence ending at step i
    start = end = 0
    for i in range(1, n):
        for j in range(i):
            if smoothed[i] < smoothed[j] and run[i] < run[j] + 1:
                run[i] = run[j] + 1
        if run[end] < run[i]:
            end, start = i, i - run[i]
    third = (end - start) / 3
    return max(0, start + int(third) + int(third / 2))  # start is -1 when the valley begins at step 0


def minimum_tenth(lrs: list[float], smoothed: list[float]) -> float:
    """A tenth of the lr at the lowest smoothed loss (fastai's `minimum`): the loss still falls there."""
    return lrs[int(np.argmin(smoothed))] / 10


RULE = "steepest"  # what `suggested_lr` is. bench/lr_check.py (bench/notes.md, "lr-find's suggestion against a
#   sweep"): on 3 small tasks the best lr of a short sweep was 2-4x steepest's, 2-33x minimum/10's, 10-50x valley's
RULES = {"steepest": "steepest descent of the smoothed loss against log(lr) (first 10% of steps skipped)",
         "valley": "lr halfway into the longest stretch where the smoothed loss keeps falling (fastai's valley)",
         "minimum/10": "a tenth of the lr at the lowest smoothed loss (fastai's minimum)"}


def suggestions(lrs: list[float], smoothed: list[float]) -> dict[str, float]:
    """Every rule's lr on the curve, its noisy first 10% of steps skipped (as fastai does), and its last ones."""
    skip = min(len(lrs) // 10, len(lrs) - 3)
    lrs, smoothed = lrs[skip:], smoothed[skip:]
    return {"steepest": lrs[steepest(lrs, smoothed)], "valley": lrs[valley(lrs, smoothed)],
            "minimum/10": minimum_tenth(lrs, smoothed)}


def analyse(lrs: list[float], losses: list[float], smoothed: list[float], steps: int) -> dict:
    """The suggested lr (RULE) and the other rules' next to it, on the sweep's smoothed loss."""
    if len(lrs) < 5:
        raise UserError(f"the loss diverged after {len(lrs)} steps; lower --start")
    rules = suggestions(lrs, smoothed)
    lowest = int(np.argmin(smoothed))
    return {"suggested_lr": rules[RULE], "rule": RULE, "rule_means": RULES[RULE], "rules": rules,
            "lr_min_loss": lrs[lowest], "steps_run": len(lrs),
            "stopped": "diverged" if len(lrs) < steps else "end of sweep",
            "lrs": lrs, "losses": losses, "smoothed": smoothed}


def plot(result: dict, path: Path) -> None:
    from matplotlib.figure import Figure  # optional heavy dependency: imported on use

    fig = Figure(figsize=(6, 4), tight_layout=True)
    ax = fig.add_subplot()
    ax.plot(result["lrs"], result["losses"], color="0.75", lw=0.8, label="loss")
    ax.plot(result["lrs"], result["smoothed"], color="C0", label="smoothed loss")
    ax.axvline(result["suggested_lr"], color="C3", ls="--", label=f"suggested {result['suggested_lr']:.1e}")
    top = max(result["smoothed"][: max(1, len(result["smoothed"]) // 10)]) * 1.5  # keep divergence spikes off scale
    ax.set(xscale="log", ylim=(0, top), xlabel="learning rate", ylabel="training loss",
           title="learning-rate range test")
    ax.legend()
    png = io.BytesIO()  # rendered in memory, written atomically
    fig.savefig(png, format="png", dpi=100)
    write_bytes(path, png.getvalue())
