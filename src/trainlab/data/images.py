"""Image files on disk, one sub-folder per class, decoded lazily to uint8 (C, H, W) of a fixed size."""
from __future__ import annotations

import io
import struct
import warnings
import zlib
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


# ----------------------------------------------------------------------------- untrusted bytes (trainlab serve)

SAFE_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF", "PPM")  # no EPS: PIL runs Ghostscript to decode it


class ImageTooLarge(UserError):
    """An image whose header declares more pixels, or a longer side, than the caller allows."""


def check_image_bytes(data: bytes, max_pixels: int, max_side: int) -> tuple[int, int]:
    """The declared (width, height) of image bytes from an untrusted source, checked before any pixel is decoded.

    Raises ImageTooLarge over `max_pixels` in all or `max_side` on either side (a 30 KB PNG can declare
    400 million pixels, or one row of 16 million), and UserError for bytes that are not a SAFE_FORMATS image
    or whose checksums fail (`verify`: a PNG cut inside its pixel data). Decoding can still fail later.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the limits below are stricter
            with Image.open(io.BytesIO(data), formats=SAFE_FORMATS) as im:
                width, height = im.size  # from the header only
                if width * height > max_pixels or max(width, height) > max_side:
                    raise ImageTooLarge(f"image too large: {width}x{height} pixels "
                                        f"(limit {max_pixels:,} pixels and {max_side} per side)")
                png = im.format == "PNG"
                im.verify()  # chunk checksums, up to the end marker; decodes nothing
        if png and not png_pixels_complete(data):  # Pillow fills a short pixel stream with black, silently
            raise UserError("not a readable image: the file is truncated or corrupted (PNG pixel data ends early)")
    except Image.DecompressionBombError:  # PIL's own cap (2 * MAX_IMAGE_PIXELS), hit before ours
        raise ImageTooLarge(f"image too large: its header declares over {2 * Image.MAX_IMAGE_PIXELS:,} pixels "
                            f"(limit {max_pixels:,})") from None
    except UnidentifiedImageError:
        raise UserError("not an image: the body is not a PNG, JPEG, GIF, BMP, WebP, TIFF or PPM file") from None
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001  crafted files reach PIL's plugins' internals (SyntaxError, struct.error, ...)
        raise UserError(f"not a readable image: the file is truncated or corrupted ({_first_line(e)})") from None
    return width, height


def _first_line(e: Exception) -> str:
    return (str(e).splitlines() or [type(e).__name__])[0][:80]


PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # colour type -> samples per pixel (gray, RGB, palette, GA, RGBA)
ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


def png_pixels_complete(data: bytes) -> bool:
    """Whether a PNG's IDAT stream inflates to every row its header declares (filter byte + packed samples).

    Pillow (13) stops quietly where the compressed stream ends and leaves the missing rows black, so a
    PNG with valid chunk checksums but half its pixel data decodes "fine"; this counts the inflated bytes.
    """
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", data[16:29])
    passes = ADAM7 if interlace else ((0, 0, 1, 1),)
    bits = depth * PNG_CHANNELS.get(colour, 4)
    need = 0
    for x0, y0, dx, dy in passes:
        w, h = -(-(width - x0) // dx), -(-(height - y0) // dy)
        need += h * (1 + (w * bits + 7) // 8) if w > 0 and h > 0 else 0
    inflate, got, pos = zlib.decompressobj(), 0, 8
    while pos + 8 <= len(data) and got < need:
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"IDAT":
            got += _inflated_size(inflate, data[pos + 8:pos + 8 + length], need - got)
        pos += 12 + length
    return got >= need


def _inflated_size(inflate, chunk: bytes, limit: int) -> int:
    """Bytes `chunk` inflates to, counting at most `limit` (in 1 MiB steps: the stream may be a bomb)."""
    got = 0
    try:
        while got < limit:
            step = min(limit - got, 2**20)
            out = len(inflate.decompress(chunk, step))
            got, chunk = got + out, inflate.unconsumed_tail
            if not chunk and out < step:  # all input used, no output pending
                break
    except zlib.error:
        return 0
    return got
