"""Fastest hand-written recipe for a small CNN to a target test accuracy on real MNIST (plain PyTorch).

The network is the one `examples/mnist-cnn.yaml` builds with trainlab's `cnn` model: conv blocks
(Conv2d k x k, padding k//2, no bias -> BatchNorm2d -> ReLU -> MaxPool2d(2)) for channels [16, 32],
then Flatten -> Linear(1568, 128) -> ReLU -> Dropout(0.25) -> Linear(128, 10). The architecture keys
(channels, kernel_size, pool, batch_norm, dropout, hidden) mirror that model's config keys, so a
recipe found here can be written as a trainlab config.

The 60k (or the library's 54k) training images are decoded once into one float tensor (N, 1, 28, 28),
normalized once, and each epoch slices a torch.randperm into batches. Only the training loop is timed;
the test-set evaluation after each epoch runs outside the clock.

    .venv/bin/python bench/recipes/handwritten_cnn.py --seed 0
    .venv/bin/python bench/recipes/handwritten_cnn.py --seed 0 --train-size 54000
    .venv/bin/python bench/recipes/handwritten_cnn.py --set batch_size=256 lr=0.003 epochs=2 aug=affine

Prints one JSON line: the recipe, epochs and training seconds to the target, final test accuracy and the
per-epoch (training seconds, test accuracy).
"""
from __future__ import annotations

import math
import os
import time

# OMP_WAIT_POLICY is left as the environment sets it (unset = libgomp's spin-then-sleep), as in trainlab:
# on an idle 2 cores spinning is faster (MLP epoch 0.30 s unset/ACTIVE vs 0.53 s PASSIVE, measured side by
# side); on a machine shared with other busy processes PASSIVE avoids the collapse of spinning threads
# (55 s instead of 3.7 s per epoch seen at load 13): export OMP_WAIT_POLICY=PASSIVE there.
import mnist_recipe  # noqa: E402  (bench/recipes/mnist_recipe.py, beside this script)
import torch
import torch.nn.functional as F
from torch import nn

TARGET = 0.99

# The winning recipe (see README.md); every knob the script understands is listed here.
RECIPE = {
    # architecture (trainlab `cnn` model keys; these are examples/mnist-cnn.yaml's values)
    "channels": [16, 32],
    "kernel_size": 3,
    "pool": "max",                # max | avg | none
    "batch_norm": True,
    "dropout": 0.25,
    "hidden": [128],
    "pool_before_relu": False,    # conv-BN-pool-ReLU: the same function (max-pool and ReLU commute), less work;
                                  # trainlab's cnn builds conv-BN-ReLU-pool, so this is off for reproducibility
    # optimization
    "batch_size": 128,
    "optimizer": "adam",          # adam | adamw | sgd
    "lr": 0.016,                  # peak lr of the schedule
    "betas": [0.9, 0.999],
    "momentum": 0.9,              # sgd
    "nesterov": True,             # sgd
    "weight_decay": 0.0,
    "eps": 1e-8,
    "fused": True,                # fused optimizer step on CPU
    "schedule": "onecycle",       # onecycle | linear (warmup + linear decay) | constant
    "pct_start": 0.3,
    "div_factor": 25.0,
    "final_div_factor": 1e4,
    "anneal": "cos",
    "cycle_momentum": True,
    "base_momentum": 0.85,
    "max_momentum": 0.95,
    "epochs": 2,                  # examples/mnist-cnn.yaml: one epoch left one seed of three short of 99%
    "label_smoothing": 0.1,
    "aug": "none",                # none | affine (per-sample random affine, like examples/mnist-cnn.yaml)
    "aug_degrees": 8.0,
    "aug_translate": 0.08,
    "aug_scale": [0.92, 1.08],
    # execution
    # fp32 | bf16 (CPU autocast): what a careful hand-writer picks, bf16 only where oneDNN runs it natively
    "precision": "bf16" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "fp32",
    "channels_last": True,
    "compile": False,             # compile time counts in epoch 1
    "drop_last": False,
    "norm": "fit",                # fit: scalar mean/std of the training split | fixed: 0.1307 / 0.3081
                                  # | pixel: per-pixel mean/std of the training split
}


# ----------------------------------------------------------------------------------------------- data
def prepare(root: str, train_size: int, split_seed: int, norm: str):
    """(train x, y, test x, y, held-out x, y, (mean, std)): mnist_recipe.prepare for this network's input."""
    return mnist_recipe.prepare(root, train_size, split_seed, norm, (1, 28, 28))


# ---------------------------------------------------------------------------------------------- model
def build_model(r: dict) -> nn.Module:
    """trainlab's `cnn` model (src/trainlab/models/cnn.py) for 1x28x28 inputs and 10 classes."""
    blocks, c, size = [], 1, 28
    for i, width in enumerate(r["channels"]):
        k, bn = r["kernel_size"], r["batch_norm"]
        layers = [nn.Conv2d(c, width, k, padding=k // 2, bias=not bn)]
        if bn:
            layers.append(nn.BatchNorm2d(width))
        pool = "none" if 28 // (2 ** i) < 2 else r["pool"]
        pool_layer = {"max": [nn.MaxPool2d(2)], "avg": [nn.AvgPool2d(2)], "none": []}[pool]
        if r["pool_before_relu"] and pool == "max":
            layers += pool_layer + [nn.ReLU()]
        else:
            layers += [nn.ReLU()] + pool_layer
        if pool != "none":
            size //= 2
        blocks.append(nn.Sequential(*layers))
        c = width
    head, n_in = [nn.Flatten()], c * size * size
    for width in r["hidden"]:
        head += [nn.Linear(n_in, width), nn.ReLU()] + ([nn.Dropout(r["dropout"])] if r["dropout"] > 0 else [])
        n_in = width
    head.append(nn.Linear(n_in, 10))
    return nn.Sequential(nn.Sequential(*blocks), *head)


def build_optimizer(params, r: dict) -> torch.optim.Optimizer:
    kw = {"fused": True} if r["fused"] else {"foreach": True}
    if r["optimizer"] == "sgd":
        return torch.optim.SGD(params, lr=r["lr"], momentum=r["momentum"], nesterov=r["nesterov"],
                               weight_decay=r["weight_decay"], **kw)
    cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[r["optimizer"]]
    return cls(params, lr=r["lr"], betas=tuple(r["betas"]), eps=r["eps"], weight_decay=r["weight_decay"], **kw)


def build_schedule(opt, r: dict, total_steps: int):
    if r["schedule"] == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=r["lr"], total_steps=total_steps, pct_start=r["pct_start"], div_factor=r["div_factor"],
            final_div_factor=r["final_div_factor"], anneal_strategy=r["anneal"],
            cycle_momentum=r["cycle_momentum"], base_momentum=r["base_momentum"], max_momentum=r["max_momentum"])
    if r["schedule"] == "linear":
        warm = max(1, int(r["pct_start"] * total_steps))

        def f(step):
            if step < warm:
                return (step + 1) / warm
            return max(0.0, (total_steps - step) / max(1, total_steps - warm))
        return torch.optim.lr_scheduler.LambdaLR(opt, f)
    if r["schedule"] == "constant":
        return None
    raise ValueError(f"unknown schedule {r['schedule']!r}")


def random_affine(x: torch.Tensor, r: dict, g: torch.Generator, fill: float) -> torch.Tensor:
    """Per-sample random rotation/translation/scale of a batch (B, 1, H, W), bilinear, `fill` outside."""
    b = len(x)
    u = torch.rand(b, 4, generator=g)
    ang = (u[:, 0] * 2 - 1) * math.radians(r["aug_degrees"])
    lo, hi = r["aug_scale"]
    s = lo + u[:, 1] * (hi - lo)
    t = (u[:, 2:] * 2 - 1) * r["aug_translate"] * 2  # translate is a fraction of the size; grid spans 2
    cos, sin = torch.cos(ang) / s, torch.sin(ang) / s
    theta = torch.stack([torch.stack([cos, -sin, -t[:, 0]], 1), torch.stack([sin, cos, -t[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x - fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + fill


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, bf16: bool = False, bs: int = 1000) -> float:
    """Accuracy in eval mode; fp32 by default (the weights are fp32 whatever the training precision)."""
    if len(x) == 0:
        return float("nan")
    model.eval()
    correct = 0
    for i in range(0, len(x), bs):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            correct += (model(x[i:i + bs]).argmax(1) == y[i:i + bs]).sum().item()
    model.train()
    return correct / len(x)


# ----------------------------------------------------------------------------------------------- run
def run(recipe: dict, data, seed: int, target: float = TARGET, stop_at_target: bool = False,
        warmup_steps: int = 3) -> dict:
    """Train one recipe on prepared data; the clock covers the training steps only (see the MLP script)."""
    r = {**RECIPE, **recipe}
    xtr, ytr, xte, yte, xval, yval, stats = data
    n, bs = len(xtr), r["batch_size"]
    loss_fn = nn.CrossEntropyLoss(label_smoothing=r["label_smoothing"])
    bf16 = r["precision"] == "bf16"
    fmt = torch.channels_last if r["channels_last"] else torch.contiguous_format
    fill = -stats[0] / stats[1]  # a black pixel after normalization

    def step(model, opt, sched, xb, yb, g):
        if r["aug"] == "affine":
            xb = random_affine(xb, r, g, fill)
        xb = xb.contiguous(memory_format=fmt)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = loss_fn(model(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()

    t0 = time.perf_counter()
    if warmup_steps:
        m = build_model(r).to(memory_format=fmt)
        o = build_optimizer(m.parameters(), r)
        gw = torch.Generator().manual_seed(12345)
        for i in range(warmup_steps):
            step(m, o, None, xtr[i * bs:(i + 1) * bs], ytr[i * bs:(i + 1) * bs], gw)
    warmup = time.perf_counter() - t0

    torch.manual_seed(seed)
    model = build_model(r).to(memory_format=fmt)
    step_model = torch.compile(model) if r["compile"] else model
    opt = build_optimizer(model.parameters(), r)
    steps = n // bs if r["drop_last"] else math.ceil(n / bs)
    sched = build_schedule(opt, r, steps * r["epochs"])
    g = torch.Generator().manual_seed(seed)
    history, total, reached = [], 0.0, None
    for epoch in range(1, r["epochs"] + 1):
        t0, c0 = time.perf_counter(), time.process_time()
        perm = torch.randperm(n, generator=g)
        for i in range(steps):
            j = perm[i * bs:(i + 1) * bs]
            step(step_model, opt, sched, xtr.index_select(0, j), ytr.index_select(0, j), g)
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
        total += dt
        acc = accuracy(model, xte, yte)
        rec = {"epoch": epoch, "seconds": round(dt, 3), "cpu_seconds": round(cpu, 3), "test_acc": round(acc, 4)}
        if len(xval):
            rec["val_acc"] = round(accuracy(model, xval, yval), 4)
        history.append(rec)
        if reached is None and acc >= target:
            reached = {"epochs": epoch, "seconds": round(total, 3)}
            if stop_at_target:
                break
    return {"recipe": r, "seed": seed, "train_size": n, "norm_stats": [round(s, 4) for s in stats],
            "target": target, "epochs_to_target": reached and reached["epochs"],
            "seconds_to_target": reached and reached["seconds"], "total_train_seconds": round(total, 3),
            "final_test_acc": history[-1]["test_acc"],
            "final_test_acc_bf16_eval": round(accuracy(model, xte, yte, bf16=True), 4) if bf16 else None,
            "warmup_seconds": round(warmup, 3),
            "torch": torch.__version__, "threads": torch.get_num_threads(),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
            "loadavg_1min": round(os.getloadavg()[0], 2), "history": history}


if __name__ == "__main__":
    mnist_recipe.main(__doc__, RECIPE, run, (1, 28, 28), TARGET)
