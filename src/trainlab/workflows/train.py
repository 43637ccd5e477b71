"""`trainlab train`: config -> data -> model -> Trainer.fit -> test metrics (once, best weights) -> run directory.

    trainlab train examples/digits-mlp.yaml train.epochs=3 --out runs/demo
"""
from __future__ import annotations

import dataclasses
import math
import sys
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from trainlab.core import distributed
from trainlab.core.checkpoint import check_resumable, remove_orphan_temps, safe_load, seed_everything
from trainlab.core.device import select_device
from trainlab.core.errors import UserError
from trainlab.core.files import write_history, write_json, write_text
from trainlab.core.machine import torch_threads
from trainlab.core.report import print_progress
from trainlab.data.batches import TensorBatches
from trainlab.data.forecast import bundle_extras
from trainlab.data.prepare import load_data
from trainlab.diagnose import guide
from trainlab.diagnose.baselines import sentence
from trainlab.engine.catalog import check_resume_epochs
from trainlab.engine.summary import model_summary
from trainlab.engine.trainer import NonFiniteLoss, Trainer
from trainlab.models.catalog import architecture_only, build_model, is_library_model
from trainlab.observe import monitor as observe
from trainlab.observe.plots import read_result
from trainlab.observe.report import write_report
from trainlab.observe.tracking import OFF, TrackedRun, Tracking, open_tracker
from trainlab.run.config import Config, dump_config, read_run_config
from trainlab.run.directory import (
    check_overwrite,
    count_test_evaluation,
    default_run_dir,
    manifest,
    prepare_run_dir,
    read_data_description,
    read_manifest,
    record_files,
    record_machine_choice,
    recorded_test_metrics,
    test_reuse_warning,
)
from trainlab.workflows.audit import audit_lines, cheap_run_audit
from trainlab.workflows.checks import check_fit


def _say(message: str) -> None:
    """Print above any progress bar, and flush: piped output (CI logs, `| tee`) shows each epoch as it ends."""
    tqdm.write(message)
    sys.stdout.flush()


def configure_torch(cfg: Config) -> None:
    """Threads and determinism are process-wide settings: set them once per command."""
    torch_threads(cfg.train.num_threads, cfg.train.deterministic).__enter__()  # for the command: never restored


def epoch_line(trainer: Trainer, record: dict, epochs: int) -> str:
    """The epoch line `Trainer.fit` prints (diagnose/guide.py), for callers that print their own (K-fold CV)."""
    return guide.epoch_line(record, epochs, trainer.best_epoch, trainer.guide.val_size)


def data_description(data, view) -> dict:
    bundle = view.bundle
    raw = bundle.pool[0][0]
    return {"task": bundle.task, "kind": bundle.kind, "classes": bundle.classes, "num_outputs": bundle.num_outputs,
            "raw_shape": list(raw.shape), "raw_dtype": str(raw.dtype).replace("torch.", ""),
            "input_shape": list(view.input_shape), "eval_transforms": view.eval_pipe.state(),
            "train_transforms": view.train_pipe.state(), "meta": bundle.meta, "model_info": bundle.model_info}


def model_input(cfg: Config) -> dict:
    """For a timm/torchvision model: the input size and normalization it expects (used or not: see eval_transforms)."""
    if not is_library_model(cfg.model.name):
        return {}
    from trainlab.models.library import input_config  # start-up time: timm

    return {"model_expects": input_config(cfg.model.name, cfg.model.params.image_size)}


def write_run_files(out: Path, cfg: Config, data, view, model, device, argv) -> None:

    write_text(out / "config.yaml", dump_config(cfg))
    write_json(out / "manifest.json", manifest(cfg, device, argv))
    write_json(out / "splits.json", {**data.splits.to_json(), "official_test": data.bundle.test is not None})
    write_json(out / "data.json", {**data_description(data, view), **model_input(cfg)})
    write_text(out / "summary.txt", model_summary(model, view.input_shape) + "\n")


def dry_run_view(view, cfg: Config):
    """--dry-run: two training batches and one validation batch, one epoch (train never looks at the test split
    in a dry run; cv and tune's trials have none)."""
    view.train_idx = view.train_idx[: 2 * cfg.data.batch_size]
    view.val_idx = view.val_idx[: cfg.data.eval_batch_size]
    cfg.train.epochs = 1
    return view


def train_run(cfg: Config, out: Path | None = None, resume: Path | None = None, overwrite: bool = False,
              argv: list[str] | None = None, dry_run: bool = False, quiet: bool = False,
              keep: tuple[Path, ...] = (), track: TrackedRun = OFF) -> dict:
    """Run one training as `trainlab train` does; returns the result written to out/result.json.

    `keep`: files --overwrite must never remove (the config file being used; the data paths are added).
    `track`: an MLflow run this one is logged under as a child run (a seed, tune's final run); without it the
    run is logged on its own when the config's track.mlflow is set (observe/tracking.py).

    Under torchrun (WORLD_SIZE > 1) every process runs this; see trainlab.core.distributed.
    """
    configure_torch(cfg)
    info = distributed.from_env()
    if resume:  # files the end of the run rewrites: a damaged one is refused before any epoch is trained
        read_manifest(resume), read_data_description(resume)
        check_resume_epochs(cfg.train.scheduler, read_run_config(resume).train.epochs, cfg.train.epochs, resume)
    elif overwrite and (info is None or info.is_main):  # a folder --overwrite must not empty: said before any work
        check_overwrite(out, cfg, keep)
    done = nothing_left(resume, cfg) if resume else None
    if done is not None:  # a complete run: say so, run nothing, look at nothing
        return done if info is None or info.is_main else {}
    if info and cfg.train.freeze != "none":  # DDP fixes the set of trained parameters when it wraps the model
        raise UserError("train.freeze is not supported under torchrun (DDP); freeze on one process or set "
                        "train.freeze=none")
    device = distributed.init(info, cfg.train.device) if info else select_device(cfg.train.device)
    quiet = quiet or (info is not None and not info.is_main)
    helpers = observe.plot_helpers() if info is None else None  # forked now, while one core loads the data
    # MLflow (track.mlflow): its helper process starts now too, so its start-up overlaps loading, not epochs
    tracker = open_tracker(cfg.track) if not track and (info is None or info.is_main) else None
    try:
        return _train(cfg, out, resume, overwrite, argv, dry_run, quiet, info, device, helpers, keep, track,
                      tracker)
    finally:
        if helpers is not None:
            helpers.close()  # after an error, too: no helper outlives the run
        if tracker is not None:
            tracker.close()  # a no-op after the run ended it; else (an error before it opened) the helper ends


def _train(cfg: Config, out, resume, overwrite, argv, dry_run, quiet, info, device, helpers, keep, track,
           tracker) -> dict:
    data = load_data(cfg)
    view = data.view(data.splits.train, data.splits.val)
    check_fit(cfg, view)  # data-dependent settings, before a run directory is written
    plan = {"train_samples": len(view.train_idx), "val_samples": len(view.val_idx), "epochs": cfg.train.epochs}
    if dry_run:
        view = dry_run_view(view, cfg)
    seed_everything(cfg.seed)
    model_cfg = architecture_only(cfg.model) if resume else cfg.model  # last.pt replaces the starting weights
    model = build_model(model_cfg, view.input_shape, view.bundle.num_outputs, **view.model_info)
    out = prepare_output(cfg, out, resume, overwrite, info,
                         lambda o: write_run_files(o, cfg, data, view, model, device, argv), keep)
    say = (lambda *a: None) if quiet else _say
    train_b, val_b = view.batches("train", device), view.batches("val", device)
    if info:
        distributed.shard(train_b, info)
    say(f"data path: {train_b.path} ({train_b.nbytes() / 2**20:.1f} MB)" if isinstance(train_b, TensorBatches)
        else f"data path: {train_b.path}")
    say(f"run directory: {out}")
    if not resume and (info is None or info.is_main):
        for line in audit_lines(cheap_run_audit(data, out)):  # the data audit's cheap part: RUN/audit.json
            say(line)
    hooks = observe.epoch_hooks(cfg, out, view) if not quiet or info is None else []
    tracking = Tracking(cfg, out, track, tracker)
    hooks += tracking.hooks  # a queue put per epoch: a helper process talks to MLflow
    # the Trainer prints pitfalls and epoch lines itself (diagnose/guide.py), as it does for Python API users;
    # the train section was validated once when the config was read: replace() adds the resolved device as it is
    settings = dataclasses.replace(cfg.train, device=str(device), verbose=not quiet and cfg.train.verbose is not False)
    trainer = Trainer(model, settings, seed=cfg.seed, task=view.bundle.task, run_dir=out, hooks=hooks,
                      progress=None if not quiet else False, dist=info)
    brief = observe.brief(cfg, view)  # + the monitor the kept epoch is chosen by, which the curve notes name
    trainer.guide.set_brief(dataclasses.replace(brief, dry_run=dry_run,
                                                settings={**brief.settings, "monitor": trainer.monitor}))
    try:
        if not resume and (info is None or info.is_main):  # a resumed run keeps the choice its checkpoint recorded
            choice = trainer.prepare(train_b, cfg.data.batch_size)
            record_machine_choice(out, choice.to_dict(), torch.get_num_threads())
        history = trainer.fit(train_b, val_b, cfg.train.epochs, resume=(resume / "last.pt") if resume else None)
        finish = (lambda: finish_dry_run(trainer, view, out, history, plan, (train_b, val_b))) if dry_run \
            else (lambda: finish_run(trainer, view, out, history, helpers))
        result = finish() if info is None or info.is_main else {}
    except BaseException as e:  # any error, Ctrl-C too: the MLflow run is marked FAILED with what was written
        if isinstance(e, NonFiniteLoss):
            observe.on_failure(out, trainer, e)
        tracking.failed()
        raise
    if result:
        tracking.finish(result)
    if info:
        distributed.barrier()
        distributed.shutdown()
    return result


def compare_on_test(trainer: Trainer, test_b, test: dict, result: dict) -> None:
    """The baselines (fitted on the training split) scored on the test split, next to the network's score;
    and accuracy's 95% interval. Printed by the CLI with the test metrics."""
    cmp = trainer.guide.compare_baselines(test_b, "test", test) if test and trainer.settings.baselines else {}
    result["baseline_models"] = {"validation": trainer.guide.comparison, "test": cmp}
    lines = [result["baseline_comparison"]] if result.get("baseline_comparison") else []
    if "accuracy" in test and test_b is not None:
        lines.append(f"test accuracy {test['accuracy']:.4f}"
                     + guide.accuracy_interval(test["accuracy"], test_b.num_samples, always=True))
    if cmp:
        lines.append(f"baselines: {sentence(cmp)}")
    if lines:
        result["baseline_comparison"] = "\n".join(lines)


def prepare_output(cfg: Config, out: Path | None, resume: Path | None, overwrite: bool, info, write_files,
                   keep: tuple[Path, ...] = ()) -> Path:
    """Pick and create the run directory (rank 0 only under torchrun; the others learn its name)."""
    main = info is None or info.is_main
    out = resume or out or (default_run_dir(cfg) if main else None)
    if main and not resume:
        prepare_run_dir(out, cfg, overwrite, keep)
        write_files(out)
    if main and resume:
        remove_orphan_temps(out)  # what kills during checkpoint writes left behind
        if (out / "config.yaml").read_text() != dump_config(cfg):  # train.epochs=N: the run now trains for N
            write_text(out / "config.yaml", dump_config(cfg))
    if info:
        out = Path(distributed.broadcast(str(out), info))
    return out


def finish_run(trainer: Trainer, view, out: Path, history: list[dict], helpers=None) -> dict:
    """Evaluate the best weights on the test split once, and write history.csv and result.json.

    The test metrics go to the manifest with the evaluation count before anything else is written: a run
    killed after that is completed by `--resume` from disk, without evaluating the test split again.
    """
    test = recorded_test_metrics(out, len(history))
    note = {"note": "completing the run: its test metrics were recorded before it was interrupted; the test "
                    "split is not evaluated again"} if test is not None else {}
    if test is None:
        test = evaluate_test(trainer, view, out, len(history))
    write_history(out / "history.csv", history)
    result = {**note, "test": test, "best_epoch": trainer.best_epoch, "epochs_run": len(history),
              "monitor": trainer.monitor, "best_value": trainer.best_value, "stopped_early": trainer.stopped_early,
              "final": history[-1] if history else {}, "run_dir": str(out)}
    result.update(bundle_extras(view, result))  # e.g. forecast baselines on the same test windows
    compare_on_test(trainer, view.batches("test", trainer.device), test, result)  # the same test samples
    observe.finalize(out, trainer, view, result, helpers)
    record_files(out, result.get("plots", []))  # the plots drawn: --overwrite may remove them
    write_json(out / "result.json", result)
    return result


def finish_dry_run(trainer: Trainer, view, out: Path, history: list[dict], plan: dict, batches) -> dict:
    """--dry-run: what two batches can tell - the shapes, the pitfalls found before training, a finite loss and the
    time per batch - into result.json and report.html. The test split is not evaluated (it is looked at once, by the
    real run), and no curve, baseline or after-training check is judged, no plot drawn: those need a real run."""
    write_history(out / "history.csv", history)
    facts = dry_run_facts(trainer, view, history, plan, batches)
    diag = trainer.diagnosis  # the guide's dry diagnosis (Brief.dry_run): pitfalls and divergence only
    result = {"dry_run": facts, "test": {}, "best_epoch": trainer.best_epoch, "epochs_run": len(history),
              "monitor": trainer.monitor, "best_value": trainer.best_value, "stopped_early": False,
              "final": history[-1] if history else {}, "run_dir": str(out), "diagnosis": diag.to_dict()}
    write_report(out, result)  # the page renders too (the data audit, the dry diagnosis); no plots are drawn
    write_json(out / "result.json", result)
    for line in [*dry_run_lines(facts), *diag.lines()]:
        trainer.guide.say(line)
    return result


def dry_run_facts(trainer: Trainer, view, history: list[dict], plan: dict, batches) -> dict:
    """Shapes, the losses of the two batches and a time estimate for the real run."""
    train_b, val_b = batches
    last = history[-1] if history else {}
    per_batch = batch_seconds(trainer.model, train_b)
    full_batches = math.ceil(plan["train_samples"] / max(1, getattr(train_b, "batch_size", None) or 1))
    epoch = per_batch * full_batches * 1.2  # + ~20%: the optimizer step and the validation pass (a guess)
    return {"input_shape": list(view.input_shape), "outputs": view.bundle.num_outputs, "task": view.bundle.task,
            "parameters": sum(p.numel() for p in trainer.model.parameters()),
            "train_batches": len(train_b), "train_samples": train_b.num_samples,
            "val_samples": val_b.num_samples if val_b is not None else 0,
            "train_loss": last.get("train_loss"), "val_loss": last.get("val_loss"),
            "loss_finite": all(math.isfinite(v) for k, v in last.items() if k.endswith("_loss")),
            "seconds_per_batch": per_batch, "batches_per_epoch": full_batches, "estimated_epoch_seconds": epoch,
            "estimated_run_seconds": epoch * plan["epochs"], "planned_epochs": plan["epochs"]}


def batch_seconds(model: torch.nn.Module, train_b, repeats: int = 3) -> float:
    """Seconds to load a training batch and run forward and backward, the fastest of `repeats` after the fit warmed
    up the model (the dry run's own epoch time is mostly start-up). Gradients are cleared afterwards."""
    generator = torch.Generator().manual_seed(0)
    device = next(model.parameters()).device
    times = []
    with torch.random.fork_rng(devices=[]):  # dropout draws here must not shift anything after the dry run
        for _ in range(repeats):
            t0 = time.perf_counter()
            xb, _ = next(iter(train_b.iterate(train_b.order(generator), 0, generator)))
            model(xb).float().sum().backward()  # (B, outputs) -> a scalar: the backward pass a loss would take
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - t0)
    model.zero_grad(set_to_none=True)
    return min(times)


def dry_run_lines(facts: dict) -> list[str]:
    val = f", val loss {facts['val_loss']:.4g}" if facts["val_loss"] is not None else ""
    return [f"dry run: input {tuple(facts['input_shape'])} -> {facts['outputs']} outputs ({facts['task']}, "
            f"{facts['parameters']:,} parameters); {facts['train_batches']} training batches: train loss "
            f"{facts['train_loss']:.4g}{val} ({'finite' if facts['loss_finite'] else 'NOT finite'})",
            f"dry run: {facts['seconds_per_batch']:.3g} s per training batch (forward and backward) -> about "
            f"{facts['estimated_epoch_seconds']:.3g} s per epoch, {facts['estimated_run_seconds']:.3g} s for "
            f"{facts['planned_epochs']} epochs ({facts['batches_per_epoch']} batches each); not judged without a "
            f"real run: the test split, the curves, the baselines"]


def evaluate_test(trainer: Trainer, view, out: Path, epochs_run: int) -> dict:
    """The one test evaluation of the training's best weights, recorded (count and metrics) in one write."""
    test_b = view.batches("test", trainer.device)
    test = trainer.evaluate(test_b) if test_b is not None else {}
    n = count_test_evaluation(out, test, epochs_run)
    warning = test_reuse_warning(out, n)  # e.g. a finished run resumed with more epochs
    if warning and trainer.progress is not False:
        print_progress(f"warning: {warning}", warning=True)
    return test


def nothing_left(run_dir: Path, cfg: Config) -> dict | None:
    """For `--resume` of a complete run: its result.json plus a one-line note, else None (work is left:
    epochs to train, or the end of the run to write). Complete: last.pt holds the end of training (all
    `cfg.train.epochs`, or early stopping) and result.json was written for exactly those epochs."""
    if not (run_dir / "result.json").is_file():
        return None
    saved = read_result(run_dir)
    ckpt = check_resumable(safe_load(run_dir / "last.pt"), run_dir / "last.pt")
    epochs, stopped = ckpt["epoch"], ckpt["best"]["stop"]
    if saved.get("error") or saved.get("epochs_run") != epochs or ckpt["resume_point"] is not None \
            or not (stopped or epochs >= cfg.train.epochs):
        return None
    if stopped:
        note = (f"nothing left to do: {run_dir} stopped early after epoch {epochs} and its result.json is written; "
                f"to train longer, start a new run with a larger train.early_stopping")
    else:
        note = (f"nothing left to do: {run_dir} trained all {epochs} epochs and its result.json is written; "
                f"to train longer: trainlab train --resume {run_dir} train.epochs=N (N > {epochs})")
    return {**saved, "note": note, "nothing_left": True}
