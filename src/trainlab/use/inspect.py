"""Error analysis of a finished run: which samples it gets most wrong, and which classes it confuses.

    trainlab inspect runs/demo                    # validation split -> runs/demo/inspect-val/inspect.html
    trainlab inspect runs/demo --split test --top 32 --out look/   # counts as a test evaluation

    from trainlab.use.inspect import top_losses, dataset_top_losses
    top_losses("runs/demo", split="val", k=16)    # -> [{"index", "path"?, "true", "predicted", "loss", ...}]
    dataset_top_losses(model, my_dataset, k=16)   # any torch Dataset of (x, label) and any classifier

Loss here is the plain per-sample cross-entropy of the best weights (no label smoothing or class weights),
so it ranks samples by how surely the model contradicts their label. Indices are positions in the dataset
(the training pool, or the separate test set when the dataset has one); image folders also give the file.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from trainlab.core.errors import UserError
from trainlab.core.files import make_dir, write_text
from trainlab.observe.gallery import cards_html, gallery_page, json_safe
from trainlab.observe.mistakes import (  # noqa: F401  (re-exported: `from trainlab.use.inspect import ...`)
    SplitPredictions,
    confused_pairs,
    describe,
    mistakes_by_class,
    rank_losses,
)
from trainlab.observe.report import esc, table
from trainlab.run.directory import record_files
from trainlab.use.evaluate import load_matching_data, record_test_evaluation
from trainlab.use.loaded import Run, load_run


def _as_run(run: Run | str | Path) -> Run:
    return run if isinstance(run, Run) else load_run(run)


@torch.no_grad()
def split_predictions(run: Run | str | Path, split: str = "val") -> SplitPredictions:
    """The run's best model on every sample of `split` ("val" or "test"), in dataset order."""
    run = _as_run(run)
    if run.task != "classification":
        raise UserError(f"inspect needs a classification run; {run.dir} is {run.task}")
    data = load_matching_data(run)
    view = data.view(data.splits.train, data.splits.val)
    batches = view.batches(split, torch.device("cpu"))
    if batches is None:
        raise UserError(f"the {split} split of {run.dir} is empty")
    run.model.eval()
    logits, labels = zip(*[(run.model(xb), yb) for xb, yb in batches], strict=True)
    logits, labels = torch.cat(logits), torch.cat(labels).long()  # (N, C), (N,)
    losses = F.cross_entropy(logits, labels, reduction="none")
    if data.bundle.kind == "tabular":  # the fitted rows (data.missing=impute: training-split values in empty cells)
        data = dataclasses.replace(data, bundle=view.bundle)
    if split == "val":
        where, indices = "pool", view.val_idx
    elif data.bundle.test is not None:
        where, indices = "test", np.arange(len(data.bundle.test))
    else:
        where, indices = "pool", data.splits.test
    return SplitPredictions(data, where, np.asarray(indices), labels.numpy(), logits.softmax(-1).numpy(),
                            losses.numpy())


def top_losses(run: Run | str | Path, split: str = "val", k: int = 16,
               predictions: SplitPredictions | None = None) -> list[dict]:
    """The k samples of `split` with the highest cross-entropy, highest first."""
    run = _as_run(run)
    p = predictions if predictions is not None else split_predictions(run, split)
    return rank_losses(p, run.classes, k)


@torch.no_grad()
def dataset_top_losses(model: torch.nn.Module, dataset, k: int = 16, batch_size: int = 256) -> list[dict]:
    """Any map-style classification Dataset (yours: `__getitem__` -> (x, label)) and a model: the k samples
    with the highest cross-entropy, highest first, as {"index", "true", "predicted", "probability",
    "true_probability", "loss"} (classes as integers). Samples go through the model exactly as the Dataset
    returns them, in order; nothing is shuffled or transformed."""
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    logits, labels = zip(*[(model(x.to(device)).float().cpu(), torch.as_tensor(y).long()) for x, y in loader],
                         strict=True)
    model.train(was_training)
    logits, labels = torch.cat(logits), torch.cat(labels)  # (N, C), (N,)
    losses, probs = F.cross_entropy(logits, labels, reduction="none"), logits.softmax(-1)
    out = []
    for i in torch.argsort(-losses, stable=True)[:k].tolist():
        pred = int(probs[i].argmax())
        out.append({"index": i, "true": int(labels[i]), "predicted": pred, "probability": float(probs[i, pred]),
                    "true_probability": float(probs[i, labels[i]]), "loss": float(losses[i])})
    return out


def inspect_run(run_dir: str | Path, split: str = "val", top: int = 16, out: Path | None = None,
                extra_sections=None) -> dict:
    """Write inspect.html (top losses, confused pairs, per-class mistakes) to `out`; return the result, which
    `trainlab inspect` writes to out/result.json.

    `out` defaults to RUN_DIR/inspect-SPLIT. `extra_sections` is a list of callables
    `(run, predictions) -> [(id, title, html), ...]` that add panels (attribution maps, model internals).
    """
    if top < 1:
        raise UserError(f"--top must be >= 1, got {top}")
    run = load_run(run_dir)
    default_out = out is None  # RUN_DIR/inspect-SPLIT is trainlab's: listed in the run's manifest when written
    out = Path(out) if out is not None else run.dir / f"inspect-{split}"
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a directory")
    p = split_predictions(run, split)
    losses, pairs = top_losses(run, split, top, p), confused_pairs(p, run.classes)
    by_class = mistakes_by_class(p, run.classes)
    result = {"run_dir": str(run.dir), "split": split, "samples": len(p.labels),
              "errors": int((p.predicted != p.labels).sum()), "mean_loss": float(p.losses.mean()),
              "top_losses": [json_safe(s) for s in losses],
              "confused_pairs": [{**c, "examples": [json_safe(s) for s in c["examples"]]} for c in pairs],
              "mistakes_by_class": {k: [json_safe(s) for s in v] for k, v in by_class.items()}}
    if split == "test":
        record_test_evaluation(run.dir, result)
    sections = page_sections(result, losses, pairs, by_class)
    for extra in extra_sections or ():
        sections += extra(run, p)
    if default_out:  # listed before it exists: --overwrite of the run may remove it even after a kill
        record_files(run.dir, [out.name])
    make_dir(out)
    subtitle = f"{split} split: {result['errors']} of {result['samples']} misclassified"
    write_text(out / "inspect.html", gallery_page(f"inspect {run.dir.name}", sections, subtitle))
    result["out"] = str(out)
    return result


def page_sections(result: dict, losses: list[dict], pairs: list[dict], by_class: dict) -> list[tuple]:
    pair_rows = [[c["true"], c["predicted"], c["count"]] for c in pairs]
    confused = table(pair_rows, ["true", "predicted as", "count"]) + "".join(
        f"<h3>{esc(c['true'])} → {esc(c['predicted'])} ({c['count']})</h3>" + cards_html(c["examples"]) for c in pairs)
    per_class = "".join(f"<h3>true class {esc(name)}</h3>" + cards_html(s) for name, s in by_class.items())
    return [("top", f"Top {len(losses)} losses", cards_html(losses)),
            ("confused", "Most-confused class pairs", confused if pairs else "<p>(no mistakes)</p>"),
            ("mistakes", "Mistakes per class", per_class or "<p>(no mistakes)</p>")]
