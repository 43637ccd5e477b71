"""The data registries: every dataset and transform by name, with its own options, and no heavy import.

    DATASETS.get("digits")(cfg.data, cfg.data.params) -> DataBundle     # the reader is imported on this call
    TRANSFORMS.get("normalize")()(mean="auto", std="auto") -> a batch transform   # () imports its class

Every entry is registered here with `@REGISTRY.register`, by a builder that imports its module when called:
the datasets' options are dataclasses in options.py, so config validation, `trainlab list`, the docs and the
tuner read one declaration without importing torch; the readers (datasets.py, text.py, timeseries.py) and
the transform classes (steps.py, augment.py, augment_color.py) import nothing from here.
"""
from __future__ import annotations

from trainlab.core.registry import Registry
from trainlab.data.options import (
    CSVParams,
    FirstMarkerParams,
    ImageFolderParams,
    TextParams,
    TimeSeriesParams,
)

DATASETS = Registry("dataset")
TRANSFORMS = Registry("transform")


# ----------------------------------------------------------------------------- datasets
# Each builder imports its reader on first use: torch, pandas and scikit-learn stay out of `trainlab --help`.

@DATASETS.register("digits")
def _digits(cfg, params):
    """scikit-learn's bundled 8x8 handwritten digits (1,797 images, no download)."""
    from trainlab.data import datasets  # start-up time: the readers import torch

    return datasets.build_digits(cfg, params)


@DATASETS.register("mnist")
def _mnist(cfg, params):
    """MNIST handwritten digits (60k train / 10k test, 28x28) from data.root in torchvision's layout."""
    from trainlab.data import datasets  # start-up time

    return datasets.build_mnist(cfg, params)


@DATASETS.register("fashion_mnist")
def _fashion_mnist(cfg, params):
    """Fashion-MNIST clothing images (60k/10k, 28x28) from data.root in torchvision's layout."""
    from trainlab.data import datasets  # start-up time

    return datasets.build_fashion_mnist(cfg, params)


@DATASETS.register("cifar10")
def _cifar10(cfg, params):
    """CIFAR-10 (50k/10k color 32x32) read by trainlab's own pickle-batch Dataset."""
    from trainlab.data import datasets  # start-up time

    return datasets.build_cifar10(cfg, params)


@DATASETS.register("image_folder", config=ImageFolderParams)
def _image_folder(cfg, params: ImageFolderParams):
    """Your own images: one sub-folder per class (like torchvision.datasets.ImageFolder)."""
    from trainlab.data import datasets  # start-up time

    return datasets.build_image_folder(cfg, params)


@DATASETS.register("csv", config=CSVParams)
def _csv(cfg, params: CSVParams):
    """Your own table: feature columns + a target column; classification or regression."""
    from trainlab.data import datasets  # start-up time

    return datasets.build_csv(cfg, params)


@DATASETS.register("text", config=TextParams)
def _text(cfg, params: TextParams):
    """Your own texts: a CSV with a text column and a label column (char or word tokens)."""
    from trainlab.data import text  # start-up time

    return text.build_text(cfg, params)


@DATASETS.register("first_marker", config=FirstMarkerParams)
def _first_marker(cfg, params: FirstMarkerParams):
    """Generated texts: which marker letter comes first? Order matters, counts do not (no download)."""
    from trainlab.data import text  # start-up time

    return text.build_first_marker(cfg, params)


@DATASETS.register("timeseries", config=TimeSeriesParams)
def _timeseries(cfg, params: TimeSeriesParams):
    """Sliding windows over a bundled series (sunspots, co2, elnino) or CSV columns, for forecasting."""
    from trainlab.data import timeseries  # start-up time

    return timeseries.build_timeseries(cfg, params)


# ----------------------------------------------------------------------------- transforms
# Each builder returns the transform's class or factory (called with the config's arguments); `random`
# marks the per-sample training augmentations, which `eval` may not use.

@TRANSFORMS.register("to_tensor", random=False)
def _to_tensor():
    """uint8 0..255 -> float 0..1 (added automatically)"""
    from trainlab.data import steps  # start-up time: torch

    return steps.to_float


@TRANSFORMS.register("to_dtype", random=False)
def _to_dtype():
    """alias of to_tensor"""
    from trainlab.data import steps  # start-up time

    return steps.to_float


@TRANSFORMS.register("normalize", random=False)
def _normalize():
    """(x - mean) / std; mean/std fitted on the training split if omitted"""
    from trainlab.data import steps  # start-up time

    return steps.Normalize


@TRANSFORMS.register("resize", random=False)
def _resize():
    """resize images to size (int: shorter side, or [h, w])"""
    from trainlab.data import steps  # start-up time

    return steps.resize


@TRANSFORMS.register("center_crop", random=False)
def _center_crop():
    """crop the center [h, w]"""
    from trainlab.data import steps  # start-up time

    return steps.center_crop


@TRANSFORMS.register("grayscale", random=False)
def _grayscale():
    """RGB -> grayscale"""
    from trainlab.data import steps  # start-up time

    return steps.grayscale


@TRANSFORMS.register("random_horizontal_flip", random=True,
                     help="Flip each sample left-right with probability p, independently per sample. "
                          "(per sample, training)")
def _random_horizontal_flip():
    from trainlab.data import augment  # start-up time: torch

    return augment.RandomHorizontalFlip


@TRANSFORMS.register("random_vertical_flip", random=True,
                     help="Flip each sample top-bottom with probability p, independently per sample. "
                          "(per sample, training)")
def _random_vertical_flip():
    from trainlab.data import augment  # start-up time

    return augment.RandomVerticalFlip


@TRANSFORMS.register("random_crop", random=True,
                     help="Pad (same for all samples) then crop `size` at a per-sample random top/left offset. "
                          "(per sample, training)")
def _random_crop():
    from trainlab.data import augment  # start-up time

    return augment.RandomCrop


@TRANSFORMS.register("random_affine", random=True,
                     help="Per-sample random rotation/translation/scale/shear about the image center, via "
                          "affine_grid + grid_sample. (per sample, training)")
def _random_affine():
    from trainlab.data import augment  # start-up time

    return augment.RandomAffine


@TRANSFORMS.register("gaussian_blur", random=True,
                     help="Per-sample Gaussian blur: sigma ~ U[sigma_min, sigma_max] per sample, reflect padding "
                          "like torchvision. (per sample, training)")
def _gaussian_blur():
    from trainlab.data import augment_color  # start-up time

    return augment_color.GaussianBlur


@TRANSFORMS.register("color_jitter", random=True,
                     help="Per-sample brightness/contrast/saturation/hue factors with torchvision's ranges and "
                          "formulas. (per sample, training)")
def _color_jitter():
    from trainlab.data import augment_color  # start-up time

    return augment_color.ColorJitter
