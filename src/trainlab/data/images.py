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

import io
import struct
import warnings
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch.utils.data import Dataset

from trainlab.core.errors import UserError
from trainlab.core.files import printable

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
    return torch.from_numpy(np.asarray(im).copy()).reshape(h, w, -1).permute(2, 0, 1)  # (C, H, W) uint8


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
    """(image files, other files) under `folder`, recursively and sorted; hidden files and folders left out.
    Only regular files count as images: opening a FIFO or a device named x.png would wait forever."""
    images, others = [], []
    for p in sorted(folder.rglob("*")):
        if p.is_dir() or any(part.startswith(".") for part in p.relative_to(folder).parts):
            continue
        (images if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file() else others).append(p)
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
        folders = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        by_name = {printable(f): f for f in folders}  # a class is named as shown; its folder keeps its bytes
        if len(by_name) < len(folders):
            raise UserError(f"image folder {root} has class folders whose names differ only in bytes that are not "
                            f"UTF-8: {sorted(printable(f) for f in folders)}; rename them")
        if classes is not None and set(by_name) - set(classes):
            raise UserError(f"test folder {root} has classes not in the training folder: "
                            f"{sorted(set(by_name) - set(classes))}")
        self.classes = classes if classes is not None else list(by_name)
        if not self.classes:
            raise UserError(f"image folder {root} has no class sub-folders "
                            f"(expected {root}/<class name>/<image files>)")
        present = [c for c in self.classes if c in by_name]
        self.paths, labels, self.skipped = _list_files(root, [by_name[c] for c in present], bad_files)
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


# ----------------------------------------------------------------------------- the "skipped N files" line, once

# within `skipped_said_once()`: the (folder, skipped, total) already announced; "all" mutes every line. Outside
# one (train, a Python user's own loop): None, each load says it. A ContextVar, not a module-level set, so that
# a notebook's second `trainlab train` of the same folder still tells its user.
_SAID: ContextVar[set | str | None] = ContextVar("trainlab_skipped_said", default=None)


@contextmanager
def skipped_said_once(muted: bool = False) -> Iterator[None]:
    """One command that reads the same folder many times (tune: every trial and the final run; cv: each
    worker process) says its "skipped N files" line once. `muted`: say nothing (a cv worker: the parent said it)."""
    token = _SAID.set("all" if muted else set())
    try:
        yield
    finally:
        _SAID.reset(token)


def first_mention(folder: ImageFiles) -> bool:
    """Whether this folder's skipped files are to be announced now (and remember that they were)."""
    said = _SAID.get()
    if said is None:
        return True
    if said == "all":
        return False
    key = (str(folder.root), len(folder.skipped), folder.total)
    if key in said:
        return False
    said.add(key)
    return True

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
