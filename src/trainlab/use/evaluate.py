"""`trainlab eval RUN_DIR --split val|test`: the run's best weights on the same split indices it was trained with."""
from __future__ import annotations

from pathlib import Path

from trainlab.core.device import select_device
from trainlab.core.errors import UserError
from trainlab.data.prepare import load_data
from trainlab.engine.trainer import Trainer
from trainlab.run.directory import count_test_evaluation, read_manifest, read_splits, test_reuse_warning
from trainlab.use.loaded import load_run


def evaluate_run(run_dir: Path, split: str = "test") -> dict:
    run = load_run(run_dir)
    read_manifest(Path(run_dir))  # checked before the evaluation: a damaged counter must not cost a test look
    data = load_data(run.cfg)
    saved = read_splits(Path(run_dir))
    if saved.get("train") != data.splits.to_json()["train"]:
        raise UserError(f"the data behind {run_dir} changed since training: its split indices differ; "
                        f"evaluating now would mix training and test samples")
    view = data.view(data.splits.train, data.splits.val)
    device = select_device(run.cfg.train.device)
    trainer = Trainer(run.model, run.cfg.train, seed=run.cfg.seed, task=run.task, progress=False)
    batches = view.batches(split, device)
    if batches is None:
        raise UserError(f"the {split} split of {run_dir} is empty")
    result = {"split": split, "run_dir": str(run_dir), "metrics": trainer.evaluate(batches)}
    if split == "test":
        n = count_test_evaluation(Path(run_dir))
        result["test_evaluations"] = n
        warning = test_reuse_warning(Path(run_dir), n)  # names the tuning study when the config was tuned
        if warning:
            result["warning"] = warning
    return result
