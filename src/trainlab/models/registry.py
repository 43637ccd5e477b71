"""The model registry: name -> builder(cfg, input_shape, num_outputs) -> nn.Module returning logits/predictions."""
from trainlab.registry import Registry

MODELS = Registry("model")
