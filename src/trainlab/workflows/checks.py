"""Checks that need the loaded data: what config validation cannot know, refused before the first step.

    view = data.view(data.splits.train, data.splits.val)
    check_fit(cfg, view)     # one-line UserError; nothing trained, no run directory written yet

Validation (run/config.py) checks each key on its own; these check the keys against the data: a
classification task with one class, a loss or metric for the other task, a monitor the run will not
record, augmentations that break on these images (a crop larger than the image) or change the shape the
model is built for, and a model whose layers do not fit the input (found on the meta device: no memory).
train, cv, tune and lr-find call it once per view.
"""
from __future__ import annotations

import dataclasses

import torch

from trainlab.core.errors import UserError
from trainlab.core.metrics import REGRESSION, default_metrics
from trainlab.engine.catalog import loss_for, task_of_loss
from trainlab.engine.settings import MONITOR
from trainlab.models.catalog import MODELS, build_model, is_library_model

SAMPLES = 2  # inputs pushed through the pipelines and the meta model (2: BatchNorm needs more than 1 in training)


def check_fit(cfg, view, check_model: bool = True) -> None:
    """Raise UserError when `cfg` cannot train on the data of `view` (a prepare.DataView).

    check_model=False skips building `cfg.model` (the caller trains a model of its own).
    """
    bundle = view.bundle
    check_classes(cfg, bundle)
    check_task_settings(cfg, bundle.task, has_val=len(view.val_idx) > 0)
    check_split_sizes(cfg, view)
    x = _sample_inputs(view)
    check_train_transforms(view, x)
    if check_model:
        check_model_fits(cfg, view, x)


def check_classes(cfg, bundle) -> None:
    if bundle.task == "classification" and len(bundle.classes) < 2:
        found = f"only class {bundle.classes[0]!r}" if bundle.classes else "no classes"
        raise UserError(f"data {cfg.data.name!r} has {found}; classification needs at least 2 classes")


def check_task_settings(cfg, task: str, has_val: bool = True) -> None:
    """train.loss, train.metrics and train.monitor against the task the data turned out to be."""
    if task == "multilabel":  # its loss (bce_with_logits) and label-decision metrics are checked by loss_for
        loss_for(cfg.train.loss, task)
        return
    t = cfg.train
    loss = loss_for(t.loss, task)
    if task_of_loss(loss) != task:
        fits = "cross_entropy or bce_with_logits" if task == "classification" else "mse, l1 or huber"
        raise UserError(f"train.loss={loss} is a {task_of_loss(loss)} loss but data {cfg.data.name!r} is a {task} "
                        f"task; use {fits} (or auto)")
    metrics = default_metrics(task) if t.metrics == "auto" else list(t.metrics)
    wrong = [m for m in metrics if (m in REGRESSION) != (task == "regression")]
    if wrong:
        raise UserError(f"train.metrics: {wrong[0]} is not a {task} metric; use "
                        f"{', '.join(default_metrics(task))} or others from `trainlab list metrics`")
    split, name = MONITOR.match(t.monitor).groups()  # the form is checked on load
    # train_<x>: the loss and, for classification, accuracy; val_<x>: the loss and train.metrics
    recorded = {"loss"} | (set(metrics) if split == "val" else {"accuracy"} if task == "classification" else set())
    if (split == "val" and not has_val) or name in recorded:
        return  # without a validation split the trainer monitors train_loss
    choices = ["val_loss", "train_loss", *(f"val_{m}" for m in metrics)]
    raise UserError(f"train.monitor={t.monitor} is not recorded for this {task} run; choose from: {', '.join(choices)}")


def check_split_sizes(cfg, view) -> None:
    """R² of one sample is undefined (torchmetrics raises): a split of one window would crash the first epoch."""
    metrics = default_metrics(view.bundle.task) if cfg.train.metrics == "auto" else cfg.train.metrics
    if "r2" not in metrics:
        return
    for split in ("val", "test"):
        n = len(view.dataset(split))
        if n == 1:
            raise UserError(f"the {split} split has 1 sample and R² needs at least 2: use more data (or a smaller "
                            f"data.lookback / horizon), or set train.metrics without r2")


def _sample_inputs(view) -> torch.Tensor:
    """The first SAMPLES raw training inputs (N, ...)."""
    ds = view.dataset("train")
    n = min(SAMPLES, len(ds))
    if n == 0:
        raise UserError("the training split is empty; lower data.val_fraction / data.test_fraction or add data")
    return torch.stack([torch.as_tensor(ds[i][0]) for i in range(n)])


def check_train_transforms(view, x: torch.Tensor) -> None:
    """The training pipeline must run on these inputs and give the shape the model is built for (the eval one)."""
    try:
        out = view.train_pipe(x, torch.Generator().manual_seed(0))
    except (ValueError, RuntimeError, IndexError) as e:  # augment.py's checks name the problem
        raise UserError(f"data.transforms.train does not fit the data (inputs {_shape(x.shape[1:])}): "
                        f"{_first_line(e)}") from None
    if tuple(out.shape[1:]) != tuple(view.input_shape):
        raise UserError(f"data.transforms.train gives inputs of shape {_shape(out.shape[1:])} but data.transforms.eval "
                        f"gives {_shape(view.input_shape)}; the model needs one shape (e.g. crop to the same size "
                        f"in both, or resize after the augmentation)")


def check_model_fits(cfg, view, x: torch.Tensor) -> None:
    """One training-mode forward of the model's structure on the meta device: layer shapes, no memory, no RNG."""
    takes = MODELS.entry(cfg.model.name).meta.get("inputs", ())
    if view.bundle.kind == "text" and "text" not in takes:  # token ids are not numbers to multiply
        users = [n for n in MODELS.names() if "text" in MODELS.entry(n).meta.get("inputs", ())]
        raise UserError(f"model {cfg.model.name!r} does not read text (token ids); use {' or '.join(users)}")
    model = build_model(cfg.model, view.input_shape, view.bundle.num_outputs, device="meta", **view.model_info)
    model.train()
    inputs = view.eval_pipe(x).to("meta")
    try:
        with torch.no_grad():
            model(inputs)
    except NotImplementedError:  # an operation without a meta kernel: the trainer's own check covers it
        return
    except (RuntimeError, ValueError, IndexError, AssertionError) as e:  # timm/torchvision ViTs assert sizes
        raise UserError(f"model {cfg.model.name!r} does not fit the data: inputs {_shape(view.input_shape)} "
                        f"({_first_line(e)}){_size_that_fits(cfg, view)}") from None


# image sides to try, smallest first: powers of two, multiples of 16 (ViT patches), 75 and 299 (Inception)
SIDES = (16, 24, 32, 48, 64, 75, 96, 112, 128, 160, 192, 224, 240, 256, 288, 299, 320, 384, 448, 512)


def _size_that_fits(cfg, view) -> str:
    """For an image model: the smallest square side it takes (probed on the meta device, no memory, nothing
    downloaded) and how to give it that size; else ""."""
    shape = tuple(view.input_shape)
    if not is_library_model(cfg.model.name) or len(shape) != 3:
        return ""
    options = dataclasses.replace(cfg.model, params=dataclasses.replace(cfg.model.params, pretrained=False,
                                                                        weights=None))
    for side in (s for s in SIDES if s > min(shape[1:])):
        model = build_model(options, (shape[0], side, side), view.bundle.num_outputs, device="meta")
        try:
            with torch.no_grad():
                model(torch.zeros(2, shape[0], side, side, device="meta"))
        except (RuntimeError, ValueError, IndexError, AssertionError, NotImplementedError):
            continue
        return (f"; its smallest input is {side}x{side}: set model.image_size={side} and model.preprocess=model "
                f"(the images are resized to it), or resize them with a data transform")
    return f"; it takes none of the sides {SIDES[0]}..{SIDES[-1]}"


def _shape(shape) -> str:
    return "x".join(str(int(s)) for s in shape) or "scalar"


def _first_line(e: Exception) -> str:
    lines = [line for line in str(e).splitlines() if line.strip()]
    return (lines[0] if lines else type(e).__name__)[:200]
