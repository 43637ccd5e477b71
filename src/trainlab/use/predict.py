"""`trainlab predict RUN_DIR [INPUT...]`: images, CSV rows or texts through the run's eval preprocessing and best
weights; a forecasting run forecasts the steps after its data (or each given CSV) ends."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from trainlab.core.errors import UserError
from trainlab.data.images import load_image
from trainlab.data.tabular import encode_features, read_table
from trainlab.data.text import encode, predict_texts
from trainlab.data.timeseries import predict_windows
from trainlab.use.inference import load_predictor
from trainlab.use.loaded import Run


def predict_command(path: Path, files: list[str], top: int = 3, trust_code: bool = False) -> list[dict]:
    """`trainlab predict PATH [INPUT...]`: PATH is a run directory or an exported model file."""
    return predict_files(load_predictor(path, trust_code=trust_code), files, top)


def read_inputs(run: Run, files: list[str]) -> tuple[torch.Tensor, list[str]]:
    """-> (raw inputs as the dataset stores them, a name per row)."""
    kind = run.data["kind"]
    if kind == "image":
        c, h, w = run.data["raw_shape"]
        return torch.stack([load_image(f, (h, w), c) for f in files]), list(files)
    if kind == "tabular":
        return _read_csv_rows(run, files)
    if kind == "text":  # raw strings, .txt lines or a CSV's text column, tokenized with the saved vocabulary

        texts, names = predict_texts(run.data["meta"], files)
        return encode(texts, run.data["meta"]), names
    raise UserError(f"predict from files is not supported for {kind} runs yet")


def _read_csv_rows(run: Run, files: list[str]) -> tuple[torch.Tensor, list[str]]:


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


def forecast_rows(run, files: list[str]) -> list[dict]:
    """`trainlab predict` on a forecasting run: the next `horizon` steps after each input's end, one row per value."""
    meta, rows = run.data["meta"], []
    k = len(meta["targets"])
    for name, window, labels in predict_windows(meta, files):
        x = torch.tensor(window, dtype=torch.float32).unsqueeze(0)  # (1, lookback, F) raw values (a copy)
        pred = run.predict_outputs(x).reshape(meta["horizon"], k)  # step-major, like the training targets
        for h, label in enumerate(labels):
            for j, target in enumerate(meta["targets"]):
                where = f"{name} {label}" + (f" {target}" if k > 1 else "")
                rows.append({"input": where, "prediction": float(pred[h, j]), "step": h + 1, "time": label,
                             "target": target})
    return rows
