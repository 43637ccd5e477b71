"""The activation functions by name: `activation("gelu")` -> a new nn.GELU(); torch is imported on the call.

    ACTIVATIONS.names()      # what model options such as `activation: relu` may name (trainlab list activations)

Registered like models, datasets and transforms: a decorated builder that imports torch when it builds.
"""
from __future__ import annotations

from trainlab.core.registry import Registry

ACTIVATIONS = Registry("activation")


def activation(name: str):
    """A new activation module by name (nn.Module)."""
    return ACTIVATIONS.get(name)()



@ACTIVATIONS.register("relu")
def _relu():
    """max(0, x): cheap, no saturation for x > 0, dead for x < 0"""
    from torch import nn  # start-up time: torch stays out of `trainlab --help`

    return nn.ReLU()


@ACTIVATIONS.register("leaky_relu")
def _leaky_relu():
    """x for x > 0, 0.01x otherwise: no dead units"""
    from torch import nn  # start-up time

    return nn.LeakyReLU(0.01)


@ACTIVATIONS.register("elu")
def _elu():
    """x for x > 0, exp(x) - 1 otherwise: smooth, negative outputs"""
    from torch import nn  # start-up time

    return nn.ELU()


@ACTIVATIONS.register("gelu")
def _gelu():
    """x * Phi(x): smooth ReLU used by Transformers"""
    from torch import nn  # start-up time

    return nn.GELU()


@ACTIVATIONS.register("silu")
def _silu():
    """x * sigmoid(x) (swish)"""
    from torch import nn  # start-up time

    return nn.SiLU()


@ACTIVATIONS.register("tanh")
def _tanh():
    """(-1, 1), zero-centred, saturates for |x| > 3"""
    from torch import nn  # start-up time

    return nn.Tanh()


@ACTIVATIONS.register("sigmoid")
def _sigmoid():
    """(0, 1), saturates: gradients vanish in deep stacks"""
    from torch import nn  # start-up time

    return nn.Sigmoid()


@ACTIVATIONS.register("softplus")
def _softplus():
    """log(1 + exp(x)): smooth ReLU"""
    from torch import nn  # start-up time

    return nn.Softplus()


@ACTIVATIONS.register("mish")
def _mish():
    """x * tanh(softplus(x))"""
    from torch import nn  # start-up time

    return nn.Mish()


@ACTIVATIONS.register("identity")
def _identity():
    """no non-linearity (a stack of linear layers stays linear)"""
    from torch import nn  # start-up time

    return nn.Identity()
