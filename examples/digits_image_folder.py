"""scikit-learn's 8x8 digits as an image folder of RGB PNGs (one sub-folder per class), to try image_folder
configs offline, e.g. examples/finetune-image-folder.yaml:

    python examples/digits_image_folder.py digits96 96
    trainlab train examples/finetune-image-folder.yaml data.path=digits96
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits


def write_folder(out: Path, size: int) -> int:
    digits = load_digits()
    for i, (pixels, label) in enumerate(zip(digits.images, digits.target, strict=True)):
        (out / str(label)).mkdir(parents=True, exist_ok=True)
        gray = Image.fromarray((pixels / 16 * 255).astype(np.uint8))  # 0..16 -> 0..255
        gray.resize((size, size), Image.BILINEAR).convert("RGB").save(out / str(label) / f"{i}.png")
    return len(digits.images)


if __name__ == "__main__":
    out, size = Path(sys.argv[1] if len(sys.argv) > 1 else "digits96"), int(sys.argv[2]) if len(sys.argv) > 2 else 96
    print(f"wrote {write_folder(out, size)} images to {out}/")
