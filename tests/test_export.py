"""trainlab export: ONNX / TorchScript files that take raw inputs, parity with PyTorch, predict on them."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from conftest import assert_one_line_error
from trainlab.cli.main import main
from trainlab.core.errors import UserError
from trainlab.data.transforms import Pipeline
from trainlab.use.export import export_run, parity_inputs, write_onnx
from trainlab.use.inference import InferenceModule, Preprocess, load_predictor
from trainlab.use.loaded import load_run
from trainlab.use.predict import predict_command

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated")
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

# name -> (example config, overrides): tiny versions of the examples, trained once per session
RUNS = {
    "mlp": ("digits-mlp.yaml", ["train.epochs=3"]),
    "cnn": ("digits-mlp.yaml", ["model.name=cnn", "model.channels=[8,16]", "model.hidden=[32]", "train.epochs=1"]),
    "rnn": ("digits-rnn.yaml", ["model.hidden=16", "train.epochs=1"]),
    "lstm_forecast": ("sunspots-lstm.yaml", ["model.hidden=8", "train.epochs=1"]),
    "transformer": ("text-transformer.yaml", ["data.samples=400", "model.layers=1", "model.d_model=16",
                                              "model.heads=2", "model.ff_dim=32", "train.epochs=1"]),
}


def trained_run(factory: pytest.TempPathFactory, name: str) -> Path:
    """Train RUNS[name] once per session; test_serve shares the runs through the session's base temp dir."""
    out = factory.getbasetemp() / "trained-runs" / name
    if not (out / "result.json").is_file():
        config, overrides = RUNS[name]
        code = main(["train", str(EXAMPLES / config), "--out", str(out), "--overwrite", *overrides])
        assert code == 0, f"training {name} failed"
    return out


def csv_run(factory: pytest.TempPathFactory) -> Path:
    """A tabular run: 3 classes separable by the sign of two of 4 features, one categorical column."""
    out = factory.getbasetemp() / "trained-runs" / "csv"
    if (out / "result.json").is_file():
        return out
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 3))
    label = np.where(x[:, 0] > 0.3, "high", np.where(x[:, 1] > 0, "mid", "low"))
    colour = rng.choice(["red", "blue"], size=300)
    rows = zip(x, colour, label, strict=True)
    lines = ["a,b,c,colour,label"] + [f"{a:.4f},{b:.4f},{c:.4f},{k},{y}" for (a, b, c), k, y in rows]
    csv = factory.getbasetemp() / "table.csv"
    csv.write_text("\n".join(lines) + "\n")
    cfg = factory.getbasetemp() / "csv.yaml"
    norm = [{"name": "normalize"}]
    cfg.write_text(yaml.safe_dump({"seed": 0, "model": {"name": "mlp", "hidden": [16]},
                                   "data": {"name": "csv", "path": str(csv), "batch_size": 32,
                                            "transforms": {"train": norm, "eval": norm}},
                                   "train": {"epochs": 20, "lr": 0.01}}))
    assert main(["train", str(cfg), "--out", str(out), "--overwrite"]) == 0
    return out


@pytest.fixture(scope="session")
def mlp_run(tmp_path_factory) -> Path:
    return trained_run(tmp_path_factory, "mlp")


def digit_png(run_dir: Path, i: int, tmp_path: Path) -> tuple[Path, torch.Tensor]:
    """The i-th raw test-split digit of a run as a PNG file, and the raw uint8 (1, 8, 8) tensor."""
    x, _ = parity_inputs(load_run(run_dir), i + 2)
    path = tmp_path / f"digit{i}.png"
    Image.fromarray(x[i, 0].numpy()).save(path)
    return path, x[i:i + 1]


# ----------------------------------------------------------------------------- export + parity

@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
@pytest.mark.parametrize("name", ["mlp", "cnn", "rnn", "lstm_forecast", "transformer"])
def test_export_round_trips_with_parity(name, fmt, tmp_path_factory, tmp_path, cli):
    run_dir = trained_run(tmp_path_factory, name)
    out = tmp_path / f"model.{fmt}"
    code, stdout, err = cli("export", run_dir, "--format", fmt, "--out", out)
    assert code == 0, err
    result = json.loads((run_dir / "result.json").read_text())
    record = result["export"][fmt]
    assert "test" in result and "best_epoch" in result  # training's keys are kept
    assert record["path"] == str(out) and out.is_file()
    assert record["parity_ok"] and 0 <= record["max_abs_diff"] <= record["tolerance"]
    assert record["tolerance"] == 1e-4 or record["compared"] == "predictions"  # regression: relative to |y|
    assert f"max abs diff {record['max_abs_diff']:.3g}" in stdout
    run = load_run(run_dir)
    x, split = parity_inputs(run, 256)
    assert split == "test" and record["parity_samples"] == len(x) > 2
    # the file itself, on batches of 3 and 1 (traced with 2): same outputs as the run's own pipeline + model
    pred = load_predictor(out, trust_code=fmt == "torchscript")  # our own export
    expected = run.predict_outputs(x[:3])
    expected = expected.softmax(-1) if run.task == "classification" else expected
    assert torch.allclose(pred(x[:3]), expected, atol=1e-4)
    assert torch.allclose(pred(x[:1]), expected[:1], atol=1e-4)
    assert pred.classes == run.classes


def test_onnx_file_takes_raw_uint8_and_carries_the_label_map(mlp_run, tmp_path):
    import onnxruntime as ort

    out = tmp_path / "digits.onnx"
    export_run(mlp_run, "onnx", out)
    session = ort.InferenceSession(str(out))
    (inp,) = session.get_inputs()
    assert inp.type == "tensor(uint8)" and inp.shape[1:] == [1, 8, 8] and isinstance(inp.shape[0], str)
    meta = json.loads(session.get_modelmeta().custom_metadata_map["trainlab"])
    assert meta["classes"] == [str(i) for i in range(10)] and meta["output"] == "probabilities"
    assert json.loads((tmp_path / "digits.onnx.json").read_text()) == meta
    # the preprocessing is inside: raw pixels in, the same probabilities as normalizing by hand
    run = load_run(mlp_run)
    x, _ = parity_inputs(run, 64)
    probs = torch.from_numpy(session.run(None, {"input": x.numpy()})[0])
    spec = run.data["eval_transforms"][1]
    by_hand = run.model((x.float() / 255 - spec["mean"][0]) / spec["std"][0]).softmax(-1)
    assert torch.allclose(probs, by_hand, atol=1e-5)
    assert (run.model(x.float()).softmax(-1) - probs).abs().max() > 0.1  # without it the outputs differ
    assert torch.allclose(probs.sum(1), torch.ones(len(x)), atol=1e-5)


def test_torchscript_file_carries_the_label_map(mlp_run, tmp_path):
    out = tmp_path / "digits.pt"
    export_run(mlp_run, "torchscript", out)
    extra = {"trainlab.json": ""}
    module = torch.jit.load(str(out), _extra_files=extra)
    assert json.loads(extra["trainlab.json"])["classes"] == [str(i) for i in range(10)]
    x = torch.zeros(5, 1, 8, 8, dtype=torch.uint8)
    assert module(x).shape == (5, 10)


def test_a_parity_failure_is_reported_and_recorded(mlp_run, tmp_path, cli, monkeypatch):
    import trainlab.use.export as export

    run_dir = shutil.copytree(mlp_run, tmp_path / "run")
    real = export.inference_module

    def broken(run):  # a preprocessing bug: the wrong normalization mean
        module = real(run)
        module.preprocess.pipeline.steps[1].mean += 0.5  # the run's own Normalize step, rebuilt for the export
        return module

    monkeypatch.setattr(export, "inference_module", broken)
    code, out, err = cli("export", run_dir, "--format", "torchscript")
    assert code == 1 and "FAILED" in out and err.startswith("error: the exported model disagrees")
    record = json.loads((run_dir / "result.json").read_text())["export"]["torchscript"]
    assert not record["parity_ok"] and record["max_abs_diff"] > 1e-2


# ----------------------------------------------------------------------------- preprocessing as modules

def test_preprocess_matches_the_pipeline_and_exports_to_onnx(tmp_path):
    specs = [{"name": "to_tensor"}, {"name": "resize", "size": 12}, {"name": "center_crop", "size": [10, 9]},
             {"name": "grayscale"}, {"name": "normalize", "mean": [0.4], "std": [0.2]}]
    x = torch.randint(0, 256, (6, 3, 16, 20), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    pre = Preprocess(specs, [3, 16, 20], image=True)
    ref = Pipeline(specs, True)(x)
    assert ref.shape == (6, 1, 10, 9)
    assert torch.allclose(pre(x), ref, atol=1e-6)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(90, 4))
    module = InferenceModule(pre, model, classification=True).eval()
    info = {"model": "tiny", "output": "probabilities", "raw_dtype": "uint8", "classes": list("abcd"),
            "task": "classification"}
    write_onnx(module, x[:2], info, tmp_path / "tiny.onnx")
    (tmp_path / "tiny.onnx.json").unlink(missing_ok=True)
    with torch.no_grad():
        assert torch.allclose(load_predictor(tmp_path / "tiny.onnx")(x), module(x), atol=1e-5)


def test_random_or_unknown_eval_transforms_are_refused():
    with pytest.raises(UserError, match="random_erasing"):
        Preprocess([{"name": "random_erasing"}], [1, 8, 8], image=True)
    with pytest.raises(UserError, match="larger than"):
        Preprocess([{"name": "center_crop", "size": 10}], [1, 8, 8], image=True)


def test_tabular_run_exports_raw_features(tmp_path_factory, tmp_path):
    run_dir = csv_run(tmp_path_factory)
    record = export_run(run_dir, "onnx", tmp_path / "table.onnx")
    assert record["parity_ok"] and record["max_abs_diff"] <= 1e-4
    info = load_predictor(tmp_path / "table.onnx").data
    assert info["raw_dtype"] == "float32" and info["meta"]["features"][-2:] == ["colour=blue", "colour=red"]


# ----------------------------------------------------------------------------- predict on exported files

def test_predict_accepts_exported_files(mlp_run, tmp_path):
    png, _ = digit_png(mlp_run, 0, tmp_path)
    from trainlab.use.predict import predict_files

    expected = predict_files(load_run(mlp_run), [str(png)], top=3)[0]
    for fmt in ("onnx", "torchscript"):
        out = tmp_path / f"m.{'onnx' if fmt == 'onnx' else 'pt'}"
        export_run(mlp_run, fmt, out)
        (row,) = predict_command(out, [str(png)], top=3, trust_code=fmt == "torchscript")
        assert row["prediction"] == expected["prediction"]
        for got, want in zip(row["top"], expected["top"], strict=True):
            assert got["class"] == want["class"] and got["probability"] == pytest.approx(want["probability"], abs=1e-5)


def test_cli_predict_on_an_exported_file(mlp_run, tmp_path, cli):
    png, _ = digit_png(mlp_run, 1, tmp_path)
    out = tmp_path / "m.onnx"
    export_run(mlp_run, "onnx", out)
    (want,) = predict_command(out, [str(png)])
    code, stdout, err = cli("predict", out, png)
    assert code == 0, err
    assert stdout.startswith(f"{png}: {want['prediction']}")


# ----------------------------------------------------------------------------- bad input

def test_bad_export_input_is_one_line(tmp_path, mlp_run, cli):
    assert_one_line_error(*_code_err(cli("export", tmp_path)), "not a trainlab run directory")
    assert_one_line_error(*_code_err(cli("export", mlp_run, "--samples", "1")), "--samples")
    assert_one_line_error(*_code_err(cli("export", mlp_run, "--format", "tflite")), "invalid choice")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    with pytest.raises(UserError, match="cannot load ONNX model"):
        load_predictor(garbage)
    with pytest.raises(UserError, match="a PyTorch checkpoint"):
        load_predictor(mlp_run / "best.pt")  # a checkpoint, not an exported model
    with pytest.raises(UserError, match="cannot load ONNX model"):
        load_predictor(mlp_run / "config.yaml")
    with pytest.raises(UserError, match="not found"):
        load_predictor(tmp_path / "missing.onnx")


def _code_err(result: tuple[int, str, str]) -> tuple[int, str]:
    return result[0], result[2]
