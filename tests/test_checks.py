"""The diagnosis as its own package (diagnose/): a new check is one registered function - it runs, prints, lands in
`trainer.diagnosis` and report.html with its title, with no other edit - and the guide's history lives in last.pt,
so a run resumed through the Python API diagnoses like one that was never interrupted."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from trainlab.core.errors import DamagedRun
from trainlab.diagnose import checks
from trainlab.diagnose.checks import Probe
from trainlab.diagnose.curves import Signals
from trainlab.diagnose.finding import Finding
from trainlab.engine.trainer import Trainer
from trainlab.observe import report


def digits_split():
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = torch.tensor((x - 8.0) / 6.0, dtype=torch.float32)
    y = torch.tensor(y)
    return TensorDataset(x[:1400], y[:1400]), TensorDataset(x[1400:], y[1400:])


def net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 10))


@pytest.fixture
def registry(monkeypatch):
    """A private copy of the registry: what a test registers is gone afterwards."""
    monkeypatch.setattr(checks, "CHECKS", dict(checks.CHECKS))
    return checks


def test_a_new_check_is_one_registered_function(registry, capsys):
    seen: list[Probe] = []

    @registry.pitfall("few_features", "Few input features", applies=lambda p: p.x.ndim == 2)
    def few_features(p: Probe) -> Finding | None:
        """Tabular inputs with fewer than 100 features."""
        seen.append(p)
        n = p.x.shape[1]
        return Finding("few_features", "warning", f"only {n} input features", ["collect more features"],
                       {"features": n}, "before") if n < 100 else None

    @registry.pitfall("never", "Never applies", applies=lambda p: False)
    def never(p: Probe) -> Finding:
        raise AssertionError("a check that does not apply is not run")

    @registry.curve("epochs_seen", "Epochs seen")
    def epochs_seen(s: Signals) -> dict:
        return {"status": "ok", "message": f"{len(s.history)} epochs", "remedies": [], "epochs": len(s.history)}

    train, val = digits_split()
    trainer = Trainer(net(), lr=3e-3, verbose=True, num_threads=1, baselines=False)
    trainer.fit(train, val, epochs=2, batch_size=64)
    out = capsys.readouterr().out.splitlines()
    assert len(seen) == 1 and seen[0].num_outputs == 10 and seen[0].samples == 1400 and seen[0].batch_size == 64
    i = out.index("diagnosis: only 64 input features")
    assert out[i + 1] == "  try: collect more features"
    assert i < next(n for n, t in enumerate(out) if t.startswith("epoch   1/2"))  # before training
    d = trainer.diagnosis
    assert d.problems == ["few_features"] and d.findings[0].evidence == {"features": 64}
    assert d.checks["epochs_seen"] == {"status": "ok", "message": "2 epochs", "remedies": [], "epochs": 2}
    page = report.diagnosis(d.to_dict())
    assert "<b>Few input features (before training)</b>" in page and "only 64 input features" in page
    assert "<td>Epochs seen</td><td>ok</td><td>2 epochs</td>" in page


def test_every_finding_a_run_can_produce_has_a_registered_title():
    assert [c.code for c in checks.of_stage("during")] == ["overfitting", "underfitting", "divergence",
                                                          "learning_rate", "gradients", "dead_units", "input_pipeline"]
    assert [c.code for c in checks.of_stage("after")] == ["baselines", "head_phase", "small_validation"]
    assert [c.code for c in checks.of_stage("revise")] == ["features_limit"]  # it adds a finding of that code
    assert checks.title("features_limit") == "Features' limit" and checks.title("ema_horizon") == "EMA horizon"
    assert checks.title("duplicates") == "Leakage" and checks.title("gradients") == "Vanishing / exploding gradients"
    assert checks.title("from_an_older_run") == "From an older run"  # an unregistered code reads as its words
    with pytest.raises(ValueError, match="registered twice"):
        checks.pitfall("duplicates", "Again")(lambda p: None)


def _fit(run_dir, epochs: int, resume=None) -> Trainer:
    train, val = digits_split()
    trainer = Trainer(net(), lr=3e-3, seed=3, run_dir=run_dir, verbose=False, num_threads=1, baselines=False)
    trainer.fit(train, val, epochs=epochs, batch_size=128, resume=resume)
    return trainer


def _timeless(diag: dict) -> dict:
    """The diagnosis without the input-pipeline check's wall-clock numbers (its status stays)."""
    out = {**diag, "checks": {**diag["checks"], "input_pipeline": diag["checks"]["input_pipeline"]["status"]}}
    out["findings"] = [f for f in diag["findings"] if f["code"] != "input_pipeline"]
    return out


def test_api_resume_keeps_the_diagnosis_history(tmp_path):
    """2 epochs, then resumed to 4 through `fit(resume=...)`: the guide's signals and the diagnosis equal those of
    4 epochs in one go (before the diagnosis was in last.pt, epochs 1-2 were lost: gradients judged 2 epochs)."""
    straight = _fit(tmp_path / "a", 4)
    _fit(tmp_path / "b", 2)
    resumed = _fit(tmp_path / "b", 4, resume=tmp_path / "b" / "last.pt")
    g, h = straight.guide, resumed.guide
    assert len(h.step_losses) == 4 and h.step_losses == g.step_losses  # bit-exact resume: the same losses
    assert h.grad_rms == g.grad_rms and h.dead == g.dead and h.activity == g.activity
    assert h.ratio == g.ratio is not None and h.baseline_loss == g.baseline_loss
    assert _timeless(resumed.diagnosis.to_dict()) == _timeless(straight.diagnosis.to_dict())
    assert resumed.diagnosis.checks["gradients"]["epochs"] == 4
    saved = torch.load(tmp_path / "b" / "last.pt", weights_only=True)["diagnosis"]
    assert len(saved["history"]) == len(saved["grad_rms"]) == 4 and saved["best_epoch"] == resumed.best_epoch


def test_a_damaged_diagnosis_in_last_pt_is_one_line_and_an_older_one_still_resumes(tmp_path):
    g = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randn(96, 64, generator=g), torch.randint(0, 10, (96,), generator=g))
    Trainer(net(), run_dir=tmp_path, verbose=False, baselines=False).fit(data, data, epochs=2, batch_size=32)
    ckpt = torch.load(tmp_path / "last.pt", weights_only=True)
    ckpt["diagnosis"]["grad_rms"].pop()
    torch.save(ckpt, tmp_path / "damaged.pt")
    with pytest.raises(DamagedRun, match=r"damaged.pt 'diagnosis' holds signals of 1 epochs for 2 epochs"):
        Trainer(net(), verbose=False, baselines=False).fit(data, data, epochs=3, resume=tmp_path / "damaged.pt")
    del ckpt["diagnosis"]  # written before the diagnosis was kept in last.pt: only the history is known
    torch.save(ckpt, tmp_path / "older.pt")
    trainer = Trainer(net(), verbose=False, baselines=False)
    trainer.fit(data, data, epochs=3, batch_size=32, resume=tmp_path / "older.pt")
    assert [r["epoch"] for r in trainer.guide.history] == [1, 2, 3] and len(trainer.guide.grad_rms) == 1
