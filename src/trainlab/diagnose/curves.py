"""What the curves of a training run say, in words: overfitting, underfitting, divergence, a learning rate far
off, vanishing/exploding gradients, dead ReLU units and a slow input pipeline. Pure functions over the numbers
a run records (history rows, per-layer gradient norms, per-step losses), so each check is testable on a
made-up history; `diagnose/catalog.py` registers them and `diagnose/diagnosis.py` assembles them with the
before-training pitfalls into one diagnosis.

    check = overfitting(history)   # {"status": "warning", "message": "overfitting since epoch 6: ...", ...}

Every check returns {"status": "ok" | "warning" | "skipped", "message": str, "remedies": [str], ...numbers}.
The thresholds below are deliberately coarse: a diagnosis must be right on clear cases and quiet on healthy
runs (every shipped example, 3 seeds: tests/test_false_alarms.py), not clever on borderline ones.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

# ----------------------------------------------------------------------------- thresholds
# Overfitting: validation loss stopped improving while training loss kept falling, and then either rose or
# stayed far above a near-zero training loss.
OVERFIT_EPOCHS_AFTER = 5  # epochs after the (smoothed) bottom, like an early-stopping patience: fewer
#                          cannot tell a trend from the noise of a small validation split
SAME_LEVEL = 0.01  # val losses within 1% of the minimum count as the minimum (like early stopping's min_delta)
OVERFIT_REL_RISE = 0.10  # smoothed val loss >= 10% above its minimum ...
OVERFIT_NOISE = 3.0  # ... and > 3x the epoch-to-epoch jitter of val loss (small val splits are noisy; at 2x,
#                    ~2% of simulated healthy runs with 20-40% val-loss noise were flagged, at 3x none of 300)
SMOOTH = 3  # epochs averaged by the smoothing window (centred)
LEVEL = 5  # epochs averaged for "where val loss is now" (trailing)
MEMORIZED = 0.1  # or: train loss <= a tenth of val loss (the training set is memorized) ...
MEMORIZED_GAP = 0.05  # ... with a gap >= 5% of the constant-prediction loss (not two near-zero losses)
# Underfitting: a constant prediction (uniform logits / the mean target) is the yardstick.
UNDERFIT_FRACTION = 0.5  # final train loss >= half a constant prediction's loss: little has been learned
UNDERFIT_FLAT = 0.05  # < 5% relative improvement over the last third of the epochs: a plateau
# Divergence: non-finite loss, a blow-up, or a training loss that rises instead of falling.
DIVERGE_BLOWUP = 10.0  # a step loss 10x the initial / constant-prediction loss: no healthy run gets there
DIVERGE_RISE = 1.5  # median step loss of an epoch 1.5x the lowest epoch median ...
DIVERGE_RISE_ABS = 0.05  # ... by >= 5% of the constant-prediction loss (ignores jitter of near-zero losses) ...
DIVERGE_RISE_EPOCHS = 2  # ... over 2+ epochs, or 3x in one, while validation loss is off its best: one noisy
#                          epoch of a small dataset (0.048 -> 0.129 as val loss hit its best) is not divergence
# Learning rate far too low: after the first epoch the weights moved by less than 0.1% of their norm and the
# smoothed loss by less than 2% (a healthy first epoch moves weights by 1-100%; lr=1e-6 with Adam: ~0.05%).
LR_LOW_UPDATE = 1e-3
LR_LOW_LOSS = 0.02
# Gradients: root-mean-square gradient per element, first weight layer vs last (layers differ in size).
VANISH_RATIO = 1e-3  # first layer learns >1000x slower than the last (healthy MLPs/CNNs: ~0.05-10)
EXPLODE_RATIO = 1e3
EXPLODE_GROWTH = 1e2  # total gradient norm grew 100x since the first epoch
# Dead ReLUs: a unit is dead when it outputs 0 for every sample of the probe batch.
DEAD_LAYER = 0.5  # one layer with >= half its units dead
DEAD_TOTAL = 0.25  # or a quarter of all ReLU units
# Input pipeline: share of the epoch spent waiting for the next batch (after the warm-up epoch).
PIPELINE_SHARE = 0.3
PIPELINE_MIN_WAIT = 0.1  # ... and >= 0.1 s per epoch: a tiny epoch's scheduling hiccup is no bottleneck

@dataclass
class Signals:
    """Everything the checks look at; only `history` is required."""

    history: list[dict]  # Trainer history rows: train_loss, val_loss, val_<metric>, lr, time, train_data_time
    grad_rms: list[dict[str, float]] = field(default_factory=list)  # per epoch: weight layer -> gradient RMS
    dead: list[dict[str, float]] = field(default_factory=list)  # per epoch: ReLU layer -> share of dead units
    step_losses: list[list[float]] = field(default_factory=list)  # per epoch: each step's training loss
    baseline_loss: float | None = None  # loss of a constant prediction (ln K for K balanced classes)
    settings: dict = field(default_factory=dict)  # config facts for remedies (see `_remedy_settings`)
    failure: dict | None = None  # {"step", "epoch", "layer", "message"} when training stopped on a NaN/Inf loss
    stopped_early: bool = False  # early stopping ended the run (and the best weights were restored)
    best_epoch: int | None = None  # the epoch whose weights were restored (train.monitor)
    update_ratio: float | None = None  # |weights after epoch 1 - initial| / |initial| (None: not measured)
    lr: float | None = None  # the learning rate of the first epoch


def _check(status: str, message: str, remedies: list[str] | tuple = (), **numbers) -> dict:
    return {"status": status, "message": message, "remedies": list(remedies), **numbers}


def _finite(values: list[float]) -> bool:
    return all(v is not None and math.isfinite(v) for v in values)


def smooth(values: list[float], width: int = SMOOTH) -> list[float]:
    """Centred moving average; the window shrinks at both ends. (T,) -> (T,)."""
    half = width // 2
    return [statistics.fmean(values[max(0, i - half): i + half + 1]) for i in range(len(values))]


def _column(history: list[dict], key: str) -> list[float]:
    return [float(r[key]) for r in history if key in r and r[key] is not None]


# ----------------------------------------------------------------------------- overfitting

def overfitting(history: list[dict], settings: dict | None = None, stopped_early: bool = False,
                restored_epoch: int | None = None, baseline_loss: float | None = None) -> dict:
    """"Overfitting since epoch N": val loss has not improved for a patience of epochs while train loss kept
    falling, and either val loss rose beyond its noise or the model memorized the training set (train loss a
    tenth of val loss, a gap of >= 5% of the constant-prediction loss). Caught by early stopping -> status ok.
    """
    val, train = _column(history, "val_loss"), _column(history, "train_loss")
    if len(val) != len(history) or len(val) < OVERFIT_EPOCHS_AFTER + 2 or not _finite(val + train):
        return _check("skipped", f"needs validation loss for at least {OVERFIT_EPOCHS_AFTER + 2} finite epochs")
    low = min(val)
    best = next(i for i, v in enumerate(val) if v <= low * (1 + SAME_LEVEL))  # where val loss stopped improving
    s = smooth(val)
    s_best = min(range(len(s)), key=s.__getitem__)
    level = statistics.fmean(val[-LEVEL:])  # where val loss is now (trailing mean)
    jitter = 1.4826 * statistics.median(abs(v - m) for v, m in zip(val, s, strict=True))  # robust std per epoch
    rise = level - s[s_best]
    numbers = dict(best_epoch=best + 1, best_val_loss=val[best], final_val_loss=val[-1],
                   gap_at_best=val[best] - train[best], gap_at_end=level - train[-1],
                   rise=rise / s[s_best] if s[s_best] > 0 else 0.0, jitter=jitter)
    numbers.update(_accuracy_gap(history))
    stalled = len(val) - 1 - best >= OVERFIT_EPOCHS_AFTER and train[-1] < train[best]
    rising = (len(val) - 1 - s_best >= OVERFIT_EPOCHS_AFTER and rise >= OVERFIT_REL_RISE * s[s_best]
              and rise > OVERFIT_NOISE * jitter)
    memorized = (train[-1] <= MEMORIZED * level
                 and level - train[-1] >= MEMORIZED_GAP * (baseline_loss if baseline_loss else 0.0))
    lowest = min(range(len(val)), key=val.__getitem__)
    if not (stalled and (rising or memorized)):
        where = "at the last epoch" if lowest == len(val) - 1 else f"at epoch {lowest + 1}"
        return _check("ok", f"no overfitting: validation loss lowest {where} ({val[lowest]:.4g}), "
                            f"train/val loss gap {val[-1] - train[-1]:.3g} at the end"
                            f"{kept_epoch(restored_epoch, (lowest + 1,), settings)}", **numbers)
    since = best + 1
    acc = (f"; accuracy train {numbers['train_accuracy']:.1%} vs val {numbers['val_accuracy']:.1%}"
           if "train_accuracy" in numbers else "")
    story = (f"validation loss {bottom(val, best, lowest)} and is {level:.4g} now "
             f"({level / val[best] - 1:+.0%}) while training loss fell from {train[best]:.3g} to {train[-1]:.3g} "
             f"(train/val gap {level - train[-1]:.3g})")
    at = restored_epoch or since
    if stopped_early:
        return _check("ok", f"early stopping caught overfitting at epoch {at} (the epoch-{at} weights were "
                            f"restored): {story}", since_epoch=since, caught=True, **numbers)
    if (settings or {}).get("early_stopping") and restored_epoch:  # on, but the epoch limit came first
        return _check("ok", f"overfitting since epoch {since}, handled: early stopping is on and the epoch-{at} "
                            f"weights were restored (the epoch limit ended the run before its patience did): "
                            f"{story}", since_epoch=since, caught=True, **numbers)
    kept = kept_epoch(restored_epoch, (since, lowest + 1), settings)
    return _check("warning", f"overfitting since epoch {since}: {story}{kept}{acc}",
                  _overfit_remedies(since, settings or {}), since_epoch=since, **numbers)


def bottom(val: list[float], best: int, lowest: int) -> str:
    """Where validation loss bottomed (0-based epochs): the first epoch within SAME_LEVEL of its lowest, and the
    lowest itself when that came later ("stopped improving at epoch 20 (0.41; its lowest, 0.405, at epoch 30)")."""
    if lowest == best:
        return f"bottomed at epoch {best + 1} ({val[best]:.4g})"
    return (f"stopped improving at epoch {best + 1} ({val[best]:.4g}; its lowest, {val[lowest]:.4g}, at epoch "
            f"{lowest + 1}, within {SAME_LEVEL:.0%})")


def kept_epoch(restored: int | None, named: tuple[int, ...], settings: dict | None) -> str:
    """'; the weights kept are epoch 30's, the best val_accuracy' when the epoch train.monitor kept is not one the
    sentence already named: a reader must not take the epoch where val loss bottomed for the one restored."""
    if not restored or restored in named:
        return ""
    monitor = (settings or {}).get("monitor")
    return f"; the weights kept are epoch {restored}'s, the best {monitor or 'by train.monitor'}"


def _accuracy_gap(history: list[dict]) -> dict:
    last = history[-1]
    if "train_accuracy" in last and "val_accuracy" in last:
        return {"train_accuracy": last["train_accuracy"], "val_accuracy": last["val_accuracy"]}
    return {}


def _overfit_remedies(since: int, s: dict) -> list[str]:
    out = []
    if not s.get("early_stopping"):
        out.append(f"early stopping: train.early_stopping: 5 (the best weights, epoch {since}, are restored)")
    if s.get("dropout", 0) == 0 and s.get("has_dropout", True):
        out.append("dropout: model.dropout: 0.2-0.5")
    if not s.get("weight_decay"):
        out.append("weight decay: train.weight_decay: 1e-4 (or train.optimizer: adamw)")
    if s.get("kind") == "image" and not s.get("augment"):
        out.append("augmentation: add random_affine / random_crop to data.transforms.train "
                   "(flips only where they keep the label: not for digits)")
    out.append("more training data, or a smaller model")
    return out


# ----------------------------------------------------------------------------- underfitting

def underfitting(history: list[dict], baseline_loss: float | None) -> dict:
    """Train and val loss both still close to a constant prediction's loss: the model learned little."""
    train = _column(history, "train_loss")
    if not train or not _finite(train) or not baseline_loss or baseline_loss <= 0:
        return _check("skipped", "needs a finite training loss and a constant-prediction baseline")
    val = _column(history, "val_loss")
    ratio = train[-1] / baseline_loss
    val_ratio = val[-1] / baseline_loss if val and math.isfinite(val[-1]) else ratio
    k = max(len(train) // 3, 2)
    gain = (train[-k] - train[-1]) / train[-k] if len(train) > k and train[-k] > 0 else None
    numbers = dict(train_loss=train[-1], baseline_loss=baseline_loss, loss_ratio=ratio, recent_gain=gain)
    if min(ratio, val_ratio) < UNDERFIT_FRACTION:
        share = f"{ratio:.1%}" if ratio >= 0.001 else "< 0.1%"  # a memorized training set reads "0.0%" otherwise
        return _check("ok", f"no underfitting: training loss is {share} of a constant prediction's "
                            f"({baseline_loss:.3g})", **numbers)
    if gain is None:  # 1-2 epochs: every run starts near a constant prediction's loss
        return _check("skipped", f"too few epochs to judge: training loss is {ratio:.0%} of a constant "
                                 f"prediction's ({baseline_loss:.3g})", **numbers)
    flat = gain < UNDERFIT_FLAT
    shape = "and flat" if flat else "and still falling"
    message = (f"underfitting: training loss {train[-1]:.3g} and validation loss "
               f"{val[-1] if val else float('nan'):.3g} are high {shape} "
               f"({ratio:.0%} of a constant prediction's loss {baseline_loss:.3g})")
    if flat:
        remedies = ["a bigger model (more or wider layers) or a better-suited one (CNN for images)",
                    "a higher learning rate (trainlab lr-find), or a different optimizer (adam)",
                    "less regularization (dropout, weight_decay) and ReLU-family activations",
                    "check the inputs are normalized and the labels match the inputs"]
    else:
        remedies = ["more epochs: the loss is still going down", "a higher learning rate (trainlab lr-find)"]
    return _check("warning", message, remedies, flat=flat, **numbers)


# ----------------------------------------------------------------------------- divergence

def divergence(history: list[dict], step_losses: list[list[float]] = (), baseline_loss: float | None = None,
               failure: dict | None = None) -> dict:
    """Loss went NaN/Inf, blew up (10x its start) or rose over epochs: the learning rate is too high."""
    remedies = ["lower the learning rate 3-10x (trainlab lr-find suggests one)", "train.grad_clip: 1.0",
                "a learning-rate warm-up or scheduler; check inputs are normalized"]
    if failure:
        return _check("warning", f"divergence: the loss became non-finite at step {failure.get('step')} "
                                 f"(epoch {failure.get('epoch')}); learning rate too high?", remedies,
                      step=failure.get("step"), epoch=failure.get("epoch"), layer=failure.get("layer"))
    steps = [v for epoch in step_losses for v in epoch]  # (total steps,)
    per_epoch = [len(e) for e in step_losses]
    if steps:
        bad = next((i for i, v in enumerate(steps) if not math.isfinite(v)), None)
        ref = max(steps[0] if math.isfinite(steps[0]) else 0.0, baseline_loss or 0.0)
        blow = next((i for i, v in enumerate(steps) if math.isfinite(v) and ref > 0 and v > DIVERGE_BLOWUP * ref),
                    None)
        first = min((i for i in (bad, blow) if i is not None), default=None)
        if first is not None:
            start = _rise_start(steps, first)
            what = "became non-finite" if first == bad else f"jumped to {steps[first]:.3g} ({steps[first] / ref:.3g}x)"
            rising = f", rising from step {start + 1}" if start < first else ""  # else it blew up in one step
            return _check("warning", f"divergence: the loss {what} at step {first + 1} (epoch "
                                     f"{_epoch_of(first, per_epoch)}){rising}; learning rate too high", remedies,
                          step=first + 1, start_step=start + 1, epoch=_epoch_of(first, per_epoch))
    train = _column(history, "train_loss")
    if train and not _finite(train + _column(history, "val_loss")):
        epoch = next(i + 1 for i, r in enumerate(history) if not _finite([r.get("train_loss"), r.get("val_loss")]))
        return _check("warning", f"divergence: non-finite loss in epoch {epoch}; learning rate too high",
                      remedies, epoch=epoch)
    low = _sustained_rise(train, step_losses, _column(history, "val_loss"), baseline_loss)
    if low is not None:
        start = sum(per_epoch[: low + 1]) + 1 if len(per_epoch) == len(train) else None
        at = f" (from step {start})" if start else ""
        return _check("warning", f"divergence: training loss rose from {train[low]:.3g} at epoch {low + 1} "
                                 f"to {train[-1]:.3g}{at} while validation loss got worse; learning rate too high",
                      remedies, epoch=low + 2, start_step=start)
    return _check("ok", "no divergence: the training loss stayed finite and did not rise")


def _sustained_rise(train: list[float], step_losses, val: list[float], baseline_loss: float | None) -> int | None:
    """The epoch index the training loss rose from, when the rise is real: judged on each epoch's median step
    loss (robust to a few bad batches), 1.5x its lowest epoch, over 2+ epochs or 3x at once, and with the
    validation loss no longer at its best. None when there is no such rise."""
    level = ([statistics.median(e) for e in step_losses] if len(step_losses) == len(train) and all(step_losses)
             else train)
    if len(level) < 2 or not _finite(level):
        return None
    low = min(range(len(level)), key=level.__getitem__)
    rise = level[-1] > DIVERGE_RISE * level[low] and level[-1] - level[low] > DIVERGE_RISE_ABS * (baseline_loss or 0)
    lasting = len(level) - 1 - low >= DIVERGE_RISE_EPOCHS or level[-1] > 3 * level[low]
    val_improving = bool(val) and len(val) == len(level) and _finite(val) and (
        val[-1] <= min(val) * (1 + SAME_LEVEL) or val[-1] <= val[low])
    return low if rise and lasting and not val_improving else None


# ----------------------------------------------------------------------------- learning rate

def learning_rate(step_losses: list[list[float]], update_ratio: float | None, lr: float | None) -> dict:
    """Far too low: after the first epoch the weights and the (smoothed) loss barely moved. (Far too high shows
    as divergence.) `update_ratio` = |w1 - w0| / |w0| over all weights after epoch 1."""
    first = step_losses[0] if step_losses else []
    if update_ratio is None or len(first) < 6 or not _finite(first):
        return _check("skipped", "needs the first epoch's step losses (6+ steps) and weight change")
    k = max(len(first) // 5, 3)
    start, end = statistics.fmean(first[:k]), statistics.fmean(first[-k:])
    moved = (start - end) / start if start > 0 else 1.0
    numbers = dict(update_ratio=update_ratio, loss_start=start, loss_end=end, loss_drop=moved, lr=lr)
    if update_ratio < LR_LOW_UPDATE and abs(moved) < LR_LOW_LOSS:
        at = f" at lr={lr:g}" if lr else ""
        return _check("warning", f"learning rate far too low{at}: in the first epoch the weights changed by "
                                 f"{update_ratio:.2%} and the training loss by {-moved:+.1%} ({start:.4g} -> "
                                 f"{end:.4g}); training would take forever",
                      ["trainlab lr-find CONFIG suggests a learning rate (then train.lr=...)",
                       "typical starting points: adam/adamw 1e-3, sgd with momentum 1e-2 to 1e-1"], **numbers)
    return _check("ok", f"learning rate moves the model: weights changed by {update_ratio:.1%} in the first "
                        f"epoch, loss {-moved:+.1%}", **numbers)


def _rise_start(steps: list[float], first: int) -> int:
    """Index of the last running-minimum step before `first`: where the climb began."""
    window = [v if math.isfinite(v) else math.inf for v in steps[:first]]
    return min(range(len(window)), key=window.__getitem__) + 1 if window else first


def _epoch_of(step_index: int, per_epoch: list[int]) -> int:
    total = 0
    for epoch, n in enumerate(per_epoch, 1):
        total += n
        if step_index < total:
            return epoch
    return len(per_epoch)


# ----------------------------------------------------------------------------- gradients and units

def gradients(grad_rms: list[dict[str, float]], normalized: bool = False) -> dict:
    """First-to-last layer gradient RMS ratio (median over epochs): tiny = vanishing, huge = exploding.

    `normalized`: the model has normalization layers (BatchNorm, LayerNorm, ...). Each weight before one gets a
    gradient of 1 / its own norm's size whatever it learns, so the ratio is not judged there (a from-scratch
    MobileNetV3 reads 4e3 with nothing wrong); only the total norm's growth is."""
    # epochs with an all-zero layer (e.g. a loss of exactly 0) say nothing about the ratio
    usable = [g for g in grad_rms if len(g) >= 2 and _finite(list(g.values())) and min(g.values()) > 0]
    if not usable:
        return _check("skipped", "needs gradient norms of at least two weight layers")
    layers = list(usable[-1])
    ratios = [g[layers[0]] / g[layers[-1]] for g in usable if layers[0] in g and layers[-1] in g]
    ratio = statistics.median(ratios)
    totals = [math.sqrt(sum(v * v for v in g.values())) for g in usable]
    growth = totals[-1] / totals[0] if totals[0] > 0 else math.inf
    numbers = dict(first_layer=layers[0], last_layer=layers[-1], first_to_last=ratio, growth=growth,
                   epochs=len(usable), last_epoch={k: usable[-1][k] for k in layers})
    if normalized and growth <= EXPLODE_GROWTH and not VANISH_RATIO <= ratio <= EXPLODE_RATIO:
        return _check("ok", f"gradients: first/last layer gradient ratio {ratio:.2g}, not judged in a network with "
                            "normalization layers (they rescale each layer's gradient by its weight's norm); the "
                            f"total gradient norm changed {growth:.2g}x", problem=None, **numbers)
    if ratio < VANISH_RATIO:
        return _check("warning", f"vanishing gradients: the first layer ({layers[0]}) gets {ratio:.1e}x the gradient "
                                 f"of the last ({layers[-1]}); early layers barely learn",
                      ["ReLU-family activations instead of sigmoid/tanh (model.activation: relu)",
                       "batch normalization (model.batch_norm: true) or residual connections",
                       "fewer layers"], problem="vanishing", **numbers)
    if ratio > EXPLODE_RATIO or growth > EXPLODE_GROWTH:
        why = (f"the first layer gets {ratio:.1e}x the gradient of the last" if ratio > EXPLODE_RATIO
               else f"the total gradient norm grew {growth:.0f}x during training")
        return _check("warning", f"exploding gradients: {why}",
                      ["train.grad_clip: 1.0", "a lower learning rate", "normalization layers"],
                      problem="exploding", **numbers)
    return _check("ok", f"gradients healthy: first/last layer gradient ratio {ratio:.2g}", problem=None, **numbers)


def dead_units(dead: list[dict[str, float]]) -> dict:
    """Share of ReLU units that output 0 for every probe sample, at the last epoch."""
    if not dead or not dead[-1]:
        return _check("skipped", "no ReLU layers (or no validation batch to probe)")
    last = dead[-1]
    total = statistics.fmean(last.values())  # mean over layers: each layer counts the same
    worst = max(last, key=last.get)
    numbers = dict(dead_fraction=total, worst_layer=worst, worst_fraction=last[worst], layers=dict(last))
    if last[worst] >= DEAD_LAYER or total >= DEAD_TOTAL:
        return _check("warning", f"dead ReLUs: {last[worst]:.0%} of the units of ReLU module {worst} never activate "
                                 f"({total:.0%} over all ReLU layers); they no longer learn",
                      ["a lower learning rate", "model.activation: leaky_relu (or elu, gelu)",
                       "batch normalization before the activation"], **numbers)
    return _check("ok", f"dead ReLU units: {total:.0%} (worst: ReLU module {worst}, {last[worst]:.0%})", **numbers)


def input_pipeline(history: list[dict], settings: dict | None = None) -> dict:
    """Share of epoch time spent waiting for batches, after the first (warm-up) epoch."""
    rows = history[1:] if len(history) > 1 else history
    # train_time (the training pass alone) when the history has it; else the epoch time, validation included
    wait = sum(r.get("train_data_time", 0.0) for r in rows)
    total = sum(r.get("train_time", r.get("time", 0.0)) for r in rows)
    if total <= 0:
        return _check("skipped", "no timing information")
    share = wait / total
    if share < PIPELINE_SHARE:
        return _check("ok", f"input pipeline keeps up: {share:.0%} of the time waiting for data", share=share)
    if wait < PIPELINE_MIN_WAIT * len(rows):
        return _check("ok", f"input pipeline: {share:.0%} of the time waiting for data, but only "
                            f"{wait / len(rows):.2f} s per epoch; too little to be worth tuning", share=share)
    s = settings or {}
    return _check("warning", f"input pipeline bottleneck: {share:.0%} of the epoch time is spent waiting for "
                             f"batches ({s.get('data_path', 'unknown data path')})", _pipeline_remedies(s),
                  share=share)


def _pipeline_remedies(s: dict) -> list[str]:
    out = []
    if str(s.get("data_path", "")).startswith("streaming"):
        if not s.get("num_workers"):
            out.append(f"data.num_workers: {max(s.get('cpu_count', 4) // 2, 2)} (decode in parallel worker processes)")
        else:
            out.append("data.persistent_workers: true (keep workers between epochs)")
        if s.get("device") == "cuda" and not s.get("pin_memory"):
            out.append("data.pin_memory: true (faster host-to-GPU copies)")
        out.append("data.in_memory: true (decode once, then slice batches) if the dataset fits in memory")
    else:
        out.append("lighter or fewer random augmentations (they run on every batch)")
    return out
