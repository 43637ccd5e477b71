"""Every registered model, on every input kind it declares: output shape, backward, finite values."""
from __future__ import annotations

import pytest
import torch

from trainlab.core.schema import from_dict
from trainlab.models.activations import ACTIVATIONS
from trainlab.models.catalog import MODELS, MLPConfig, build_model
from trainlab.models.mlp import build_mlp

EXAMPLES = {  # kind -> (per-sample input shape, dtype, builder info)
    "image": ((1, 8, 8), torch.float32, {}),
    "tabular": ((20,), torch.float32, {}),
    "sequence": ((12, 3), torch.float32, {}),
    "text": ((16,), torch.long, {"vocab_size": 50, "pad_index": 0}),
}
CASES = [(name, kind) for name in MODELS.names() for kind in MODELS.entry(name).meta.get("inputs", ())]


def example_batch(kind: str, batch: int = 4, shape: tuple | None = None) -> torch.Tensor:
    shape, dtype, info = (shape or EXAMPLES[kind][0]), *EXAMPLES[kind][1:]
    g = torch.Generator().manual_seed(0)
    if dtype == torch.long:
        x = torch.randint(1, info["vocab_size"], (batch, *shape), generator=g)
        x[0, shape[0] // 2:] = info["pad_index"]  # one padded sequence
        return x
    return torch.randn(batch, *shape, generator=g)


def default_model(name: str, kind: str, outputs: int = 5):
    entry = MODELS.entry(name)
    params = from_dict(entry.config, {}) if entry.config else None
    shape, _, info = EXAMPLES[kind]
    if entry.family:  # timm:* / torchvision:*: a small member, on images its stem can downsample
        info, shape = {**info, "model_name": entry.meta["example"]}, (1, 32, 32)
    return entry.builder(params, shape, outputs, **info)


def test_every_model_declares_its_inputs():
    assert CASES, "no models registered"
    for name in MODELS.names():
        assert MODELS.entry(name).meta.get("inputs"), f"model {name} declares no input kinds"


@pytest.mark.parametrize("name, kind", CASES)
def test_forward_backward(name, kind):
    torch.manual_seed(0)
    model = default_model(name, kind)
    x = example_batch(kind, shape=(1, 32, 32) if MODELS.entry(name).family else None)
    out = model(x)
    assert out.shape == (4, 5)
    assert torch.isfinite(out).all()
    out.logsumexp(-1).mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads), "no gradient reached the parameters"
    assert all(torch.isfinite(g).all() for g in grads if g is not None)


@pytest.mark.parametrize("name, kind", CASES)
def test_seeded_init_is_reproducible(name, kind):
    torch.manual_seed(3)
    a = default_model(name, kind)
    torch.manual_seed(3)
    b = default_model(name, kind)
    for (na, pa), (_, pb) in zip(a.state_dict().items(), b.state_dict().items(), strict=False):
        assert torch.equal(pa, pb), na


def test_course_mlp_is_exactly_the_course_network():
    model = build_model(type("M", (), {"name": "course_mlp", "params": MODELS.entry("course_mlp").config()})(),
                        (1, 28, 28), 10)
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(784, 196), (196, 49), (49, 10)]
    assert sum(p.numel() for p in model.parameters()) == 784 * 196 + 196 + 196 * 49 + 49 + 49 * 10 + 10


@pytest.mark.parametrize("act", ACTIVATIONS.names())
def test_every_activation_builds_an_mlp(act):
    model = build_mlp(MLPConfig(hidden=[8], activation=act), (4,), 2)
    assert model(torch.randn(3, 4)).shape == (3, 2)


def test_image_models_reject_flat_inputs():
    from trainlab.core.errors import UserError

    with pytest.raises(UserError, match="needs image inputs"):
        default_model("cnn", "image") and MODELS.get("cnn")(MODELS.entry("cnn").config(), (20,), 3)
