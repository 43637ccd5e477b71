"""Regenerate every picture of docs/observe.md into docs/img/ from small runs trained here (a few minutes, one thread).

    PYTHONPATH=src python docs/figures.py            # or: make figures
    PYTHONPATH=src python docs/figures.py --keep runs/figures   # keep the runs it trained
    PYTHONPATH=src python docs/figures.py --only demo_report    # one step (see STEPS)

Runs: the demo (`make demo`: examples/digits-mlp.yaml as it is, into a run named demo: report.png), digits MLPs
(Adam lr 0.01 and SGD lr 1.0, the report's activations and mistakes), a corner-patch image folder
(the class is the corner of a bright 4x4 patch) for a CNN (attribution, feature maps) and for `trainlab cv` with
a few labels moved to a wrong folder (label issues), a marker-token text CSV (a text is "zebra" iff it holds the
word zebra) for a Transformer (attention per head, token attribution), `trainlab show` on an augmented digits
config and on the text CSV, and three seeds of two learning rates for `trainlab compare`. The HTML views are
photographed in headless Chromium (playwright driving /usr/bin/chromium), clipped to their section. Every number
docs/observe.md quotes from these runs is printed.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before torch loads: tiny models run fastest on one thread

import numpy as np  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402
from PIL import Image  # noqa: E402

from trainlab.cli.main import main as trainlab  # noqa: E402

IMG = Path(__file__).resolve().parent / "img"
DEMO = Path(__file__).resolve().parents[1] / "examples" / "digits-mlp.yaml"  # what `make demo` trains
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
SIZE, CORNERS = 16, [(2, 2), (2, 10), (10, 2), (10, 10)]
FILLER = ("apple river stone cloud paper green music table window garden honey silver candle forest bread train "
          "yellow pencil ocean mountain coffee winter summer lamp chair violin rabbit tiger orange purple letter "
          "bottle castle island planet rocket").split()
RARE = "blue red gold kite moon star sand wave leaf rose".split()  # 100 two-part words ("bluemoon")
AFFINE = [{"name": "random_affine", "degrees": 25, "translate": [0.15, 0.15]}, {"name": "normalize"}]
MOVED = 6  # images per run moved into a wrong class folder for the label-issues gallery


def cli(*args: str) -> str:
    """Run `trainlab ARGS` in this process; its console output (also echoed) or SystemExit on failure."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = trainlab([str(a) for a in args])
    sys.stdout.write(buf.getvalue())
    if code != 0:
        raise SystemExit(f"trainlab {' '.join(map(str, args))} failed ({code})")
    return buf.getvalue()


def write_yaml(path: Path, cfg: dict) -> Path:
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


# ----------------------------------------------------------------------------- data

def corner_folder(root: Path, per_class: int = 32, seed: int = 0) -> Path:
    """4 classes of 16x16 grey noise with a bright 4x4 patch at the class's corner (tests/test_internals.py)."""
    rng = np.random.default_rng(seed)
    for k, (r, c) in enumerate(CORNERS):
        (root / f"corner{k}").mkdir(parents=True)
        for i in range(per_class):
            a = (rng.random((SIZE, SIZE)) * 120).astype(np.uint8)
            a[r:r + 4, c:c + 4] = 255
            Image.fromarray(a, "L").save(root / f"corner{k}" / f"{i}.png")
    return root


def zebra_csv(path: Path, n: int = 400, seed: int = 0, rare: float = 0.0) -> Path:
    """Texts of 5-12 filler words; every second one has one word replaced by "zebra" (tests/test_text_views.py).
    With `rare`, that share of texts also gets one of many rare words: some occur only in val/test (unknown)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        words = list(rng.choice(FILLER, int(rng.integers(5, 13))))
        if rng.random() < rare:
            words.append(f"{rng.choice(RARE)}{rng.choice(RARE)}")
        if i % 2:
            words[int(rng.integers(len(words)))] = "zebra"
        rows.append(f"{' '.join(words)},{'zebra' if i % 2 else 'none'}\n")
    path.write_text("text,label\n" + "".join(rows))
    return path


def digits_cfg(augment: bool = True, **train) -> dict:
    """The MLP of tests/test_activity.py (64-64 ReLU, 3 epochs, Adam lr 0.01); with `augment`, random_affine."""
    data = {"name": "digits", "batch_size": 64, "val_fraction": 0.1, "test_fraction": 0.2}
    if augment:
        data["transforms"] = {"train": AFFINE, "eval": [{"name": "normalize"}]}
    return {"seed": 0, "data": data, "model": {"name": "mlp", "hidden": [64, 64]},
            "train": {"epochs": 3, "lr": 0.01, "num_threads": 1, **train}}


def corner_cfg(path: Path) -> dict:
    return {"seed": 0, "data": {"name": "image_folder", "path": str(path), "image_size": [SIZE, SIZE], "channels": 1,
                                "batch_size": 16, "val_fraction": 0.25, "test_fraction": 0.1},
            "model": {"name": "cnn", "channels": [8, 16], "hidden": [32]},
            "train": {"epochs": 12, "lr": 0.01, "num_threads": 1}}


def text_cfg(path: Path) -> dict:
    return {"seed": 0, "data": {"name": "text", "path": str(path), "max_len": 16, "batch_size": 32,
                                "val_fraction": 0.2, "test_fraction": 0.1, "transforms": {"train": [], "eval": []}},
            "model": {"name": "transformer", "d_model": 32, "heads": 2, "layers": 1, "ff_dim": 64, "dropout": 0.0},
            "train": {"epochs": 4, "lr": 0.003, "num_threads": 1}}


# ----------------------------------------------------------------------------- pictures

class Camera:
    """Headless Chromium: photographs one element of a page, at most `max_height` px of it, as a small PNG."""

    def __init__(self, playwright):
        self.browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        self.page = self.browser.new_page(viewport={"width": 1000, "height": 800}, device_scale_factor=1)

    def shoot(self, html: Path, selector: str, name: str, max_height: int = 700) -> Path:
        self.page.goto(html.resolve().as_uri(), wait_until="load")
        box = self.page.locator(selector).first.bounding_box()
        clip = {"x": box["x"], "y": box["y"], "width": box["width"], "height": min(box["height"], max_height)}
        path = IMG / name
        self.page.screenshot(path=str(path), clip=clip, full_page=True)
        with Image.open(path) as im:  # a screenshot has few colours: a palette PNG is a third of the size
            im.convert("RGB").quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
        return path

    def close(self):
        self.browser.close()


def copy(src: Path, name: str) -> Path:
    shutil.copyfile(src, IMG / name)
    return IMG / name


def demo_report(work: Path, cam: Camera) -> None:
    """`make demo` (the demo config as shipped, no override) and the top of its report.html: the numbers in the
    picture are the ones `make demo` prints."""
    cli("train", DEMO, "--out", work / "demo", "--overwrite")
    result = json.loads((work / "demo" / "result.json").read_text())
    print(f"MEASURED demo: test accuracy {result['test']['accuracy']:.4f}, {result['epochs_run']} epochs, best epoch "
          f"{result['best_epoch']} ({result['monitor']} = {result['best_value']:.4g})")
    cam.shoot(work / "demo" / "report.html", "html", "report.png", 1850)  # down to the learning curves


def activations_pair(work: Path) -> None:
    """Adam lr 0.01 vs plain SGD lr 1.0 on the same MLP: the report's activation plots, dead-ReLU shares."""
    for name, train in (("adam", {}), ("sgd", {"optimizer": "sgd", "lr": 1.0})):
        cfg = write_yaml(work / f"digits-{name}.yaml", digits_cfg(augment=False, **train))
        cli("train", cfg, "--out", work / f"digits-{name}", "--overwrite")
        result = json.loads((work / f"digits-{name}" / "result.json").read_text())
        dead = {k: round(a["dead"], 3) for k, a in result["activity"].items()}
        print(f"MEASURED activations {name}: dead ReLU share per module {dead}, "
              f"test accuracy {result['test']['accuracy']:.4f}")
        copy(work / f"digits-{name}" / "activations.png", f"activations-{name}.png")


def images_views(work: Path, cam: Camera) -> None:
    run = work / "digits"
    cli("train", write_yaml(work / "digits.yaml", digits_cfg()), "--out", run, "--overwrite")
    copy(run / "mistakes.png", "report-mistakes.png")
    copy(run / "augmentation.png", "report-augmentation.png")
    copy(run / "curves.png", "curves.png")
    cli("inspect", run, "--out", work / "inspect-digits")
    page = work / "inspect-digits" / "inspect.html"
    cam.shoot(page, "section#top", "inspect-top-losses.png", 420)
    cam.shoot(page, "section#confused", "inspect-confused.png", 520)

    folder = corner_folder(work / "corners")
    cli("train", write_yaml(work / "corners.yaml", corner_cfg(folder)), "--out", work / "cnn", "--overwrite")
    cli("inspect", work / "cnn", "--attribution", "--internals", "--out", work / "inspect-cnn")
    page = work / "inspect-cnn" / "inspect.html"
    cam.shoot(page, "section#attribution", "inspect-attribution.png", 600)
    cam.shoot(page, "section#internals", "inspect-feature-maps.png", 700)

    cli("show", write_yaml(work / "digits-aug.yaml", digits_cfg()), "--n", 8, "--out", work / "show-digits")
    cam.shoot(work / "show-digits" / "show.html", "section#images", "show-augmentation.png", 600)


def label_issue_views(work: Path, cam: Camera) -> None:
    """cv on a corner folder where MOVED images sit in the next class's folder: cleanlab should flag them."""
    folder = corner_folder(work / "corners-noisy", seed=1)
    moved = []
    for i in range(MOVED):
        src = folder / f"corner{i % 4}" / f"{i}.png"
        dst = folder / f"corner{(i + 1) % 4}" / f"moved{i}.png"
        src.rename(dst)
        moved.append(dst.name)
    cfg = write_yaml(work / "noisy.yaml", corner_cfg(folder))
    cli("cv", cfg, "--folds", 4, "--out", work / "cv", "--overwrite")
    issues = json.loads((work / "cv" / "result.json").read_text())["label_issues"]
    hits = sum(Path(e.get("path", "")).name in moved for e in issues)
    print(f"MEASURED label issues: {len(issues)} flagged, {hits} of the {MOVED} moved images among them")
    cam.shoot(work / "cv" / "label_issues.html", "section#issues", "label-issues.png", 520)


def text_views(work: Path, cam: Camera) -> None:
    csv = zebra_csv(work / "zebra.csv")
    cfg = write_yaml(work / "zebra.yaml", text_cfg(csv))
    cli("train", cfg, "--out", work / "text", "--overwrite")
    cli("inspect", work / "text", "--attribution", "--internals", "--text", "a zebra sat by the river",
        "--out", work / "inspect-text")
    page = work / "inspect-text" / "inspect.html"
    cam.shoot(page, "section#internals", "inspect-attention.png", 600)
    cam.shoot(page, "section#attribution", "inspect-token-attribution.png", 420)
    rare = zebra_csv(work / "zebra-rare.csv", rare=0.3)
    cli("show", cfg, f"data.path={rare}", "data.max_len=10", "--out", work / "show-text")
    cam.shoot(work / "show-text" / "show.html", "section#texts", "show-text.png", 690)


def seeds_views(work: Path, cam: Camera) -> None:
    for lr in ("0.01", "0.001"):
        cfg = write_yaml(work / f"seeds-{lr}.yaml", digits_cfg(lr=float(lr)))
        cli("train", cfg, "--seeds", 3, "--out", work / f"lr{lr}-3seeds", "--overwrite")
    print("MEASURED compare (console, for docs/observe.md):")
    cli("compare", work / "lr0.01-3seeds", work / "lr0.001-3seeds", "--out", work / "compare")
    cam.shoot(work / "lr0.01-3seeds" / "report.html", "html", "seeds-report.png", 520)


STEPS = (demo_report, activations_pair, images_views, label_issue_views, text_views, seeds_views)


def main(argv: list[str] | None = None) -> int:
    args = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    args.add_argument("--keep", type=Path, help="train into this directory and keep it (default: a temporary one)")
    args.add_argument("--only", nargs="+", choices=[f.__name__ for f in STEPS], help="run only these steps")
    opts = args.parse_args(argv)
    from playwright.sync_api import sync_playwright  # optional heavy dependency: only for the HTML screenshots

    torch.set_num_threads(1)
    IMG.mkdir(exist_ok=True)
    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        work = opts.keep or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="trainlab-figures-")))
        work.mkdir(parents=True, exist_ok=True)
        stack.callback(os.chdir, os.getcwd())
        os.chdir(work)  # the pages then show short relative paths (corners/corner1/0.png), not the temp dir
        work = Path(".")
        cam = Camera(stack.enter_context(sync_playwright()))
        stack.callback(cam.close)
        for step in (f for f in STEPS if not opts.only or f.__name__ in opts.only):
            t = time.perf_counter()
            step(work) if step is activations_pair else step(work, cam)
            print(f"[{step.__name__}: {time.perf_counter() - t:.0f} s]")
    sizes = {p.name: p.stat().st_size // 1024 for p in sorted(IMG.glob("*.png"))}
    print("docs/img (KB):", sizes, f"total {sum(sizes.values())} KB")
    print(f"figures: {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
