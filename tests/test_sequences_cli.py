"""End to end through `trainlab`: forecasting with baselines, text runs that predict raw strings, RNN examples."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainlab.cli.main import main
from trainlab.run.config import load_config
from trainlab.use.loaded import load_run
from trainlab.use.predict import predict_files

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
NO_TRANSFORMS = "data.transforms={train: [], eval: []}"


def train(capsys, config: str, out: Path, *overrides: str) -> dict:
    rc = main(["train", str(EXAMPLES / config), *overrides, "--out", str(out)])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    return json.loads((out / "result.json").read_text())


def test_forecast_run_reports_baselines_and_forecasts_past_the_end(tmp_path, capsys):
    run_dir = tmp_path / "run"
    result = train(capsys, "sunspots-lstm.yaml", run_dir, "train.epochs=2")
    base = result["baselines"]
    assert base["naive"]["mae"] == pytest.approx(47.787, abs=0.01)  # 3-year forecasts, 1950s-2008 windows
    assert base["seasonal_naive"]["season"] == 11 and base["seasonal_naive"]["mae"] < base["naive"]["mae"]
    assert result["baseline_comparison"].startswith(f"test mae: model {result['test']['mae']:.4g} vs naive")
    rows = predict_files(load_run(run_dir), [])
    assert [r["time"] for r in rows] == ["2009", "2010", "2011"]
    # the same last 22 years given as a CSV forecast the same values
    tail = json.loads((run_dir / "data.json").read_text())["meta"]["tail"]
    csv = tmp_path / "recent.csv"
    csv.write_text("SUNACTIVITY\n" + "".join(f"{v[0]}\n" for v in [[0.0]] * 5 + tail))
    assert main(["predict", str(run_dir), str(csv), "--out", str(tmp_path / "p")]) == 0
    from_csv = json.loads((tmp_path / "p" / "result.json").read_text())["predictions"]
    assert [r["prediction"] for r in from_csv] == pytest.approx([r["prediction"] for r in rows], rel=1e-5)
    assert from_csv[0]["input"].endswith("recent.csv t+1")
    assert main(["eval", str(run_dir)]) == 0
    assert main(["predict", str(run_dir), "--out", str(tmp_path / "cli")]) == 0  # no inputs: past the end
    cli_rows = json.loads((tmp_path / "cli" / "result.json").read_text())["predictions"]
    assert [r["time"] for r in cli_rows] == ["2009", "2010", "2011"]


def test_text_run_predicts_raw_strings_txt_and_csv(tmp_path, capsys):
    run_dir = tmp_path / "run"
    train(capsys, "text-transformer.yaml", run_dir, "data.samples=300", "train.epochs=2", "model.d_model=16",
          "model.layers=1")
    (tmp_path / "in.txt").write_text("qqaqbqc\ncba\n")
    (tmp_path / "in.csv").write_text("text\nzzcab\n")
    assert main(["predict", str(run_dir), "xxbyyaxc", str(tmp_path / "in.txt"), str(tmp_path / "in.csv")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["'xxbyyaxc'", "in.txt", "in.txt", "in.csv"]
    assert all(line.split(": ")[1][0] in "abc" for line in lines)
    saved = json.loads((run_dir / "data.json").read_text())
    assert saved["meta"]["vocab"][:2] == ["<pad>", "<unk>"] and saved["model_info"]["pad_index"] == 0


def test_digits_rnn_and_mnist_configs(tmp_path, capsys):
    train(capsys, "digits-rnn.yaml", tmp_path / "run", "--dry-run")
    assert json.loads((tmp_path / "run" / "data.json").read_text())["input_shape"] == [1, 8, 8]
    cfg = load_config(EXAMPLES / "mnist-rnn.yaml")
    assert (cfg.model.name, cfg.model.params.cell, cfg.data.name) == ("rnn", "lstm", "mnist")


def write_text_config(tmp_path, **data) -> Path:
    csv = tmp_path / "t.csv"
    csv.write_text("text,label\n" + "".join(f"word{i % 4} other,{i % 2}\n" for i in range(40)))
    fields = {"name": "text", "path": str(csv), **data}
    cfg = tmp_path / "text.yaml"
    cfg.write_text(json.dumps({"data": fields, "model": {"name": "rnn"}, "train": {"epochs": 1}}))
    return cfg


@pytest.mark.parametrize("case, message", [
    ("short_series", "the series has 309 steps, fewer than lookback + horizon = 403"),
    ("text_column", "text column 'body' not in"),
    ("empty_vocab", "empty vocabulary"),
])
def test_bad_input_is_one_line_exit_2(tmp_path, capsys, case, message):
    if case == "short_series":
        argv = ["train", str(EXAMPLES / "sunspots-lstm.yaml"), "data.lookback=400"]
    else:
        extra = {"text_column": "body"} if case == "text_column" else {"min_freq": 1000}
        argv = ["train", str(write_text_config(tmp_path, **extra)), NO_TRANSFORMS]
    assert main([*argv, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


# ----------------------------------------------------------------------------- the README figures

@pytest.mark.slow
def test_lstm_beats_both_naive_baselines_on_sunspots(tmp_path, capsys):
    result = train(capsys, "sunspots-lstm.yaml", tmp_path / "run")
    for name in ("naive", "seasonal_naive"):
        assert result["test"]["mae"] < result["baselines"][name]["mae"], result["baseline_comparison"]
    assert "beats all baselines" in result["baseline_comparison"]


@pytest.mark.slow
def test_transformer_solves_the_order_task(tmp_path, capsys):
    result = train(capsys, "text-transformer.yaml", tmp_path / "run")
    assert result["test"]["accuracy"] >= 0.95


@pytest.mark.slow
def test_lstm_reads_digits_row_by_row(tmp_path, capsys):
    result = train(capsys, "digits-rnn.yaml", tmp_path / "run")
    assert result["test"]["accuracy"] >= 0.95
