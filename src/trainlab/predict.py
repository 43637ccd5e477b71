"""`trainlab predict RUN_DIR [INPUT...]`: images, CSV rows or texts through the run's eval preprocessing and best
weights; a forecasting run forecasts the steps after its data (or each given CSV) ends."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from trainlab.data.images import load_image
from trainlab.errors import UserError
from trainlab.run import Run


def read_inputs(run: Run, files: list[str]) -> tuple[torch.Tensor, list[str]]:
    """-> (raw inputs as the dataset stores them, a name per row)."""
    kind = run.data["kind"]
    if kind == "image":
        c, h, w = run.data["raw_shape"]
        return torch.stack([load_image(f, (h, w), c) for f in files]), list(files)
    if kind == "tabular":
        return _read_csv_rows(run, files)
    if kind == "text":  # raw strings, .txt lines or a CSV's text column, tokenized with the saved vocabulary
        from trainlab.data.text import encode, predict_texts

        texts, names = predict_texts(run.data["meta"], files)
        return encode(texts, run.data["meta"]), names
    raise UserError(f"predict from files is not supported for {kind} runs yet")


def _read_csv_rows(run: Run, files: list[str]) -> tuple[torch.Tensor, list[str]]:
    from types import SimpleNamespace

    from trainlab.data.tabular import encode_features, read_table

    meta, xs, names = run.data["meta"], [], []
    params = SimpleNamespace(categorical="onehot")
    for f in files:
        df = read_table(f)
        missing = [c for c in meta["raw_features"] if c not in df.columns]
        if missing:
            raise UserError(f"{f} lacks feature column {missing[0]!r}; "
                            f"expected columns: {', '.join(meta['raw_features'])}")
        if df[meta["raw_features"]].isna().values.any():
            raise UserError(f"{f} has missing values in feature columns")
        x, _, _ = encode_features(df, meta["raw_features"], params, f, meta["categories"])
        xs.append(torch.from_numpy(x.astype(np.float32)))
        names += [f"{Path(f).name}:{i + 2}" for i in range(len(df))]
    return torch.cat(xs), names


def predict_files(run: Run, files: list[str], top: int = 3) -> list[dict]:
    if "horizon" in run.data["meta"]:  # forecasting: the next horizon steps after the data (or each CSV) ends
        from trainlab.forecast import forecast_rows

        return forecast_rows(run, files)
    if not files:
        raise UserError("predict needs inputs: image files, CSV files or (text runs) texts")
    x, names = read_inputs(run, files)
    out = run.predict_outputs(x)
    if run.task != "classification":
        values = out.squeeze(-1).tolist()
        return [{"input": n, "prediction": v} for n, v in zip(names, values, strict=False)]
    probs = out.softmax(-1)
    k = min(top, probs.shape[1])
    p, idx = probs.topk(k, dim=1)
    classes = run.classes
    return [{"input": n, "prediction": classes[int(i[0])],
             "top": [{"class": classes[int(c)], "probability": float(q)} for q, c in zip(pp, i, strict=False)]}
            for n, pp, i in zip(names, p, idx, strict=False)]
