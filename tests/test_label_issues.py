"""trainlab cv flags likely label errors: 5% of digits labels flipped on purpose are mostly recovered by cleanlab."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.datasets import load_digits

FLIP = 0.05


def flipped_digits_csv(path) -> np.ndarray:
    """digits as a CSV (64 pixel columns + label) with 5% of labels moved to another class; -> flipped rows."""
    d = load_digits()
    rng = np.random.default_rng(0)
    flipped = rng.choice(len(d.target), size=int(FLIP * len(d.target)), replace=False)
    y = d.target.copy()
    y[flipped] = (y[flipped] + rng.integers(1, 10, size=len(flipped))) % 10  # always a different class
    df = pd.DataFrame(d.data, columns=[f"p{i}" for i in range(64)])
    df["label"] = [f"d{v}" for v in y]
    df.to_csv(path, index=False)
    return np.sort(flipped)


@pytest.mark.slow
def test_cv_recovers_flipped_labels(cli, tmp_path):
    flipped = flipped_digits_csv(tmp_path / "digits.csv")
    cfg = {"seed": 0, "data": {"name": "csv", "path": str(tmp_path / "digits.csv"), "test_fraction": 0.1,
                               "batch_size": 64,
                               "transforms": {"train": [{"name": "normalize"}], "eval": [{"name": "normalize"}]}},
           "model": {"name": "mlp", "hidden": [64]}, "train": {"epochs": 15, "lr": 0.003}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    code, out, err = cli("cv", tmp_path / "c.yaml", "--folds", "5", "--out", tmp_path / "cv")
    assert code == 0, err
    result = json.loads((tmp_path / "cv" / "result.json").read_text())
    oof = np.load(tmp_path / "cv" / "oof.npz")
    assert oof["probs"].shape[1] == 10 and np.allclose(oof["probs"].sum(1), 1, atol=1e-4)
    pool = oof["indices"].tolist()
    assert len(set(pool)) == len(pool) == result["pool_size"] == oof["probs"].shape[0]  # each pool sample once
    flipped = set(flipped.tolist()) & set(pool)  # the test split's flips are never seen by cv
    flagged = {e["index"] for e in result["label_issues"]}
    hits = len(flagged & flipped)
    precision, recall = hits / max(len(flagged), 1), hits / len(flipped)
    print(f"flagged {len(flagged)}, flipped {len(flipped)}, precision {precision:.3f}, recall {recall:.3f}")
    # measured (seed 0, CPU): 73 flagged of 79 pool flips, precision 0.863, recall 0.797; floors ~0.1 below
    # leave room for other BLAS/platform rounding, and still fail if flagging were near random (5% base rate)
    assert recall >= 0.7 and precision >= 0.75, (precision, recall)
    page = (tmp_path / "cv" / "label_issues.html").read_text()
    assert page.count('<div class="card">') == min(len(flagged), 64)
