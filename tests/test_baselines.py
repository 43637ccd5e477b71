"""The baselines' torch linear models fit what scikit-learn's StandardScaler + LogisticRegression / Ridge fit."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_diabetes, load_digits
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from trainlab.diagnose.linear_baseline import fit_logistic, fit_ridge


def test_logistic_regression_matches_scikit_learn_on_digits():
    d = load_digits()
    x, y = d.data[:1200], d.target[:1200]
    xt, yt = d.data[1200:], d.target[1200:]
    ref = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(x, y)
    ours = fit_logistic(torch.tensor(x), torch.tensor(y))
    p_ref, p_ours = ref.predict_proba(xt), ours.predict_proba(torch.tensor(xt)).numpy()
    acc_ref, acc_ours = (p_ref.argmax(1) == yt).mean(), (p_ours.argmax(1) == yt).mean()
    print("test accuracy: scikit-learn", acc_ref, "torch", acc_ours)
    assert abs(acc_ours - acc_ref) <= 0.01  # the same convex objective: the same model up to solver tolerance
    assert np.abs(p_ours - p_ref).mean() < 0.005  # max measured 0.11 on one sample: solver tolerance
    assert (p_ours.argmax(1) == p_ref.argmax(1)).mean() >= 0.99


def test_one_class_gives_no_model_and_class_ids_are_kept():
    assert fit_logistic(torch.rand(10, 3), torch.full((10,), 4)) is None
    x = torch.cat([torch.zeros(20, 2), torch.ones(20, 2)]) + 0.01 * torch.randn(40, 2)
    m = fit_logistic(x, torch.tensor([3] * 20 + [7] * 20))
    assert m.classes.tolist() == [3, 7] and m.predict_proba(torch.ones(1, 2)).argmax().item() == 1


@pytest.mark.parametrize("rows", [400, 30])  # primal (features < rows) and dual (features > rows) forms
def test_ridge_matches_scikit_learn(rows):
    d = load_diabetes()
    x = np.hstack([d.data] * 5)[:rows]  # 50 features
    y = d.target[:rows]
    ref = make_pipeline(StandardScaler(), Ridge(alpha=1.0)).fit(x, y)
    ours = fit_ridge(torch.tensor(x), torch.tensor(y))
    xt = np.hstack([d.data] * 5)[400:]
    np.testing.assert_allclose(ours.predict(torch.tensor(xt)).numpy(), ref.predict(xt), rtol=1e-3, atol=1e-2)
