"""The data registries: every dataset and transform by name, with its own options, and no heavy import.

    DATASETS.get("digits")(cfg.data, cfg.data.params) -> DataBundle     # the reader is imported on this call
    TRANSFORMS.get("normalize")(mean="auto", std="auto") -> a batch transform

Each entry names its options as a dataclass here, so config validation, `trainlab list`, the docs and the
tuner read one declaration without importing torch; the readers and transforms live in their modules
(datasets.py, text.py, timeseries.py, transforms.py, augment.py) and are imported when first built.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from trainlab.core.registry import Registry
from trainlab.core.schema import opt

DATASETS = Registry("dataset")
TRANSFORMS = Registry("transform")


# ----------------------------------------------------------------------------- dataset options

@dataclass
class ImageFolderParams:
    path: str = opt("", help="folder with one sub-folder of images per class")
    test_path: str | None = opt(None, help="optional folder of the same layout used as the test split")
    image_size: list[int] = opt(lambda: [32, 32], help="every image is resized to [height, width]", ge=1, le=4096)
    channels: Literal[1, 3] = opt(3, help="1 = grayscale, 3 = RGB (grayscale, RGBA and palette images are converted)")
    bad_files: Literal["skip", "error"] = opt("skip", help="unreadable images (truncated, corrupt): skip (listed in "
                                              "data.json) or error (stop, naming every one); non-image files and "
                                              "hidden files are always skipped")


@dataclass
class CSVParams:
    path: str = opt("", help="CSV file with a header row")
    target: str | list[str] | None = opt(None, help="target column (default: the last column); several 0/1 "
                                                    "columns = multi-label classification")
    features: list[str] | None = opt(None, help="feature columns (default: all but the target)")
    task: str = opt("auto", help="auto, classification, regression or multilabel (auto: several target columns "
                                 "= multilabel, non-numeric or <= 20 integer values = classification)")
    categorical: Literal["onehot", "error"] = opt("onehot", help="non-numeric feature columns: onehot or error; a "
                                                  "category unseen in training is reported at predict time")
    missing: Literal["error", "drop"] = opt("error", help="rows with missing values: error, or drop (counted and "
                                            "printed; predict reports such rows instead of predicting them)")
    test_path: str | None = opt(None, help="optional CSV with the same columns used as the test split")
    scale_target: bool | Literal["auto"] = opt(
        "auto", help="regression: the network learns (y - mean) / std of the training split and its output layer "
                     "gives back original units (loss, metrics, predict, export, serve); auto = when the targets "
                     "are far from unit scale (|mean| or std > 10, or std < 0.1)")


@dataclass
class TokenizerParams:
    tokenizer: Literal["char", "word"] = opt("word", help="split texts into characters or words (+ punctuation)")
    lowercase: bool = opt(True, help="lowercase texts before tokenizing")
    min_freq: int = opt(1, help="keep tokens seen at least this often in the training texts", ge=1)
    max_vocab: int = opt(20000, help="keep at most this many tokens (most frequent first), besides <pad>/<unk>",
                         ge=1, le=10_000_000)
    max_len: int = opt(64, help="token ids per text: longer texts are truncated, shorter ones padded", ge=1, le=65_536)


@dataclass
class TextParams(TokenizerParams):
    path: str = opt("", help="CSV with a text column and a label column")
    text_column: str = opt("text", help="column holding the texts")
    label_column: str = opt("label", help="column holding the class labels")
    test_path: str | None = opt(None, help="optional CSV with the same columns used as the test split")


@dataclass
class FirstMarkerParams(TokenizerParams):
    tokenizer: Literal["char", "word"] = opt("char", help="split texts into characters or words (+ punctuation)")
    max_len: int = opt(32, help="token ids per text (the generated texts have min_len..max_len letters)", ge=1,
                       le=65_536)
    samples: int = opt(3000, help="generated texts", ge=10, le=1_000_000)
    markers: str = opt("abc", help="marker letters; the label is the one that occurs first")
    min_len: int = opt(12, help="shortest generated text", ge=1, le=65_536)


@dataclass
class TimeSeriesParams:
    series: str = opt("sunspots", help="bundled series (no download): sunspots (yearly 1700-2008), co2 (monthly "
                      "Mauna Loa 1958-2001), elnino (monthly sea temperature 1950-2010); unused with path")
    path: str = opt("", help="your own CSV: one row per time step, in time order")
    target: list[str] | None = opt(None, help="column(s) to forecast (CSV default: the last column)")
    features: list[str] = opt(list, help="extra input columns (their past values are inputs, never targets)")
    time_column: str | None = opt(None, help="CSV column of time stamps: must increase; labels the forecasts")
    lookback: int = opt(24, help="past steps the model sees", ge=1, le=100_000)
    horizon: int = opt(1, help="future steps it forecasts", ge=1, le=100_000)
    stride: int = opt(1, help="steps between the starts of consecutive windows", ge=1)
    season: int | None = opt(None, help="season length of the seasonal-naive baseline (default: 11 for sunspots, "
                                        "12 otherwise)", ge=1, le=100_000)
    missing: Literal["error", "interpolate"] = opt("error", help="missing CSV values: error, or interpolate in time")



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
# name -> (class or factory in transforms.py / augment.py, help). Registered once, here, at import.

def _transform(module: str, attr: str):
    def resolve():
        from trainlab.data import augment, augment_color, transforms  # start-up time: torchvision

        return getattr({"transforms": transforms, "augment": augment, "augment_color": augment_color}[module], attr)

    def build(**kwargs):
        return resolve()(**kwargs)
    build.resolve = resolve  # the class or factory itself, for the generated docs' argument lists
    return build


for _name, _module, _attr, _help in (
    ("to_tensor", "transforms", "to_float", "uint8 0..255 -> float 0..1 (added automatically)"),
    ("to_dtype", "transforms", "to_float", "alias of to_tensor"),
    ("normalize", "transforms", "Normalize", "(x - mean) / std; mean/std fitted on the training split if omitted"),
    ("resize", "transforms", "resize", "resize images to size (int: shorter side, or [h, w])"),
    ("center_crop", "transforms", "center_crop", "crop the center [h, w]"),
    ("grayscale", "transforms", "grayscale", "RGB -> grayscale"),
    ("random_horizontal_flip", "augment", "RandomHorizontalFlip",
     "Flip each sample left-right with probability p, independently per sample. (per sample, training)"),
    ("random_vertical_flip", "augment", "RandomVerticalFlip",
     "Flip each sample top-bottom with probability p, independently per sample. (per sample, training)"),
    ("random_crop", "augment", "RandomCrop",
     "Pad (same for all samples) then crop `size` at a per-sample random top/left offset. (per sample, training)"),
    ("random_affine", "augment", "RandomAffine",
     "Per-sample random rotation/translation/scale/shear about the image center, via affine_grid + grid_sample. "
     "(per sample, training)"),
    ("gaussian_blur", "augment_color", "GaussianBlur",
     "Per-sample Gaussian blur: sigma ~ U[sigma_min, sigma_max] per sample, reflect padding like torchvision. "
     "(per sample, training)"),
    ("color_jitter", "augment_color", "ColorJitter",
     "Per-sample brightness/contrast/saturation/hue factors with torchvision's ranges and formulas. "
     "(per sample, training)"),
):
    TRANSFORMS.add(_name, _transform(_module, _attr), help=_help, random=_module.startswith("augment"))
