"""`trainlab audit RUN`: the data audit of a trained run, with the model's own view of the samples.

    trainlab audit runs/mnist-cnn --out runs/mnist-cnn/audit

The same checks as `trainlab audit CONFIG` (data/audit_full.py) on the run's splits (splits.json), but the
neighbours are searched among the model's embeddings (the input of its output layer), which place two images
of the same thing closer than raw pixels do, and label issues are judged from out-of-sample probabilities:
the model's own on val/test (it never trained on them), the embeddings' neighbours' votes on train (the
model has seen those labels, so its own probabilities there would hide the errors). No test metric is
computed: this is not a look at the test score.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from trainlab.data.audit import audit_input
from trainlab.data.audit_full import full_audit
from trainlab.models.heads import head_names
from trainlab.observe.audit_page import write_audit
from trainlab.use.evaluate import load_matching_data
from trainlab.use.loaded import Run, load_run

BATCH = 512


def audit_run(run_dir: Path, out: Path, progress: bool = True) -> dict:
    """Audit a run's data with its model; writes out/audit.html and returns the result for out/result.json."""
    run = load_run(run_dir)
    data = audit_input(load_matching_data(run), progress)
    embeddings, probs = model_view(run, data.x)
    result = full_audit(data, embeddings, probs if data.y is not None else None, progress)
    return write_audit(out, f"trainlab audit {Path(run_dir).name}", result, data,
                       {"run": str(run_dir), "dataset": run.cfg.data.name, "seed": run.cfg.seed})


@torch.no_grad()
def model_view(run: Run, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray | None]:
    """Raw samples (N, ...) -> (embeddings (N, D): the output layer's input, class probabilities (N, C) or None)."""
    heads = head_names(run.model)
    layer = dict(run.model.named_modules())[heads[0]] if heads else None
    captured = []
    hook = layer.register_forward_hook(lambda m, args, out: captured.append(args[0].flatten(1).float())) \
        if layer is not None else None
    outputs = []
    try:
        for chunk in x.split(BATCH):
            outputs.append(run.predict_outputs(chunk).float())
    finally:
        if hook is not None:
            hook.remove()
    logits = torch.cat(outputs)
    emb = torch.cat(captured) if captured else logits.flatten(1)
    probs = logits.softmax(-1).numpy() if run.task == "classification" else None
    return emb.numpy(), probs
