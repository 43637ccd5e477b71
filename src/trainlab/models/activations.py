"""Activation registry: name -> nn.Module factory. `trainlab plot activations` draws each with its derivative."""
from __future__ import annotations

from torch import nn

from trainlab.registry import Registry

ACTIVATIONS = Registry("activation")

ACTIVATIONS.add("relu", nn.ReLU, help="max(0, x): cheap, no saturation for x > 0, dead for x < 0")
ACTIVATIONS.add("leaky_relu", lambda: nn.LeakyReLU(0.01), help="x for x > 0, 0.01x otherwise: no dead units")
ACTIVATIONS.add("elu", nn.ELU, help="x for x > 0, exp(x) - 1 otherwise: smooth, negative outputs")
ACTIVATIONS.add("gelu", nn.GELU, help="x * Phi(x): smooth ReLU used by Transformers")
ACTIVATIONS.add("silu", nn.SiLU, help="x * sigmoid(x) (swish)")
ACTIVATIONS.add("tanh", nn.Tanh, help="(-1, 1), zero-centred, saturates for |x| > 3")
ACTIVATIONS.add("sigmoid", nn.Sigmoid, help="(0, 1), saturates: gradients vanish in deep stacks")
ACTIVATIONS.add("softplus", nn.Softplus, help="log(1 + exp(x)): smooth ReLU")
ACTIVATIONS.add("mish", nn.Mish, help="x * tanh(softplus(x))")
ACTIVATIONS.add("identity", nn.Identity, help="no non-linearity (a stack of linear layers stays linear)")


def activation(name: str) -> nn.Module:
    return ACTIVATIONS.get(name)()
