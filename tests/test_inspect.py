"""trainlab inspect: top losses equal an independently recomputed cross-entropy, confused pairs match the matrix."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml
from sklearn.datasets import load_digits
from sklearn.metrics import confusion_matrix
from tests.conftest import tiny_config

from trainlab.cli.main import main
from trainlab.use.inspect import confused_pairs, split_predictions, top_losses
from trainlab.use.loaded import load_run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("inspect")
    cfg = tmp / "c.yaml"
    # a weak model (1 epoch, small val split share) leaves enough mistakes to rank and pair
    cfg.write_text(yaml.safe_dump(tiny_config(data={"val_fraction": 0.2}, train={"epochs": 1})))
    assert main(["train", str(cfg), "--out", str(tmp / "run")]) == 0
    return tmp / "run"


def recomputed_losses(run_dir) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(val pool indices, labels, cross-entropy) straight from sklearn's digits and the saved eval pipeline."""
    run = load_run(run_dir)
    val = np.array(json.loads((run_dir / "splits.json").read_text())["val"])
    d = load_digits()
    x = torch.from_numpy(np.round(d.images[val] * (255.0 / 16.0)).astype(np.uint8)).unsqueeze(1)  # (N, 1, 8, 8)
    y = torch.from_numpy(d.target[val]).long()
    with torch.no_grad():
        logp = run.model(run.eval_pipeline()(x)).log_softmax(-1)
    return val, y.numpy(), -logp[torch.arange(len(y)), y].numpy()


def test_top_losses_are_the_highest_cross_entropies(run_dir):
    val, labels, losses = recomputed_losses(run_dir)
    top = top_losses(run_dir, split="val", k=10)
    got = [t["loss"] for t in top]
    assert got == sorted(got, reverse=True)
    expected = np.sort(losses)[::-1][:10]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    for t in top:  # each entry is the sample it names: its index, label and loss agree with the recomputation
        pos = int(np.flatnonzero(val == t["index"])[0])
        assert t["true"] == str(labels[pos])
        assert t["loss"] == pytest.approx(float(losses[pos]), rel=1e-4, abs=1e-5)
        assert t["image"].shape == (1, 8, 8)
        assert t["probability"] >= t["true_probability"]


def test_confused_pairs_match_the_confusion_matrix(run_dir):
    p = split_predictions(run_dir, "val")
    classes = [str(c) for c in range(10)]
    pairs = confused_pairs(p, classes, k=50, examples=2)
    cm = confusion_matrix(p.labels, p.predicted, labels=range(10))
    off = [(int(cm[t, q]), t, q) for t in range(10) for q in range(10) if t != q and cm[t, q]]
    assert len(pairs) == len(off) > 0
    for c in pairs:
        assert c["count"] == cm[int(c["true"]), int(c["predicted"])]
        assert all(e["true"] == c["true"] and e["predicted"] == c["predicted"] for e in c["examples"])
    counts = [c["count"] for c in pairs]
    assert counts == sorted(counts, reverse=True) and counts[0] == max(o[0] for o in off)


def test_inspect_command_writes_page_and_counts_test(run_dir, cli, tmp_path):
    code, out, err = cli("inspect", run_dir, "--top", "5", "--out", tmp_path / "look")
    assert code == 0, err
    page = (tmp_path / "look" / "inspect.html").read_text()
    result = json.loads((tmp_path / "look" / "result.json").read_text())
    assert len(result["top_losses"]) == 5 and page.count('<div class="card">') >= 5
    assert "data:image/png;base64," in page and "http" not in page.replace("http-equiv", "")
    before = json.loads((run_dir / "manifest.json").read_text()).get("test_evaluations", 0)
    for _ in (1, 2):
        code, _, err = cli("inspect", run_dir, "--split", "test", "--top", "2", "--out", tmp_path / "t")
        assert code == 0
    assert json.loads((run_dir / "manifest.json").read_text())["test_evaluations"] == before + 2
    assert "warning" in err  # the second look at the test split is flagged


def test_inspect_bad_top(run_dir, cli):
    code, _, err = cli("inspect", run_dir, "--top", "0")
    assert code == 2 and "--top" in err


def test_report_mistakes_section_is_the_inspect_ranking(run_dir):
    """The training run's report lists the same highest-loss validation samples `trainlab inspect` ranks."""
    result = json.loads((run_dir / "result.json").read_text())
    top = top_losses(run_dir, split="val", k=8)
    assert [s["index"] for s in result["mistakes"]["top_losses"]] == [t["index"] for t in top]
    p = split_predictions(run_dir, "val")
    assert result["mistakes"]["errors"] == int((p.predicted != p.labels).sum()) > 0
    assert result["mistakes"]["samples"] == len(p.labels)
    assert result["mistakes"]["image"] == "mistakes.png" and "mistakes.png" in result["plots"]
    page = (run_dir / "report.html").read_text()
    assert '<section id="mistakes"><h2>Mistakes</h2>' in page
    assert all(f"<td>{t['index']}</td>" in page for t in top)


def test_top_losses_of_a_users_own_dataset():
    """A course-style Dataset (uint8 pixels scaled in __getitem__) and a plain model: the ranking is the
    cross-entropy recomputed by hand, and the worst sample is the one we mislabelled on purpose."""
    from torch.utils.data import Dataset

    from trainlab.use.inspect import dataset_top_losses

    d = load_digits()

    class CourseDataset(Dataset):
        def __init__(self):
            self.x = torch.from_numpy(d.images[:300]).to(torch.uint8)  # (300, 8, 8) in 0..16
            self.y = torch.from_numpy(d.target[:300]).long().clone()
            self.y[7] = (self.y[7] + 5) % 10  # one wrong label

        def __len__(self):
            return len(self.y)

        def __getitem__(self, i):
            return self.x[i].float().flatten() / 16.0, int(self.y[i])

    ds = CourseDataset()
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    x, y = torch.stack([ds[i][0] for i in range(len(ds))]), ds.y
    for _ in range(100):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), torch.from_numpy(d.target[:300]).long()).backward()
        opt.step()  # trained on the TRUE labels: sample 7's given label contradicts the model
    top = dataset_top_losses(model, ds, k=5, batch_size=64)
    with torch.no_grad():
        losses = torch.nn.functional.cross_entropy(model(x), y, reduction="none")
    assert [t["index"] for t in top] == torch.argsort(-losses)[:5].tolist()
    assert top[0]["index"] == 7 and top[0]["true"] == int(y[7]) and top[0]["predicted"] == int(d.target[7])
    assert top[0]["loss"] == pytest.approx(float(losses[7]), rel=1e-5)
