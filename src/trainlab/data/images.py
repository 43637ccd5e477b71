"""Image files on disk, one sub-folder per class, decoded lazily to uint8 (C, H, W) of a fixed size."""
from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset
from torchvision.transforms.v2 import functional as TF

from trainlab.core.errors import UserError

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}


def load_image(path: str | Path, size: tuple[int, int], channels: int) -> torch.Tensor:
    """Decode one image file to uint8 (channels, H, W) resized to `size`; a one-line UserError if it is not an image."""
    try:
        with Image.open(path) as im:
            img = TF.pil_to_tensor(im.convert("L" if channels == 1 else "RGB"))  # (C, h, w) uint8
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        raise UserError(f"not a readable image: {path} ({str(e).splitlines()[0][:80]})") from None
    if tuple(img.shape[-2:]) != tuple(size):
        img = TF.resize(img, list(size), antialias=True)
    return img


def _list_files(root: Path, classes: list[str]) -> tuple[list[Path], list[int]]:
    paths, labels = [], []
    for label, name in enumerate(classes):
        for p in sorted((root / name).rglob("*")):
            if p.is_dir() or p.name.startswith("."):
                continue
            if p.suffix.lower() not in IMAGE_EXTENSIONS:
                raise UserError(f"not an image file: {p} (allowed extensions: {', '.join(sorted(IMAGE_EXTENSIONS))})")
            paths.append(p)
            labels.append(label)
    return paths, labels


class ImageFiles(Dataset):
    """`__getitem__(i)` -> (uint8 (C, H, W), label). `targets` lists every label without decoding."""

    def __init__(self, root: str | Path, size: tuple[int, int], channels: int, classes: list[str] | None = None):
        root = Path(root)
        if not root.is_dir():
            raise UserError(f"image folder not found: {root} (expected {root}/<class name>/<image files>)")
        found = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        if classes is not None and set(found) - set(classes):
            raise UserError(f"test folder {root} has classes not in the training folder: "
                            f"{sorted(set(found) - set(classes))}")
        self.classes = classes if classes is not None else found
        if not self.classes:
            raise UserError(f"image folder {root} has no class sub-folders "
                            f"(expected {root}/<class name>/<image files>)")
        self.paths, labels = _list_files(root,
                                         [c for c in self.classes if (root / c).is_dir()] if classes else self.classes)
        if classes is not None:  # map sub-folder order back to the training class indices
            present = [c for c in self.classes if (root / c).is_dir()]
            labels = [self.classes.index(present[i]) for i in labels]
        if not self.paths:
            raise UserError(f"image folder {root} holds no images")
        self.targets = torch.tensor(labels, dtype=torch.long)
        self.size, self.channels = size, channels

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        return load_image(self.paths[i], self.size, self.channels), self.targets[i]

    def nbytes(self) -> int:
        return len(self) * self.channels * self.size[0] * self.size[1]
