"""Layer 1, data: the dataset and transform registries (catalog), the readers, splits, transforms and the two
batch paths (in-memory, streaming). Imports only trainlab.core.

    data = trainlab.data.prepare.load_data(cfg)    # DataBundle + Splits
"""
