"""Weight-init schemes of the textbook (ch. 6.2), for any module.

Every weight (a parameter with 2 or more dimensions) is drawn from N(0, std^2), std set by the
scheme from the layer's fan-in: the inputs one output unit sees, C_in x k x k for a convolution
(the textbook's `pre_node_nums`), `in` for a linear layer. Biases start at 0, BatchNorm's gamma
at 1.
"""

import math

import torch
from torch import nn

from models.counter_rng import member_keys
from models.layers import Dropout

INIT_SCHEMES = ("std", "xavier", "he")


def init_std(scheme: str, fan_in: int, scale: float) -> float:
    """Std of N(0, std^2) weights for a layer with `fan_in` inputs.

    `std` uses `scale` itself (the textbook's `weight_init_std=0.01`); Xavier is 1/sqrt(n) and He
    sqrt(2/n), where n is the number of inputs of the layer, as the textbook defines them.
    """
    if scheme == "std":
        return scale
    if scheme == "xavier":
        return math.sqrt(1.0 / fan_in)
    if scheme == "he":
        return math.sqrt(2.0 / fan_in)
    raise ValueError(f"unknown init scheme {scheme!r}; valid: {', '.join(INIT_SCHEMES)}")


def fan_in(module: nn.Module, weight: torch.Tensor) -> int:
    """A layer may say its fan-in (`Affine`, whose W is (in, out)); torch's layers keep the
    output dimension first."""
    declared = getattr(module, "fan_in", None)
    return int(declared) if declared is not None else math.prod(weight.shape[1:])


@torch.no_grad()
def initialize(module: nn.Module, scheme: str, scale: float, seed: int) -> None:
    """Draw the weights from a CPU generator seeded with `seed`, in the order the layers are
    registered; key the dropout layers' masks by the same seed.

    Drawing on the CPU makes a member's start independent of the device and of which other
    members share its population.
    """
    generator = torch.Generator().manual_seed(int(seed))
    for layer in module.modules():
        for name, p in layer.named_parameters(recurse=False):
            if p.dim() >= 2:
                std = init_std(scheme, fan_in(layer, p), float(scale))
                p.copy_(torch.randn(p.shape, generator=generator) * std)
            elif name == "weight":
                p.fill_(1.0)
            else:
                p.zero_()
    key = member_keys(torch.tensor([int(seed)]))[0]
    dropouts = [m for m in module.modules() if isinstance(m, Dropout)]
    for stream, layer in enumerate(dropouts, start=1):
        layer.key.fill_(key)
        layer.stream = stream
        layer.calls.zero_()
