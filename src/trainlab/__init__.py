"""trainlab: train and evaluate PyTorch models with a visible loop, honest splits and one config.

    from trainlab import Trainer, load_run
"""
from trainlab.core.version import __version__

__all__ = ["Trainer", "load_run", "__version__"]


def __getattr__(name: str):
    # imported on first use so that `trainlab --help` does not pay for importing torch
    if name == "Trainer":
        from trainlab.engine.trainer import Trainer  # start-up time: torch

        return Trainer
    if name == "load_run":
        from trainlab.use.loaded import load_run  # start-up time: torch

        return load_run
    raise AttributeError(f"module 'trainlab' has no attribute {name!r}")
