"""A population of multi-layer perceptrons stored as stacked weights.

Member k's layer l is `weights[l][k]` (fan_in x fan_out) and `biases[l][k]`, so the whole
population runs as batched matrix products; K=1 is an ordinary MLP.
"""

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from models.init import init_std

ACTIVATIONS = {"relu": torch.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh}


class StackedMLP(nn.Module):
    """K fully connected networks of one shape: affine -> activation ... -> affine (logits)."""

    def __init__(self, members: int, sizes: Sequence[int], activation: str = "relu") -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; valid: {', '.join(ACTIVATIONS)}")
        self.members = members
        self.sizes = tuple(sizes)
        self.activation = activation
        pairs = list(zip(self.sizes[:-1], self.sizes[1:], strict=True))
        self.weights = nn.ParameterList(
            nn.Parameter(torch.zeros(members, n_in, n_out)) for n_in, n_out in pairs
        )
        self.biases = nn.ParameterList(
            nn.Parameter(torch.zeros(members, 1, n_out)) for _, n_out in pairs
        )

    @torch.no_grad()
    def initialize(
        self, schemes: Sequence[str], scales: Sequence[float], seeds: Sequence[int]
    ) -> None:
        """Draw each member's weights from its own seeded CPU generator, biases zero.

        Drawing on the CPU makes a member's start independent of the device and of which other
        members share the population, so a population equals its members trained alone.
        """
        for k, (scheme, scale, seed) in enumerate(zip(schemes, scales, seeds, strict=True)):
            generator = torch.Generator().manual_seed(int(seed))
            for weight, bias in zip(self.weights, self.biases, strict=True):
                fan_in, fan_out = weight.shape[1:]
                std = init_std(scheme, fan_in, float(scale))
                sample = torch.randn(fan_in, fan_out, generator=generator) * std
                weight[k].copy_(sample.to(device=weight.device, dtype=weight.dtype))
                bias[k].zero_()

    def forward(self, x: Tensor) -> Tensor:
        """Logits of shape (K, B, classes) for inputs (B, features) shared by all members."""
        act = ACTIVATIONS[self.activation]
        h = x
        last = len(self.weights) - 1
        for i, (weight, bias) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = torch.matmul(h, weight) + bias
            if i < last:
                h = act(h)
        return h

    def weight_tensors(self) -> list[Tensor]:
        """The weight matrices (not biases): what L2 weight decay applies to."""
        return list(self.weights)
