"""Likely label errors from cross-validation: every pool sample's out-of-fold probabilities, judged by cleanlab.

    trainlab cv examples/digits-mlp.yaml --folds 5 --out runs/digits-cv
    # -> runs/digits-cv/oof.npz (indices, labels, probs), result.json "label_issues", label_issues.html

Each sample is scored by a model that never trained on it (its fold's), so a confident disagreement with the
given label is evidence against the label. `cleanlab.filter.find_label_issues` turns the (N, C) out-of-fold
probabilities into the flagged set (confident learning: per-class thresholds, not one hand-picked cut-off);
the list is ranked by self-confidence, the probability the model gives the given label, lowest first.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from trainlab.core.files import atomic_file, write_text
from trainlab.data.describe import describe_sample
from trainlab.observe.gallery import cards_html, gallery_page

GALLERY = 64  # cards on label_issues.html; result.json lists every flagged sample


@torch.no_grad()
def val_probabilities(model: torch.nn.Module, batches) -> np.ndarray:
    """(N, C) softmax of `model` over `batches` in their order (the fold's validation part)."""
    model.eval()
    return torch.cat([model(xb).softmax(-1).float().cpu() for xb, _ in batches]).numpy()


def out_of_fold(folds: list[dict], labels: np.ndarray) -> dict:
    """Stack the folds' validation probabilities into pool order: {indices (N,), labels (N,), probs (N, C)}."""
    idx = np.concatenate([np.asarray(f["val_indices"][:len(f["val_probs"])]) for f in folds])
    probs = np.concatenate([f["val_probs"] for f in folds])
    order = np.argsort(idx, kind="stable")
    return {"indices": idx[order], "labels": labels[idx[order]], "probs": probs[order]}


def find_issues(oof: dict) -> np.ndarray:
    """Rows of `oof` whose label is probably wrong, most suspicious first (cleanlab)."""
    from cleanlab.filter import find_label_issues  # optional heavy dependency: imported on use

    return find_label_issues(oof["labels"], oof["probs"], return_indices_ranked_by="self_confidence")


def label_issues(bundle, oof: dict) -> list[dict]:
    """Flagged samples as {index, path?, given, suggested, quality} (index = position in the pool)."""
    classes, out = bundle.classes, []
    for row in find_issues(oof):
        index, given = int(oof["indices"][row]), int(oof["labels"][row])
        entry = {"index": index, "given": classes[given], "suggested": classes[int(oof["probs"][row].argmax())],
                 "quality": float(oof["probs"][row, given])}
        path = describe_sample(bundle, "pool", index).get("path") if bundle.kind == "image" else None
        if path:
            entry["path"] = path
        out.append(entry)
    return out


def write_label_issues(out: Path, bundle, oof: dict, issues: list[dict]) -> None:
    """oof.npz (every sample's out-of-fold probabilities) and label_issues.html (a gallery of the flagged)."""
    with atomic_file(out / "oof.npz", "wb") as f:  # a full disk or a kill leaves no half file
        np.savez_compressed(f, **oof)
    cards = [{**describe_sample(bundle, "pool", e["index"]), **e} for e in issues[:GALLERY]]
    note = (f"<p>{len(issues)} of {len(oof['indices'])} samples flagged by cleanlab.filter.find_label_issues from "
            f"out-of-fold probabilities; quality = out-of-fold probability of the given label.</p>")
    panel = ("issues", "Likely label errors", note + cards_html(cards))
    page = gallery_page(f"likely label errors: {out.name}", [panel])
    write_text(out / "label_issues.html", page)
