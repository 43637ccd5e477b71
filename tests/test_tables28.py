"""Tables and texts off the demo path (issue 28): missing-value imputation fitted on the training split only,
serve's page by original column, export consumers that reproduce predict, inspect rows and attribution by column.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from fastapi.testclient import TestClient

import test_serve
from conftest import assert_one_line_error
from own_data import trained
from test_export import digit_png, trained_run
from trainlab.cli.main import main
from trainlab.data.prepare import load_data
from trainlab.data.tabular import encode_rows
from trainlab.run.config import load_config
from trainlab.use.attribution import attribution_sections, column_attribution, table_importance
from trainlab.use.consumers import consumer_script
from trainlab.use.export import export_run
from trainlab.use.inspect import inspect_run, split_predictions
from trainlab.use.loaded import load_run
from trainlab.use.serve import create_app, running_server
from trainlab.use.serve_page import table_columns, table_form

NORM = [{"name": "normalize"}]
browser = test_serve.browser  # the Chromium fixture (Debian's chromium through playwright)


def holey_table(path: Path, n: int = 240, seed: int = 0) -> pd.DataFrame:
    """a decides the label; b drifts upward along the file (so the training rows' median is not the whole
    file's), colour is noise; 24 empty cells in b and 12 in colour."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    b = rng.normal(size=n) + np.linspace(0, 30, n)
    colour = rng.choice(["red", "blue", "green"], size=n, p=[0.5, 0.3, 0.2])
    df = pd.DataFrame({"a": a.round(4), "b": b.round(4), "colour": colour, "label": np.where(a > 0, "yes", "no")})
    df.loc[rng.choice(n, 24, replace=False), "b"] = np.nan
    df.loc[rng.choice(n, 12, replace=False), "colour"] = np.nan
    df.to_csv(path, index=False)
    return df


def table_config(tmp: Path, csv: Path, name: str = "c.yaml", **data) -> Path:
    cfg = tmp / name
    cfg.write_text(yaml.safe_dump({"seed": 0, "model": {"name": "mlp", "hidden": [16]},
                                   "data": {"name": "csv", "path": str(csv), "batch_size": 32, **data,
                                            "transforms": {"train": NORM, "eval": NORM}},
                                   "train": {"epochs": 12, "lr": 0.01}}))
    return cfg


def fitted_view(cfg: Path):
    data = load_data(load_config(cfg))
    return data, data.view(data.splits.train, data.splits.val)


@pytest.fixture(scope="module")
def holey_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("holey")
    df = holey_table(tmp / "t.csv")
    cfg = table_config(tmp, tmp / "t.csv", missing="impute")
    assert main(["train", str(cfg), "--out", str(tmp / "run"), "--overwrite"]) == 0
    return tmp / "run", df, cfg


# ----------------------------------------------------------------------------- imputation

def shifted_copy(df: pd.DataFrame, rows: np.ndarray, path: Path) -> pd.DataFrame:
    """The table with b far away and colour all green in `rows` (their empty cells stay empty)."""
    out = df.copy()
    out.loc[rows, "b"] = out.loc[rows, "b"] * 100 + 1000
    out.loc[rows, "colour"] = out.loc[rows, "colour"].where(out.loc[rows, "colour"].isna(), "green")
    out.to_csv(path, index=False)
    return out


def test_imputed_values_are_the_training_splits_median_and_mode_and_val_test_do_not_move_them(tmp_path, capsys):
    df = holey_table(tmp_path / "t.csv")
    data, view = fitted_view(table_config(tmp_path, tmp_path / "t.csv", missing="impute"))
    held_out = np.concatenate([data.splits.val, data.splits.test])
    shifted = shifted_copy(df, held_out, tmp_path / "s.csv")
    data2, view2 = fitted_view(table_config(tmp_path, tmp_path / "s.csv", "s.yaml", missing="impute"))
    assert np.array_equal(data2.splits.train, data.splits.train)  # the splits follow the labels only
    train = shifted.iloc[data.splits.train]
    report = view2.bundle.meta["imputation"]
    assert report["values"]["b"] == pytest.approx(float(np.median(train["b"].dropna())), abs=1e-4)
    assert float(shifted["b"].median()) - report["values"]["b"] > 5  # the whole file's median is far above
    assert report["values"]["colour"] == train["colour"].value_counts().idxmax() == "red"  # file-wide: green
    assert shifted["colour"].value_counts().idxmax() == "green"
    assert report["values"] == view.bundle.meta["imputation"]["values"]  # no leakage from val/test
    assert report["counts"] == {"b": 24, "colour": 12} and report["train_rows"] == len(data.splits.train)
    out = capsys.readouterr().out
    assert "imputed 36 empty cells" in out and "b 24 -> median" in out and "colour 12 -> most frequent 'red'" in out
    # the filled pool: every empty b cell holds the training median, the one-hot of colour says red
    x = view2.bundle.pool.x
    empty_b = torch.from_numpy(df["b"].isna().to_numpy().copy())
    assert torch.allclose(x[empty_b, 1], torch.tensor(report["values"]["b"], dtype=torch.float32))
    red = view2.bundle.meta["features"].index("colour=red")
    assert (x[torch.from_numpy(df["colour"].isna().to_numpy().copy()), red] == 1).all()


def test_a_blank_at_predict_time_is_encoded_with_the_training_value(holey_run):
    run_dir, _, _ = holey_run
    run = load_run(run_dir)
    values = run.data["meta"]["imputation"]["values"]
    blank = pd.DataFrame([{"a": 0.3, "b": np.nan, "colour": None}, {"a": -0.8, "b": 12.0, "colour": "blue"}])
    filled = pd.DataFrame([{"a": 0.3, "b": values["b"], "colour": values["colour"]}])
    x, errors, warns = encode_rows(blank, run.data["meta"])
    x2, _, _ = encode_rows(filled, run.data["meta"])
    assert errors == {} and np.array_equal(x[0], x2[0]) and 1 not in warns
    assert "empty 'b' imputed: median" in warns[0] and "most frequent 'red'" in warns[0]
    with pytest.warns(UserWarning, match="imputed"):
        p = run.predict_proba(blank[:1])
    assert torch.allclose(p, run.predict_proba(filled))


def test_category_strategy_makes_empty_cells_their_own_category(tmp_path, capsys):
    holey_table(tmp_path / "t.csv")
    _, view = fitted_view(table_config(tmp_path, tmp_path / "t.csv", missing="impute",
                                       impute_categorical="category"))
    meta = view.bundle.meta
    assert meta["categories"]["colour"] == ["(missing)", "blue", "green", "red"]
    assert meta["imputation"]["values"]["colour"] == "(missing)" and meta["imputation"]["counts"] == {"b": 24}


def test_a_table_without_blanks_is_unchanged_and_quiet_under_impute(tmp_path, capsys):
    df = holey_table(tmp_path / "t.csv").dropna()
    df.to_csv(tmp_path / "full.csv", index=False)
    _, v_error = fitted_view(table_config(tmp_path, tmp_path / "full.csv", "e.yaml"))
    capsys.readouterr()
    _, v_impute = fitted_view(table_config(tmp_path, tmp_path / "full.csv", "i.yaml", missing="impute"))
    assert torch.equal(v_error.bundle.pool.x, v_impute.bundle.pool.x)
    assert "imputed" not in capsys.readouterr().out


def test_the_default_still_refuses_a_blank_and_names_impute(tmp_path, cli):
    holey_table(tmp_path / "t.csv")
    code, _, err = cli("train", table_config(tmp_path, tmp_path / "t.csv"))
    assert_one_line_error(code, err, "missing value", "data.missing=drop", "data.missing=impute")


# ----------------------------------------------------------------------------- serve's page for a CSV run

class FormReader(HTMLParser):
    """What the page's `rowOf` posts: every [data-column] element's value (selects: the selected option)."""

    def __init__(self):
        super().__init__()
        self.row, self.options, self._select = {}, {}, None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "input" and "data-column" in a:
            self.row[a["data-column"]] = float(a["value"]) if a.get("value") else None
        elif tag == "select":
            self._select = a["data-column"]
            self.options[self._select] = []
        elif tag == "option" and self._select:
            self._selected = "selected" in a

    def handle_data(self, data):
        if self._select and self.lasttag == "option":
            self.options[self._select].append(data)
            if self._selected or self._select not in self.row:
                self.row[self._select] = data

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None


def page_form(client) -> FormReader:
    reader = FormReader()
    reader.feed(client.get("/").text)
    return reader


def test_the_page_of_a_csv_run_has_one_input_per_column_and_its_payload_is_predicted(holey_run):
    run_dir, df, _ = holey_run
    client = TestClient(create_app(run_dir), raise_server_exceptions=False)
    page = client.get("/").text
    visible = page.split('<script id="info"')[0]  # the JSON after it lists the encoded features for /info readers
    assert 'id="features"' not in page and "colour=red" not in visible  # no box of one-hot numbers
    form = page_form(client)
    assert list(form.row) == ["a", "b", "colour"] and form.options == {"colour": ["blue", "green", "red"]}
    first = df.dropna().iloc[0]  # prefilled with a real row of the training file
    assert form.row == {"a": pytest.approx(first["a"]), "b": pytest.approx(first["b"]), "colour": first["colour"]}
    answer = client.post("/predict", json=form.row)
    assert answer.status_code == 200, answer.text
    p = answer.json()["predictions"][0]
    expected = load_run(run_dir).predict_proba(pd.DataFrame([form.row]))[0]
    assert torch.allclose(torch.tensor([p["probabilities"][c] for c in ("no", "yes")]), expected, atol=1e-5)
    assert "warning" not in p
    blank = client.post("/predict", json={**form.row, "b": None}).json()["predictions"][0]  # an emptied box
    assert "empty 'b' imputed" in blank["warning"]


def test_other_runs_keep_their_boxes(tmp_path_factory):
    client = TestClient(create_app(trained(tmp_path_factory, "texts")[0]), raise_server_exceptions=False)
    page = client.get("/").text
    assert 'id="text"' in page and 'form id="row"' not in page and client.get("/info").json()["columns"] is None


# ----------------------------------------------------------------------------- inspect: rows and attribution by column

def test_inspect_shows_a_table_row_by_its_csv_columns(holey_run):
    run_dir, df, _ = holey_run
    result = inspect_run(run_dir, top=5)
    sample = result["top_losses"][0]
    assert set(sample["values"]) == {"a", "b", "colour"}  # every column, categories as text: no colour=red
    row = df.iloc[sample["index"]]
    assert sample["values"]["a"] == pytest.approx(row["a"], abs=1e-4)
    assert sample["values"]["colour"] in ("blue", "green", "red")
    if pd.isna(row["b"]):  # an empty cell shows what the model got: the training median
        assert sample["values"]["b"] == pytest.approx(load_run(run_dir).data["meta"]["imputation"]["values"]["b"],
                                                      abs=1e-3)


def test_a_wide_row_that_is_cut_says_how_many_values_it_leaves_out():
    from trainlab.data.describe import _values

    shown = _values(np.arange(30, dtype=float), {"features": [f"f{i}" for i in range(30)]})
    assert len(shown) == 13 and shown["..."] == "18 more values not shown (30 in all)"
    assert _values(np.arange(5, dtype=float), {}) == {f"x[{i}]": float(i) for i in range(5)}  # short: as it was


def test_attribution_of_a_table_ranks_the_column_that_decides_the_label_first(holey_run):
    run_dir, _, _ = holey_run
    run = load_run(run_dir)
    p = split_predictions(run, "test")
    ranked = table_importance(run, p)
    assert [name for name, _, _ in ranked][0] == "a" and ranked[0][2] > 0.5  # a decides; b and colour are noise
    result = inspect_run(run_dir, top=3, extra_sections=[attribution_sections])
    page = Path(result["out"], "inspect.html").read_text()
    assert "Attribution per column" in page and "attribution is drawn for" not in page


def test_column_attribution_sums_a_categorys_one_hot_columns():
    meta = {"raw_features": ["n", "c"], "categories": {"c": ["x", "y", "z"]}}
    model = torch.nn.Linear(4, 2)
    x = torch.randn(6, 4)
    per_column = column_attribution(model, x, torch.zeros(6, dtype=torch.long), meta)
    w = model.weight[0].detach()  # a linear model: integrated gradients from 0 are exactly w * x
    assert torch.allclose(per_column[:, 0], w[0] * x[:, 0], atol=1e-5)
    assert torch.allclose(per_column[:, 1], (w[1:] * x[:, 1:]).sum(1), atol=1e-5)


# ----------------------------------------------------------------------------- export: a consumer per kind of run

def consumer_lines(script: Path, model: Path, *inputs) -> dict[str, str]:
    """Run the exported consumer script in a fresh Python (no trainlab on its path): {input name: the rest}."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, str(script), str(model), *map(str, inputs)], capture_output=True,
                          text=True, env=env, cwd=script.parent.parent, timeout=120)
    assert done.returncode == 0, done.stderr
    return dict(line.rsplit(": ", 1) if ": error: " not in line else line.split(": ", 1)
                for line in done.stdout.splitlines())


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_the_table_consumer_reproduces_predict_blanks_included(holey_run, tmp_path, fmt):
    run_dir, df, _ = holey_run
    record = export_run(run_dir, fmt, out=tmp_path / "export" / f"table.{'onnx' if fmt == 'onnx' else 'pt'}")
    assert Path(record["consumer"]).name == "table_predict.py"
    meta = json.loads(Path(record["metadata"]).read_text())["meta"]
    assert "example" not in meta and meta["imputation"]  # no training row travels with an exported file
    rows = df.drop(columns="label").iloc[:12]  # holds empty b / colour cells: imputed with the training values
    assert rows.isna().any(axis=1).sum() >= 1
    rows.to_csv(tmp_path / "rows.csv", index=False)
    got = consumer_lines(Path(record["consumer"]), Path(record["path"]), tmp_path / "rows.csv")
    with pytest.warns(UserWarning):
        probs = load_run(run_dir).predict_proba(rows)
    classes = load_run(run_dir).classes
    assert len(got) == 12
    for i, (name, answer) in enumerate(sorted(got.items(), key=lambda kv: int(kv[0].rsplit(":", 1)[1]))):
        label, p = answer.split()
        assert name.endswith(f":{i + 2}") and label == classes[int(probs[i].argmax())]
        assert float(p) == pytest.approx(float(probs[i].max()), abs=2e-6)


def test_the_text_consumer_reproduces_predict(tmp_path_factory, tmp_path):
    run_dir = trained(tmp_path_factory, "texts")[0]
    record = export_run(run_dir, "onnx", out=tmp_path / "export" / "texts.onnx")
    texts = ["the striker scored a late goal", "Heavy RAIN and wind tonight!", "bake the bread", "",
             "zzz qqq", "the chef roasted garlic " * 30]  # unknown words, an empty text, one past max_len
    (tmp_path / "texts.txt").write_text("\n".join(texts[1:]) + "\n")
    got = consumer_lines(Path(record["consumer"]), Path(record["path"]), texts[0], tmp_path / "texts.txt")
    run = load_run(run_dir)
    with pytest.warns(UserWarning):
        probs = run.predict_proba(texts)
    names = [texts[0]] + [f"{tmp_path / 'texts.txt'}:{i}" for i in range(1, len(texts))]
    for name, p in zip(names, probs, strict=True):
        label, prob = got[name].split()
        assert label == run.classes[int(p.argmax())] and float(prob) == pytest.approx(float(p.max()), abs=2e-6)


def test_the_regression_consumer_reproduces_predict_and_refuses_rows_as_predict_does(tmp_path_factory, tmp_path):
    run_dir, csv, _ = trained(tmp_path_factory, "diabetes")  # data.missing=drop, 8 empty cells
    record = export_run(run_dir, "onnx", out=tmp_path / "export" / "diabetes.onnx")
    df = pd.read_csv(csv).drop(columns="progression")
    got = consumer_lines(Path(record["consumer"]), Path(record["path"]), csv)
    run = load_run(run_dir)
    full = df.notna().all(axis=1).to_numpy()
    expected = run.predict_outputs(torch.from_numpy(encode_rows(df[full].reset_index(drop=True),
                                                                run.data["meta"])[0]))[:, 0]
    rows = [int(n.rsplit(":", 1)[1]) - 2 for n in got]
    errors = [r for r, answer in zip(rows, got.values(), strict=True) if answer.startswith("error:")]
    assert errors == list(np.flatnonzero(~full)) and len(errors) == 8
    values = [float(a) for a in got.values() if not a.startswith("error:")]
    assert np.allclose(values, expected.numpy(), rtol=1e-5, atol=1e-4)


def test_the_image_consumer_reproduces_predict(tmp_path_factory, tmp_path):
    run_dir = trained_run(tmp_path_factory, "mlp")  # digits, 8x8 gray
    record = export_run(run_dir, "onnx", out=tmp_path / "export" / "digits.onnx")
    paths, raw = zip(*[digit_png(run_dir, i, tmp_path) for i in range(4)], strict=True)
    got = consumer_lines(Path(record["consumer"]), Path(record["path"]), *paths)
    run = load_run(run_dir)
    probs = run.predict_proba(torch.cat(raw))
    for path, p in zip(paths, probs, strict=True):
        label, prob = got[str(path)].split()
        assert label == run.classes[int(p.argmax())] and float(prob) == pytest.approx(float(p.max()), abs=2e-6)


def test_a_run_kind_without_a_consumer_says_where_its_encoding_is():
    assert consumer_script({"kind": "sequence"}) is None
    source = consumer_script({"kind": "tabular", "meta": {"raw_features": ["a"]}}, "x_predict.py")
    assert source.startswith("# x_predict.py MODEL FILE.csv") and 'meta["categories"]' in source
    compile(source, "x_predict.py", "exec")
    compile(consumer_script({"kind": "text"}), "t.py", "exec")
    compile(consumer_script({"kind": "image"}), "i.py", "exec")


@pytest.mark.slow
def test_the_csv_form_in_chromium_predicts_the_row_it_shows(browser, holey_run):
    run_dir, _, _ = holey_run
    run = load_run(run_dir)
    with running_server(create_app(run_dir)) as url:
        page = browser.new_page()
        page.goto(url + "/")
        assert page.locator("#features").count() == 0 and page.locator("form#row").is_visible()
        page.fill('[data-column="a"]', "1.5")
        page.select_option('[data-column="colour"]', "green")
        page.click("#send-row")
        page.wait_for_function("document.body.dataset.state === 'done'", timeout=15_000)
        form = {"a": 1.5, "b": float(page.input_value('[data-column="b"]')), "colour": "green"}
        expected = run.classes[int(run.predict_proba(pd.DataFrame([form]))[0].argmax())]
        assert page.inner_text("#prediction") == expected and page.inner_text("#warning") == ""
        page.fill('[data-column="b"]', "")  # an emptied box: null, imputed with the training median
        page.click("#send-row")
        page.wait_for_function("document.body.dataset.state === 'done' && "
                               "document.getElementById('warning').textContent !== ''", timeout=15_000)
        assert "empty 'b' imputed" in page.inner_text("#warning") and page.inner_text("#error") == ""
        page.close()


def test_a_run_without_a_saved_row_prefills_the_training_values_or_the_first_category():
    meta = {"raw_features": ["n", "c"], "categories": {"c": ["x", "y"]}}
    cols = table_columns({"kind": "tabular", "meta": meta})
    assert [(c["name"], c["value"]) for c in cols] == [("n", None), ("c", "x")]
    meta["imputation"] = {"values": {"n": 2.5, "c": "y"}}
    cols = table_columns({"kind": "tabular", "meta": meta})
    assert [(c["name"], c["value"]) for c in cols] == [("n", 2.5), ("c", "y")]
    assert 'value="2.5"' in table_form(cols) and "<option selected>y</option>" in table_form(cols)
