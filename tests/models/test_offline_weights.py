"""model.pretrained offline: weights already cached load without a request; not cached and no connection is one
UserError line within seconds (not huggingface_hub's minute of retries) that says how to pass a local file."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import huggingface_hub.constants
import pytest
import torch
import yaml
from safetensors.torch import save_file

from conftest import tiny_config
from trainlab.core.errors import UserError
from trainlab.models import library
from trainlab.models.catalog import LibraryModelConfig
from trainlab.models.library import build_library_model, timm_cached_file, torch_hub_file, unreachable

SRC = Path(library.__file__).resolve().parents[2]
SHAPE = (3, 32, 32)


@pytest.fixture
def empty_caches(tmp_path, monkeypatch):
    """Empty hub and torch caches; every connection refused, as on a machine without network."""
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    tries = []

    def refuse(address, *a, **k):
        tries.append(address)
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(socket, "create_connection", refuse)
    return tries


def build(name: str, **options):
    torch.manual_seed(0)
    return build_library_model(name, LibraryModelConfig(**options), SHAPE, 4)


@pytest.mark.parametrize("name, host", [("timm:test_convnext", "huggingface.co"),
                                        ("torchvision:squeezenet1_1", "download.pytorch.org")])
def test_not_cached_and_offline_is_one_line_at_once(empty_caches, name, host):
    t0 = time.perf_counter()
    with pytest.raises(UserError) as e:
        build(name, pretrained=True)
    msg = str(e.value)
    assert time.perf_counter() - t0 < 5
    assert empty_caches == [(host, 443)]  # one try, no retries
    assert "\n" not in msg and "not in the local cache" in msg and "offline" in msg
    assert "model.weights=PATH model.pretrained=false" in msg and "Connection refused" in msg
    if name.startswith("torchvision"):  # where torchvision would find the file by itself
        assert str(torch_hub_file("https://x/models/squeezenet1_1-b8a52dc0.pth")) in msg


def test_hub_offline_setting_is_honoured_without_a_connection(monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: pytest.fail("connected"))
    assert unreachable(f"{huggingface_hub.constants.ENDPOINT}/timm/x/resolve/main/model.safetensors") \
        == "HF_HUB_OFFLINE is set"


def test_a_stuck_name_lookup_is_cut_off(monkeypatch):
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: time.sleep(1) or socket.socket())
    t0 = time.perf_counter()
    assert unreachable("https://example.org/w.pth", seconds=0.2) == "no answer within 0.2 s"
    assert time.perf_counter() - t0 < 2


def test_cached_hub_weights_load_without_any_request(empty_caches, tmp_path):
    """Healthy: the file is in the hub cache (as a first online run leaves it): loaded, nothing printed, no
    connection tried; the head is sized for the data (4 classes, not the file's 1000)."""
    source = build("timm:test_convnext")  # random weights standing in for the published ones
    state = {k: v.clone() for k, v in build_library_model("timm:test_convnext", LibraryModelConfig(), SHAPE,
                                                          1000).state_dict().items()}
    snapshot = tmp_path / "hf" / "models--timm--test_convnext.r160_in1k" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    save_file(state, snapshot / "model.safetensors")
    (tmp_path / "hf" / "models--timm--test_convnext.r160_in1k" / "refs").mkdir()
    (tmp_path / "hf" / "models--timm--test_convnext.r160_in1k" / "refs" / "main").write_text("abc123")
    cfg = library.get_pretrained_cfg("test_convnext")
    assert timm_cached_file(cfg) == str(snapshot / "model.safetensors")
    model = build("timm:test_convnext", pretrained=True)
    assert empty_caches == []
    stem = next(k for k in state if k.endswith("weight") and state[k].ndim == 4)
    assert torch.equal(model.state_dict()[stem], state[stem]) and not torch.equal(source.state_dict()[stem],
                                                                                  state[stem])
    assert model(torch.zeros(2, *SHAPE)).shape == (2, 4)


def test_cached_torchvision_weights_load_without_any_request(empty_caches, tmp_path):
    from torchvision import models as tvm

    weights = tvm.get_model_weights("squeezenet1_1").DEFAULT
    state = tvm.get_model("squeezenet1_1", weights=None).state_dict()  # 1000 classes, as the published file
    path = torch_hub_file(weights.url)
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    with pytest.MonkeyPatch.context() as m:  # the published file's hash (in its name) would not match this stand-in
        m.setattr(type(weights), "get_state_dict",
                  lambda self, **k: torch.hub.load_state_dict_from_url(self.url, check_hash=False, weights_only=True))
        model = build("torchvision:squeezenet1_1", pretrained=True)
    assert empty_caches == []
    assert torch.equal(model.state_dict()["features.0.weight"], state["features.0.weight"])


def test_cli_offline_is_exit_2_one_line_in_seconds(tmp_path):
    """The whole command, in a fresh process whose hub endpoint is a closed local port (no network needed)."""
    cfg = tiny_config(model={"name": "timm:test_convnext", "pretrained": True}, train={"epochs": 1})
    cfg["model"].pop("hidden")
    steps = [{"name": "resize", "size": [32, 32]}, {"name": "normalize"}]
    cfg["data"]["transforms"] = {"train": steps, "eval": steps}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "HF_ENDPOINT": "http://127.0.0.1:9", "HF_HOME": str(tmp_path / "hf"),
           "TORCH_HOME": str(tmp_path / "torch"), "PYTHONPATH": str(SRC)}
    env.pop("HF_HUB_OFFLINE", None)
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "trainlab", "train", "c.yaml", "--out", "run"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)
    seconds = time.perf_counter() - t0
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1 and lines[0].startswith("error: model.pretrained:"), done.stderr
    assert "127.0.0.1:9 cannot be reached" in lines[0] and "model.weights=PATH" in lines[0]
    assert "Retry" not in done.stdout + done.stderr
    assert seconds < 30  # the process start (torch, timm) included; the failing probe itself is milliseconds
