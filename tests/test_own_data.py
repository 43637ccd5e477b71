"""Your own data in, your model out: the four "your own data" examples trained on data made here (scikit-learn's
sample photos cut into classes, its breast-cancer and diabetes tables, short texts), with every stray file and
bad row reported, predicted from files, and the image model used through ONNX without trainlab."""
from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import assert_one_line_error
from own_data import BROKEN, exif_rotated, new_photos, sample_photos, trained
from trainlab.use.export import export_run
from trainlab.use.loaded import load_run
from trainlab.use.predict import predict_command

DOCS = Path(__file__).resolve().parents[1] / "docs" / "use.md"


# ----------------------------------------------------------------------------- image folder

@pytest.mark.slow
def test_image_folder_skips_strays_trains_and_predicts_new_photos(tmp_path_factory, tmp_path, cli):
    run_dir, photos, log = trained(tmp_path_factory, "photos")
    assert "image_folder: skipped 2 of 50 files" in log and all(name in log for name in BROKEN)
    intake = json.loads((run_dir / "data.json").read_text())["meta"]["intake"]["train"]
    assert (intake["files"], intake["used"], intake["skipped"]) == (50, 48, 2)  # .DS_Store files are not counted
    assert sorted(Path(s["path"]).name for s in intake["skipped_files"]) == sorted(BROKEN)
    assert "truncated" in next(s["reason"] for s in intake["skipped_files"] if s["path"].endswith(".jpg"))
    result = json.loads((run_dir / "result.json").read_text())
    assert result["test"]["accuracy"] >= 0.7, result["test"]  # china vs flower patches, 8 epochs at 24x24

    truth = new_photos(tmp_path / "new")
    code, out, err = cli("predict", run_dir, "--top", "1", tmp_path / "new", "--out", tmp_path / "p")
    assert code == 0, err
    rows = json.loads((tmp_path / "p" / "result.json").read_text())["predictions"]
    assert sorted(r["input"] for r in rows) == sorted(truth)
    assert sum(r["prediction"] == truth[r["input"]] for r in rows) >= 4, rows


@pytest.mark.slow
def test_onnx_consumer_script_in_the_docs_matches_trainlab_predict(tmp_path_factory, tmp_path):
    """The script in docs/use.md (onnxruntime + PIL + numpy) on photos of other sizes, gray, RGBA, palette and
    EXIF-rotated: the same class and probability (within 1e-3) as `trainlab predict` on the run directory."""
    run_dir, _, _ = trained(tmp_path_factory, "photos")
    model = tmp_path / "photos.onnx"
    assert export_run(run_dir, "onnx", model)["parity_ok"]
    script = tmp_path / "onnx_predict.py"
    script.write_text(re.search(r"```python\n(# onnx_predict\.py.*?)```", DOCS.read_text(), re.S).group(1))
    imports = {n.names[0].name.split(".")[0] for n in ast.walk(ast.parse(script.read_text()))
               if isinstance(n, ast.Import)} | {n.module.split(".")[0] for n in ast.walk(ast.parse(script.read_text()))
                                                if isinstance(n, ast.ImportFrom)}
    assert imports == {"json", "sys", "numpy", "onnxruntime", "PIL"}
    photos = list(new_photos(tmp_path / "new"))
    exif_rotated(tmp_path / "new" / "sideways.jpg", sample_photos()["flower"][100:260, 250:350])
    photos.append(str(tmp_path / "new" / "sideways.jpg"))
    sizes = {_size(p) for p in photos}
    assert len(sizes) >= 5 and (24, 24) not in sizes

    done = subprocess.run([sys.executable, "-I", str(script), str(model), *photos], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    theirs = {line.rsplit(" ", 2)[0][:-1]: line.rsplit(" ", 2)[1:] for line in done.stdout.splitlines()}
    ours = predict_command(run_dir, photos, top=1)
    assert len(theirs) == len(ours) == len(photos)
    for row in ours:
        label, prob = theirs[row["input"]]
        assert label == row["prediction"], (row, label)
        assert abs(float(prob) - row["probability"]) <= 1e-3


def _size(path: str) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as im:
        return im.size


# ----------------------------------------------------------------------------- tables

@pytest.mark.slow
def test_csv_classification_reports_dropped_rows_and_predicts_the_training_csv(tmp_path_factory, tmp_path, cli):
    run_dir, csv, log = trained(tmp_path_factory, "patients")
    df = pd.read_csv(csv)
    empty_rows = [int(i) + 2 for i in np.flatnonzero(df.isna().any(axis=1).to_numpy())]
    assert len(empty_rows) == 12 and f"dropped 12 of 569 rows of {csv}" in log
    intake = json.loads((run_dir / "data.json").read_text())["meta"]["intake"]["train"]
    assert intake["dropped_rows"] == empty_rows and intake["used"] == 557
    assert json.loads((run_dir / "result.json").read_text())["test"]["accuracy"] >= 0.9

    df.loc[3, "region"] = "west"  # a category training never saw: row 5 of the file
    df.to_csv(tmp_path / "new.csv", index=False)
    code, out, err = cli("predict", run_dir, tmp_path / "new.csv", "--out", tmp_path / "p")
    assert code == 3 and "12 of 569 inputs could not be predicted" in err
    rows = json.loads((tmp_path / "p" / "result.json").read_text())["predictions"]
    failed = [int(r["input"].split(":")[1]) for r in rows if "error" in r]
    assert failed == empty_rows and all("data.missing=drop" in r["error"] for r in rows if "error" in r)
    assert [r["input"] for r in rows if "warning" in r] == ["new.csv:5"] and "'west'" in rows[3]["warning"]
    ok = [r for r in rows if "error" not in r]
    truth = df["diagnosis"].to_numpy()
    assert np.mean([r["prediction"] == truth[int(r["input"].split(":")[1]) - 2] for r in ok]) >= 0.9
    table = pd.read_csv(tmp_path / "p" / "predictions.csv")
    assert len(table) == 569 and table["error"].notna().sum() == 12 and table["warning"].notna().sum() == 1


@pytest.mark.slow
def test_csv_regression_example(tmp_path_factory, tmp_path, cli):
    run_dir, csv, log = trained(tmp_path_factory, "diabetes")
    assert "dropped 8 of 442 rows" in log
    result = json.loads((run_dir / "result.json").read_text())
    assert result["test"]["r2"] > 0.2, result["test"]  # a linear model reaches about 0.45 on diabetes
    df = pd.read_csv(csv).dropna().head(5)
    run = load_run(run_dir)
    from_rows = run.predict(df.drop(columns="progression"))  # a DataFrame, the target column left out
    from_dicts = run.predict(df.to_dict("records"))
    assert from_rows.shape == (5,) and np.allclose(from_rows.numpy(), from_dicts.numpy())
    df.to_csv(tmp_path / "five.csv", index=False)
    code, out, err = cli("predict", run_dir, tmp_path / "five.csv")
    assert code == 0, err
    printed = [float(line.split(": ")[1]) for line in out.splitlines()]
    assert np.allclose(printed, from_rows.numpy(), rtol=1e-5)


# ----------------------------------------------------------------------------- texts

@pytest.mark.slow
def test_text_csv_example_and_empty_text_warning(tmp_path_factory, cli):
    run_dir, _, _ = trained(tmp_path_factory, "texts")
    assert json.loads((run_dir / "result.json").read_text())["test"]["accuracy"] > 0.5  # three topics: chance 1/3
    code, out, err = cli("predict", run_dir, "the team won the match", "", "zzz qqq", "--top", "1")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("'the team won the match': sport") and "warning" not in lines[0]
    assert "warning: empty text" in lines[1] and "none of its 2 tokens" in lines[2]
    with pytest.warns(UserWarning, match="empty text"):
        assert load_run(run_dir).predict(["", "heavy rain covers the hills"])[1] == "weather"


# ----------------------------------------------------------------------------- the first try

def test_train_without_a_config_points_to_the_examples(cli):
    code, _, err = cli("train", "data.name=image_folder")
    assert_one_line_error(code, err, "CONFIG file first", "examples/image-folder.yaml", "Your own data")


def test_every_own_data_example_is_documented_in_the_readme():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme[readme.index("## Your own data"):]
    for example in ("image-folder.yaml", "csv-classification.yaml", "csv-regression.yaml", "text-csv.yaml"):
        assert f"examples/{example}" in section
    assert "put your files here" in section.lower()
