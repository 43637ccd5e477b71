"""`trainlab summary CONFIG`: the config's model on its data's input shape, as torchinfo's table."""
from __future__ import annotations

from trainlab.data.prepare import load_data
from trainlab.engine.summary import model_summary
from trainlab.models.catalog import build_model
from trainlab.run.config import Config


def summarize(cfg: Config) -> str:
    data = load_data(cfg)
    view = data.view(data.splits.train, data.splits.val)
    model = build_model(cfg.model, view.input_shape, view.bundle.num_outputs, **view.model_info)
    return model_summary(model, view.input_shape)
