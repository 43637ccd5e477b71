"""Datasets, splits, transforms and the two data paths (in-memory, streaming)."""
from trainlab.data import text, timeseries  # noqa: F401  (register their datasets)
from trainlab.data.base import ArrayDataset, DataBundle
from trainlab.data.datasets import DATASETS
from trainlab.data.loader import LoaderBatches, TensorBatches, as_batches
from trainlab.data.prepare import DataView, LoadedData, load_data
from trainlab.data.splits import Splits

__all__ = ["ArrayDataset", "DataBundle", "DATASETS", "TensorBatches", "LoaderBatches", "as_batches",
           "DataView", "LoadedData", "load_data", "Splits"]
