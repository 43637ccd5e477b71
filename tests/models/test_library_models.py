"""timm and torchvision models by name: registry families, heads and stems, local weights, pretrained
downloads (offline here), the model's own preprocessing, and the run tools (export, predict) on them."""
from __future__ import annotations

import json
import pickle
import shutil

import pytest
import torch
import yaml

from conftest import assert_one_line_error, tiny_config
from trainlab.cli.main import main
from trainlab.core.errors import UserError
from trainlab.models.catalog import MODELS, LibraryModelConfig, build_model, is_library_model
from trainlab.models.heads import first_conv_name, head_names
from trainlab.models.library import build_library_model, input_config, library_names
from trainlab.run.config import build_config

SMALL = 32  # digits (8x8) resized so that the stems' strides leave something to pool


def build(name: str, shape=(1, SMALL, SMALL), outputs: int = 4, **options):
    torch.manual_seed(0)
    return build_library_model(name, LibraryModelConfig(**options), shape, outputs)


def library_config(name: str, transforms: bool = True, **model) -> dict:
    """A digits config for a library model; transforms=True resizes to SMALL (otherwise none are set)."""
    cfg = tiny_config(model={"name": name, **model}, train={"epochs": 1, "lr": 0.003})
    cfg["model"].pop("hidden")
    if transforms:
        steps = [{"name": "resize", "size": [SMALL, SMALL]}, {"name": "normalize"}]
        cfg["data"]["transforms"] = {"train": steps, "eval": steps}
    return cfg


# ----------------------------------------------------------------------------- names

def test_families_resolve_any_name_of_their_library_without_importing_it():
    assert MODELS.entry("timm:convnext_atto").name == "timm:*"
    assert MODELS.entry("torchvision:resnet18").family and is_library_model("torchvision:resnet18")
    assert "timm:anything" in MODELS and "timm:" not in MODELS and "keras:resnet" not in MODELS
    assert not is_library_model("mlp")


def test_unknown_library_model_is_one_line_error_with_suggestions(write_config, cli):
    code, _, err = cli("train", write_config(library_config("timm:convnext_attoo")), "--dry-run")
    assert_one_line_error(code, err, "unknown timm model 'convnext_attoo'", "timm:convnext_atto")
    code, _, err = cli("train", write_config(library_config("torchvision:resnet19")), "--dry-run")
    assert_one_line_error(code, err, "unknown torchvision model 'resnet19'", "torchvision:resnet18")


def test_pretrained_and_weights_together_are_refused():
    with pytest.raises(UserError, match="set one of them"):
        build_config(library_config("timm:test_vit", pretrained=True, weights="w.pt"))


def test_list_filter_finds_timm_and_torchvision_models(cli):
    code, out, err = cli("list", "models", "--filter", "mobilenet")
    assert code == 0
    names = out.split()
    assert "torchvision:mobilenet_v3_small" in names and "timm:mobilenetv3_small_050" in names
    assert all("mobilenet" in n for n in names) and f"{len(names)} timm/torchvision models" in err
    assert library_names("test_conv*") == ["timm:test_convnext", "timm:test_convnext2", "timm:test_convnext3"]


# ----------------------------------------------------------------------------- heads and stems

@pytest.mark.parametrize("name, head, stem", [
    ("timm:test_convnext", "head.fc", "stem.0"), ("timm:test_vit", "head", "patch_embed.proj"),
    ("torchvision:resnet18", "fc", "conv1"), ("torchvision:mobilenet_v3_small", "classifier.3", "features.0.0")])
def test_head_sized_for_the_classes_and_stem_for_the_channels(name, head, stem):
    model = build(name, outputs=7).eval()
    assert head_names(model) == (head,) and first_conv_name(model) == stem
    assert model.get_submodule(stem).in_channels == 1
    out = model(torch.randn(2, 1, SMALL, SMALL))
    assert out.shape == (2, 7) and torch.isfinite(out).all()


def test_torchvision_grayscale_stem_equals_the_rgb_model_on_gray_replicated():
    """The adapted stem sums the RGB filters, so a gray image gives what the RGB network gives on R=G=B=gray."""
    rgb = build("torchvision:resnet18", shape=(3, SMALL, SMALL)).eval()
    gray = build("torchvision:resnet18").eval()
    assert torch.equal(gray.conv1.weight, rgb.conv1.weight.sum(1, keepdim=True))
    x = torch.rand(3, 1, SMALL, SMALL)
    torch.testing.assert_close(gray(x), rgb(x.repeat(1, 3, 1, 1)), rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------------- weights files

def test_weights_file_loads_the_backbone_adapts_the_stem_and_starts_a_new_head(tmp_path, capsys):
    source = build("timm:test_convnext", shape=(3, SMALL, SMALL), outputs=10)  # "pretrained": RGB, 10 classes
    path = tmp_path / "backbone.pt"
    torch.save(source.state_dict(), path)
    model = build("timm:test_convnext", outputs=4, weights=str(path))
    src, got = source.state_dict(), model.state_dict()
    assert torch.equal(got["stem.0.weight"], src["stem.0.weight"].sum(1, keepdim=True))  # timm's adapt_input_conv
    assert got["head.fc.weight"].shape == (4, src["head.fc.weight"].shape[1])
    same = [k for k in src if not k.startswith(("stem.0.weight", "head.fc."))]
    assert same and all(torch.equal(got[k], src[k]) for k in same)
    note = capsys.readouterr().err
    assert "head (head.fc) starts fresh" in note and "(10," in note and "(4," in note


def test_a_trainlab_checkpoint_is_a_weights_file_too(tmp_path):
    source = build("torchvision:squeezenet1_1")
    torch.save({"model": source.state_dict(), "epoch": 3}, tmp_path / "best.pt")
    model = build("torchvision:squeezenet1_1", weights=str(tmp_path / "best.pt"))
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), source.state_dict().values(),
                                                 strict=True))


def test_weights_of_another_architecture_name_the_first_mismatch(tmp_path):
    torch.save(build("timm:test_resnet").state_dict(), tmp_path / "resnet.pt")
    with pytest.raises(UserError, match=r"has tensor 'conv1\.0\.weight' that the model does not have"):
        build("timm:test_convnext", weights=str(tmp_path / "resnet.pt"))
    state = build("timm:test_convnext").state_dict()
    state["stages.1.blocks.0.conv_dw.weight"] = torch.zeros(5, 1, 7, 7)
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(UserError) as e:
        build("timm:test_convnext", weights=str(tmp_path / "bad.pt"))
    assert "'stages.1.blocks.0.conv_dw.weight' has shape (5, 1, 7, 7) but the model expects" in str(e.value)
    del state["stages.1.blocks.0.conv_dw.weight"]
    torch.save(state, tmp_path / "short.pt")
    with pytest.raises(UserError, match="lacks tensor 'stages.1.blocks.0.conv_dw.weight'"):
        build("timm:test_convnext", weights=str(tmp_path / "short.pt"))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_weights_files_are_loaded_with_weights_only(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("code ran",))

    (tmp_path / "evil.pt").write_bytes(pickle.dumps({"model": Payload()}))
    with pytest.raises(UserError, match="refusing to load model.weights"):
        build("timm:test_vit", weights=str(tmp_path / "evil.pt"))
    with pytest.raises(UserError, match="file not found"):
        build("timm:test_vit", weights=str(tmp_path / "missing.pt"))


def test_safetensors_weights_load(tmp_path):
    from safetensors.torch import save_file

    source = build("timm:test_vit")
    save_file(source.state_dict(), str(tmp_path / "model.safetensors"))
    model = build("timm:test_vit", weights=str(tmp_path / "model.safetensors"))
    assert torch.equal(model.state_dict()["pos_embed"], source.state_dict()["pos_embed"])


# ----------------------------------------------------------------------------- pretrained (no internet here)

def test_torchvision_pretrained_goes_through_its_download_and_says_what_to_do_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty cache: the real download is attempted
    with pytest.raises(UserError) as e:
        build("torchvision:squeezenet1_1", pretrained=True)
    msg = str(e.value)
    assert "\n" not in msg and "https://download.pytorch.org/models/squeezenet1_1" in msg
    assert "model.weights=PATH" in msg


def test_timm_pretrained_goes_through_the_hub_and_says_what_to_do_offline(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # no retries: fail at once
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(UserError) as e:
        build("timm:test_efficientnet", pretrained=True)
    msg = str(e.value)
    assert "\n" not in msg and "https://huggingface.co/timm/test_efficientnet" in msg and "model.weights" in msg


# ----------------------------------------------------------------------------- preprocessing

def test_input_config_is_the_libraries_own():
    timm_cfg = input_config("timm:test_convnext")  # r160_in1k: 160 px, crop_pct 0.95, mean/std 0.5
    assert timm_cfg["crop"] == [160, 160] and timm_cfg["resize"] == 168 and timm_cfg["mean"] == [0.5] * 3
    tv = input_config("torchvision:resnet18")
    assert (tv["resize"], tv["crop"], tv["mean"]) == (256, [224, 224], [0.485, 0.456, 0.406])
    assert input_config("torchvision:resnet18", image_size=112)["resize"] == 128  # same 256/224 ratio


def test_model_preprocessing_becomes_the_transforms_unless_the_config_sets_them(tmp_path):
    weights = tmp_path / "w.pt"
    auto = build_config(library_config("torchvision:resnet18", transforms=False, weights=str(weights)))
    assert auto.data.transforms.eval == auto.data.transforms.train == [
        {"name": "resize", "size": 256}, {"name": "center_crop", "size": [224, 224]},
        {"name": "normalize", "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}]
    scratch = build_config(library_config("torchvision:resnet18", transforms=False))  # auto: no weights -> data's
    assert scratch.data.transforms.eval == [{"name": "normalize"}]
    forced = build_config(library_config("timm:test_vit", transforms=False, preprocess="model", image_size=32))
    assert forced.data.transforms.eval[:2] == [{"name": "resize", "size": 33},
                                               {"name": "center_crop", "size": [32, 32]}]
    own = build_config(library_config("timm:test_vit", pretrained=True))  # explicit data.transforms win
    assert own.data.transforms.eval[0] == {"name": "resize", "size": [SMALL, SMALL]}


# ----------------------------------------------------------------------------- runs

@pytest.fixture(scope="module")
def convnext_run(tmp_path_factory):
    """A dry run of timm:test_convnext started from a weights file, with the model's preprocessing at 32 px."""
    tmp = tmp_path_factory.mktemp("convnext")
    torch.save(build("timm:test_convnext", shape=(3, SMALL, SMALL), outputs=1000).state_dict(), tmp / "w.pt")
    cfg = library_config("timm:test_convnext", transforms=False, weights=str(tmp / "w.pt"), image_size=SMALL)
    (tmp / "c.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["train", str(tmp / "c.yaml"), "--out", str(tmp / "run"), "--dry-run"]) == 0
    return tmp / "run"


@pytest.mark.slow  # the fixture's dry run: ~10 s
def test_run_records_the_model_preprocessing(convnext_run):
    data = json.loads((convnext_run / "data.json").read_text())
    assert data["model_expects"]["source"] == "timm data config of test_convnext"
    assert data["input_shape"] == [1, SMALL, SMALL]
    norm = data["eval_transforms"][-1]
    assert norm["name"] == "normalize" and norm["mean"] == [0.5] and norm["std"] == [0.5]  # RGB stats, gray data
    saved = yaml.safe_load((convnext_run / "config.yaml").read_text())
    assert saved["data"]["transforms"]["eval"][1] == {"name": "center_crop", "size": [SMALL, SMALL]}
    manifest = json.loads((convnext_run / "manifest.json").read_text())
    assert manifest["timm"]


@pytest.mark.slow
def test_a_run_loads_back_without_its_starting_weights_file(convnext_run, tmp_path):
    from trainlab.use.loaded import load_run

    cfg = yaml.safe_load((convnext_run / "config.yaml").read_text())
    assert cfg["model"]["weights"]  # the file may be gone later: load_run does not read it
    copy = tmp_path / "run"
    shutil.copytree(convnext_run, copy)
    cfg["model"]["weights"] = str(tmp_path / "gone.pt")
    (copy / "config.yaml").write_text(yaml.safe_dump(cfg))
    run = load_run(copy)
    assert run.predict_proba(torch.zeros(2, 1, 8, 8, dtype=torch.uint8)).shape == (2, 10)
    # --resume too builds the architecture only, then loads last.pt
    assert main(["train", "--resume", str(copy)]) == 0
    assert json.loads((copy / "result.json").read_text())["epochs_run"] == 1


@pytest.mark.slow
@pytest.mark.parametrize("name", ["timm:test_convnext", "torchvision:squeezenet1_1"])
def test_onnx_export_parity(name, tmp_path, convnext_run):
    from trainlab.use.export import export_run

    run = convnext_run
    if name != "timm:test_convnext":
        (tmp_path / "c.yaml").write_text(yaml.safe_dump(library_config(name)))
        assert main(["train", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "run"), "--dry-run"]) == 0
        run = tmp_path / "run"
    record = export_run(run, "onnx", tmp_path / "model.onnx", samples=8)
    assert record["parity_ok"] and record["max_abs_diff"] <= 1e-4, record


def test_build_model_passes_the_full_name_to_the_family():
    cfg = build_config(library_config("timm:test_vit")).model
    model = build_model(cfg, (1, SMALL, SMALL), 3)
    assert type(model).__name__ == "VisionTransformer" and model.head.out_features == 3


@pytest.mark.slow
def test_predict_and_serve_a_library_model_run(convnext_run, tmp_path):
    """Raw 8x8 uint8 digits in, the model's preprocessing (33 px resize, 32 px crop, its normalization) inside."""
    from fastapi.testclient import TestClient
    from PIL import Image

    from trainlab.use.export import split_samples
    from trainlab.use.loaded import load_run
    from trainlab.use.predict import predict_command
    from trainlab.use.serve import create_app

    run = load_run(convnext_run)
    x, _, _ = split_samples(run, 3)
    expected = run.predict_proba(x)
    Image.fromarray(x[0, 0].numpy()).save(tmp_path / "d.png")
    (row,) = predict_command(convnext_run, [str(tmp_path / "d.png")], 3, False)
    assert row["prediction"] == str(int(expected[0].argmax()))
    client = TestClient(create_app(convnext_run), raise_server_exceptions=False)
    r = client.post("/predict", files={"file": ("d.png", (tmp_path / "d.png").read_bytes(), "image/png")})
    assert r.status_code == 200, r.text
    probs = torch.tensor(list(r.json()["predictions"][0]["probabilities"].values()))
    torch.testing.assert_close(probs, expected[0], atol=1e-5, rtol=0)


@pytest.mark.slow
def test_cv_and_tune_run_library_models(tmp_path, write_config, cli):
    cfg = library_config("timm:test_vit")
    cfg["tune"] = {"train.lr": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True}}
    path = write_config(cfg)
    code, out, err = cli("cv", path, "--folds", "2", "--dry-run", "--out", tmp_path / "cv")
    assert code == 0, err
    folds = json.loads((tmp_path / "cv" / "result.json").read_text())["folds"]
    assert len(folds) == 2 and all(0 <= f["metrics"]["val_accuracy"] <= 1 for f in folds)
    code, out, err = cli("tune", path, "--trials", "2", "--dry-run", "--out", tmp_path / "tune")
    assert code == 0, err
    assert json.loads((tmp_path / "tune" / "result.json").read_text())
