"""The overfitting note names its epochs consistently: where validation loss stopped improving, where it was
lowest, and - when train.monitor kept another epoch - which one was kept (issue: "bottomed at epoch 20" while
the best epoch was 30)."""
from __future__ import annotations

from trainlab.diagnose import curves

SETTINGS = {"early_stopping": None, "dropout": 0.0, "weight_decay": 0.0, "kind": "tabular", "augment": False}


def history(val: list[float]) -> list[dict]:
    train = [1.0 * 0.93 ** e for e in range(len(val))]  # keeps falling
    return [{"epoch": i + 1, "train_loss": t, "val_loss": v, "time": 1.0}
            for i, (t, v) in enumerate(zip(train, val, strict=True))]


def plateau_then_rise() -> list[float]:
    """Val loss reaches 0.300 at epoch 20, drifts to its lowest 0.2985 (within 1%) at epoch 30, then rises."""
    fall = [1.0 - 0.7 * e / 19 for e in range(20)]  # epochs 1-20: 1.0 -> 0.300
    flat = [0.300 - 0.0015 * e / 10 for e in range(1, 11)]  # epochs 21-30: -> 0.2985
    rise = [0.2985 + 0.02 * e for e in range(1, 11)]  # epochs 31-40: +0.02 per epoch
    return fall + flat + rise


def test_stopped_improving_and_lowest_epochs_are_both_named():
    c = curves.overfitting(history(plateau_then_rise()), SETTINGS, restored_epoch=30)
    assert c["status"] == "warning" and c["since_epoch"] == 20 and c["best_epoch"] == 20
    assert ("validation loss stopped improving at epoch 20 (0.3; its lowest, 0.2985, at epoch 30, within 1%)"
            in c["message"])
    assert "bottomed" not in c["message"] and "weights kept" not in c["message"]  # 30 is already named


def test_the_epoch_kept_by_another_monitor_is_named_with_it():
    c = curves.overfitting(history(plateau_then_rise()), {**SETTINGS, "monitor": "val_accuracy"}, restored_epoch=33)
    assert "; the weights kept are epoch 33's, the best val_accuracy" in c["message"]
    c = curves.overfitting(history(plateau_then_rise()), SETTINGS, restored_epoch=33)  # Python API: monitor unknown
    assert "; the weights kept are epoch 33's, the best by train.monitor" in c["message"]


def test_a_plain_bottom_reads_as_before():
    val = [max(0.6 - 0.1 * e, 0.2 + 0.015 * (e - 4)) for e in range(20)]  # lowest 0.2 at epoch 5, then rises
    c = curves.overfitting(history(val), {**SETTINGS, "monitor": "val_loss"}, restored_epoch=5)
    assert c["message"].startswith("overfitting since epoch 5: validation loss bottomed at epoch 5 (0.2) and is")
    assert "weights kept" not in c["message"] and "stopped improving" not in c["message"]


def test_healthy_run_names_the_true_lowest_epoch():
    """No overfitting: the 'ok' line names the epoch val loss was lowest, not the first within 1% of it."""
    val = [1.0 - 0.7 * e / 19 for e in range(20)] + [0.300 - 0.0015 * e / 10 for e in range(1, 11)]
    c = curves.overfitting(history(val), {**SETTINGS, "monitor": "val_loss"}, restored_epoch=30)
    assert c["status"] == "ok"
    assert c["message"].startswith("no overfitting: validation loss lowest at the last epoch (0.2985)")
    assert "weights kept" not in c["message"]
    c = curves.overfitting(history(val), {**SETTINGS, "monitor": "val_accuracy"}, restored_epoch=26)
    assert c["status"] == "ok" and c["message"].endswith("; the weights kept are epoch 26's, the best val_accuracy")
