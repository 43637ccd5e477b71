"""data.missing=impute for CSV tables: fill empty cells with statistics of the TRAINING split only.

    mask = missing_mask(df, features)                      # (N, columns) bool, before encoding
    bundle.fit = imputer(bundle, pool_mask, test_mask, params.impute_categorical)   # fitted per train/val view
    df = fill_rows(df, meta)                                # predict / serve / consumers: the same values

Numeric columns get the median of the training rows, categorical ones their most frequent category (ties: the
first in sorted order), or with impute_categorical=category the category "(missing)" when the training file has
empty cells in that column. The encoded pool holds a provisional 0 where a cell was empty (load_data refuses
NaN); the fit replaces it, once per train/val assignment (per fold in CV), so validation and test rows never
shape the values. meta["imputation"] (saved in data.json, the export's sidecar) holds the values.
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:  # annotations only: pandas is imported where a table is read
    import pandas as pd

from trainlab.core.errors import UserError
from trainlab.core.report import print_progress
from trainlab.data.base import ArrayDataset, DataBundle

MISSING = "(missing)"  # the category an empty cell becomes with impute_categorical=category


def missing_mask(df: pd.DataFrame, features: list[str]) -> np.ndarray:
    """(N, len(features)) True where a feature cell is empty."""
    return df[features].isna().to_numpy()


def fill_categories(df: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    """impute_categorical=category: empty cells of text columns become the category "(missing)" before encoding."""
    import pandas as pd  # start-up time: pandas (0.4 s) only where a table is read

    df = df.copy()
    for col in features:
        if not pd.api.types.is_numeric_dtype(df[col]) and df[col].isna().any():
            df[col] = df[col].astype(object).where(df[col].notna(), MISSING)
    return df


def column_slices(meta: dict) -> dict[str, slice]:
    """Raw column -> its encoded columns: one for a number, one per known category for a categorical column."""
    out, at = {}, 0
    for col in meta["raw_features"]:
        width = len(meta["categories"][col]) if col in meta["categories"] else 1
        out[col], at = slice(at, at + width), at + width
    return out


def provisional(x: np.ndarray) -> np.ndarray:
    """Encoded rows with NaN (empty numeric cells) -> 0 there, until the fit on the training split fills them."""
    return np.nan_to_num(x, nan=0.0)


def fit_values(x: torch.Tensor, mask: np.ndarray, meta: dict, strategy: str) -> dict:
    """Training rows' encoded features (n, F) and their empty cells (n, columns) -> {column: fill value}, for
    every column: predict may meet an empty cell where the training file had none."""
    values = {}
    for j, (col, sl) in enumerate(column_slices(meta).items()):
        present = ~mask[:, j]
        if not present.any():  # every training row lacks it: nothing to learn a fill value from
            raise UserError(f"column {col!r} has no value in any training row; data.missing=impute has nothing to "
                            f"fill it with: drop the column (data.features) or fill it yourself")
        block = x[torch.from_numpy(present)][:, sl].double()
        if col not in meta["categories"]:
            values[col] = float(np.median(block[:, 0].numpy()))  # the mean of the middle two for an even count
            continue
        cats = meta["categories"][col]
        counts = block.sum(0)  # (categories,) how often each is seen in the training rows
        mode = cats[int(torch.argmax(counts))]  # argmax: the first of tied counts, cats are sorted
        values[col] = MISSING if strategy == "category" and MISSING in cats else mode
    return values


def apply_values(x: torch.Tensor, mask: np.ndarray, meta: dict, values: dict) -> torch.Tensor:
    """Encoded rows (N, F) with their empty cells (N, columns) filled by `values` (a copy)."""
    x = x.clone()
    for j, (col, sl) in enumerate(column_slices(meta).items()):
        rows = torch.from_numpy(np.ascontiguousarray(mask[:, j]))
        if not rows.any():
            continue
        if col in meta["categories"]:
            onehot = torch.tensor([float(c == values[col]) for c in meta["categories"][col]], dtype=x.dtype)
            x[rows, sl] = onehot
        else:
            x[rows, sl.start] = values[col]
    return x


def imputer(bundle: DataBundle, pool_mask: np.ndarray, test_mask: np.ndarray | None, strategy: str, then=None):
    """The bundle's `fit`: impute from the training rows, record what was filled, then `then` (target scaling)."""
    pool_x = bundle.pool.x  # (N, F) provisional zeros in the empty cells

    def fit(train_idx: np.ndarray) -> DataBundle:
        idx = np.asarray(train_idx, dtype=np.int64)
        values = fit_values(pool_x[torch.from_numpy(idx)], pool_mask[idx], bundle.meta, strategy)
        pool = ArrayDataset(apply_values(pool_x, pool_mask, bundle.meta, values), bundle.pool.y)
        test = bundle.test
        if test is not None and test_mask is not None:
            test = ArrayDataset(apply_values(test.x, test_mask, bundle.meta, values), test.y)
        counts = {c: int(pool_mask[:, j].sum() + (test_mask[:, j].sum() if test_mask is not None else 0))
                  for j, c in enumerate(bundle.meta["raw_features"])}
        report = {"values": values, "counts": {c: n for c, n in counts.items() if n},
                  "train_rows": len(idx), "categorical": strategy,
                  "train_missing": {c: int(pool_mask[idx, j].sum())
                                    for j, c in enumerate(bundle.meta["raw_features"]) if pool_mask[idx, j].any()}}
        if report["counts"]:  # a table without empty cells: nothing to say
            print_progress(imputed_line(report))
        fitted = dataclasses.replace(bundle, pool=pool, test=test, meta={**bundle.meta, "imputation": report},
                                     fit=None)
        return then(fitted, train_idx) if then else fitted

    return fit


def imputed_line(report: dict) -> str:
    """'csv: imputed 7 empty cells (...): b 5 -> median 0.2134, colour 2 -> most frequent 'red''."""
    total = sum(report["counts"].values())
    parts = [f"{c} {n} -> {_how(report, c)}" for c, n in report["counts"].items()]
    return (f"csv: imputed {total} empty cells (data.missing=impute, values from the {report['train_rows']} "
            f"training rows only): " + ", ".join(parts))


def _how(report: dict, col: str) -> str:
    v = report["values"][col]
    if isinstance(v, float):
        return f"median {v:.4g}"
    return f"category {v!r}" if v == MISSING else f"most frequent {v!r}"


def fill_rows(df: pd.DataFrame, meta: dict) -> tuple[pd.DataFrame, dict[int, list[str]]]:
    """Predict time: empty cells of `df` filled with the run's training values -> (df, {row: notes})."""
    values = (meta.get("imputation") or {}).get("values") or {}
    df, notes = df.copy(), {}
    for col in meta["raw_features"]:
        empty = df[col].isna().to_numpy()
        if not empty.any():
            continue
        for i in np.flatnonzero(empty):
            notes.setdefault(int(i), []).append(f"empty {col!r} imputed: {_how(meta['imputation'], col)} of the "
                                                f"training split (data.missing=impute)")
        df[col] = df[col].astype(object).where(~empty, values[col])
    return df, notes
