"""Data as users have it, made from what packages ship (no download): used by test_own_data.py and
test_predict_inputs.py.

    photo_folder(root)      # scikit-learn's two sample photos cut into patches of mixed sizes, modes and formats,
                            # plus a .DS_Store, a notes.txt and a truncated JPEG
    patients_csv(path)      # scikit-learn's breast-cancer table with a text column and empty cells
    diabetes_csv(path)      # scikit-learn's diabetes table (regression) with a text column and empty cells
    texts_csv(path)         # short texts written here, three topics
"""
from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

BROKEN = ("notes.txt", "truncated.jpg")  # what photo_folder plants besides the photos and the .DS_Store


def sample_photos() -> dict[str, np.ndarray]:
    """{"china": (427, 640, 3), "flower": (427, 640, 3)} uint8: the photos scikit-learn ships."""
    from sklearn.datasets import load_sample_images

    d = load_sample_images()
    return {Path(f).stem: img for f, img in zip(d.filenames, d.images, strict=True)}


def patch(img: np.ndarray, rng: np.random.Generator, low: int = 40, high: int = 140) -> Image.Image:
    """A random crop of random height and width (low..high) of the photo."""
    h, w = int(rng.integers(low, high)), int(rng.integers(low, high))
    top, left = int(rng.integers(0, img.shape[0] - h)), int(rng.integers(0, img.shape[1] - w))
    return Image.fromarray(img[top:top + h, left:left + w])


def save_mixed(im: Image.Image, folder: Path, i: int) -> Path:
    """Every 3rd as grayscale, every 4th a PNG (every 8th RGBA, every 12th a palette image), else JPEG."""
    if i % 3 == 0:
        im = im.convert("L")
    if i % 4 == 0:
        im = im.convert("RGBA") if i % 8 == 0 else im.convert("P") if i % 12 == 0 else im
        path = folder / f"p{i:03d}.png"
        im.save(path)
    else:
        path = folder / f"p{i:03d}.jpg"
        im.save(path, quality=90)
    return path


def photo_folder(root: Path, per_class: int = 24, seed: int = 0) -> Path:
    """root/<china|flower>/ patches of mixed sizes, RGB/gray/RGBA/palette, JPEG/PNG, plus the usual strays."""
    rng = np.random.default_rng(seed)
    for name, img in sample_photos().items():
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            save_mixed(patch(img, rng), folder, i)
    (root / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1" + bytes(64))
    (root / "china" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1" + bytes(64))
    (root / "flower" / "notes.txt").write_text("taken in spring\n")
    buf = io.BytesIO()
    patch(sample_photos()["china"], rng).save(buf, "JPEG", quality=90)
    (root / "china" / "truncated.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    return root


def new_photos(folder: Path, seed: int = 1) -> dict[str, str]:
    """Photos to predict, of other sizes than training: {path: true class}."""
    folder.mkdir(parents=True, exist_ok=True)
    rng, truth = np.random.default_rng(seed), {}
    for name, img in sample_photos().items():
        for low, high in [(150, 260), (60, 90), (200, 400)]:
            truth[str(save_mixed(patch(img, rng, low, high), folder, len(truth)))] = name
    return truth


def exif_rotated(path: Path, img: np.ndarray) -> None:
    """A JPEG stored sideways (transposed pixels) with EXIF orientation 6: viewers, and trainlab, turn it upright."""
    im = Image.fromarray(img).transpose(Image.Transpose.ROTATE_90)  # what a camera held sideways stores
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    im.save(path, exif=exif, quality=95)


def patients_csv(path: Path, seed: int = 0) -> pd.DataFrame:
    """Breast-cancer (569 rows, 30 numbers) + a text column `region`, a text target `diagnosis`, 12 empty cells."""
    from sklearn.datasets import load_breast_cancer

    d = load_breast_cancer(as_frame=True)
    rng = np.random.default_rng(seed)
    df = d.frame.drop(columns="target")
    df["region"] = rng.choice(["north", "south", "east"], size=len(df))
    df["diagnosis"] = np.asarray(d.target_names)[d.target.to_numpy()]
    for row, col in zip(rng.choice(len(df), 12, replace=False), rng.choice(30, 12), strict=True):
        df.iloc[row, col] = np.nan
    df.to_csv(path, index=False)
    return df


def diabetes_csv(path: Path, seed: int = 0) -> pd.DataFrame:
    """Diabetes (442 rows, 10 numbers, disease progression) + a text column `clinic` and 8 empty cells."""
    from sklearn.datasets import load_diabetes

    df = load_diabetes(as_frame=True).frame.rename(columns={"target": "progression"})
    rng = np.random.default_rng(seed)
    df.insert(2, "clinic", rng.choice(["city", "rural"], size=len(df)))
    for row, col in zip(rng.choice(len(df), 8, replace=False), rng.choice([0, 3, 4, 5], 8), strict=True):
        df.iloc[row, col] = np.nan
    df.to_csv(path, index=False)
    return df


TEXTS = {
    "sport": ["the striker scored twice in the second half", "a late goal won the match for the home team",
              "the goalkeeper saved a penalty in extra time", "the coach praised the defence after the game",
              "our team lost the final on penalties", "she ran the marathon in under three hours",
              "the referee showed a red card to the captain", "fans sang all match long in the stadium",
              "the tennis player won in straight sets", "the cyclist climbed the mountain stage first",
              "the league title was decided on the last day", "he broke the world record in the sprint",
              "the team trained hard before the cup final", "a brilliant pass set up the winning goal"],
    "weather": ["heavy rain is expected tomorrow morning", "the forecast says sunny skies all week",
                "strong wind and snow closed the mountain road", "it will be cloudy with light showers",
                "temperatures drop below freezing tonight", "a storm warning was issued for the coast",
                "fog will clear by noon and the sun comes out", "the summer heat wave continues this weekend",
                "expect thunder and hail in the afternoon", "a cold front brings rain and cooler air",
                "snow is falling in the hills since morning", "the humid air makes the night warm",
                "sunshine and a gentle breeze for the weekend", "the river flooded after days of rain"],
    "food": ["add the garlic and fry the onions gently", "this soup needs more salt and pepper",
             "bake the bread for forty minutes", "the cake is made with butter sugar and eggs",
             "slice the tomatoes and season the salad", "boil the pasta in plenty of salted water",
             "the curry tastes better the next day", "whisk the cream until it is stiff",
             "roast the vegetables with olive oil", "the pizza dough rests for two hours",
             "grill the fish and serve it with lemon", "stir the rice so it does not stick",
             "a pinch of cinnamon makes the pie sweet", "fresh herbs make the sauce taste great"],
}


# (subjects, verbs, things) per topic: short sentences in the words each topic keeps using
PHRASES = {
    "sport": (["the team", "our striker", "the coach", "the captain", "the young player", "the home side"],
              ["won", "lost", "scored in", "played", "trained for", "celebrated"],
              ["the match", "the final", "the derby", "the cup game", "the league", "the second half"]),
    "weather": (["heavy rain", "the wind", "a storm", "thick fog", "snow", "the sun"],
                ["hits", "returns to", "covers", "moves over", "warms", "cools"],
                ["the coast", "the hills", "the city tonight", "the valley", "the north", "the region tomorrow"]),
    "food": (["the cook", "my grandmother", "the baker", "our chef", "my friend", "the waiter"],
             ["bakes", "fries", "serves", "cooks", "seasons", "stirs"],
             ["the soup", "fresh bread", "the pasta", "a spicy curry", "the salad", "the onions"]),
}


def texts_csv(path: Path, per_topic: int = 30, seed: int = 0) -> pd.DataFrame:
    """Short texts in three topics (text,label): the sentences of TEXTS, then phrases from PHRASES."""
    rng = np.random.default_rng(seed)
    rows = [(t, label) for label, texts in TEXTS.items() for t in texts]
    for label, (subjects, verbs, things) in PHRASES.items():
        rows += [(f"{rng.choice(subjects)} {rng.choice(verbs)} {rng.choice(things)}", label)
                 for _ in range(per_topic - len(TEXTS[label]))]
    df = pd.DataFrame(rows, columns=["text", "label"])
    df.to_csv(path, index=False)
    return df


# ----------------------------------------------------------------------------- trained runs, once per session

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
# name -> (example, data maker, file name, overrides): tiny versions of the four "your own data" examples
RUNS = {
    "photos": ("image-folder.yaml", photo_folder, "photos",
               ["data.image_size=[24,24]", "model.channels=[8,16]", "model.hidden=[16]", "train.epochs=8"]),
    "patients": ("csv-classification.yaml", patients_csv, "patients.csv",
                 ["data.target=diagnosis", "train.epochs=8"]),
    "diabetes": ("csv-regression.yaml", diabetes_csv, "diabetes.csv",
                 ["data.target=progression", "train.epochs=40"]),
    "texts": ("text-csv.yaml", texts_csv, "texts.csv", ["train.epochs=40", "train.early_stopping=null"]),
}


def trained(factory, name: str) -> tuple[Path, Path, str]:
    """(run directory, data path, what training printed) for RUNS[name], trained once per session."""
    from trainlab.cli.main import main

    base = factory.getbasetemp() / "own-data"
    out, data, log = base / f"run-{name}", base / RUNS[name][2], base / f"{name}.log"
    if not (out / "result.json").is_file():
        example, make, _, overrides = RUNS[name]
        base.mkdir(exist_ok=True)
        make(data)
        stdout = io.StringIO()
        with contextlib.redirect_stdout(stdout):
            code = main(["train", str(EXAMPLES / example), f"data.path={data}", "--out", str(out), "--overwrite",
                         "train.num_threads=1", *overrides])
        log.write_text(stdout.getvalue())
        assert code == 0, f"training {name} failed:\n{stdout.getvalue()[-2000:]}"
    return out, data, log.read_text()
