"""`trainlab export RUN_DIR --format onnx|torchscript [--out FILE]`: a model file that takes raw inputs.

    trainlab export runs/demo                          # -> runs/demo/model.onnx (+ model.onnx.json)
    trainlab export runs/demo --format torchscript     # -> runs/demo/model.torchscript.pt
    trainlab predict runs/demo/model.onnx digit.png    # exported files predict like run directories

The file holds the eval preprocessing (uint8 -> float, resize, crop, normalize), the network and a softmax,
with a dynamic batch dimension; the label map, the input description and the whole preprocessing (`preprocess`:
how a file becomes the input - EXIF, mode, size, PIL's bilinear resize - and what the model does inside) are in
its metadata (ONNX metadata_props / TorchScript extra file `trainlab.json`) and in a JSON file beside it.
After writing, a parity check runs the file (onnxruntime / torch.jit) and the run's PyTorch model on real test-split
inputs; the max abs difference is printed and stored in RUN_DIR/result.json under `export.<format>`.
The run's model card (`trainlab card`: MODEL_CARD.md) is written beside the exported file, and so is a script
that predicts with the file without trainlab (use/consumers.py: MODEL_predict.py, for image, table and text runs).
"""
from __future__ import annotations

import io
import json
import time
import warnings
from pathlib import Path

import torch

from trainlab.core.checkpoint import tensor_bytes
from trainlab.core.errors import UserError
from trainlab.core.files import atomic_path, make_dir, read_json, write_bytes, write_json, write_text
from trainlab.data.base import ArrayDataset
from trainlab.data.prepare import load_data
from trainlab.data.splits import Splits
from trainlab.run.directory import record_files
from trainlab.use.card import build_card
from trainlab.use.consumers import consumer_script
from trainlab.use.inference import INFO_KEY, inference_module, load_predictor, run_info, sidecar_path
from trainlab.use.loaded import load_run

FORMATS = {"onnx": "model.onnx", "torchscript": "model.torchscript.pt"}
CONSUMER_INPUTS = {"image": "IMAGE...", "tabular": "ROWS.csv...", "text": "'a text' TEXTS.txt..."}
EXPORT_SUFFIXES = (".onnx", ".pt", ".torchscript")
PARITY_TOL = 1e-4  # max abs difference allowed on probabilities (relative to max |y| for regression)


def format_export(record: dict) -> str:
    """What `trainlab export` prints about the file it wrote: size, input, and the parity check's verdict."""
    size = Path(record["path"]).stat().st_size / 2**20
    meta = Path(record["metadata"]).name
    verdict = "ok" if record["parity_ok"] else "FAILED"
    script = record.get("consumer")
    use = (f"without trainlab: python {script} {record['path']} {CONSUMER_INPUTS[record['kind']]} "
           f"(numpy, {'onnxruntime' if record['format'] == 'onnx' else 'torch'}"
           f"{', PIL' if record['kind'] == 'image' else ''})" if script else
           f"before the model: {meta} 'preprocess' (docs/use.md)")
    return (f"wrote {record['path']} ({record['format']}, {size:.2f} MB) and {meta}\n"
            f"model card: {record['card']}\n"
            f"input: {record['input']}; {use}\n"
            f"parity on {record['parity_samples']} {record['parity_split']}-split inputs: max abs diff "
            f"{record['max_abs_diff']:.3g} on {record['compared']} (limit {record['tolerance']:.0e}) {verdict}")


# ----------------------------------------------------------------------------- export

def export_run(run_dir: str | Path, fmt: str = "onnx", out: str | Path | None = None, samples: int = 256) -> dict:
    """Write the run's model as `fmt`, check parity on test-split inputs, record it in result.json."""
    if samples < 2:
        raise UserError(f"--samples must be >= 2, got {samples}")
    if fmt not in FORMATS:
        raise UserError(f"unknown export format {fmt!r}; expected one of {', '.join(FORMATS)}")
    run = load_run(run_dir)
    out = Path(out) if out is not None else run.dir / FORMATS[fmt]
    check_out(out, run.dir / FORMATS[fmt])
    if out.parent.resolve() == run.dir.resolve():  # an export beside the run's files: --overwrite may remove it
        record_files(run.dir, [out.name, sidecar_path(out).name, consumer_path(out).name])
    make_dir(out.parent)
    x, split = parity_inputs(run, samples)
    info = run_info(run, exported=True)
    start = time.perf_counter()
    WRITERS[fmt](inference_module(run), x[:2], info, out)
    write_text(sidecar_path(out), json.dumps(info, indent=2) + "\n")
    seconds = time.perf_counter() - start
    try:
        diff, tol = parity(run, out, x)
    except UserError:
        for f in (out, sidecar_path(out)):  # leave no file behind that looks usable but is not
            f.unlink(missing_ok=True)
        raise
    record = {"format": fmt, "path": str(out), "metadata": str(sidecar_path(out)), "max_abs_diff": diff,
              "tolerance": tol, "parity_ok": diff <= tol, "parity_samples": len(x), "parity_split": split,
              "compared": info["output"], "seconds": round(seconds, 3), "torch": torch.__version__,
              "input": f"{info['raw_dtype']} (B, {', '.join(map(str, info['raw_shape']))})"}
    record["card"] = str(card_beside(run.dir, out.parent))
    script = consumer_script(info, consumer_path(out).name)
    if script is not None:
        write_text(consumer_path(out), script)
        record["consumer"] = str(consumer_path(out))
    record["kind"] = info["kind"]
    _record(run.dir, fmt, record)
    return record


def consumer_path(out: Path) -> Path:
    """model.onnx -> model_predict.py: the script that predicts with the exported file without trainlab."""
    return out.with_name(out.name.split(".")[0] + "_predict.py")


def card_beside(run_dir: Path, folder: Path) -> Path:
    """MODEL_CARD.md next to the exported file (`trainlab card`): what the model is, from the run's facts."""
    return Path(build_card(run_dir, folder)["card"])


def check_out(out: Path, example: Path) -> None:
    """An export writes a new file or replaces an earlier export: never a run's own file (config.yaml, best.pt)."""
    if not out.exists():
        return
    own = (out.parent / "config.yaml").is_file() and out.name in ("best.pt", "last.pt")
    if out.is_dir() or own or out.suffix not in EXPORT_SUFFIXES:
        raise UserError(f"--out {out} exists and is not an earlier export; give a new file name, e.g. {example}")


def write_onnx(module: torch.nn.Module, example: torch.Tensor, info: dict, path: Path) -> None:
    """torch.export-based ONNX (torch's default exporter, needs onnxscript), batch dimension dynamic."""
    batch = torch.export.Dim("batch", min=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            program = torch.onnx.export(module, (example,), None, input_names=["input"],
                                        output_names=[info["output"]], dynamic_shapes=({0: batch},),
                                        dynamo=True, verbose=False)
        except ImportError as e:
            raise UserError(f"ONNX export needs {e.name or 'onnxscript'}: pip install onnxscript") from None
        except Exception as e:  # torch.export raises many types for models it cannot trace
            raise UserError(f"ONNX export of {info['model']!r} failed: {str(e).splitlines()[0][:200]}") from None
    program.model.metadata_props[INFO_KEY] = json.dumps(info)
    with atomic_path(path, needed=tensor_bytes(dict(module.state_dict()))) as tmp:  # a full disk leaves no half file
        program.save(str(tmp))


def write_torchscript(module: torch.nn.Module, example: torch.Tensor, info: dict, path: Path) -> None:
    """Traced TorchScript; the label map travels as the extra file trainlab.json."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit is deprecated upstream; tracer warnings are checked by parity
        try:
            traced = torch.jit.trace(module, (example,), check_trace=False)
        except Exception as e:
            raise UserError(f"TorchScript export of {info['model']!r} failed: {str(e).splitlines()[0][:200]}") \
                from None
        archive = io.BytesIO()  # in memory first: torch's writer aborts the process when a disk write fails
        torch.jit.save(traced, archive, _extra_files={f"{INFO_KEY}.json": json.dumps(info)})
    write_bytes(path, archive.getvalue())


WRITERS = {"onnx": write_onnx, "torchscript": write_torchscript}


# ----------------------------------------------------------------------------- parity

def parity_inputs(run, samples: int) -> tuple[torch.Tensor, str]:
    """Up to `samples` raw inputs (as the dataset stores them) from the run's saved test split."""
    x, _, split = split_samples(run, samples)
    if len(x) < 2:
        raise UserError(f"the {split} split of {run.dir} has {len(x)} sample(s); the parity check needs 2")
    return x, split


def split_samples(run, samples: int) -> tuple[torch.Tensor, torch.Tensor, str]:
    """(raw inputs, targets, split name): the first `samples` of the saved test split (val if it is empty)."""
    data = load_data(run.cfg)
    data.splits = Splits.from_json(read_json(run.dir / "splits.json"))
    n_pool = len(data.bundle.pool)
    for idx in (data.splits.train, data.splits.val, data.splits.test):
        if idx is not None and len(idx) and int(idx.max()) >= n_pool:
            raise UserError(f"the data behind {run.dir} changed since training: splits.json indexes past "
                            f"its {n_pool} samples")
    view = data.view(data.splits.train, data.splits.val)
    split = "test" if len(view.dataset("test")) else "val"  # test_fraction 0 and no official test split
    ds = view.dataset(split)
    n = min(samples, len(ds))
    if isinstance(ds, ArrayDataset):
        return ds.x[:n], ds.y[:n], split
    items = [ds[i] for i in range(n)]
    return torch.stack([a for a, _ in items]), torch.stack([torch.as_tensor(b) for _, b in items]), split


def parity(run, path: Path, x: torch.Tensor) -> tuple[float, float]:
    """(max abs difference, tolerance) between the exported file and the run's own pipeline + model.

    Runs the file on the whole batch and on a batch of one: both differ from the traced batch of two,
    so a batch size frozen into the file fails here rather than in a user's hands.
    """
    predictor = load_predictor(path, trust_code=True)  # the file this process has just written
    try:
        exported = [predictor(x), predictor(x[:1])]
    except Exception as e:  # onnxruntime / TorchScript raise their own types
        raise UserError(f"the exported model fails on a batch of {len(x)} inputs ({str(e).splitlines()[0][:160]}); "
                        f"does the model's forward use len(x) or a Python int from a shape? use x.shape[0]") \
            from None
    expected = run.predict_outputs(x)
    if run.task == "classification":
        expected, tol = expected.softmax(-1), PARITY_TOL
    else:
        tol = PARITY_TOL * max(1.0, float(expected.abs().max()))
    if exported[0].shape != expected.shape:
        raise UserError(f"exported model returned shape {tuple(exported[0].shape)}, expected {tuple(expected.shape)}")
    refs = (expected, expected[:1])
    diffs = [(out.float() - ref.float()).abs().max() for out, ref in zip(exported, refs, strict=True)]
    return float(max(diffs)), tol


def _record(run_dir: Path, fmt: str, record: dict) -> None:
    """Read-modify-write result.json: keep what training wrote, set export.<format>."""
    path = run_dir / "result.json"
    result = json.loads(path.read_text()) if path.is_file() else {}
    result.setdefault("export", {})[fmt] = record
    write_json(path, result)


# ----------------------------------------------------------------------------- predict on exported files
