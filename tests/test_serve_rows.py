"""`trainlab serve` takes a table's rows as in its CSV (like `trainlab predict`), and says when an input cannot
be read: an unseen category (with how many known ones the list leaves out), an empty text."""
from __future__ import annotations

import pandas as pd
import pytest
import torch
from fastapi.testclient import TestClient

from own_data import trained
from test_export import csv_run
from trainlab.data.tabular import known_list
from trainlab.use.loaded import load_run
from trainlab.use.serve import create_app


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    path = csv_run(tmp_path_factory)
    return load_run(path), TestClient(create_app(path), raise_server_exceptions=False)


ROW = {"a": 0.9, "b": -0.2, "c": 0.1, "colour": "red"}


def test_a_raw_csv_row_is_encoded_as_in_training_and_answered_like_predict(table):
    run, client = table
    r = client.post("/predict", json=ROW)
    assert r.status_code == 200, r.text
    answer = r.json()["predictions"][0]
    expected = run.predict_proba(pd.DataFrame([ROW]))[0]  # predict's own encoding of the same row
    assert torch.allclose(torch.tensor(list(answer["probabilities"].values())), expected, atol=1e-5)
    assert "warning" not in answer  # a known category: nothing to warn about
    batch = client.post("/predict", json={"instances": [ROW, {**ROW, "a": -1.0}]}).json()["predictions"]
    assert [b["prediction"] for b in batch] == run.predict(pd.DataFrame([ROW, {**ROW, "a": -1.0}]))
    assert client.post("/predict", json={"features": ROW}).json()["predictions"][0] == answer


def test_unseen_category_is_answered_with_a_warning_and_a_missing_column_is_refused(table):
    _, client = table
    answer = client.post("/predict", json={**ROW, "colour": "green"}).json()["predictions"][0]
    assert "unseen category 'green' in column 'colour' (known: blue, red)" in answer["warning"]
    r = client.post("/predict", json={"a": 1.0, "b": 0.0, "colour": "red"})
    assert r.status_code == 422 and "missing column(s) 'c'" in r.json()["error"]
    r = client.post("/predict", json={**ROW, "a": "lots"})
    assert r.status_code == 422 and "non-numeric" in r.json()["error"]


def test_a_long_list_of_known_categories_says_how_many_it_leaves_out():
    assert known_list([f"c{i}" for i in range(18)]) == "c0, c1, c2, c3, c4 and 13 more (18 in all)"
    assert known_list(["blue", "red"]) == "blue, red"


def test_an_empty_text_is_answered_with_a_warning(tmp_path_factory):
    client = TestClient(create_app(trained(tmp_path_factory, "texts")[0]), raise_server_exceptions=False)
    rows = client.post("/predict", json={"instances": ["", "the team won the match"]}).json()["predictions"]
    assert rows[0]["warning"].startswith("empty text") and "warning" not in rows[1]
