"""trainlab: train and evaluate PyTorch models with a visible loop, honest splits and one config.

    from trainlab import Trainer, load_run
"""
__version__ = "0.1.0"

from trainlab.run import load_run  # noqa: E402
from trainlab.trainer import Trainer  # noqa: E402

__all__ = ["Trainer", "load_run", "__version__"]
