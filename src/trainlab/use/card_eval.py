"""What a model card needs beyond the run's files: the best weights' test-split outputs, read again.

    ev = outputs_on_test(Path("runs/demo"))        # {"outputs": (N, K), "targets": (N,), "n": N, "metrics": {...}}
    calibration(ev["outputs"], ev["targets"])   # expected calibration error (15 equal-width bins)
    intervals(ev, ["f1", "mae"])                # percentile bootstrap 95% intervals over the test samples

The pass does not count as a look at the test split (the manifest's counter stays): it reproduces the single
recorded evaluation with the same weights on the same samples (checked: the recomputed metrics must equal the
recorded ones) to describe it - its calibration and its uncertainty - and chooses nothing. `trainlab train`
itself makes the same uncounted second pass for the per-class scores (observe/monitor.test_breakdown).
"""
from __future__ import annotations

from pathlib import Path

import torch

from trainlab.core.device import select_device
from trainlab.core.errors import UserError
from trainlab.core.metrics import compute_metrics
from trainlab.engine.trainer import Trainer
from trainlab.use.evaluate import load_matching_data
from trainlab.use.loaded import load_run

ECE_BINS = 15  # Guo et al. 2017 (On Calibration of Modern Neural Networks) use 15 equal-width confidence bins
BOOTSTRAP = 1000  # resamples: percentile bounds of a 95% interval settle to about +-0.002 of a proportion
BOOTSTRAP_SEED = 0


def outputs_on_test(run_dir: Path) -> dict:
    """The best weights on the run's own test split: outputs (N, K) and targets (N, ...) on the CPU, n, metrics."""
    run = load_run(run_dir)
    data = load_matching_data(run)  # the data changed since training: a UserError, nothing evaluated
    view = data.view(data.splits.train, data.splits.val)  # normalization fitted on the same training indices
    device = select_device(run.cfg.train.device)
    trainer = Trainer(run.model, run.cfg.train, seed=run.cfg.seed, task=run.task, progress=False)
    trainer.prepare(choice=run.choice)  # the precision the run was trained and tested with
    batches = view.batches("test", device)
    if batches is None:
        raise UserError(f"the test split of {run_dir} is empty: there is nothing to describe")
    outputs, targets, loss_sum = trainer.collect(batches)
    outputs, targets = outputs.cpu(), targets.cpu()
    values = compute_metrics(trainer.metrics, outputs, targets, run.task)
    metrics = {"loss": float(loss_sum) / len(targets), **{k: float(v) for k, v in values.items()}}
    return {"outputs": outputs, "targets": targets, "n": len(targets), "task": run.task,
            "names": list(trainer.metrics), "metrics": metrics}


def matches(recorded: dict, recomputed: dict, tol: float = 1e-4) -> bool:
    """True when every recorded test metric is reproduced (relative tolerance: floating-point sums may differ)."""
    shared = [k for k in recorded if k in recomputed]
    return bool(shared) and all(abs(recorded[k] - recomputed[k]) <= tol * max(1.0, abs(recorded[k]))
                                for k in shared)


def calibration(outputs: torch.Tensor, targets: torch.Tensor, bins: int = ECE_BINS) -> dict:
    """Expected calibration error of the softmax's top probability: logits (N, K), classes (N,).

    torchmetrics' MulticlassCalibrationError (l1 norm): the sample-weighted mean over equal-width confidence
    bins of |accuracy - mean confidence|. Also the mean confidence and the accuracy themselves."""
    from torchmetrics.classification import MulticlassCalibrationError  # optional heavy dependency (about 1 s)

    probs = outputs.float().softmax(-1)  # (N, K)
    ece = MulticlassCalibrationError(num_classes=outputs.shape[-1], n_bins=bins, norm="l1")(probs, targets.long())
    confidence = probs.max(-1).values  # (N,)
    accuracy = (probs.argmax(-1) == targets).float().mean()
    return {"ece": float(ece), "bins": bins, "mean_confidence": float(confidence.mean()),
            "accuracy": float(accuracy), "n": len(targets)}


def intervals(ev: dict, names: list[str], resamples: int = BOOTSTRAP, seed: int = BOOTSTRAP_SEED) -> dict:
    """{metric: {"low", "high", "method", "resamples"}}: 95% percentile bootstrap over the test samples.

    Each resample draws N samples with replacement (a seeded generator) and recomputes the metric with the
    same code as training (core/metrics.compute_metrics)."""
    outputs, targets, n = ev["outputs"], ev["targets"], ev["n"]
    gen = torch.Generator().manual_seed(seed)
    draws: dict[str, list[float]] = {k: [] for k in names}
    for _ in range(resamples):
        idx = torch.randint(0, n, (n,), generator=gen)  # (N,) sample indices
        values = compute_metrics(names, outputs[idx], targets[idx], ev["task"])
        for k in names:
            draws[k].append(float(values[k]))
    out = {}
    for k, values in draws.items():
        v = torch.tensor(values, dtype=torch.float64)
        v = v[torch.isfinite(v)]
        if len(v):
            out[k] = {"low": float(torch.quantile(v, 0.025)), "high": float(torch.quantile(v, 0.975)),
                      "method": "percentile bootstrap", "resamples": resamples}
    return out
