"""trainlab's version, here below every layer so that run manifests and `--version` need not import the package
root (whose `Trainer` and `load_run` import the layers above: that would close a circle)."""
__version__ = "0.1.0"  # keep equal to pyproject.toml's version
