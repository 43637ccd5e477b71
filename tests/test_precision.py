"""train.precision / channels_last as one object (engine/precision.py): auto decided by the machine and by
measurement, cached per machine and model, kept on resume, recorded in the manifest; explicit values obeyed
with a warning when they measure much slower."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from torch import nn

from trainlab import Trainer
from trainlab.core.errors import DamagedRun
from trainlab.core.machine import Choices, cpu_line, native_bf16, physical_cores
from trainlab.engine import precision as P

CPU = torch.device("cpu")


def fixed(times: dict):
    """A probe that 'measures' the given seconds per step and records what it was asked."""
    asked = []

    def probe(variants):
        asked.extend(variants)
        return {v: times[v] for v in variants}
    return probe, asked


def measurements(tmp_path, times, macs=10**9, key="k"):
    probe, asked = fixed(times)
    return P.Measurements(probe, key, Choices(tmp_path / "choices.json"), macs=macs), asked


@pytest.fixture
def native(monkeypatch):
    monkeypatch.setattr(P, "native_bf16", lambda: True)


def test_auto_takes_bf16_only_where_it_measures_clearly_faster(tmp_path, native):
    fast, _ = measurements(tmp_path, {("fp32", False): 0.030, ("bf16", False): 0.010}, key="a")
    choice = P.resolve("auto", False, CPU, False, fast)
    assert choice.precision.name == "bf16" and "3.0x faster" in choice.precision.reason
    close, _ = measurements(tmp_path, {("fp32", False): 0.011, ("bf16", False): 0.010}, key="b")
    choice = P.resolve("auto", False, CPU, False, close)
    assert choice.precision.name == "fp32" and "only 1.10x faster" in choice.precision.reason


def test_auto_is_fp32_without_native_bf16_and_measures_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(P, "native_bf16", lambda: False)
    m, asked = measurements(tmp_path, {})
    choice = P.resolve("auto", False, CPU, False, m)
    assert choice.precision.name == "fp32" and "no native bfloat16" in choice.precision.reason and asked == []


def test_a_small_model_is_fp32_without_measuring(tmp_path, native):
    m, asked = measurements(tmp_path, {}, macs=300_000)
    choice = P.resolve("auto", "auto", CPU, True, m)
    assert choice.precision.name == "fp32" and "0.3M multiply-adds" in choice.precision.reason
    assert not choice.channels_last and asked == []


def test_measurements_are_cached_per_machine_and_model(tmp_path, native):
    times = {("fp32", False): 0.03, ("bf16", False): 0.01}
    first, asked = measurements(tmp_path, times, key="model-x")
    P.resolve("auto", False, CPU, False, first)
    again, asked_again = measurements(tmp_path, times, key="model-x")
    assert P.resolve("auto", False, CPU, False, again).precision.name == "bf16"
    assert len(asked) == 2 and asked_again == []  # the second run reads the first one's figures
    other, asked_other = measurements(tmp_path, times, key="model-y")
    P.resolve("auto", False, CPU, False, other)
    assert len(asked_other) == 2


def test_an_explicit_precision_is_obeyed_with_a_warning_when_much_slower(tmp_path, monkeypatch):
    monkeypatch.setattr(P, "native_bf16", lambda: False)
    m, _ = measurements(tmp_path, {("fp32", False): 0.01, ("bf16", False): 0.045})
    choice = P.resolve("bf16", False, CPU, False, m)
    assert choice.precision.name == "bf16" and choice.precision.reason == "set in the config"
    assert choice.warnings == ("train.precision=bf16 measured 4.5x slower than fp32 for this model on this CPU "
                               "(this CPU has no native bfloat16); train.precision=auto picks the faster one",)
    ok, _ = measurements(tmp_path, {("fp32", False): 0.01, ("bf16", False): 0.012}, key="ok")
    assert P.resolve("bf16", False, CPU, False, ok).warnings == ()


def test_channels_last_auto_follows_the_measurement(tmp_path, monkeypatch):
    monkeypatch.setattr(P, "native_bf16", lambda: False)
    m, _ = measurements(tmp_path, {("fp32", False): 0.02, ("fp32", True): 0.01})
    choice = P.resolve("auto", "auto", CPU, True, m)
    assert choice.channels_last and "2.0x faster" in choice.layout_reason
    assert not P.resolve("auto", "auto", CPU, False, m).channels_last  # no Conv2d: never


def test_cuda_and_mps_are_decided_by_capability(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    choice = P.resolve("auto", "auto", torch.device("cuda"), True)
    assert (choice.precision.name, choice.channels_last) == ("bf16", True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    try:
        choice = P.resolve("auto", "auto", torch.device("cuda"), True)
        assert choice.precision.name == "fp32" and torch.backends.cuda.matmul.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
    assert P.resolve("auto", "auto", torch.device("mps"), True).precision.name == "fp32"


def test_the_precision_object_gives_autocast_scaler_and_input_dtype():
    fp16 = P.Precision("fp16", "cpu")
    assert fp16.grad_scaler().is_enabled() and not P.Precision("bf16", "cpu").grad_scaler().is_enabled()
    with P.Precision("bf16", "cpu").autocast():
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    with P.Precision("fp32", "cpu").autocast():
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
    assert fp16.input_dtype == torch.float32


def conv_data(n=64):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(n, 1, 12, 12, generator=g), torch.randint(0, 3, (n,), generator=g)
    return torch.utils.data.TensorDataset(x, y)


def conv_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 10 * 10, 3), nn.Dropout(0.5))


def test_measuring_leaves_the_training_bit_identical(monkeypatch):
    # a measured run (timing steps on a copy) and an fp32 run without measuring train the same weights
    monkeypatch.setattr(P, "SMALL", 0)  # force the measurement on this small net
    monkeypatch.setattr(P, "native_bf16", lambda: True)
    monkeypatch.setattr(P, "FASTER", 1e9)  # ...but keep fp32 and the default layout
    measured = Trainer(conv_net(), progress=False, verbose=False, baselines=False)
    measured.fit(conv_data(), epochs=1, batch_size=16)
    assert measured.choice.measured and measured.choice.precision.name == "fp32"
    plain = Trainer(conv_net(), precision="fp32", channels_last=False, progress=False, verbose=False,
                    baselines=False)
    plain.fit(conv_data(), epochs=1, batch_size=16)
    for a, b in zip(measured.model.parameters(), plain.model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_resume_keeps_the_recorded_choice(tmp_path):
    first = Trainer(conv_net(), precision="bf16", run_dir=tmp_path, progress=False, verbose=False, baselines=False)
    first.fit(conv_data(), epochs=1, batch_size=16)
    assert torch.load(tmp_path / "last.pt", weights_only=True)["choice"]["precision"] == "bf16"
    resumed = Trainer(conv_net(), precision="auto", run_dir=tmp_path, progress=False, verbose=False, baselines=False)
    resumed.fit(conv_data(), epochs=2, batch_size=16, resume=tmp_path / "last.pt")
    assert resumed.choice.precision.name == "bf16" and "recorded in the checkpoint" in resumed.choice.precision.reason


def test_a_bad_recorded_choice_is_a_damaged_run():
    with pytest.raises(DamagedRun, match="recorded precision"):
        P.recorded({"precision": "fp8", "channels_last": False}, CPU)


def test_the_cli_prints_the_choice_and_records_it_in_the_manifest(tmp_path, cli, write_config):
    code, out, _ = cli("train", write_config(), "train.epochs=1", "--out", tmp_path / "r")
    assert code == 0
    m = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert m["precision"] == "fp32" and m["channels_last"] is False and m["num_threads"] >= 1
    assert f"precision fp32: {m['precision_reason']}" in out


def test_under_onednn_avx2_cap_auto_is_fp32():
    # the cap of a CPU without native bf16: torch's capability flag alone would still say AVX512 here
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2"}
    code = ("import torch; from torch import nn; from trainlab import Trainer; "
            "from trainlab.core.machine import native_bf16; "
            "ds = torch.utils.data.TensorDataset(torch.randn(512, 256), torch.randint(0, 3, (512,))); "
            "t = Trainer(nn.Sequential(nn.Linear(256, 1024), nn.ReLU(), nn.Linear(1024, 3)), progress=False, "
            "verbose=False); p = t.prepare(ds, 512).precision; print(native_bf16(), p.name, p.reason)")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ("False fp32 this CPU has no native bfloat16 (oneDNN); bf16 would be emulated, "
                                  "several times slower")


def test_machine_facts_name_the_cpu():
    line = cpu_line()
    assert "native bf16: " + ("yes" if native_bf16() else "no") in line and f"torch {torch.__version__}" in line
    assert 1 <= physical_cores() <= (os.cpu_count() or 1)
