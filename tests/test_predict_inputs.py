"""predict as users call it: files, folders, globs and options anywhere; one error row per bad input; exit codes;
result.json + predictions.csv; `load_run(...).predict` on paths, PIL images, arrays, tensors, texts and rows;
images decoded the same way everywhere (EXIF orientation, any mode)."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from conftest import assert_one_line_error
from own_data import exif_rotated, new_photos, sample_photos, trained
from trainlab.core.errors import UserError
from trainlab.data.images import decode_image, load_image
from trainlab.data.text import encode
from trainlab.use.loaded import load_run


@pytest.fixture(scope="module")
def photo_run(tmp_path_factory):
    return trained(tmp_path_factory, "photos")[0]


@pytest.fixture
def photos(tmp_path):
    return list(new_photos(tmp_path / "new"))


# ----------------------------------------------------------------------------- load_run(...).predict

def test_predict_proba_takes_paths_pil_images_arrays_and_tensors_alike(photo_run, photos):
    run = load_run(photo_run)
    by_path = run.predict_proba(photos)  # (6, 2): files of other sizes, gray, RGBA, palette
    assert by_path.shape == (6, 2) and torch.allclose(by_path.sum(1), torch.ones(6))
    rgb = [np.asarray(Image.open(f).convert("RGB")) for f in photos]  # (H, W, 3) uint8, as PIL gives them
    for i, f in enumerate(photos):
        want = run.predict_proba(f)  # a batch of one: float sums may differ from the batch of 6 in the last bit
        assert torch.allclose(want, by_path[i:i + 1], atol=1e-6)
        assert torch.equal(run.predict_proba(Image.open(f)), want)
        assert torch.equal(run.predict_proba(rgb[i]), want)  # numpy (H, W, C)
        assert torch.equal(run.predict_proba(torch.tensor(rgb[i]).permute(2, 0, 1)), want)  # tensor (C, H, W)
    assert torch.allclose(run.predict_proba([Image.open(photos[0]), photos[1]]), by_path[:2], atol=1e-6)
    assert run.predict(photos) == [run.classes[int(i)] for i in by_path.argmax(1)]


def test_predict_proba_on_batches_uint8_and_float(photo_run, photos):
    run = load_run(photo_run)
    x = torch.stack([load_image(f, (24, 24), 3) for f in photos])  # (6, 3, 24, 24) uint8: the stored format
    want = run.predict_outputs(x).softmax(-1)
    assert torch.equal(run.predict_proba(x), want)
    assert torch.allclose(run.predict_proba(x.float() / 255), want, atol=1e-6)  # floats are 0..1
    assert torch.allclose(run.predict_proba(x.permute(0, 2, 3, 1).numpy()), want)  # numpy (B, H, W, C)
    big = torch.rand(2, 3, 50, 40)  # float images of another size: resized (antialiased) inside
    assert run.predict_proba(big).shape == (2, 2)
    gray = torch.randint(0, 256, (31, 47), dtype=torch.uint8)  # one gray (H, W) image for an RGB run
    assert run.predict_proba(gray).shape == (1, 2)


@pytest.mark.parametrize("bad, needle", [
    (torch.rand(1, 3, 24, 24) * 4 - 2, "taken as 0..1"),  # already normalized: would be normalized twice
    (np.full((24, 24, 3), 300, dtype=np.int32), "0..255"),
    (torch.zeros(2, 2, 3, 24, 24), "cannot read an array of shape"),
    (torch.zeros(1, 2, 24, 24, dtype=torch.uint8), "2 channels"),
    (42, "cannot predict a int"),
    ([], "no images"),
])
def test_predict_refuses_what_it_cannot_read_in_one_line(photo_run, bad, needle):
    with pytest.raises(UserError, match=needle):
        load_run(photo_run).predict_proba(bad)


def test_table_rows_from_python_use_the_run_policies(tmp_path_factory):
    run_dir, csv, _ = trained(tmp_path_factory, "patients")
    run = load_run(run_dir)
    df = pd.read_csv(csv).dropna().head(3).drop(columns="diagnosis")
    want = run.predict_proba(df)
    assert torch.equal(run.predict_proba(df.to_dict("records")), want)
    assert torch.allclose(run.predict_proba(df.iloc[0].to_dict()), want[:1], atol=1e-6)  # a batch of one
    with pytest.warns(UserWarning, match="unseen category 'west' in column 'region'"):
        run.predict({**df.iloc[0].to_dict(), "region": "west"})
    with pytest.raises(UserError, match="row 1 cannot be predicted: missing value in column 'mean radius'"):
        run.predict(df.assign(**{"mean radius": [1.0, None, 2.0]}))
    with pytest.raises(UserError, match="feature column 'region' missing"):
        run.predict(df.drop(columns="region"))
    with pytest.raises(UserError, match="regression"):
        load_run(trained(tmp_path_factory, "diabetes")[0]).predict_proba(df)


def test_text_runs_take_strings_and_token_ids(tmp_path_factory):
    run = load_run(trained(tmp_path_factory, "texts")[0])
    probs = run.predict_proba(["the team won the match", "snow covers the hills"])
    tokens = encode(["the team won the match"], run.data["meta"])  # (1, max_len) ids, as the dataset stores them
    assert torch.allclose(run.predict_proba(tokens[0]), probs[:1], atol=1e-6)  # one sample of ids
    assert torch.allclose(run.predict_outputs(tokens).softmax(-1), probs[:1], atol=1e-6)
    assert run.predict("the team won the match") == [run.classes[int(probs[0].argmax())]]


# ----------------------------------------------------------------------------- trainlab predict

def test_cli_predict_folders_globs_options_anywhere_and_error_rows(photo_run, photos, tmp_path, cli):
    folder = tmp_path / "new"
    (folder / "notes.txt").write_text("holiday")
    (folder / ".DS_Store").write_bytes(b"\x00Bud1")
    good = (folder / "p001.jpg").read_bytes()
    (folder / "sub").mkdir()
    (folder / "sub" / "cut.jpg").write_bytes(good[: len(good) // 2])
    shutil.copy(photos[0], tmp_path / "extra.png")
    code, out, err = cli("predict", photo_run, "--top", "1", folder, tmp_path / "*.png", tmp_path / "gone.jpg",
                         "--out", tmp_path / "p")
    assert code == 3 and "3 of 10 inputs could not be predicted" in err
    lines = dict(line.split(": ", 1) for line in out.splitlines())
    assert set(lines) == {*photos, str(folder / "notes.txt"), str(folder / "sub" / "cut.jpg"),
                          str(tmp_path / "extra.png"), str(tmp_path / "gone.jpg")}  # no .DS_Store
    assert lines[str(folder / "notes.txt")] == "error: not an image file (.txt)"
    assert "truncated" in lines[str(folder / "sub" / "cut.jpg")]
    assert lines[str(tmp_path / "gone.jpg")] == "error: file not found"
    assert lines[str(tmp_path / "extra.png")] == lines[photos[0]]  # the glob found the copy
    result = json.loads((tmp_path / "p" / "result.json").read_text())
    assert (result["inputs"], result["predicted"], result["failed"]) == (10, 7, 3)
    table = pd.read_csv(tmp_path / "p" / "predictions.csv")
    assert list(table.columns) == ["input", "prediction", "probability", "top", "error"]
    assert len(table) == 10 and table["error"].notna().sum() == 3
    assert table["probability"].dropna().between(0.5, 1).all()  # top-1 of two classes


def test_cli_predict_exit_codes(photo_run, photos, tmp_path, cli):
    code, out, _ = cli("predict", photo_run, *photos[:2])
    assert code == 0 and len(out.splitlines()) == 2
    (tmp_path / "bad.png").write_text("not an image")
    code, _, err = cli("predict", photo_run, tmp_path / "bad.png", tmp_path / "none.png")
    assert_one_line_error(code, err, "no input could be predicted (2 failed)", "bad.png")
    code, _, err = cli("predict", photo_run, "--top", "0", photos[0])
    assert_one_line_error(code, err, "--top")


def test_cli_predict_csv_file_problems_are_rows(tmp_path_factory, tmp_path, cli):
    run_dir, csv, _ = trained(tmp_path_factory, "patients")
    df = pd.read_csv(csv).dropna().head(4)
    df["mean radius"] = df["mean radius"].astype(object)
    df.loc[df.index[1], "mean radius"] = "n/a?"
    df.to_csv(tmp_path / "rows.csv", index=False)
    df.drop(columns="region").to_csv(tmp_path / "noregion.csv", index=False)
    code, out, _ = cli("predict", run_dir, tmp_path / "rows.csv", tmp_path / "noregion.csv")
    assert code == 3
    lines = out.splitlines()
    assert len(lines) == 5 and lines[1].startswith("rows.csv:3: error: non-numeric or infinite value 'n/a?'")
    assert lines[4].startswith(f"{tmp_path / 'noregion.csv'}: error: no feature column 'region'")


def test_cli_predict_text_csv_without_the_text_column_is_a_row(tmp_path_factory, tmp_path, cli):
    run_dir, _, _ = trained(tmp_path_factory, "texts")
    (tmp_path / "wrong.csv").write_text("message\nhello\n")
    code, out, _ = cli("predict", run_dir, "the coach praised the team", tmp_path / "wrong.csv")
    assert code == 3 and "error: text column 'text' not in" in out.splitlines()[1]


# ----------------------------------------------------------------------------- decoding

def test_exif_orientation_is_applied(tmp_path):
    upright = sample_photos()["flower"][100:250, 200:300]  # (150, 100, 3): taller than wide
    exif_rotated(tmp_path / "sideways.jpg", upright)
    with Image.open(tmp_path / "sideways.jpg") as im:
        assert im.size == (150, 100)  # stored sideways
    x = load_image(tmp_path / "sideways.jpg", (150, 100), 3)  # (3, 150, 100)
    error = (x.permute(1, 2, 0).float() - torch.tensor(upright).float()).abs().mean()
    assert error < 4  # JPEG noise; unrotated (and resized to fit) it would be far off
    sideways = torch.from_numpy(np.array(Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90)
                                           .resize((100, 150))))
    assert (x.permute(1, 2, 0).float() - sideways.float()).abs().mean() > 20


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "P", "CMYK", "I;16"])
def test_every_mode_becomes_the_configured_channels(mode, tmp_path):
    rgb = Image.fromarray(sample_photos()["china"][200:240, 300:360])  # buildings: texture in every channel
    im = rgb.convert(mode) if mode != "I;16" else rgb.convert("L").convert("I;16")
    path = tmp_path / ("x.jpg" if mode == "CMYK" else "x.png")
    im.save(path)
    assert load_image(path, (20, 30), 3).shape == (3, 20, 30)
    gray = load_image(path, (20, 30), 1)
    assert gray.shape == (1, 20, 30) and gray.dtype == torch.uint8 and gray.float().std() > 5  # not blank
    assert torch.equal(decode_image(Image.open(path), (20, 30), 1), gray)
