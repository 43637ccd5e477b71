"""Use a trained model: a run directory or an exported file -> a Predictor on raw inputs.

    pred = load_predictor("runs/demo")             # or runs/demo/model.onnx, runs/demo/model.torchscript.pt
    probs = pred(images_uint8)                     # (B, C, H, W) uint8 -> (B, classes) probabilities

`InferenceModule` is the run's eval preprocessing + network + softmax as one nn.Module: that is what
`trainlab export` writes, so an exported file takes raw inputs exactly as the dataset stores them.
"""
from __future__ import annotations

import json
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from torchvision.transforms.v2 import functional as TF

from trainlab.core.errors import UserError
from trainlab.data.images import decoding
from trainlab.data.tabular import encoding
from trainlab.data.text import tokenizing
from trainlab.use.loaded import load_run

INFO_KEY = "trainlab"  # ONNX metadata_props key / TorchScript extra file stem holding the run description
EXPORTABLE_STEPS = ("to_tensor", "to_dtype", "normalize", "resize", "center_crop", "grayscale")


# ----------------------------------------------------------------------------- preprocessing as modules

class ToFloat(nn.Module):
    """uint8 0..255 -> float 0..1; other dtypes -> float (as trainlab.data.transforms.ToFloat)."""
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.float() / 255.0 if x.dtype == torch.uint8 else x.float()


class Normalize(nn.Module):
    """(x - mean) / std per channel (B, C, H, W) or per feature (last dim); the fitted stats become buffers."""
    def __init__(self, mean: list[float], std: list[float], image: bool):
        super().__init__()
        shape = (-1, 1, 1) if image else (-1,)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(shape))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class Resize(nn.Module):
    """Bilinear antialiased resize to a fixed [h, w] (an int size is resolved when the module is built)."""
    def __init__(self, size: list[int]):
        super().__init__()
        self.size = [int(s) for s in size]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return TF.resize(x, self.size, antialias=True)


class Crop(nn.Module):
    """A fixed window: the offsets are Python ints so tracing (TorchScript) and torch.export keep them static."""
    def __init__(self, top: int, left: int, height: int, width: int):
        super().__init__()
        self.top, self.left, self.height, self.width = top, left, height, width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[..., self.top:self.top + self.height, self.left:self.left + self.width]


class Grayscale(nn.Module):
    def __init__(self, num_output_channels: int = 1):
        super().__init__()
        self.n = num_output_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return TF.rgb_to_grayscale(x, num_output_channels=self.n)


def _resize_to(size, hw: tuple[int, int]) -> list[int]:
    """[h, w] as given, or an int / [s] = the shorter side (resolved with torchvision itself)."""
    size = [size] if isinstance(size, int) else [int(s) for s in size]
    if len(size) == 2:
        return size
    return list(TF.resize(torch.zeros(1, 1, *hw), size, antialias=True).shape[-2:])


def _crop(size, hw: tuple[int, int]) -> Crop:
    size = [size] if isinstance(size, int) else [int(s) for s in size]
    h, w = size * 2 if len(size) == 1 else size
    if h > hw[0] or w > hw[1]:
        raise UserError(f"export: center_crop {[h, w]} is larger than the {list(hw)} image it crops")
    # torchvision's anchor: int(round((H - h) / 2))
    return Crop(int(round((hw[0] - h) / 2.0)), int(round((hw[1] - w) / 2.0)), h, w)


def _step(spec: dict, shape: tuple[int, ...], image: bool) -> nn.Module:
    name = spec["name"]
    if name in ("to_tensor", "to_dtype"):
        return ToFloat()
    if name == "normalize":
        return Normalize(spec["mean"], spec["std"], image)
    if name == "resize":
        return Resize(_resize_to(spec["size"], shape[-2:]))
    if name == "center_crop":
        return _crop(spec["size"], shape[-2:])
    if name == "grayscale":
        return Grayscale(spec.get("num_output_channels", 1))
    raise UserError(f"cannot export the eval transform {name!r}: exported models support "
                    f"{', '.join(EXPORTABLE_STEPS)}; remove it from data.transforms.eval")


class Preprocess(nn.Module):
    """The run's fitted eval pipeline (data.json `eval_transforms`) as modules: raw batch -> model input."""
    def __init__(self, specs: list[dict], raw_shape: list[int], image: bool):
        super().__init__()
        if image and not any(s["name"] in ("to_tensor", "to_dtype") for s in specs):
            specs = [{"name": "to_tensor"}, *specs]  # what Pipeline does for uint8 images
        steps, probe = [], torch.zeros(1, *raw_shape)
        for spec in specs:
            steps.append(_step(spec, tuple(probe.shape), image))
            probe = steps[-1](probe)  # static shapes for the next step's sizes
        self.steps = nn.Sequential(*steps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.steps(x)


class InferenceModule(nn.Module):
    """raw inputs (B, *raw_shape) -> probabilities (B, classes), or predictions (B, outputs) for regression."""
    def __init__(self, preprocess: nn.Module, model: nn.Module, classification: bool):
        super().__init__()
        self.preprocess, self.model, self.classification = preprocess, model, classification

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(self.preprocess(x))
        return out.softmax(-1) if self.classification else out


def inference_module(run) -> InferenceModule:
    """The run's eval preprocessing + best weights + softmax, in eval mode, without gradients."""
    d = run.data
    pre = Preprocess(d["eval_transforms"], d["raw_shape"], d["kind"] == "image")
    module = InferenceModule(pre, run.model, d["task"] == "classification").eval()
    module.requires_grad_(False)
    return module


def run_info(run) -> dict:
    """What a user of an exported file needs besides the weights: label map, input format, preprocessing."""
    d = run.data
    keys = ("task", "kind", "classes", "num_outputs", "raw_shape", "raw_dtype", "input_shape", "eval_transforms",
            "model_info")
    info = {k: d.get(k) for k in keys}
    info["meta"] = {k: v for k, v in (d.get("meta") or {}).items() if k != "intake"}  # the training files' report
    info.update(format_version=2, model=run.cfg.model.name, dataset=run.cfg.data.name, run_dir=str(run.dir),
                output="probabilities" if d["task"] == "classification" else "predictions",
                preprocess=preprocessing(d))
    return info


def preprocessing(data: dict) -> dict:
    """Everything between a raw input (an image file, a table row, a text) and the file's input, and what the
    file itself does before the network: nothing a consumer has to guess."""
    kind, shape = data["kind"], data["raw_shape"]
    steps = [s["name"] for s in data["eval_transforms"]]
    norm = next((s for s in data["eval_transforms"] if s["name"] == "normalize"), None)
    pre = {"input_name": "input", "input_shape": ["batch", *shape], "input_dtype": data["raw_dtype"],
           "in_model": (["x.float() / 255"] if kind == "image" and not {"to_tensor", "to_dtype"} & set(steps)
                        else []) + [_step_text(s) for s in data["eval_transforms"]],
           "normalize": {"mean": norm["mean"], "std": norm["std"], "in_model": True,
                         "note": "done inside the model file: do not apply it again"} if norm else None,
           "labels": data.get("classes"),
           "output": ("probabilities (B, classes), columns in the order of labels"
                      if data["task"] == "classification" else "predictions (B, outputs)")}
    if kind == "image":
        pre.update(decoding(shape[1:], shape[0]))
    elif kind == "tabular":
        pre.update(encoding(data["meta"]))
    elif kind == "text":
        pre.update(tokenizing(data["meta"]))
    return pre


def _step_text(spec: dict) -> str:
    if spec["name"] in ("to_tensor", "to_dtype"):
        return "x.float() / 255 if uint8"
    if spec["name"] == "normalize":
        return "(x - mean) / std per channel (images) or feature (tables), mean/std fitted on the training split"
    args = ", ".join(f"{k}={v}" for k, v in spec.items() if k != "name")
    return f"{spec['name']}({args})"


# ----------------------------------------------------------------------------- predictors

class Predictor:
    """Raw inputs -> probabilities (classification) or predictions (regression), whatever runs the model.

    Has the attributes trainlab.use.predict.predict_files uses (`data`, `task`, `classes`, `predict_outputs`).
    """

    def __init__(self, data: dict, fn: Callable[[torch.Tensor], torch.Tensor], source: str):
        self.data, self._fn, self.source = data, fn, source

    @property
    def task(self) -> str:
        return self.data["task"]

    @property
    def classes(self) -> list[str] | None:
        return self.data.get("classes")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self._fn(x)

    def predict_outputs(self, x: torch.Tensor) -> torch.Tensor:
        """Log-probabilities for classification: valid logits, so a later softmax gives back the probabilities."""
        out = self._fn(x)
        return out.clamp_min(1e-45).log() if self.task == "classification" else out


def predictor_from_run(run) -> Predictor:
    module = inference_module(run)

    def fn(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return module(x)

    return Predictor(run_info(run), fn, str(run.dir))


def _onnx_predictor(path: Path) -> Predictor:
    import onnxruntime as ort  # optional heavy dependency: imported on use

    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own Fail/InvalidProtobuf types
        raise UserError(f"cannot load ONNX model {path}: {str(e).splitlines()[0][:200]}") from None
    meta = session.get_modelmeta().custom_metadata_map.get(INFO_KEY)
    info = _parse_info(meta, path)
    name = session.get_inputs()[0].name
    dtype = getattr(torch, info["raw_dtype"])

    def fn(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(session.run(None, {name: x.to(dtype).contiguous().numpy()})[0])

    return Predictor(info, fn, str(path))


def _torchscript_predictor(path: Path) -> Predictor:
    extra = {f"{INFO_KEY}.json": ""}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.jit is deprecated in favour of torch.export
            module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except (RuntimeError, ValueError) as e:
        raise UserError(f"cannot load TorchScript model {path}: {str(e).splitlines()[0][:200]}") from None
    info = _parse_info(extra[f"{INFO_KEY}.json"] or None, path)
    module.eval()
    dtype = getattr(torch, info["raw_dtype"])

    def fn(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return module(x.to(dtype))

    return Predictor(info, fn, str(path))


def sidecar_path(path: Path) -> Path:
    """model.onnx -> model.onnx.json: the label map and input description beside the exported file."""
    return path.with_name(path.name + ".json")


def _parse_info(text: str | bytes | None, path: Path) -> dict:
    side = sidecar_path(path)
    if not text and side.is_file():
        text = side.read_text()
    if not text:
        raise UserError(f"{path} carries no trainlab metadata (and no {side.name} beside it); "
                        f"export it with `trainlab export RUN_DIR`")
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"corrupted trainlab metadata in {path}: {e}") from None


def _is_torchscript(path: Path) -> bool:
    """TorchScript archives carry their program (`<name>/code/...`); torch.save archives hold only data.pkl."""
    try:
        with zipfile.ZipFile(path) as z:
            return any("/code/" in n for n in z.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def load_predictor(path: str | Path, trust_code: bool = False) -> Predictor:
    """A run directory, an ONNX file or (with trust_code) a TorchScript file -> Predictor.

    TorchScript is a program: loading one runs its code, so a zip archive is refused unless the caller
    says the file is trusted. A run directory (weights only) and ONNX (a graph of operators) carry no code.
    """
    path = Path(path)
    if path.is_dir():
        return predictor_from_run(load_run(path))
    if not path.is_file():
        raise UserError(f"{path} not found: not a trainlab run directory nor an exported .onnx / .pt file")
    if zipfile.is_zipfile(path):
        if not _is_torchscript(path):
            raise UserError(f"{path} is a PyTorch checkpoint (torch.save), not an exported model; give its run "
                            f"directory, or export one with: trainlab export RUN_DIR")
        if not trust_code:
            raise UserError(f"{path} is a TorchScript file: loading it runs the code inside it; pass --trust-code "
                            f"only for a file you exported yourself, or use the run directory or an ONNX export")
        return _torchscript_predictor(path)
    return _onnx_predictor(path)
