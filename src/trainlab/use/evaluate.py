"""`trainlab eval RUN_DIR --split val|test`: the run's best weights on the same split indices it was trained with."""
from __future__ import annotations

from pathlib import Path

from trainlab.core.device import select_device
from trainlab.core.errors import UserError
from trainlab.data.prepare import LoadedData, load_data
from trainlab.engine.trainer import Trainer
from trainlab.run.directory import count_test_evaluation, read_manifest, read_splits, test_reuse_warning
from trainlab.use.loaded import Run, load_run


def load_matching_data(run: Run) -> LoadedData:
    """The run's data with the split indices it was trained with; a UserError when the data changed since."""
    read_manifest(run.dir)  # checked before any evaluation: a damaged counter must not cost a test look
    data = load_data(run.cfg)
    saved = read_splits(run.dir)
    if saved.get("train") != data.splits.to_json()["train"]:
        raise UserError(f"the data behind {run.dir} changed since training: its split indices differ; "
                        f"evaluating now would mix training and test samples")
    return data


def record_test_evaluation(run_dir: Path, result: dict) -> None:
    """Count one more look at the test split in the manifest; add the reuse warning to `result` from the second."""
    n = count_test_evaluation(Path(run_dir))
    result["test_evaluations"] = n
    warning = test_reuse_warning(Path(run_dir), n)  # names the tuning study when the config was tuned
    if warning:
        result["warning"] = warning


def evaluate_run(run_dir: Path, split: str = "test") -> dict:
    run = load_run(run_dir)
    data = load_matching_data(run)
    view = data.view(data.splits.train, data.splits.val)
    device = select_device(run.cfg.train.device)
    trainer = Trainer(run.model, run.cfg.train, seed=run.cfg.seed, task=run.task, progress=False)
    trainer.prepare(choice=run.choice)  # the precision the run was trained and tested with
    batches = view.batches(split, device)
    if batches is None:
        raise UserError(f"the {split} split of {run_dir} is empty")
    result = {"split": split, "run_dir": str(run_dir), "metrics": trainer.evaluate(batches)}
    if split == "test":
        record_test_evaluation(Path(run_dir), result)
    return result
