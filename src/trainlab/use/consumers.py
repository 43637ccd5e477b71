"""The script `trainlab export` writes beside an exported model: how a program without trainlab feeds it, per kind.

    script = consumer_script(run_info(run))     # Python source, or None for a kind without one (sequences)
    python model_predict.py model.onnx new.csv             # tables: one line per CSV row
    python model_predict.py model.onnx "a late goal"       # texts: strings, or a .txt file of one text per line
    python model_predict.py model.onnx photo.jpg           # images

Each script reads the model's own metadata (ONNX metadata_props / the TorchScript extra file, the same JSON as
the sidecar) and repeats trainlab's encoding exactly: a table's columns, one-hot categories and missing-value
rule (data/tabular.encode_rows), a text's tokenizer and vocabulary (data/text.encode), an image's decoding
(data/images.load_image). It needs numpy and onnxruntime (torch for a TorchScript file; PIL for images), and
prints what `trainlab predict` prints for the same input: `NAME: CLASS PROBABILITY`, or `NAME: VALUE ...` for
regression. tests/test_tables28.py runs the table and text scripts against `trainlab predict`.
"""
from __future__ import annotations

from trainlab.data.text import WORD

LOAD = '''import json
import sys

import numpy as np


def load(path):
    """-> (run: raw batch -> outputs, info): an ONNX file through onnxruntime, a TorchScript file through torch."""
    if path.endswith(".onnx"):
        import onnxruntime as ort

        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        info = json.loads(session.get_modelmeta().custom_metadata_map["trainlab"])
        return (lambda x: session.run(None, {info["preprocess"]["input_name"]: x})[0]), info
    import torch

    extra = {"trainlab.json": ""}
    module = torch.jit.load(path, map_location="cpu", _extra_files=extra)
    return (lambda x: module(torch.from_numpy(x)).detach().numpy()), json.loads(extra["trainlab.json"])


def show(name, out, info):
    """One line per input, as `trainlab predict` prints it."""
    if info["task"] == "classification":
        best = int(out.argmax())
        print(f"{name}: {info['classes'][best]} {float(out[best]):.6f}")
    else:
        print(f"{name}: " + " ".join(f"{float(v):.6g}" for v in np.ravel(out)))


run, info = load(sys.argv[1])
'''

TABLE = '''# {name} MODEL FILE.csv...: an exported trainlab table model, without trainlab
import csv

EMPTY = {{"", "NA", "N/A", "NaN", "nan", "null", "NULL", "None", "n/a", "#N/A", "<NA>", "-nan", "-NaN"}}  # as pandas
meta = info["meta"]
fill = (meta.get("imputation") or {{}}).get("values", {{}})  # data.missing=impute: the training split's values


def encode(row):
    """A CSV row (dict of strings) -> float32 (F,) as trainlab encodes it: numbers as they are, a category as one
    0/1 column per known category (an unseen one: all zeros); an empty cell -> the run's missing-value rule."""
    values = []
    for col in meta["raw_features"]:
        cell = (row.get(col) or "").strip()
        if cell in EMPTY:
            if meta.get("missing") != "impute":
                rule = meta.get("missing")
                raise ValueError(f"missing value in column {{col!r}}: not predicted (data.missing={{rule}})")
            cell = str(fill[col])
        if col in meta["categories"]:
            values += [float(cell == c) for c in meta["categories"][col]]
        else:
            values.append(float(cell))
    return np.asarray(values, dtype=np.float32)


for path in sys.argv[2:]:
    with open(path, newline="", encoding="utf-8") as f:
        for number, row in enumerate(csv.DictReader(f), start=2):  # the header is row 1
            name = f"{{path}}:{{number}}"
            try:
                x = encode(row)
            except ValueError as e:
                print(f"{{name}}: error: {{e}}")
                continue
            show(name, run(x[None])[0], info)
'''

TEXT = '''# {name} MODEL TEXT_OR_FILE.txt...: an exported trainlab text model, without trainlab
import re

meta = info["meta"]
WORD = re.compile({pattern!r})  # words, and each punctuation mark on its own
index = {{token: i for i, token in enumerate(meta["vocab"])}}


def encode(text):
    """A text -> int64 (max_len,) token ids as trainlab encodes it: lowercased (if the run did), split, unknown
    tokens -> 1 (<unk>), cut to max_len, right-padded with 0 (<pad>)."""
    text = text.lower() if meta["lowercase"] else text
    tokens = (list(text) if meta["tokenizer"] == "char" else WORD.findall(text))[:meta["max_len"]]
    ids = np.zeros(meta["max_len"], dtype=np.int64)
    ids[:len(tokens)] = [index.get(t, 1) for t in tokens]
    return ids


def texts(args):
    """(name, text) for each argument: a .txt file gives one text per line (FILE:LINE), anything else is a text."""
    for arg in args:
        if arg.endswith(".txt"):
            with open(arg, encoding="utf-8") as f:
                yield from ((f"{{arg}}:{{i}}", line.rstrip("\\n")) for i, line in enumerate(f, start=1))
        else:
            yield arg, arg


for name, text in texts(sys.argv[2:]):
    show(name, run(encode(text)[None])[0], info)
'''

IMAGE = '''# {name} MODEL IMAGE...: an exported trainlab image model, without trainlab (needs PIL too)
from PIL import Image, ImageOps

pre = info["preprocess"]
height, width = pre["size"]


def encode(path):
    """The file as trainlab decodes it: upright, converted, resized (PIL bilinear) -> uint8 (C, H, W); the
    scaling to 0..1 and the normalization happen inside the model file."""
    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im).convert(pre["mode"])
    if im.size != (width, height):
        im = im.resize((width, height), Image.Resampling.BILINEAR)
    a = np.asarray(im, dtype=np.uint8)
    return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)


for path in sys.argv[2:]:
    show(path, run(encode(path)[None])[0], info)
'''

BODIES = {"tabular": TABLE, "text": TEXT, "image": IMAGE}


def consumer_script(info: dict, name: str = "model_predict.py") -> str | None:
    """Python source of a script that predicts with the exported model like `trainlab predict` (None: no script
    for this kind of run yet; its metadata still says what to feed the file)."""
    body = BODIES.get(info["kind"])
    if body is None or (info["kind"] == "tabular" and not (info.get("meta") or {}).get("raw_features")):
        return None
    head, rest = body.split("\n", 1)
    return head.format(name=name) + "\n" + LOAD + rest.format(pattern=WORD.pattern)
