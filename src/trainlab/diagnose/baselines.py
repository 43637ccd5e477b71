"""Simple models next to every result: does the network beat them?

    base = Baselines.fit(x_train, y_train, "classification", num_outputs=10)   # majority + logistic regression
    base.score(x_val, y_val, ["accuracy", "f1"])   # {"majority class": {...}, "logistic regression": {...}}

Classification: the majority class and a logistic regression; regression: the mean of the training targets and
a ridge (linear) regression (diagnose/linear_baseline.py, scikit-learn's objectives in torch) - fitted on the same
training split, on the flattened inputs
the network sees (tabular rows, pixels, series windows; not token ids). The linear model's cost is capped: at
most MAX_CELLS input values (rows subsampled), none above MAX_FEATURES features. Scores use the same metric
functions as the network (core/metrics.py), so the numbers compare.
"""
from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F

from trainlab.core.metrics import compute_metrics, higher_is_better
from trainlab.diagnose.finding import wilson
from trainlab.diagnose.linear_baseline import fit_logistic, fit_ridge

MAX_CELLS = 2_000_000  # training rows x features for the linear model (~1-3 s on one CPU core)
MAX_FEATURES = 20_000  # wider inputs (e.g. 3x224x224 images) get no linear baseline
MAX_EVAL = 20_000  # rows scored


class Baselines:
    def __init__(self, task: str, num_outputs: int, constant: torch.Tensor, linear=None, fit_rows: int = 0,
                 fit_seconds: float = 0.0):
        self.task, self.num_outputs, self.constant, self.linear = task, num_outputs, constant, linear
        self.fit_rows, self.fit_seconds = fit_rows, fit_seconds

    @property
    def names(self) -> tuple[str, str]:
        return ("majority class", "logistic regression") if self.task == "classification" else \
            ("mean predictor", "linear regression")

    @classmethod
    def fit(cls, x: torch.Tensor, y: torch.Tensor, task: str, num_outputs: int, seed: int = 0) -> Baselines:
        """Fit on the training split (x may be None or token ids: then only the constant baseline)."""
        y = y.detach().cpu()
        if task == "classification":
            constant = torch.bincount(y.long().reshape(-1), minlength=num_outputs).argmax()
        else:
            constant = y.float().mean(0)
        linear, rows, t0 = None, 0, time.perf_counter()
        features = math.prod(x.shape[1:]) if x is not None else 0
        if x is not None and x.is_floating_point() and 0 < features <= MAX_FEATURES:
            rows = min(len(x), max(MAX_CELLS // features, 50))
            keep = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:rows]
            xs = x[keep.to(x.device)].detach().cpu().float().reshape(rows, -1)  # (rows, features), copied once
            linear = fit_logistic(xs, y[keep]) if task == "classification" else fit_ridge(xs, y[keep])
        return cls(task, num_outputs, constant, linear, rows, time.perf_counter() - t0)

    def outputs(self, x: torch.Tensor | None, n: int) -> dict[str, torch.Tensor]:
        """Each baseline's outputs in the network's format: (N, K) scores or (N, ...) predictions."""
        const_name, linear_name = self.names
        if self.task == "classification":
            out = {const_name: F.one_hot(self.constant.expand(n), self.num_outputs).float()}
        else:
            out = {const_name: self.constant.expand(n, *self.constant.shape).clone()}
        if self.linear is not None and x is not None:
            xs = x.detach().cpu().float().reshape(len(x), -1)
            if self.task == "classification":  # columns of the classes seen in training -> all K classes
                full = torch.zeros(len(xs), self.num_outputs)
                full[:, self.linear.classes] = self.linear.predict_proba(xs)
                out[linear_name] = full
            else:
                out[linear_name] = self.linear.predict(xs)
        return out

    def score(self, x: torch.Tensor | None, y: torch.Tensor, metrics: list[str]) -> dict[str, dict[str, float]]:
        """{baseline name: {metric: value}} on (x, y), at most MAX_EVAL rows."""
        y = y.detach().cpu()[:MAX_EVAL]
        x = x[:MAX_EVAL] if x is not None else None
        scores = {}
        for name, out in self.outputs(x, len(y)).items():
            if self.task != "classification" and out.ndim == y.ndim + 1 and out.shape[-1] == 1:
                out = out.squeeze(-1)
            values = compute_metrics(metrics, out, y, self.task)
            scores[name] = {k: float(v) for k, v in values.items()}
        return scores


def compare(network: dict[str, float], scores: dict[str, dict[str, float]], split: str, n: int = 0) -> dict:
    """The network's metric next to each baseline's: {"metric", "network", "baselines": {...}, "beats": {...}}.

    An accuracy beats a baseline only when the baseline lies below its 95% interval over the split's `n`
    samples: 0.375 vs a majority class of 0.367 on 120 samples is no win, it is noise."""
    metric = next((m for m in ("accuracy", "r2", "f1", "mae", "rmse") if m in network
                   and all(m in s for s in scores.values())), None)
    if metric is None:
        return {}
    sign = 1 if higher_is_better(metric) else -1
    floor = wilson(network[metric] * n, n)[0] if metric == "accuracy" and n > 0 else -math.inf
    beats = {name: sign * (network[metric] - s[metric]) > 0 and (metric != "accuracy" or s[metric] < floor)
             for name, s in scores.items()}
    return {"split": split, "metric": metric, "network": network[metric], "n": n,
            "baselines": {name: s[metric] for name, s in scores.items()}, "beats": beats, "scores": scores}


def sentence(cmp: dict) -> str:
    """'validation accuracy: network 0.972 vs logistic regression 0.961, majority class 0.101 - the network
    beats both'."""
    if not cmp:
        return ""
    others = ", ".join(f"{name} {v:.4g}" for name, v in cmp["baselines"].items())
    sign = 1 if higher_is_better(cmp["metric"]) else -1
    lost = [name for name, b in cmp["beats"].items() if not b]
    behind = [name for name in lost if sign * (cmp["network"] - cmp["baselines"][name]) <= 0]
    noise = [name for name in lost if name not in behind]  # ahead, but within accuracy's 95% interval
    parts = [f"does NOT beat the {' or the '.join(behind)}"] if behind else []
    if noise:
        parts.append(f"is ahead of the {' and the '.join(noise)} only within the noise (the 95% interval of "
                     f"accuracy on {cmp.get('n')} samples)")
    verdict = "the network " + (" and ".join(parts) if parts else
                                "beats " + ("both" if len(cmp["beats"]) == 2 else "it"))
    return f"{cmp['split']} {cmp['metric']}: network {cmp['network']:.4g} vs {others} - {verdict}"
