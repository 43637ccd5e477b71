"""The page `trainlab serve` shows at `/`: upload an image (or draw one, for grayscale runs such as digits and
MNIST), type a text or features, and see the top classes as bars. One self-contained HTML string: no CDN, no build.
Also what `/openapi.json` says about `POST /predict` (PREDICT_OPENAPI), which reads its body itself.

A CSV run gets one input per column of its CSV (`table_columns`): a select of the known categories for a text
column, a number box for a numeric one, prefilled with the training file's first complete row; the page posts
the row by column, {"colour": "red", "age": 41}, as `trainlab predict` reads a CSV row (never one-hot numbers).

Drawing is white on black, like the training images of digits and MNIST. Before sending, the page crops the
drawing to its bounding box and centres it the way the dataset framed its digits (see `draw_margin`).
"""
from __future__ import annotations

import html
import json

_ERROR = {"content": {"application/json": {"schema": {
    "type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}}}}
_NUMBERS = {"type": "array", "items": {"oneOf": [{"type": "number"}, {"type": "array", "items": {"type": "number"}}]}}
_SAMPLE = {"type": "object", "properties": {
    "features": {**_NUMBERS, "description": "one sample, or a list of samples (a batch)"},
    "text": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
             "description": "text runs only: one text or a list of texts"}}}
PREDICT_OPENAPI = {
    "description": "One prediction per image, sample, text or instance, in order. Image runs take images; "
                   "tabular, sequence and text runs take JSON. Limits: GET /info `limits`.",
    "requestBody": {"required": True, "content": {
        "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
            "file": {"type": "array", "items": {"type": "string", "format": "binary"},
                     "description": "one or more image files (repeat the field)"}}}},
        "image/*": {"schema": {"type": "string", "format": "binary"}},
        "application/json": {"schema": {"oneOf": [_SAMPLE, {
            "type": "object", "required": ["instances"], "properties": {"instances": {
                "type": "array", "description": "one sample each: {features|text}, a list of features, or a text",
                "items": {"oneOf": [_SAMPLE, _NUMBERS, {"type": "string"}]}}}}]}}}},
}
PREDICT_ERRORS = {  # every error is {"error": "..."}, FastAPI's 422 too (serve's handlers rewrite it)
    400: {"description": "empty or malformed body, not an image, a truncated image", **_ERROR},
    413: {"description": "too many bytes, pixels (declared in the header), files or samples", **_ERROR},
    415: {"description": "the wrong content type for this run", **_ERROR},
    422: {"description": "values the model cannot take, or a bad query parameter", **_ERROR}}

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>__TITLE__</title>
<style>
  body { font-family: system-ui, sans-serif; max-width: 760px; margin: 2rem auto; padding: 0 1rem; color: #222; }
  h1 { font-size: 1.4rem; margin-bottom: .2rem; }
  .sub { color: #666; margin-top: 0; }
  .panes { display: flex; gap: 2rem; flex-wrap: wrap; align-items: flex-start; }
  .pane { flex: 1 1 300px; }
  canvas#canvas { background: #000; border-radius: 6px; touch-action: none; cursor: crosshair;
                  width: 280px; height: 280px; }
  img#preview { width: 140px; height: 140px; image-rendering: pixelated; object-fit: contain; background: #eee;
                display: none; margin-top: .5rem; }
  button { margin-top: .5rem; padding: .3rem .8rem; }
  textarea { width: 100%; height: 5rem; font-family: monospace; }
  #prediction { font-size: 1.6rem; font-weight: 600; min-height: 2rem; }
  .row { display: grid; grid-template-columns: 7rem 1fr 4rem; gap: .5rem; align-items: center; margin: .25rem 0; }
  .name { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
  .bar { background: #eee; height: 1rem; border-radius: 3px; }
  .fill { background: #3b7dd8; height: 100%; border-radius: 3px; }
  .pct { text-align: right; font-variant-numeric: tabular-nums; }
  #error { color: #b00020; min-height: 1.2rem; }
  #warning { color: #8a5a00; }
  form#row label { display: grid; grid-template-columns: 9rem 1fr; gap: .5rem; margin: .25rem 0; }
  form#row .name { font-family: monospace; }
</style>
</head>
<body data-state="idle">
<h1>__TITLE__</h1>
<p class="sub">__SUBTITLE____CARD__</p>
<div class="panes">
  <div class="pane" id="inputs">
    <div id="image-input" hidden>
      <label>Upload an image: <input type="file" id="file" accept="image/*"></label><br>
      <img id="preview" alt="uploaded image">
    </div>
    <div id="draw-input" hidden>
      <p>Or draw (white on black):</p>
      <canvas id="canvas" width="280" height="280"></canvas><br>
      <button id="clear" type="button">Clear</button>
    </div>
    <div id="text-input" hidden>
      <label for="text">Text:</label>
      <textarea id="text"></textarea>
      <button id="send-text" type="button">Predict</button>
    </div>
__FEATURES__
  </div>
  <div class="pane">
    <div id="prediction"></div>
    <div id="result"></div>
    <div id="warning"></div>
    <div id="error"></div>
  </div>
</div>
<script id="info" type="application/json">__INFO__</script>
<script>
"use strict";
const INFO = JSON.parse(document.getElementById("info").textContent);
const $ = (id) => document.getElementById(id);
let seq = 0;  // only the newest request may update the page

async function send(body, headers) {
  const mine = ++seq;
  document.body.dataset.state = "busy";
  $("error").textContent = "";
  try {
    const r = await fetch("predict", {method: "POST", body: body, headers: headers || {}});
    const j = await r.json();
    if (mine !== seq) return;
    if (!r.ok) { showError(j.error || r.statusText); return; }
    show(j.predictions[0]);
  } catch (e) {
    if (mine === seq) showError(String(e));
  } finally {
    if (mine === seq) document.body.dataset.state = "done";
  }
}

function showError(msg) {
  $("prediction").textContent = "";
  $("result").replaceChildren();
  $("warning").textContent = "";
  $("error").textContent = msg;
}

function show(p) {
  const fmt = (v) => typeof v === "number" ? v.toPrecision(5) : v;
  $("warning").textContent = p.warning ? "warning: " + p.warning : "";  // an unseen category, an imputed cell
  $("prediction").textContent = Array.isArray(p.prediction) ? p.prediction.map(fmt).join(", ") : fmt(p.prediction);
  const rows = (p.top || []).map((t) => {
    const row = document.createElement("div");
    row.className = "row";
    row.dataset.class = t.class;
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = t.class;
    const bar = document.createElement("div");
    bar.className = "bar";
    const fill = document.createElement("div");
    fill.className = "fill";
    fill.style.width = (100 * t.probability).toFixed(1) + "%";
    bar.append(fill);
    const pct = document.createElement("span");
    pct.className = "pct";
    pct.textContent = (100 * t.probability).toFixed(1) + "%";
    row.append(name, bar, pct);
    return row;
  });
  $("result").replaceChildren(...rows);
}

function sendFile(blob, name) {
  const form = new FormData();
  form.append("file", blob, name);
  send(form);
}

function setupUpload() {
  $("image-input").hidden = false;
  $("file").addEventListener("change", () => {
    const f = $("file").files[0];
    if (!f) return;
    $("preview").src = URL.createObjectURL(f);
    $("preview").style.display = "block";
    sendFile(f, f.name);
  });
}

// Crop the drawing to its bounding box and centre it in a square with the dataset's margin.
function framed(src) {
  const W = src.width, H = src.height;
  const d = src.getContext("2d").getImageData(0, 0, W, H).data;
  let x0 = W, y0 = H, x1 = -1, y1 = -1;
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) {
    if (d[(y * W + x) * 4] <= 16) continue;
    x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y);
  }
  if (x1 < 0) return null;
  const OUT = 112, side = Math.max(x1 - x0 + 1, y1 - y0 + 1), s = OUT * (1 - 2 * INFO.draw_margin) / side;
  const out = document.createElement("canvas");
  out.width = out.height = OUT;
  const o = out.getContext("2d");
  o.fillStyle = "#000";
  o.fillRect(0, 0, OUT, OUT);
  o.drawImage(src, OUT / 2 - s * (x0 + x1 + 1) / 2, OUT / 2 - s * (y0 + y1 + 1) / 2, W * s, H * s);
  return out;
}

function setupCanvas() {
  $("draw-input").hidden = false;
  const c = $("canvas"), ctx = c.getContext("2d");
  const clear = () => { ctx.fillStyle = "#000"; ctx.fillRect(0, 0, c.width, c.height); };
  clear();
  ctx.strokeStyle = "#fff";
  ctx.lineWidth = INFO.brush;
  ctx.lineCap = ctx.lineJoin = "round";
  let drawing = false, timer = null;
  const at = (e) => { const r = c.getBoundingClientRect(); return [(e.clientX - r.left) * c.width / r.width,
                                                                  (e.clientY - r.top) * c.height / r.height]; };
  c.addEventListener("pointerdown", (e) => {
    drawing = true;
    clearTimeout(timer);
    document.body.dataset.state = "drawing";
    c.setPointerCapture(e.pointerId);
    const [x, y] = at(e);
    ctx.beginPath(); ctx.moveTo(x, y); ctx.lineTo(x, y); ctx.stroke();
  });
  c.addEventListener("pointermove", (e) => {
    if (!drawing) return;
    const [x, y] = at(e);
    ctx.lineTo(x, y); ctx.stroke();
  });
  const end = () => {
    if (!drawing) return;
    drawing = false;
    timer = setTimeout(() => {  // one request after the user pauses, not one per stroke
      const f = framed(c);
      if (f) f.toBlob((b) => sendFile(b, "drawing.png"), "image/png");
    }, 300);
  };
  c.addEventListener("pointerup", end);
  c.addEventListener("pointercancel", end);
  $("clear").addEventListener("click", () => { clear(); showError(""); document.body.dataset.state = "idle"; });
}

function setupFeatures() {
  $("features-input").hidden = false;
  const names = INFO.features ? INFO.features.join(", ") : INFO.raw_shape.at(-1) + " values";
  $("feature-names").textContent = INFO.raw_shape.length > 1
    ? `: ${INFO.raw_shape[0]} steps of ${names}, oldest first` : `: ${names}`;
  $("send").addEventListener("click", () => {
    const text = $("features").value.trim();
    const values = text.split(/[\\s,;]+/).filter((v) => v !== "").map(Number);
    send(JSON.stringify({features: INFO.raw_shape.length > 1 ? chunk(values, INFO.raw_shape.at(-1)) : values}),
         {"Content-Type": "application/json"});
  });
}

// A CSV run: the form's values by column; a number box's text as a JSON number, an empty one as null (the run's
// missing-value rule answers it), a select's category as a string.
function rowOf(form) {
  const row = {};
  for (const el of form.querySelectorAll("[data-column]")) {
    const v = el.value.trim();
    row[el.dataset.column] = el.dataset.kind === "number" ? (v === "" ? null : Number(v)) : el.value;
  }
  return row;
}

function setupTable() {
  const form = $("row");
  form.hidden = false;
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    send(JSON.stringify(rowOf(form)), {"Content-Type": "application/json"});
  });
}

function setupText() {
  $("text-input").hidden = false;
  $("send-text").addEventListener("click", () =>
    send(JSON.stringify({text: $("text").value}), {"Content-Type": "application/json"}));
}

function chunk(values, n) {
  const out = [];
  for (let i = 0; i < values.length; i += n) out.push(values.slice(i, i + n));
  return out;
}

if (INFO.kind === "image") { setupUpload(); if (INFO.canvas) setupCanvas(); }
else if (INFO.kind === "text") setupText();
else if (INFO.columns) setupTable();
else setupFeatures();
</script>
</body>
</html>
"""


FEATURES_BOX = """    <div id="features-input" hidden>
      <label for="features">Features (comma-separated<span id="feature-names"></span>):</label>
      <textarea id="features"></textarea>
      <button id="send" type="button">Predict</button>
    </div>"""


def table_columns(data: dict) -> list[dict] | None:
    """A CSV run's columns as the page's form shows them: [{"name", "kind": "category" | "number",
    "categories"?, "value"}]; None for other runs (and for runs trained before the raw columns were saved)."""
    meta = data.get("meta") or {}
    if data.get("kind") != "tabular" or not meta.get("raw_features"):
        return None
    example, cats = meta.get("example") or {}, meta.get("categories") or {}
    typical = (meta.get("imputation") or {}).get("values") or {}  # without a saved row: the training split's values
    cols = []
    for name in meta["raw_features"]:
        value = example.get(name, typical.get(name))
        if name in cats:
            value = value if value in cats[name] else (cats[name][0] if cats[name] else "")
            cols.append({"name": name, "kind": "category", "categories": cats[name], "value": value})
        else:
            cols.append({"name": name, "kind": "number", "value": value})
    return cols


def table_form(columns: list[dict]) -> str:
    """One labelled input per CSV column, the example row's values selected; `rowOf` in the page reads it."""
    rows = []
    for c in columns:
        name = html.escape(str(c["name"]))
        if c["kind"] == "category":
            options = "".join(f'<option{" selected" if k == c["value"] else ""}>{html.escape(str(k))}</option>'
                              for k in c["categories"])
            field = f'<select data-column="{name}" data-kind="category">{options}</select>'
        else:
            value = "" if c["value"] is None else repr(float(c["value"]))
            field = (f'<input type="number" step="any" data-column="{name}" data-kind="number" '
                     f'value="{html.escape(value)}">')
        rows.append(f'      <label><span class="name">{name}</span>{field}</label>')
    return ('    <form id="row" hidden>\n      <p>One row, by column as in the training CSV:</p>\n'
            + "\n".join(rows) + '\n      <button id="send-row" type="submit">Predict</button>\n    </form>')


def page_html(info: dict) -> str:
    """The page for one model; `info` is serve.public_info (classes, kind, raw_shape, canvas, ...)."""
    h = info["raw_shape"][-2] if info["kind"] == "image" else 0
    # digits (8x8) are scaled to fill their box; MNIST centres a 20x20 digit in 28x28: a 4/28 border
    info = {**info, "draw_margin": 0.0 if h < 16 else 4 / 28, "brush": 22}
    title = f"{info.get('model') or 'model'} on {info.get('dataset') or info['kind']}"
    n = len(info["classes"]) if info.get("classes") else None
    sub = (f"{n} classes; input {info['kind']} of shape {info['raw_shape']}" if n
           else f"{info['task']}; input {info['kind']} of shape {info['raw_shape']}")
    # "</" inside the JSON would end the <script> element early
    data = json.dumps(info).replace("</", "<\\/")
    return (PAGE.replace("__TITLE__", html.escape(f"trainlab: {title}")).replace("__SUBTITLE__", html.escape(sub))
            .replace("__CARD__", ' &middot; <a href="/card">model card</a>' if info.get("card") else "")
            .replace("__FEATURES__", table_form(info["columns"]) if info.get("columns") else FEATURES_BOX)
            .replace("__INFO__", data))
