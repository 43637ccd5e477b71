"""Inside the model for one sample: CNN feature maps of the first layers, Transformer attention per head.

    trainlab inspect runs/cnn --internals --index 17     # feature maps of dataset sample 17 in inspect.html
    trainlab inspect runs/text --internals --text "a great film"

Which view a run gets follows from its data and model: image runs with a Conv2d get feature maps; text runs
with attention layers get attention weights per head. The sample is the highest-loss one of the split unless
`index` (a dataset index) or `text` (text runs) names another.
"""
from __future__ import annotations

from trainlab.core.errors import UserError
from trainlab.use.inspect import SplitPredictions
from trainlab.use.text_views import internals_text

Section = tuple[str, str, str]  # (id, title, html) of one inspect.html panel


def internals_sections(run, predictions: SplitPredictions, index: int | None = None,
                       text: str | None = None) -> list[Section]:
    """The inside-the-model panels that fit this run (see the module docstring)."""
    kind = predictions.data.bundle.kind
    if text is not None and kind != "text":
        raise UserError(f"--text needs a text run; {run.dir} is a {kind} run (use --index)")
    if kind == "text":
        return internals_text(run, predictions, index, text)
    return [("internals", "Inside the model", f"<p>no inside view is drawn for {kind} runs yet</p>")]
