"""Image files on disk, one sub-folder per class, decoded lazily to uint8 (C, H, W) of a fixed size.

    folder = ImageFiles("photos", (64, 64), channels=3)      # photos/<class>/<image files>
    folder.skipped                                           # [{"path", "reason"}]: what was left out, and why

Every image, in training and at predict time, is decoded the same way (`decode_image`, described for
exported models by `decoding`): EXIF orientation applied, converted to "L" (1 channel) or "RGB"
(grayscale, RGBA and palette images alike; alpha is dropped), resized with PIL's bilinear filter
(which antialiases when shrinking) to exactly (H, W). A consumer with PIL reproduces it bit for bit.
Listing a folder skips hidden files and files without an image extension, and opens each image once,
so a truncated or corrupt file is found before training starts, not in the middle of an epoch.
"""
from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch.utils.data import Dataset
from torchvision.transforms.v2 import functional as TF

from trainlab.core.errors import UserError

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
DECODE_ERRORS = (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError)
SCAN_THREADS = 4  # PIL releases the GIL while decoding: a few threads check a folder several times faster


def pil_mode(channels: int) -> str:
    return "L" if channels == 1 else "RGB"


def decode_image(im: Image.Image, size: tuple[int, int], channels: int) -> torch.Tensor:
    """An open PIL image -> uint8 (channels, H, W): EXIF orientation, mode "L"/"RGB", bilinear resize to `size`."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "palette images with transparency ...": the alpha is dropped anyway
        im = ImageOps.exif_transpose(im).convert(pil_mode(channels))
    h, w = size
    if im.size != (w, h):
        im = im.resize((w, h), Image.Resampling.BILINEAR)
    return TF.pil_to_tensor(im)  # (C, H, W) uint8


def decoding(size: tuple[int, int] | list[int], channels: int) -> dict:
    """`decode_image` in words and PIL calls, for the metadata of an exported model."""
    h, w = size
    mode = pil_mode(channels)
    return {"before_model": ["PIL.ImageOps.exif_transpose(im)", f"im.convert({mode!r})",
                      f"im.resize(({w}, {h}), PIL.Image.Resampling.BILINEAR) unless im.size == ({w}, {h})",
                      "numpy.asarray(im, dtype=uint8)" + ("[None]  # (1, H, W)" if channels == 1
                                                           else ".transpose(2, 0, 1)  # (3, H, W)"),
                      "numpy.stack(images)  # (B, C, H, W)"],
            "size": [h, w], "size_order": "[height, width]", "mode": mode, "channel_order": mode,
            "interpolation": "bilinear", "antialias": True, "exif_orientation": True,
            "alpha": "dropped (PIL convert)", "layout": "NCHW", "dtype": "uint8", "value_range": [0, 255]}


def load_image(path, size: tuple[int, int], channels: int) -> torch.Tensor:
    """Decode one image file (a path or a binary file object) to uint8 (channels, H, W) resized to `size`;
    a one-line UserError if it is not a readable image."""
    try:
        with Image.open(path) as im:
            return decode_image(im, size, channels)
    except DECODE_ERRORS as e:
        raise UserError(f"not a readable image: {path} ({_reason(e)})") from None


def _reason(e: BaseException) -> str:
    return (str(e).splitlines() or [type(e).__name__])[0][:80]


def image_problem(path: Path) -> str | None:
    """Why `path` cannot be used as an image (decoded once, JPEGs at reduced scale), or None if it can."""
    try:
        with Image.open(path) as im:
            im.draft(im.mode, (max(1, im.width // 8), max(1, im.height // 8)))  # JPEG only: 1/8 scale, still every byte
            im.load()
    except DECODE_ERRORS as e:
        return _reason(e)
    return None


def list_folder(folder: Path) -> tuple[list[Path], list[Path]]:
    """(image files, other files) under `folder`, recursively and sorted; hidden files and folders left out."""
    images, others = [], []
    for p in sorted(folder.rglob("*")):
        if p.is_dir() or any(part.startswith(".") for part in p.relative_to(folder).parts):
            continue
        (images if p.suffix.lower() in IMAGE_EXTENSIONS else others).append(p)
    return images, others


def scan_images(paths: list[Path]) -> list[str | None]:
    """image_problem for every path, in a few threads."""
    with ThreadPoolExecutor(SCAN_THREADS) as pool:
        return list(pool.map(image_problem, paths))


def _list_files(root: Path, classes: list[str], bad_files: str) -> tuple[list[Path], list[int], list[dict]]:
    """-> (readable image paths, their labels, skipped [{path, reason}])."""
    listed, skipped = [], []
    for label, name in enumerate(classes):
        images, others = list_folder(root / name)
        listed += [(p, label) for p in images]
        skipped += [{"path": str(p), "reason": f"not an image file ({p.suffix or 'no extension'})"} for p in others]
    problems = scan_images([p for p, _ in listed])
    bad = [{"path": str(p), "reason": why} for (p, _), why in zip(listed, problems, strict=True) if why]
    if bad and bad_files == "error":
        shown = "; ".join(f"{b['path']} ({b['reason']})" for b in bad[:20])
        more = f"; and {len(bad) - 20} more" if len(bad) > 20 else ""
        raise UserError(f"{len(bad)} unreadable image(s) in {root}: {shown}{more}; remove them or set "
                        f"data.bad_files=skip")
    good = [(p, label) for (p, label), why in zip(listed, problems, strict=True) if not why]
    return [p for p, _ in good], [label for _, label in good], skipped + bad


class ImageFiles(Dataset):
    """`__getitem__(i)` -> (uint8 (C, H, W), label). `targets` lists every label without decoding.

    bad_files: "skip" leaves unreadable images out (listed in `skipped`), "error" stops naming all of them.
    """

    def __init__(self, root: str | Path, size: tuple[int, int], channels: int, classes: list[str] | None = None,
                 bad_files: str = "skip"):
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
        present = [c for c in self.classes if (root / c).is_dir()]
        self.paths, labels, self.skipped = _list_files(root, present, bad_files)
        labels = [self.classes.index(present[i]) for i in labels]  # sub-folder order -> training class indices
        if not self.paths:
            raise UserError(f"image folder {root} holds no readable images")
        empty = [c for c in present if self.classes.index(c) not in labels]
        if classes is None and empty:
            raise UserError(f"class folder(s) {', '.join(empty)} in {root} hold no readable images; "
                            f"add images or remove the folder")
        self.root, self.total = root, len(self.paths) + len(self.skipped)
        self.targets = torch.tensor(labels, dtype=torch.long)
        self.size, self.channels = size, channels

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        return load_image(self.paths[i], self.size, self.channels), self.targets[i]

    def nbytes(self) -> int:
        return len(self) * self.channels * self.size[0] * self.size[1]

    def report(self) -> dict:
        """What listing found, for data.json: counts and every skipped file with its reason."""
        return {"folder": str(self.root), "files": self.total, "used": len(self.paths),
                "skipped": len(self.skipped), "skipped_files": self.skipped}
