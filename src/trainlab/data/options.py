"""The datasets' own options: one dataclass per dataset, read by config validation, `trainlab list`, the docs,
the tuner and the readers themselves (datasets.py, text.py, timeseries.py) without importing torch.

    from trainlab.data.options import CSVParams
    CSVParams(path="iris.csv", target="species")
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from trainlab.core.schema import opt

# K-fold splitters (trainlab cv / tune --cv), scikit-learn's; declared here, light, for the CLI's choices too
FOLD_SPLITTERS = ("stratified", "kfold", "group", "time")


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
    missing: Literal["error", "drop", "impute"] = opt(
        "error", help="empty feature cells: error, drop the row (counted and printed; predict reports such rows "
                      "instead of predicting them), or impute: the median (numbers) or most frequent category of the "
                      "TRAINING split, printed per column and applied alike by evaluate, predict, export and serve")
    impute_categorical: Literal["most_frequent", "category"] = opt(
        "most_frequent", help="data.missing=impute, text columns: the training split's most frequent category, or "
                              "category: empty cells are a category of their own, \"(missing)\"")
    test_path: str | None = opt(None, help="optional CSV with the same columns used as the test split")
    scale_target: bool | Literal["auto"] = opt(
        "auto", help="regression: the network learns (y - mean) / std of the training split and its output layer "
                     "gives back original units (loss, metrics, predict, export, serve); auto = when the targets "
                     "are far from unit scale (|mean| or std > 10, or std < 0.1)")


@dataclass
class TokenizerParams:
    tokenizer: Literal["char", "word"] = opt("word", help="split texts into characters or words (+ punctuation)")
    lowercase: bool = opt(True, help="lowercase texts before tokenizing")
    min_freq: int = opt(1, help="keep tokens seen at least this often in the training texts", ge=1, le=10**9)
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
    stride: int = opt(1, help="steps between the starts of consecutive windows", ge=1, le=10**9)
    season: int | None = opt(None, help="season length of the seasonal-naive baseline (default: 11 for sunspots, "
                                        "12 otherwise)", ge=1, le=100_000)
    missing: Literal["error", "interpolate"] = opt("error", help="missing CSV values: error, or interpolate in time")
