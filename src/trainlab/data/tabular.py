"""CSV tables -> float32 features (N, F) and labels; categorical features one-hot encoded,
missing values refused, dropped (every dropped row counted, printed and listed in data.json) or imputed from the
training split (data/impute.py).

    read_csv_bundle(params)          # training: the DataBundle; meta holds the encoding and the policies
    encode_rows(df, meta)            # predict: the same encoding, with a reason for each row it cannot use
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:  # annotations only: pandas is imported where a table is read
    import pandas as pd

from trainlab.core.errors import UserError
from trainlab.core.paths import short_path
from trainlab.core.report import print_progress
from trainlab.data.base import ArrayDataset, DataBundle
from trainlab.data.impute import MISSING, fill_categories, fill_rows, imputer, missing_mask, provisional


def read_table(path: str | Path) -> pd.DataFrame:
    import pandas as pd  # start-up time: pandas (0.4 s) only where a table is read

    p = Path(path)
    shown = short_path(p)
    try:
        if not p.is_file():
            raise UserError(f"CSV file not found: {shown}" if not p.is_dir() else f"CSV path {shown} is a folder")
        df = pd.read_csv(p)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as e:
        raise UserError(f"cannot parse CSV {shown}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    except OSError as e:  # permission denied, a name too long, an I/O error
        raise UserError(f"cannot read CSV {shown}: {e.strerror or type(e).__name__}") from None
    if df.empty:
        raise UserError(f"CSV {p} has no data rows")
    return df


def _columns(df: pd.DataFrame, params, path) -> tuple[str | list[str], list[str]]:
    target = params.target or df.columns[-1]
    targets = target if isinstance(target, list) else [target]
    bad = [t for t in targets if t not in df.columns]
    if bad:
        raise UserError(f"target column {bad[0]!r} not in {path}; columns: {', '.join(map(str, df.columns))}")
    features = params.features or [c for c in df.columns if c not in targets]
    missing = [c for c in features if c not in df.columns]
    if missing:
        raise UserError(f"feature column {missing[0]!r} not in {path}; columns: {', '.join(map(str, df.columns))}")
    if not features:
        raise UserError(f"CSV {path} has no feature columns besides the target {target!r}")
    return target, list(features)


def _check_missing(df: pd.DataFrame, cols: list[str], params, path) -> tuple[pd.DataFrame, list[int]]:
    """-> (rows to use, dropped row numbers as a spreadsheet shows them: the header is row 1)."""
    na = df[cols].isna().to_numpy()
    if not na.any():
        return df, []
    rows = na.any(axis=1)
    if params.missing in ("drop", "impute"):  # impute: only the target's cells come here, and a label is not guessed
        dropped = [int(i) + 2 for i in np.flatnonzero(rows)]
        shown = ", ".join(map(str, dropped[:10])) + (", ..." if len(dropped) > 10 else "")
        what = "missing values" if params.missing == "drop" else "an empty target (never imputed)"
        print_progress(f"csv: dropped {len(dropped)} of {len(df)} rows of {path} with {what} "
                       f"(data.missing={params.missing}): rows {shown} (all listed in the run's data.json, "
                       f"meta.intake)")
        return df[~rows], dropped
    row, col = np.argwhere(na)[0]
    raise UserError(f"missing value in {path} row {int(row) + 2} column {cols[col]!r} "
                    f"({int(rows.sum())} of {len(df)} rows have one); fill them, or set data.missing=drop "
                    f"or data.missing=impute (training-split median / most frequent)")


def unseen_categories(df: pd.DataFrame, categories: dict) -> dict[str, list[str]]:
    """column -> values not among the training categories (they one-hot encode to all zeros)."""
    unseen = {}
    for col, cats in categories.items():
        values = set(map(str, df[col].dropna().unique())) - set(cats)
        if values:
            unseen[col] = sorted(values)
    return unseen


def _infer_task(y: pd.Series, task: str) -> str:
    import pandas as pd  # start-up time: pandas (0.4 s) only where a table is read

    if task in ("classification", "regression"):
        return task
    if task != "auto":
        raise UserError(f"bad value for data.task: {task!r}; expected auto, classification, regression or multilabel")
    numeric = pd.api.types.is_numeric_dtype(y)
    if not numeric:
        return "classification"
    integral = np.all(np.equal(np.mod(y.to_numpy(dtype=float), 1), 0))
    return "classification" if integral and y.nunique() <= 20 else "regression"


MOSTLY_NUMERIC = 0.9  # share of number cells above which the other cells are typos, not categories


def encode_features(df: pd.DataFrame, features: list[str], params, path, categories: dict | None = None):
    """-> (float32 array (N, F'), feature names, categories used). Categories come from the training file.

    With `categories` (a test file, predict inputs) every other column was numeric in the training file.
    """
    import pandas as pd  # start-up time: pandas (0.4 s) only where a table is read

    fitted = categories is not None
    categories = dict(categories or {})
    parts, names = [], []
    for col in features:
        s = df[col]
        numeric = None if col in categories else _numeric(s, col, path, fitted)
        if numeric is not None:
            parts.append(_float32(numeric, col, path)[:, None])
            names.append(col)
            continue
        if params.categorical != "onehot":
            bad = s[pd.to_numeric(s, errors="coerce").isna()].iloc[0]
            raise UserError(f"non-numeric value {bad!r} in numeric column {col!r} of {path}; "
                            f"clean the column or set data.categorical=onehot")
        cats = categories.setdefault(col, sorted(map(str, s.dropna().unique())))  # empty cells: data/impute.py
        parts.append(np.stack([(s.astype(str) == c).to_numpy(np.float32) for c in cats], axis=1))
        names += [f"{col}={c}" for c in cats]
    return np.concatenate(parts, axis=1), names, categories


def _numeric(s: pd.Series, col: str, path, fitted: bool) -> pd.Series | None:
    """The column as numbers; None for a categorical one. One stray string in a column of numbers is refused:
    one-hot encoding it would silently turn one feature into one per distinct number."""
    import pandas as pd  # start-up time: pandas (0.4 s) only where a table is read

    if pd.api.types.is_numeric_dtype(s):
        return s
    values = pd.to_numeric(s, errors="coerce")
    bad = values.isna() & s.notna()
    if not bad.any():
        return values
    if not fitted and (~bad).sum() < MOSTLY_NUMERIC * s.notna().sum():
        return None
    first = bad.to_numpy().nonzero()[0][0]
    more = f" (and {int(bad.sum()) - 1} more)" if bad.sum() > 1 else ""
    where = "a numeric column of the training data" if fitted else "a numeric column"
    raise UserError(f"non-numeric value {s.iloc[first]!r} in {where} {col!r} of {path} row {_row(s, first)}{more}; "
                    f"fix the value or remove the row")


def _float32(s: pd.Series, col: str, path) -> np.ndarray:
    """float32 values; an infinite value or one beyond float32's range (|x| > 3.4e38) is refused with its row."""
    x64 = s.to_numpy(dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):  # the refusal below says it; numpy's warning would not
        x = x64.astype(np.float32)
    bad = np.isinf(x)
    if bad.any():
        first = bad.nonzero()[0][0]
        what = "infinite" if np.isinf(x64[first]) else "beyond float32's range (|x| > 3.4e38)"
        raise UserError(f"value {float(x64[first])!r} in column {col!r} of {path} row {_row(s, first)} is {what}; "
                        f"clean the data first")
    return x


def _row(s: pd.Series, position: int) -> int:
    """The file's line number of a cell: the header is line 1 (pandas' default index counts data rows from 0)."""
    label = s.index[position]
    return int(label) + 2 if isinstance(label, (int, np.integer)) else position + 2


def read_csv_bundle(params) -> DataBundle:
    import pandas as pd  # start-up time: pandas (0.4 s) only where a table is read

    if not params.path:
        raise UserError("data.path is required for the csv dataset")
    df = read_table(params.path)
    target, features = _columns(df, params, params.path)
    n_rows = len(df)
    targets = target if isinstance(target, list) else [target]
    checked = targets if params.missing == "impute" else features + targets  # impute: empty features stay
    df, dropped = _check_missing(df, checked, params, params.path)
    if df.empty:
        raise UserError(f"every row of {params.path} has a missing value; nothing is left to train on")
    if isinstance(target, list) or params.task == "multilabel":
        return _multilabel_bundle(df, features, targets, params)
    task = _infer_task(df[target], params.task)
    df = _impute_ready(df, features, params)
    x, names, cats = encode_features(df, features, params, params.path)
    intake = {"train": {"file": str(params.path), "rows": n_rows, "used": len(df), "dropped_rows": dropped}}
    test_df = None
    if params.test_path:
        test_df = read_table(params.test_path)
        n_test = len(test_df)
        test_df, test_dropped = _check_missing(test_df, [target] if params.missing == "impute" else
                                               features + [target], params, params.test_path)
        test_df = _impute_ready(test_df, features, params)
        intake["test"] = {"file": str(params.test_path), "rows": n_test, "used": len(test_df),
                          "dropped_rows": test_dropped, "unseen_categories": unseen_categories(test_df, cats)}
        if intake["test"]["unseen_categories"]:
            print_progress(f"csv: {params.test_path} has categories unseen in training (encoded as none of the known "
                           f"ones): {intake['test']['unseen_categories']}")
    if task == "classification":
        classes = sorted(map(str, df[target].unique()))
        y = torch.tensor([classes.index(str(v)) for v in df[target]], dtype=torch.long)
    else:
        classes, y = None, torch.tensor(_float32(pd.to_numeric(df[target], errors="coerce"), target, params.path))
        if torch.isnan(y).any():
            raise UserError(f"non-numeric value in regression target column {target!r} of {params.path}")
    pool = ArrayDataset(torch.from_numpy(provisional(x)), y)
    test = _test_split(test_df, features, target, params, cats, classes, task) if test_df is not None else None
    meta = {"features": names, "raw_features": features, "target": target, "categories": cats,
            "missing": params.missing, "categorical": params.categorical, "intake": intake,
            "example": example_row(df, features, cats)}
    bundle = DataBundle(pool, test, task, "tabular", classes, meta=meta)
    scale = None
    if task == "regression" and params.scale_target is not False:
        def scale(b, train_idx):
            return fit_target_scale(b, train_idx, params.scale_target == "auto")
        bundle.fit = lambda train_idx: scale(bundle, train_idx)
    if params.missing == "impute":  # fitted on the training rows of each view; then the target scale, if any
        test_mask = missing_mask(test_df, features) if test_df is not None else None
        bundle.fit = imputer(bundle, missing_mask(df, features), test_mask, params.impute_categorical, scale)
    return bundle


def example_row(df: pd.DataFrame, features: list[str], categories: dict) -> dict:
    """The file's first row without an empty cell, by column (numbers as floats): what serve's page shows first."""
    import pandas as pd  # start-up time: pandas (0.4 s) only where a table is read

    full = df[features].dropna()
    if full.empty:
        return {}
    row = full.iloc[0]
    return {c: str(row[c]) if c in categories else float(pd.to_numeric(row[c])) for c in features}


def _impute_ready(df: pd.DataFrame, features: list[str], params) -> pd.DataFrame:
    """impute_categorical=category: empty text cells become the category "(missing)" before encoding."""
    if params.missing == "impute" and params.impute_categorical == "category":
        return fill_categories(df, features)
    return df


TARGET_FAR = 10.0  # data.scale_target: auto standardizes targets with |mean| or std above 10 (or std below 0.1)


def fit_target_scale(bundle: DataBundle, train_idx: np.ndarray, only_if_far: bool) -> DataBundle:
    """Regression targets' mean/std of the training rows (never val/test) for the model's output scale
    (models/seqlayers.OutputScale: out * std + mean), so the network learns targets of mean 0, std 1."""
    y = bundle.pool.y[torch.as_tensor(train_idx, dtype=torch.long)].double()
    mean, std = float(y.mean()), float(y.std(unbiased=False)) if len(y) > 1 else 1.0
    if only_if_far and not (abs(mean) > TARGET_FAR or std > TARGET_FAR or 0 < std < 1 / TARGET_FAR):
        return dataclasses.replace(bundle, fit=None)
    info = {**bundle.model_info, "target_mean": [mean], "target_std": [std if std > 1e-8 else 1.0]}
    return dataclasses.replace(bundle, model_info=info, fit=None)


def _multi_hot(df: pd.DataFrame, targets: list[str], path) -> torch.Tensor:
    """(N, K) float 0/1 from K target columns; anything but 0 and 1 is refused."""
    import pandas as pd  # start-up time: pandas (0.4 s) only where a table is read

    y = df[targets].apply(pd.to_numeric, errors="coerce").to_numpy(np.float32)
    bad = ~np.isin(y, (0.0, 1.0))
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise UserError(f"multi-label target column {targets[col]!r} of {path} holds {df[targets[col]].iloc[row]!r} "
                        f"(row {int(row) + 2}); multi-label targets must be 0 or 1")
    return torch.from_numpy(y.copy())  # pandas may hand out a read-only view


def _multilabel_bundle(df: pd.DataFrame, features: list[str], targets: list[str], params) -> DataBundle:
    """Several 0/1 target columns: each sample may have any number of the labels (bce_with_logits per label)."""
    if params.missing == "impute" and df[features].isna().any().any():
        raise UserError("data.missing=impute is not available for multi-label tables yet; use data.missing=drop")
    x, names, cats = encode_features(df, features, params, params.path)
    test = None
    if params.test_path:
        test_df, _ = _check_missing(read_table(params.test_path), features + targets, params, params.test_path)
        test = ArrayDataset(torch.from_numpy(encode_features(test_df, features, params, params.test_path, cats)[0]),
                            _multi_hot(test_df, targets, params.test_path))
    meta = {"features": names, "raw_features": features, "target": targets, "categories": cats}
    return DataBundle(ArrayDataset(torch.from_numpy(x), _multi_hot(df, targets, params.path)), test, "multilabel",
                      "tabular", list(targets), meta=meta)


def _test_split(df, features, target, params, cats, classes, task) -> ArrayDataset:
    import pandas as pd  # start-up time: pandas (0.4 s) only where a table is read

    x, _, _ = encode_features(df, features, params, params.test_path, cats)
    x = provisional(x)  # empty cells: filled with the training split's values when the view is fitted
    if task == "classification":
        unknown = sorted(set(map(str, df[target].unique())) - set(classes))
        if unknown:
            raise UserError(f"test CSV {params.test_path} has labels not in the training CSV: {unknown[:5]}")
        y = torch.tensor([classes.index(str(v)) for v in df[target]], dtype=torch.long)
    else:
        y = torch.tensor(_float32(pd.to_numeric(df[target], errors="coerce"), target, params.test_path))
    return ArrayDataset(torch.from_numpy(x), y)


# ----------------------------------------------------------------------------- predict time

def encode_rows(df: pd.DataFrame, meta: dict) -> tuple[np.ndarray, dict[int, str], dict[int, str]]:
    """A table's feature columns -> (float32 (N, F) as in training, {row position: why it cannot be predicted},
    {row position: warning}). The run's policies apply: a missing value is never predicted (data.missing=drop
    dropped such rows in training, error refused them); a category unseen in training is encoded as none of
    the known ones and reported; data.missing=impute fills an empty cell with the training split's value, noted."""
    import pandas as pd  # start-up time: pandas (0.4 s) only where a table is read

    errors, warns, parts = {}, {}, []
    policy = meta.get("missing", "error")
    if policy == "impute":
        df, warns = fill_rows(df, meta)
    for col in meta["raw_features"]:
        s = df[col]
        missing = s.isna().to_numpy()
        for i in np.flatnonzero(missing):
            errors.setdefault(int(i), f"missing value in column {col!r}: not predicted (data.missing={policy})")
        if col in meta["categories"]:
            values = s.astype(str)
            for i in np.flatnonzero(~values.isin(meta["categories"][col]).to_numpy() & ~missing):
                warns.setdefault(int(i), []).append(f"unseen category {values.iloc[i]!r} in column {col!r} "
                                                    f"(known: {known_list(meta['categories'][col])})")
            parts.append(np.stack([(values == c).to_numpy(np.float32) for c in meta["categories"][col]], axis=1))
            continue
        num = pd.to_numeric(s, errors="coerce").to_numpy(np.float64)
        for i in np.flatnonzero(~np.isfinite(num) & ~missing):
            errors.setdefault(int(i), f"non-numeric or infinite value {s.iloc[i]!r} in numeric column {col!r}")
        parts.append(num.astype(np.float32)[:, None])
    x = np.concatenate(parts, axis=1) if parts else np.zeros((len(df), 0), np.float32)
    return x, errors, {i: "; ".join(w) for i, w in warns.items()}


def encoding(meta: dict) -> dict:
    """`encode_rows` in words, for the metadata of an exported model."""
    return {"before_model": [f"take the columns {meta['raw_features']} in this order",
                      "numeric column -> its value as float32",
                      "categorical column (meta.categories) -> one 0/1 column per known category, in that order; "
                      "an unseen category -> all zeros"],
            "features": meta["features"], "missing": _missing_rule(meta),
            "layout": "(B, features)", "dtype": "float32"}


def _missing_rule(meta: dict) -> str | dict:
    """What an exported model's consumer does with an empty cell: refuse the row, or the run's fill values."""
    if meta.get("missing") != "impute":
        return f"rows with a missing value are not predicted (data.missing={meta.get('missing', 'error')})"
    return {"rule": "fill an empty cell with its column's value (training-split median / most frequent) before "
                    "encoding", "values": (meta.get("imputation") or {}).get("values", {}), "category": MISSING}


def known_list(categories: list[str], shown: int = 5) -> str:
    """'a, b, c, d, e and 13 more (18 in all)': a long list of known categories, cut where the reader sees it is."""
    head = ", ".join(map(str, categories[:shown]))
    rest = len(categories) - shown
    return f"{head} and {rest} more ({len(categories)} in all)" if rest > 0 else head


def decode_row(x: np.ndarray, meta: dict) -> dict:
    """One encoded row (F,) -> {column: value} as in the CSV: a number, or the category whose 0/1 column is set
    ("(none of the known)" for an unseen one). The inverse of encode_rows, for people reading a sample."""
    out, at = {}, 0
    categories = meta.get("categories") or {}
    for col in meta["raw_features"]:
        if col in categories:
            cats = categories[col]
            block = x[at:at + len(cats)]
            out[str(col)] = cats[int(np.argmax(block))] if len(cats) and block.max() > 0.5 else "(none of the known)"
            at += len(cats)
        else:
            out[str(col)] = round(float(x[at]), 4)
            at += 1
    return out

