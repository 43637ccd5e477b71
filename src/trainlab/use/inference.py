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

from trainlab.core.errors import UserError
from trainlab.data.images import decoding
from trainlab.data.tabular import encoding
from trainlab.data.text import tokenizing
from trainlab.data.transforms import Pipeline
from trainlab.use.loaded import load_run

INFO_KEY = "trainlab"  # ONNX metadata_props key / TorchScript extra file stem holding the run description
EXPORTABLE_STEPS = ("to_tensor", "to_dtype", "normalize", "resize", "center_crop", "grayscale")


# ----------------------------------------------------------------------------- preprocessing as a module

class Preprocess(nn.Module):
    """The run's fitted eval pipeline (data.json `eval_transforms`) as one module: raw batch -> model input.
    It runs the very steps training used (data/transforms.Pipeline rebuilt with the fitted statistics), so
    training, predict, serve and the exported file share one implementation of every transform."""
    def __init__(self, specs: list[dict], raw_shape: list[int], image: bool):
        super().__init__()
        for spec in specs:
            if spec["name"] not in EXPORTABLE_STEPS:
                raise UserError(f"cannot export the eval transform {spec['name']!r}: exported models support "
                                f"{', '.join(EXPORTABLE_STEPS)}; remove it from data.transforms.eval")
        self.pipeline = Pipeline(specs, image)  # uint8 images get the same leading to_tensor step as in training
        # one sample through the steps: the sizes are fixed by raw_shape (static for tracing and export)
        x = torch.zeros(1, *raw_shape, dtype=torch.uint8 if image else torch.float32)
        for spec, step in zip(self.pipeline.specs, self.pipeline.steps, strict=True):
            if spec["name"] == "center_crop":
                hw = spec["size"] if isinstance(spec["size"], list) else [spec["size"]]
                hw = hw * 2 if len(hw) == 1 else hw  # an int or [s]: a square
                if hw[0] > x.shape[-2] or hw[1] > x.shape[-1]:
                    raise UserError(f"export: center_crop {hw} is larger than the {list(x.shape[-2:])} image it "
                                    f"crops")
            x = step(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pipeline(x)


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


def run_info(run, exported: bool = False) -> dict:
    """What a user of the run's model needs besides the weights: label map, input format, preprocessing.
    `exported`: for a file that goes to others, without the real training row serve's form starts from."""
    d = run.data
    keys = ("task", "kind", "classes", "num_outputs", "raw_shape", "raw_dtype", "input_shape", "eval_transforms",
            "model_info")
    info = {k: d.get(k) for k in keys}
    left_out = ("intake", "example") if exported else ("intake",)  # not the training files' report
    info["meta"] = {k: v for k, v in (d.get("meta") or {}).items() if k not in left_out}
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
