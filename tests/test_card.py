"""`trainlab card`: a model card for a classification, a regression, a text, a time-series, a --seeds and a cv
directory, every number checked against the run's own files (and an independent computation where it is derived).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from statsmodels.stats.proportion import proportion_confint

from conftest import assert_one_line_error, tiny_config
from trainlab.cli.main import main
from trainlab.core.errors import UserError
from trainlab.observe.seeds import num
from trainlab.use.card_eval import outputs_on_test

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
PLACEHOLDERS = ("[More Information Needed]", "TODO", "TBD", "nan", "None", "{", "}")


def _train(argv: list, out: Path) -> Path:
    assert main([*map(str, argv), "--out", str(out)]) == 0
    return out


def _config(folder: Path, cfg: dict) -> Path:
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Six tiny directories: classification, regression, text, time series, --seeds 2, cv --folds 2."""
    from sklearn.datasets import load_diabetes

    root = tmp_path_factory.mktemp("card")
    digits = _config(root, tiny_config(train={"epochs": 2, "lr": 0.01, "num_threads": 1}))
    load_diabetes(as_frame=True, scaled=False).frame.to_csv(root / "d.csv", index=False)
    reg = {"seed": 0, "data": {"name": "csv", "path": str(root / "d.csv"), "target": "target", "task": "regression"},
           "model": {"name": "mlp", "hidden": [16]}, "train": {"epochs": 3, "num_threads": 1}}
    (root / "reg").mkdir()
    return {
        "classification": _train(["train", digits], root / "cls"),
        "regression": _train(["train", _config(root / "reg", reg)], root / "regression"),
        "text": _train(["train", EXAMPLES / "text-transformer.yaml", "data.samples=300", "train.epochs=2",
                        "model.d_model=16", "model.layers=1"], root / "text"),
        "timeseries": _train(["train", EXAMPLES / "sunspots-lstm.yaml", "train.epochs=2"], root / "ts"),
        "seeds": _train(["train", digits, "train.epochs=1", "--seeds", "2"], root / "seeds"),
        "cv": _train(["cv", digits, "train.epochs=1", "--folds", "2"], root / "cv"),
    }


@pytest.fixture(scope="module")
def cards(runs, tmp_path_factory) -> dict[str, tuple[str, dict]]:
    """`trainlab card RUN --out DIR` for each: (MODEL_CARD.md text, DIR/result.json)."""
    out = tmp_path_factory.mktemp("cards")
    made = {}
    for kind, run in runs.items():
        assert main(["card", str(run), "--out", str(out / kind)]) == 0
        made[kind] = ((out / kind / "MODEL_CARD.md").read_text(), json.loads((out / kind / "result.json").read_text()))
    return made


def front_matter(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def run_result(run: Path) -> dict:
    return json.loads((run / "result.json").read_text())


KINDS = ["classification", "regression", "text", "timeseries", "seeds", "cv"]


@pytest.mark.parametrize("kind", KINDS)
def test_card_has_every_section_hugging_face_metadata_and_no_placeholder(kind, cards):
    from huggingface_hub import ModelCard

    text, result = cards[kind]
    for title in ("## Model", "## Data", "## Training", "## Evaluation", "## Variation", "## Limitations"):
        assert f"\n{title}\n" in text
    body = text.split("\n---\n", 1)[1]
    assert not [p for p in PLACEHOLDERS if p in body], [p for p in PLACEHOLDERS if p in body]
    meta = front_matter(text)
    assert meta["library_name"] == "pytorch" and "trainlab" in meta["tags"] and meta["datasets"]
    # huggingface_hub reads the model-index back into EvalResults, the values those of the run's files
    evals = ModelCard(text).data.eval_results
    assert evals and {e.metric_type for e in evals} == set(meta["metrics"])
    facts = result["facts"]
    expected = {"seeds": lambda k: facts["variation"]["metrics"][f"test_{k}"]["mean"],
                "cv": lambda k: facts["variation"]["metrics"][f"val_{k}"]["mean"]}.get(
        kind, lambda k: facts["evaluation"]["metrics"][k]["value"])
    assert all(e.metric_value == expected(e.metric_type) for e in evals)


@pytest.mark.parametrize("kind", ["classification", "regression", "text", "timeseries"])
def test_every_test_number_is_the_runs_own(kind, runs, cards):
    text, card = cards[kind]
    run, ev = run_result(runs[kind]), card["facts"]["evaluation"]
    n = run["data"]["sizes"]["test"]
    assert ev["n"] == n and f"n = {n:,} samples, evaluated 1 time(s)" in text
    for metric, value in run["test"].items():
        if metric == "loss":
            assert f"Test loss (the training objective): {num(value)}" in text
            continue
        m = ev["metrics"][metric]
        assert m["value"] == value and m["low"] <= value <= m["high"], (metric, m)
        assert f"| {metric} | {num(value)} | {num(m['low'])} - {num(m['high'])} | {m['method']} |" in text
        if metric == "accuracy":  # Wilson's interval from n, as statsmodels computes it
            lo, hi = proportion_confint(round(value * n), n, alpha=0.05, method="wilson")
            assert (m["low"], m["high"]) == pytest.approx((lo, hi), abs=1e-6)  # accuracy is stored as float32
        else:
            assert m["method"] == "percentile bootstrap" and m["resamples"] == 1000
    assert ev["recomputed"]["matches"]
    base = run["baseline_models"]["test"]
    for name, value in base["baselines"].items():
        assert f"| {name} | {num(value)} | {'yes' if base['beats'][name] else 'no'}" in text
    # the card's pass over the test split is not a look: the manifest still counts one
    assert json.loads((runs[kind] / "manifest.json").read_text())["test_evaluations"] == 1


@pytest.mark.parametrize("kind", ["classification", "text"])
def test_classifier_card_has_per_class_scores_calibration_and_confusions(kind, runs, cards):
    text, card = cards[kind]
    run = run_result(runs[kind])
    for cls, s in run["per_class"].items():
        assert f"| {cls} | {num(s['precision'])} | {num(s['recall'])} | {num(s['f1'])} | {s['support']} |" in text
    # expected calibration error recomputed here with numpy: 15 equal-width bins of the top probability
    ev = outputs_on_test(runs[kind])
    probs = ev["outputs"].softmax(-1).numpy()
    conf, correct = probs.max(1), probs.argmax(1) == ev["targets"].numpy()
    bins = np.minimum((conf * 15).astype(int), 14)
    ece = sum(abs(correct[bins == b].mean() - conf[bins == b].mean()) * (bins == b).mean()
              for b in range(15) if (bins == b).any())
    cal = card["facts"]["evaluation"]["calibration"]
    assert cal["ece"] == pytest.approx(ece, abs=1e-5) and f"expected calibration error {num(cal['ece'])}" in text
    assert cal["accuracy"] == pytest.approx(run["test"]["accuracy"], abs=1e-6)
    worst = min(run["per_class"], key=lambda c: (run["per_class"][c]["f1"], run["per_class"][c]["recall"]))
    assert f"Worst classes (test F1): {worst} (F1 {num(run['per_class'][worst]['f1'])}" in text
    cm, names = np.array(run["confusion_matrix"]), list(run["per_class"])
    np.fill_diagonal(cm, 0)
    if cm.max() > 0:
        i, j = np.unravel_index(cm.argmax(), cm.shape)
        assert f"{names[i]} -> {names[j]} ({cm[i, j]} of {sum(run['confusion_matrix'][i])})" in text


def test_single_run_says_variation_was_not_measured_and_how(runs, cards):
    text, _ = cards["classification"]
    assert "Variation was not measured" in text
    assert f"`trainlab train {runs['classification'] / 'config.yaml'} --seeds 5 --out DIR`" in text
    # every train run writes the cheap data audit (RUN/audit.json): the card reports it, here with no finding
    assert f"- Data audit: no finding ({runs['classification'] / 'audit.json'})" in text
    assert "found no sample in two splits" in text and "none failed" in text


def test_model_data_and_training_numbers_are_the_runs_own(runs, cards):
    from trainlab.observe.plots import read_history
    from trainlab.use.loaded import load_run

    run_dir = runs["classification"]
    text, run = cards["classification"][0], run_result(run_dir)
    params = sum(p.numel() for p in load_run(run_dir).model.parameters())
    assert f"- Parameters: {params:,} ({params:,} trainable; summary.txt)" in text
    sizes = run["data"]["sizes"]
    assert f"- Splits (splits.json): train {sizes['train']:,}, val {sizes['val']:,}, test {sizes['test']:,};" in text
    for cls in run["data"]["class_counts"]["train"]:
        counts = [run["data"]["class_counts"][s][cls] for s in ("train", "val", "test")]
        assert f"| {cls} | {' | '.join(map(str, counts))} |" in text
    seconds = sum(r["time"] for r in read_history(run_dir / "history.csv"))
    assert f"- Training time: {num(seconds)} s" in text
    assert (f"- Best epoch: {run['best_epoch']} of {run['epochs_run']} ({run['monitor']} = {num(run['best_value'])})"
            in text)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert f"- Seed: 0; git commit: {manifest['git'] or 'not recorded'}" in text
    assert "| lr | 0.01 |" in text and "| batch_size | 64 |" in text and "| epochs | 2 |" in text


def test_regression_and_forecast_cards(runs, cards):
    text, card = cards["timeseries"]
    fb = card["facts"]["evaluation"]["forecast_baselines"]
    saved = run_result(runs["timeseries"])["baselines"]
    assert fb["baselines"] == {"naive": saved["naive"]["mae"], "seasonal_naive": saved["seasonal_naive"]["mae"]}
    assert f"| naive | {num(saved['naive']['mae'])} |" in text and "forecast windows overlap" in text
    assert front_matter(text)["model-index"][0]["results"][0]["task"]["type"] == "time-series-forecasting"
    assert "Calibration: not applicable (not a classifier)" in cards["regression"][0]


@pytest.mark.parametrize("kind, unit", [("seeds", "seeds"), ("cv", "folds")])
def test_variation_over_seeds_and_folds(kind, unit, runs, cards):
    text, card = cards[kind]
    saved = run_result(runs[kind])
    if kind == "seeds":
        stats = saved["metrics"]
        assert "The model described is `seed-0`, the first seed" in text
    else:
        stats = {k: {"mean": saved["mean"][k], "std": saved["std"][k],
                     "values": [f["metrics"][k] for f in saved["folds"]]} for k in saved["mean"]}
        assert "Test metrics: not measured; cross-validation never touches the test split" in text
        assert f"Likely label errors (cleanlab, out-of-fold probabilities): {len(saved['label_issues'])}" in text
    assert f"Over 2 {'seeds (0, 1)' if kind == 'seeds' else saved['method'] + ' folds'}" in text
    for key, s in stats.items():
        values = ", ".join(num(v) for v in s["values"])
        assert f"| {key} | {num(s['mean'])} ± {num(s['std'])} | {values} |" in text, key


def test_audit_findings_reach_data_and_limitations(runs, tmp_path):
    run = runs["classification"]
    audit = tmp_path / "audit"
    audit.mkdir()
    findings = [{"type": "near_duplicate", "split": ["train", "test"], "score": 0.99, "indices": [3, 40],
                 "message": "sample 40 of test is a near copy of sample 3 of train"},
                {"type": "outlier", "split": "test", "score": 0.7, "indices": [12],
                 "message": "test sample 12 is unlike training"}]
    (audit / "result.json").write_text(json.dumps({"findings": findings}))
    assert main(["card", str(run), "--audit", str(audit), "--out", str(tmp_path / "c"), "--no-eval"]) == 0
    text = (tmp_path / "c" / "MODEL_CARD.md").read_text()
    assert f"2 finding(s) in {audit / 'result.json'}: near_duplicate 1, outlier 1" in text
    assert "Data audit (near_duplicate, ['train', 'test'], score 0.9900): sample 40 of test is a near copy" in text
    # --no-eval: accuracy keeps Wilson's interval (from n alone); the rest says how to measure it
    assert "| f1 |" in text and "not measured | not measured |" in text
    assert f"expected calibration error: not measured; `trainlab card {run}` measures it" in text


def test_card_in_the_run_directory_is_linked_from_the_report(runs):
    run = runs["regression"]
    assert main(["card", str(run)]) == 0
    assert (run / "MODEL_CARD.md").is_file() and not (run / "MODEL_CARD.md.tmp").exists()
    assert '<a href="MODEL_CARD.md">MODEL_CARD.md</a>' in (run / "report.html").read_text()


@pytest.mark.parametrize("kind", ["regression", "seeds", "cv"])
def test_a_card_written_into_a_directory_is_trainlabs_own_for_overwrite(kind, runs, tmp_path):
    """--overwrite removes only what trainlab wrote (issue 29): the card in RUN counts, a user's file does not."""
    from trainlab.run.directory import own_files, removable
    from trainlab.workflows.seeds import is_seeds_dir

    run = Path(shutil.copytree(runs[kind], tmp_path / kind))
    assert main(["card", str(run), "--no-eval"]) == 0
    assert (run / "MODEL_CARD.md").is_file()
    if kind == "seeds":  # no manifest at the top: --seeds' own names
        assert is_seeds_dir(run)
        (run / "thesis.txt").write_text("mine")
        assert not is_seeds_dir(run)
        return
    assert "MODEL_CARD.md" in own_files(run)
    assert "MODEL_CARD.md" in {p.name for p in removable(run)}
    (run / "thesis.txt").write_text("mine")
    with pytest.raises(UserError, match="thesis.txt"):
        removable(run)


def test_export_writes_the_card_beside_the_model_and_serve_links_it(runs, tmp_path):
    from fastapi.testclient import TestClient

    from trainlab.use.serve import create_app

    run = runs["classification"]
    assert main(["export", str(run), "--format", "torchscript", "--out", str(tmp_path / "m" / "model.pt")]) == 0
    card = tmp_path / "m" / "MODEL_CARD.md"
    assert card.is_file() and "## Evaluation" in card.read_text()
    assert main(["card", str(run)]) == 0
    client = TestClient(create_app(run), raise_server_exceptions=False)
    assert '<a href="/card">model card</a>' in client.get("/").text
    got = client.get("/card")
    assert got.status_code == 200 and got.text == (run / "MODEL_CARD.md").read_text()


@pytest.mark.parametrize("case, needle", [
    ("missing", "is not a directory"), ("empty", "is not a finished trainlab run"),
    ("damaged", "result.json is not valid JSON"), ("bad_audit", "no list of findings")])
def test_bad_input_is_one_line_exit_2(case, needle, runs, tmp_path, cli):
    target = tmp_path / "x"
    extra = []
    if case == "empty":
        target.mkdir()
    elif case in ("damaged", "bad_audit"):
        import shutil

        shutil.copytree(runs["classification"], target)
        if case == "damaged":
            (target / "result.json").write_text('{"test": ')
        else:
            (target / "audit.json").write_text('{"findings": 3}')
            extra = ["--no-eval"]
    code, _, err = cli("card", target, *extra)
    assert_one_line_error(code, err, needle)


def test_a_run_whose_weights_no_longer_give_its_metrics_gets_no_bootstrap_or_calibration(runs, tmp_path):
    """result.json edited (or best.pt replaced) after training: the card describes nothing it cannot reproduce."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(runs["classification"], run)
    result = run_result(run)
    result["test"]["f1"] = 0.5
    (run / "result.json").write_text(json.dumps(result))
    assert main(["card", str(run), "--out", str(tmp_path / "c")]) == 0
    text = (tmp_path / "c" / "MODEL_CARD.md").read_text()
    facts = json.loads((tmp_path / "c" / "result.json").read_text())["facts"]["evaluation"]
    assert not facts["recomputed"]["matches"] and facts["calibration"] is None and "low" not in facts["metrics"]["f1"]
    assert "gave other metrics" in text and "| f1 | 0.5000 | not measured | not measured |" in text


def test_a_failed_run_gets_a_card_that_says_what_is_missing(runs, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(runs["classification"], run)
    saved = run_result(run)
    failed = {"error": "the training loss is not finite at epoch 2", "test": {}, "diagnosis": saved["diagnosis"],
              "best_epoch": 1, "epochs_run": 2, "monitor": "val_loss", "best_value": 0.9, "stopped_early": False}
    (run / "result.json").write_text(json.dumps(failed))
    assert main(["card", str(run), "--out", str(tmp_path / "c")]) == 0
    text = (tmp_path / "c" / "MODEL_CARD.md").read_text()
    assert f"- Test metrics: not measured; `trainlab eval {run} --split test` measures it" in text
    assert "- Training stopped: the training loss is not finite at epoch 2" in text
    assert "Class counts per split: not measured" in text and "no test sample was misclassified" not in text
    assert front_matter(text)["model-index"][0]["results"] == []
    assert not [p for p in PLACEHOLDERS if p in text.split("\n---\n", 1)[1]]
