"""Layer 1, models: the model and activation registries (catalog) and the networks (MLP, CNN, RNN,
Transformer). Imports only trainlab.core.

    model = trainlab.models.catalog.build_model(cfg.model, input_shape, num_outputs)
"""
