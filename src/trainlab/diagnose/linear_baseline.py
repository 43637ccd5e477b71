"""The baselines' linear models, in torch: a multinomial logistic regression (L-BFGS) and a ridge regression
(closed form), both on standardized features.

    model = fit_logistic(x, y)          # x (n, F) float, y (n,) class ids -> LinearModel (None: one class only)
    model.predict_proba(x_new)          # (m, classes seen) probabilities, columns in model.classes order
    model = fit_ridge(x, y)             # y (n,) or (n, k) -> LinearModel; model.predict(x_new)

They fit the objectives of scikit-learn's make_pipeline(StandardScaler(), LogisticRegression()) (C = 1) and
make_pipeline(StandardScaler(), Ridge(alpha=1)), to which tests/test_baselines.py compares them. Written in
torch because importing scikit-learn costs about 1 s, paid by every `Trainer.fit` that reports baselines.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


class LinearModel:
    """Standardize, then one linear map: logits (classification) or predictions (regression)."""

    def __init__(self, mean, scale, weight, bias, classes=None):
        self.mean, self.scale, self.weight, self.bias, self.classes = mean, scale, weight, bias, classes

    def _out(self, x) -> torch.Tensor:
        z = (torch.as_tensor(x, dtype=torch.float32).reshape(len(x), -1) - self.mean) / self.scale  # (m, F)
        return z @ self.weight + self.bias

    def predict_proba(self, x) -> torch.Tensor:
        return self._out(x).softmax(-1)

    def predict(self, x) -> torch.Tensor:
        out = self._out(x)
        return out.squeeze(-1) if self.classes is None and out.shape[-1] == 1 else out


def standardize(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-feature mean and (population) std; constant features get scale 1, like StandardScaler."""
    mean, std = x.mean(0), x.std(0, correction=0)
    return mean, torch.where(std > 1e-12, std, torch.ones_like(std))


@torch.no_grad()
def _z(x: torch.Tensor):
    x = x.float().reshape(len(x), -1)
    mean, scale = standardize(x)
    return (x - mean) / scale, mean, scale


def fit_logistic(x: torch.Tensor, y: torch.Tensor, c: float = 1.0, max_iter: int = 300) -> LinearModel | None:
    """Minimize mean cross-entropy + ||W||^2 / (2 C n) (scikit-learn's objective, scaled by 1/n) with L-BFGS."""
    classes = torch.unique(y.long())
    if len(classes) < 2:
        return None
    z, mean, scale = _z(x)
    target = torch.searchsorted(classes, y.long())  # (n,) index into `classes`
    weight = torch.zeros(z.shape[1], len(classes), requires_grad=True)
    bias = torch.zeros(len(classes), requires_grad=True)
    opt = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=max_iter, tolerance_grad=1e-4, tolerance_change=1e-9,
                            history_size=10, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(z @ weight + bias, target) + (weight * weight).sum() / (2 * c * len(z))
        loss.backward()
        return loss

    opt.step(closure)
    return LinearModel(mean, scale, weight.detach(), bias.detach(), classes)


@torch.no_grad()
def fit_ridge(x: torch.Tensor, y: torch.Tensor, alpha: float = 1.0) -> LinearModel:
    """Minimize ||y - Zw - b||^2 + alpha ||w||^2 in closed form (the dual form when there are more features
    than rows, so 20,000 features never make a 20,000 x 20,000 matrix)."""
    z, mean, scale = _z(x)
    z, y = z.double(), y.double().reshape(len(y), -1)  # (n, F), (n, k)
    y_mean = y.mean(0)
    yc = y - y_mean
    n, f = z.shape
    if f <= n:
        w = torch.linalg.solve(z.T @ z + alpha * torch.eye(f, dtype=z.dtype), z.T @ yc)
    else:
        w = z.T @ torch.linalg.solve(z @ z.T + alpha * torch.eye(n, dtype=z.dtype), yc)
    return LinearModel(mean, scale, w.float(), y_mean.float())
