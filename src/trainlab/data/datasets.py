"""The built-in dataset readers (registered in trainlab.data.catalog): builder(cfg: DataConfig, params) -> DataBundle.

Images come out as uint8 (N, C, H, W), tabular data as float32 (N, F); labels as long (N,)
for classification, float32 (N,) for regression. Nothing is normalized here: transforms fit
their statistics later, on the training split only.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from trainlab.core.errors import UserError
from trainlab.core.paths import short_path
from trainlab.core.report import print_progress
from trainlab.data.base import ArrayDataset, DataBundle
from trainlab.data.cifar import FOLDER, CIFAR10Pickle
from trainlab.data.images import ImageFiles, first_mention
from trainlab.data.options import CSVParams, ImageFolderParams
from trainlab.data.tabular import read_csv_bundle


def build_digits(cfg, params) -> DataBundle:
    """scikit-learn's bundled 8x8 handwritten digits (1,797 images, no download)."""
    from sklearn.datasets import load_digits  # optional heavy dependency: imported on use

    d = load_digits()
    # pixel values are 0..16: rescale to uint8 so digits is an ordinary grayscale image dataset
    x = torch.from_numpy(np.round(d.images * (255.0 / 16.0)).astype(np.uint8)).unsqueeze(1)  # (N, 1, 8, 8)
    y = torch.from_numpy(d.target.astype(np.int64))
    return DataBundle(ArrayDataset(x, y), None, "classification", "image", [str(c) for c in range(10)])


# torchvision's class names (MNIST's "0 - zero" cut to "zero"), so a run reads the same without importing it
MNIST_CLASSES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot"]
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def read_idx(path: Path, ndim: int) -> torch.Tensor:
    """An unsigned-byte IDX file (LeCun's MNIST format: magic 0x0000 08 ndim, big-endian int32 sizes) -> uint8
    tensor of those sizes. torchvision reads the same files, but importing it (its models and ops) costs 0.2-0.3 s
    of a 7 s MNIST run beyond torch._dynamo, which the optimizer's first step imports anyway, so the files already
    on disk are read here; torchvision still downloads them and reads its older processed layout."""
    data = path.read_bytes()
    head = 4 * (ndim + 1)
    if len(data) < head or int.from_bytes(data[:4], "big") != 0x0800 + ndim:
        raise ValueError(f"{path.name} is not an IDX file of unsigned bytes with {ndim} dimension(s)")
    sizes = [int.from_bytes(data[4 * (i + 1):4 * (i + 2)], "big") for i in range(ndim)]
    if len(data) - head != int(np.prod(sizes)):
        raise ValueError(f"{path.name} holds {len(data) - head} bytes after its header, its header says "
                         f"{int(np.prod(sizes))} (truncated?)")
    return torch.frombuffer(bytearray(data), dtype=torch.uint8, offset=head).view(*sizes)


def _read_raw_mnist(raw: Path, classes: list[str]) -> DataBundle:
    tr_x, tr_y, te_x, te_y = (read_idx(raw / f, 3 if "images" in f else 1) for f in IDX_FILES)
    return DataBundle(ArrayDataset(tr_x.unsqueeze(1), tr_y.long()),  # (N, 1, 28, 28) uint8
                      ArrayDataset(te_x.unsqueeze(1), te_y.long()), "classification", "image", classes)


def _mnist_like(folder: str, classes: list[str], cfg, name: str) -> DataBundle:
    root = Path(cfg.root)
    raw = root / folder / "raw"
    try:
        if all((raw / f).is_file() for f in IDX_FILES) and not (root / folder / "processed").is_dir():
            return _read_raw_mnist(raw, classes)
        from torchvision import datasets  # optional heavy dependency: the download, or torchvision's old layout

        cls = getattr(datasets, folder)
        train = cls(str(root), train=True, download=cfg.download)
        test = cls(str(root), train=False, download=cfg.download)
    except RuntimeError as e:
        if "not found" not in str(e).lower():
            raise UserError(f"cannot read {name} from {root}: {e}") from None
        raise UserError(f"{name} not found under {root}: expected {root}/{folder}/raw/"
                        f"{{train,t10k}}-{{images-idx3,labels-idx1}}-ubyte; "
                        f"set data.root or data.download=true") from None
    except (OSError, ValueError) as e:  # truncated/corrupted IDX files, network errors while downloading
        raise UserError(f"cannot read {name} from {root}: {e}") from None
    return DataBundle(ArrayDataset(train.data.unsqueeze(1), train.targets.long()),  # (N, 1, 28, 28) uint8
                      ArrayDataset(test.data.unsqueeze(1), test.targets.long()), "classification", "image", classes)


def build_mnist(cfg, params) -> DataBundle:
    """MNIST handwritten digits (60k train / 10k test, 28x28) from data.root in torchvision's layout."""
    return _mnist_like("MNIST", MNIST_CLASSES, cfg, "mnist")


def build_fashion_mnist(cfg, params) -> DataBundle:
    """Fashion-MNIST clothing images (60k/10k, 28x28) from data.root in torchvision's layout."""
    return _mnist_like("FashionMNIST", FASHION_CLASSES, cfg, "fashion_mnist")


def build_cifar10(cfg, params) -> DataBundle:
    """CIFAR-10 (50k/10k color 32x32) read by trainlab's own pickle-batch Dataset."""
    root = Path(cfg.root)
    if cfg.download and not (root / FOLDER).is_dir():
        from torchvision.datasets import CIFAR10  # optional heavy dependency: imported on use

        CIFAR10(str(root), train=True, download=True)  # the real download path; we read the files ourselves
    train, test = CIFAR10Pickle(root, train=True), CIFAR10Pickle(root, train=False)
    return DataBundle(ArrayDataset(*train.tensors()), ArrayDataset(*test.tensors()),
                      "classification", "image", train.classes)


def build_image_folder(cfg, params: ImageFolderParams) -> DataBundle:
    """Your own images: one sub-folder per class (like torchvision.datasets.ImageFolder)."""
    if not params.path:
        raise UserError("data.path is required for image_folder: a folder with one sub-folder per class")
    size = params.image_size * 2 if len(params.image_size) == 1 else params.image_size
    if len(size) != 2 or min(size) < 1:
        raise UserError(f"bad value for data.image_size: {params.image_size!r}; expected [height, width]")
    for key, path in (("data.path", params.path), ("data.test_path", params.test_path)):
        _check_folder(key, path)
    pool = ImageFiles(params.path, tuple(size), params.channels, bad_files=params.bad_files)
    test = None
    if params.test_path:
        test = ImageFiles(params.test_path, tuple(size), params.channels, pool.classes, params.bad_files)
    intake = {"train": pool.report(), **({"test": test.report()} if test is not None else {})}
    for folder in (pool, test):
        if folder is not None and folder.skipped and first_mention(folder):  # once per tune/cv command
            print_progress(skipped_line(folder))
    return DataBundle(pool, test, "classification", "image", pool.classes, meta={"intake": intake})


def skipped_line(folder: ImageFiles, shown: int = 3) -> str:
    """'image_folder: skipped 3 of 40 files in photos: a.txt (not an image file (.txt)), ...'"""
    first = ", ".join(f"{Path(s['path']).relative_to(folder.root)} ({s['reason']})" for s in folder.skipped[:shown])
    more = f", and {len(folder.skipped) - shown} more" if len(folder.skipped) > shown else ""
    return (f"image_folder: skipped {len(folder.skipped)} of {folder.total} files in {folder.root}: {first}{more} "
            f"(all listed in the run's data.json, meta.intake)")


def _check_folder(key: str, path: str | None) -> None:
    """A folder we can list, or a one-line error (pathlib's is_dir raises on a name too long, for one)."""
    if not path:
        return
    try:
        os.listdir(path)
    except FileNotFoundError:
        return  # ImageFiles names the expected layout
    except OSError as e:
        raise UserError(f"cannot read {key} {short_path(path)}: {e.strerror}") from None


def build_csv(cfg, params: CSVParams) -> DataBundle:
    """Your own table: feature columns + a target column; classification or regression."""
    return read_csv_bundle(params)
