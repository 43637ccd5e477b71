"""Every dataset reader on small generated files in the real formats (MNIST IDX, CIFAR pickle, folders, CSV)."""
from __future__ import annotations

import pickle
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from trainlab.core.errors import UserError
from trainlab.data.catalog import DATASETS
from trainlab.data.cifar import CIFAR10Pickle
from trainlab.data.prepare import load_data
from trainlab.run.config import build_config


def cfg_for(name: str, **data):
    return build_config({"data": {"name": name, **data}, "model": {"name": "mlp"}})


def write_idx(folder, prefix: str, images: np.ndarray, labels: np.ndarray) -> None:
    """MNIST's IDX format: big-endian magic, dims, then raw uint8."""
    folder.mkdir(parents=True, exist_ok=True)
    n, h, w = images.shape
    (folder / f"{prefix}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 2051, n, h, w) + images.tobytes())
    (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, n) + labels.tobytes())


@pytest.fixture
def fake_mnist(tmp_path):
    rng = np.random.default_rng(0)
    tr_x, tr_y = rng.integers(0, 256, (50, 28, 28), dtype=np.uint8), rng.integers(0, 10, 50).astype(np.uint8)
    te_x, te_y = rng.integers(0, 256, (20, 28, 28), dtype=np.uint8), rng.integers(0, 10, 20).astype(np.uint8)
    for cls in ("MNIST", "FashionMNIST"):
        write_idx(tmp_path / cls / "raw", "train", tr_x, tr_y)
        write_idx(tmp_path / cls / "raw", "t10k", te_x, te_y)
    return tmp_path, (tr_x, tr_y, te_x, te_y)


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_mnist_idx(fake_mnist, name):
    root, (tr_x, tr_y, te_x, te_y) = fake_mnist
    b = DATASETS.get(name)(cfg_for(name, root=str(root)).data, None)
    assert b.pool.x.shape == (50, 1, 28, 28) and b.pool.x.dtype == torch.uint8
    assert torch.equal(b.pool.x[:, 0], torch.from_numpy(tr_x)) and torch.equal(b.pool.y, torch.from_numpy(tr_y).long())
    assert torch.equal(b.test.x[:, 0], torch.from_numpy(te_x)) and len(b.classes) == 10


@pytest.mark.parametrize("name, cls", [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_mnist_files_on_disk_read_as_torchvision_reads_them_without_importing_it(fake_mnist, name, cls):
    import torchvision.datasets  # the reference reader; trainlab's own skips its 1.4 s import

    root, _ = fake_mnist
    b = DATASETS.get(name)(cfg_for(name, root=str(root)).data, None)
    ref = getattr(torchvision.datasets, cls)(str(root), train=True)
    assert torch.equal(b.pool.x[:, 0], ref.data) and torch.equal(b.pool.y, ref.targets)
    assert b.classes == [str(c).split(" - ")[-1] for c in ref.classes]
    code = (f"import sys; from trainlab.data.catalog import DATASETS; from trainlab.run.config import build_config; "
            f"DATASETS.get({name!r})(build_config({{'data': {{'name': {name!r}, 'root': {str(root)!r}}}, "
            f"'model': {{'name': 'mlp'}}}}).data, None); print('torchvision' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


@pytest.mark.parametrize("cut", [3, 20, 100])
def test_a_truncated_idx_file_is_one_line_naming_it(fake_mnist, cut):
    root, _ = fake_mnist
    f = root / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
    f.write_bytes(f.read_bytes()[:-cut] if cut > 16 else f.read_bytes()[:cut])
    with pytest.raises(UserError) as e:
        DATASETS.get("mnist")(cfg_for("mnist", root=str(root)).data, None)
    msg = str(e.value)
    assert msg.startswith("cannot read mnist from") and "t10k-images-idx3-ubyte" in msg and "\n" not in msg
    if cut > 16:
        assert f"holds {20 * 28 * 28 - cut} bytes after its header, its header says {20 * 28 * 28}" in msg


def test_mnist_missing_root_is_one_line_with_layout_and_hint(tmp_path):
    with pytest.raises(UserError) as e:
        DATASETS.get("mnist")(cfg_for("mnist", root=str(tmp_path / "nope")).data, None)
    assert "MNIST/raw" in str(e.value) and "data.download=true" in str(e.value)


def write_cifar(root, n_train_per_batch: int = 6, n_test: int = 7, seed: int = 0) -> None:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for name, n in [*[(f"data_batch_{i}", n_train_per_batch) for i in range(1, 6)], ("test_batch", n_test)]:
        batch = {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), "labels": rng.integers(0, 10, n).tolist(),
                 "batch_label": name, "filenames": [f"{i}.png" for i in range(n)]}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": names, "num_cases_per_batch": n_train_per_batch, "num_vis": 3072}, f)


@pytest.mark.parametrize("train", [True, False])
def test_cifar_reader_matches_torchvision(tmp_path, monkeypatch, train):
    from torchvision.datasets import CIFAR10
    from torchvision.transforms.v2.functional import pil_to_tensor

    write_cifar(tmp_path)
    monkeypatch.setattr(CIFAR10, "_check_integrity", lambda self: True)  # our generated files have other md5s
    monkeypatch.setattr("torchvision.datasets.cifar.check_integrity", lambda *a, **k: True)
    ours, theirs = CIFAR10Pickle(tmp_path, train=train), CIFAR10(str(tmp_path), train=train, download=False)
    assert len(ours) == len(theirs) == (30 if train else 7)
    assert ours.classes == theirs.classes
    for i in range(len(ours)):
        img, label = ours[i]
        ref_img, ref_label = theirs[i]
        assert label == ref_label
        assert torch.equal(img, pil_to_tensor(ref_img))
    x, y = ours.tensors()
    assert torch.equal(x[3], ours[3][0]) and y.tolist() == ours.targets


def test_cifar_refuses_code_in_pickle(tmp_path):
    write_cifar(tmp_path)
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    with open(tmp_path / "cifar-10-batches-py" / "test_batch", "wb") as f:
        pickle.dump({"data": Evil(), "labels": [0]}, f)
    with pytest.raises(UserError, match="refusing"):
        CIFAR10Pickle(tmp_path, train=False)
    assert not marker.exists()


def make_image_folder(root, classes=("cat", "dog"), per_class: int = 6, size=(10, 12)) -> None:
    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(root / c / f"{i}.png")


def test_image_folder(tmp_path):
    make_image_folder(tmp_path / "imgs")
    b = DATASETS.get("image_folder")(*_cfg_params("image_folder", path=str(tmp_path / "imgs"), image_size=[8, 8]))
    assert b.classes == ["cat", "dog"] and len(b.pool) == 12
    x, y = b.pool[7]
    assert x.shape == (3, 8, 8) and x.dtype == torch.uint8 and int(y) == 1
    assert b.pool.targets.tolist() == [0] * 6 + [1] * 6


def test_image_folder_skips_strays_and_reports_them(tmp_path):
    make_image_folder(tmp_path / "imgs")
    (tmp_path / "imgs" / "dog" / "notes.txt").write_text("hello")
    (tmp_path / "imgs" / "dog" / ".DS_Store").write_bytes(b"\x00Bud1")
    (tmp_path / "imgs" / "cat" / "broken.png").write_bytes(b"not a png at all")
    b = DATASETS.get("image_folder")(*_cfg_params("image_folder", path=str(tmp_path / "imgs"), image_size=[8, 8]))
    assert len(b.pool) == 12 and b.pool.targets.tolist() == [0] * 6 + [1] * 6
    report = b.meta["intake"]["train"]
    assert (report["files"], report["used"], report["skipped"]) == (14, 12, 2)  # the hidden file is not counted
    reasons = {Path(s["path"]).name: s["reason"] for s in report["skipped_files"]}
    assert reasons["notes.txt"] == "not an image file (.txt)" and "cannot identify image" in reasons["broken.png"]


def test_image_folder_bad_files_error_names_every_bad_image(tmp_path):
    make_image_folder(tmp_path / "imgs")
    (tmp_path / "imgs" / "cat" / "broken.png").write_bytes(b"not a png at all")
    (tmp_path / "imgs" / "dog" / "empty.jpg").write_bytes(b"")
    cfg = build_config({"data": {"name": "image_folder", "path": str(tmp_path / "imgs"), "image_size": [8, 8],
                                 "bad_files": "error"}})
    with pytest.raises(UserError, match="2 unreadable image") as e:
        load_data(cfg)
    assert "broken.png" in str(e.value) and "empty.jpg" in str(e.value) and "data.bad_files=skip" in str(e.value)


def _cfg_params(name, **data):
    cfg = cfg_for(name, **data)
    return cfg.data, cfg.data.params


def test_csv_classification_with_categorical(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("a,color,label\n1.0,red,yes\n2.0,blue,no\n3.0,red,yes\n4.5,green,no\n")
    b = DATASETS.get("csv")(*_cfg_params("csv", path=str(p), target="label"))
    assert b.task == "classification" and b.classes == ["no", "yes"]
    assert b.meta["features"] == ["a", "color=blue", "color=green", "color=red"]
    assert b.pool.x.tolist()[0] == [1.0, 0.0, 0.0, 1.0] and b.pool.y.tolist() == [1, 0, 1, 0]


def test_csv_regression_default_target_is_last_column(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("x1,x2,y\n" + "".join(f"{i},{i * 2},{i * 0.37:.3f}\n" for i in range(30)))
    b = DATASETS.get("csv")(*_cfg_params("csv", path=str(p)))
    assert b.task == "regression" and b.pool.y.dtype == torch.float32 and b.num_outputs == 1
    assert b.pool.y[10].item() == pytest.approx(3.7)


@pytest.mark.parametrize("content, params, needle", [
    ("a,b\n1,0\n2x,1\n", {"categorical": "error"}, "non-numeric value '2x' in numeric column 'a'"),
    ("a,b,c\n1,,0\n2,3,1\n", {}, "missing value"),
    ("a,b\n1,0\n", {"target": "zz"}, "target column 'zz'"),
    ("a,b\n", {}, "no data rows"),
    ("a,b,c\n1,x,0\n2,3,1\n", {"categorical": "error"}, "column 'b'"),
])
def test_csv_bad_input(tmp_path, content, params, needle):
    p = tmp_path / "t.csv"
    p.write_text(content)
    with pytest.raises(UserError, match=needle):
        DATASETS.get("csv")(*_cfg_params("csv", path=str(p), **params))


def test_csv_missing_drop(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("a,b,c\n1,,0\n2,3,1\n4,5,0\n")
    b = DATASETS.get("csv")(*_cfg_params("csv", path=str(p), missing="drop"))
    assert len(b.pool) == 2


def test_digits_is_real_data():
    b = DATASETS.get("digits")(cfg_for("digits").data, None)
    assert b.pool.x.shape == (1797, 1, 8, 8) and b.test is None
    assert int(b.pool.x.max()) == 255 and torch.bincount(b.pool.y).tolist()[0] == 178
