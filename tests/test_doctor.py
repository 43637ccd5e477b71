"""Tests for `trainlab doctor`: collected facts, missing-library advice, JSON and text output."""
from __future__ import annotations

import argparse
import importlib.util
import json
from importlib import metadata

import pytest
import torch

from trainlab.cli import arguments, doctor
from trainlab.core.device import select_device


@pytest.fixture
def no_seaborn(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make seaborn look uninstalled, whatever this machine really has."""
    real_version, real_find_spec = metadata.version, importlib.util.find_spec

    def fake_version(name: str) -> str:
        if name == "seaborn":
            raise metadata.PackageNotFoundError(name)
        return real_version(name)

    def fake_find_spec(name: str, *args: object, **kwargs: object) -> object:
        return None if name == "seaborn" else real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(metadata, "version", fake_version)
    monkeypatch.setattr(importlib.util, "find_spec", fake_find_spec)


@pytest.fixture
def all_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doctor, "installed_version", lambda dist, import_name: "1.0")


def test_collect_has_keys_and_facts() -> None:
    info = doctor.collect()
    for key in ("python", "os", "torch", "cuda", "mps", "cpu", "training_device", "trainlab", "libraries",
                "missing", "install_command"):
        assert key in info
    assert info["torch"]["version"] == torch.__version__
    assert info["training_device"] == str(select_device("auto"))
    assert info["cuda"]["available"] == torch.cuda.is_available()
    assert info["cpu"]["torch_threads"] == torch.get_num_threads()
    names = {lib["name"] for lib in info["libraries"]}
    assert {"torchvision", "scikit-learn", "scikit-image", "seaborn", "jupyterlab"} <= names


def test_installed_library_has_version() -> None:
    torchvision = next(lib for lib in doctor.collect()["libraries"] if lib["name"] == "torchvision")
    assert torchvision["installed"] and torchvision["version"] == metadata.version("torchvision")
    assert torchvision["install_command"] is None


@pytest.mark.usefixtures("no_seaborn")
def test_missing_library_gets_pip_command() -> None:
    info = doctor.collect()
    seaborn = next(lib for lib in info["libraries"] if lib["name"] == "seaborn")
    assert not seaborn["installed"] and seaborn["version"] is None
    assert seaborn["install_command"] == "pip install seaborn"
    assert "seaborn" in info["missing"]
    assert info["install_command"] == "pip install " + " ".join(info["missing"])


def test_missing_uses_pypi_distribution_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doctor, "installed_version", lambda dist, imp: None if imp in ("sklearn", "skimage") else "1")
    info = doctor.collect()
    assert info["missing"] == ["scikit-learn", "scikit-image"]
    assert info["install_command"] == "pip install scikit-learn scikit-image"


def test_installed_version_falls_back_to_import_name(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_metadata(name: str) -> str:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", no_metadata)
    assert doctor.installed_version("not-a-real-dist", "json") == "unknown"
    assert doctor.installed_version("not-a-real-dist", "surely_not_a_module_xyz") is None


@pytest.mark.usefixtures("no_seaborn")
def test_run_json_matches_collect(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    arguments.doctor(parser)
    assert doctor.run(parser.parse_args(["--json"])) == 0
    printed, collected = json.loads(capsys.readouterr().out), doctor.collect()
    speeds = [info["cpu"].pop("matmul_gflops") for info in (printed, collected)]  # measured: differs per call
    assert printed == collected
    assert all(s["fp32"] > 0 and s["bf16"] > 0 for s in speeds)


@pytest.mark.usefixtures("no_seaborn")
def test_run_text_report(capsys: pytest.CaptureFixture[str]) -> None:
    assert doctor.run(argparse.Namespace(json=False)) == 0
    out = capsys.readouterr().out
    assert torch.__version__ in out
    assert "MISSING" in out
    assert out.rstrip().endswith(doctor.collect()["install_command"])
    out.encode("ascii")  # labels and marks are ASCII, so a legacy Windows console can print them


@pytest.mark.usefixtures("all_installed")
def test_report_when_everything_installed() -> None:
    report = doctor.format_report(doctor.collect())
    assert report.rstrip().endswith("All course libraries are installed.")
    assert "MISSING" not in report


def test_report_lists_cuda_devices() -> None:
    info = doctor.collect()
    info["cuda"].update(available=True, device_count=1,
                        devices=[{"index": 0, "name": "Fake GPU", "memory_gib": 79.1, "capability": "9.0"}])
    assert "cuda:0" in doctor.format_report(info) and "Fake GPU, 79.1 GiB" in doctor.format_report(info)
