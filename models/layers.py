"""The textbook's layers as modules (ch. 5-6): the pieces every network here is built from.

They differ from torch's own where the textbook does, so that a network trains as the documents
describe: `Affine` keeps W as (in, out) (x @ W + b, and the fan-in the init schemes use is its
first dimension); `BatchNorm` keeps biased running statistics with the textbook's momentum and
eps; `Dropout` masks in training and scales by (1 - ratio) in evaluation, with masks drawn from a
counter-based stream keyed by the member's seed (`models.counter_rng`), so a member draws the same
masks whether it trains alone or in a population. All state is in parameters and buffers, so a
population can stack it per member (`torch.func`).
"""

import torch
from torch import Tensor, nn

from models.counter_rng import uniform

ACTIVATIONS = {"relu": torch.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh}
BN_EPS = 1e-6  # the textbook's 10e-7
BN_MOMENTUM = 0.9


def check_activation(name: str) -> None:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; valid: {', '.join(ACTIVATIONS)}")


class Activation(nn.Module):
    """One of ACTIVATIONS by name, so a config can choose it."""

    def __init__(self, name: str) -> None:
        super().__init__()
        check_activation(name)
        self.name = name

    def forward(self, x: Tensor) -> Tensor:
        return ACTIVATIONS[self.name](x)

    def extra_repr(self) -> str:
        return self.name


class Affine(nn.Module):
    """x @ W + b with W of shape (in, out), the textbook's layout."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(in_features, out_features))
        self.bias = nn.Parameter(torch.zeros(out_features))

    @property
    def fan_in(self) -> int:
        return self.weight.shape[0]

    def forward(self, x: Tensor) -> Tensor:
        return torch.addmm(self.bias, x, self.weight)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, {self.weight.shape[1]}"


def batch_moments(x: Tensor, dims: list[int]) -> tuple[Tensor, Tensor]:
    """Mean and biased variance over `dims`, as the textbook computes them: the mean, then the
    mean of the squared deviations. On a CPU this is many times faster than `torch.var_mean`
    over any dimension but the last, which was a quarter of the BatchNorm study's step
    (docs/DESIGN.md, "Layers stacked by hand")."""
    mean = x.mean(dim=dims, keepdim=True)
    var = (x - mean).square().mean(dim=dims)
    return mean.view(var.shape), var


class BatchNorm(nn.Module):
    """The textbook's batch normalization over every dimension but the channel (dim 1):
    features of (B, C) inputs, channels of (B, C, H, W) ones."""

    def __init__(self, features: int, eps: float = BN_EPS, momentum: float = BN_MOMENTUM) -> None:
        super().__init__()
        self.eps = eps
        self.momentum = momentum
        self.weight = nn.Parameter(torch.ones(features))  # gamma
        self.bias = nn.Parameter(torch.zeros(features))  # beta
        self.register_buffer("running_mean", torch.zeros(features))
        self.register_buffer("running_var", torch.ones(features))

    def forward(self, x: Tensor) -> Tensor:
        shape = [1, -1] + [1] * (x.dim() - 2)
        if self.training:
            mean, var = batch_moments(x, [0, *range(2, x.dim())])
            with torch.no_grad():
                rate = 1 - self.momentum
                self.running_mean.mul_(self.momentum).add_(rate * mean.float())
                self.running_var.mul_(self.momentum).add_(rate * var.float())
        else:
            mean, var = self.running_mean, self.running_var
        # gamma * (x - mean) / sqrt(var + eps) + beta as one multiply-add over the activations:
        # per-channel scale and shift first, since the full-size passes bound the step time.
        scale = self.weight * torch.rsqrt(var + self.eps)
        shift = self.bias - mean * scale
        return torch.addcmul(shift.view(shape), x, scale.view(shape))


class Dropout(nn.Module):
    """The textbook's dropout: drop each unit with probability `ratio` in training, scale by
    (1 - ratio) in evaluation.

    The mask of the n-th training call is a pure function of (key, n, stream, unit), so two
    runs of one member draw the same masks wherever they run. `models.init.initialize` sets
    the key from the member's seed and the stream from the layer's position.
    """

    def __init__(self, ratio: float) -> None:
        super().__init__()
        if not 0 <= ratio < 1:
            raise ValueError(f"dropout ratio {ratio} must be in [0, 1)")
        self.stream = 1
        self.register_buffer("ratio", torch.tensor(float(ratio)))
        self.register_buffer("key", torch.zeros((), dtype=torch.int64))
        self.register_buffer("calls", torch.zeros((), dtype=torch.int64))

    def forward(self, x: Tensor) -> Tensor:
        if not self.training:
            return x * (1.0 - self.ratio)
        keep = uniform(self.key.view(1), self.calls, self.stream, tuple(x.shape))[0] >= self.ratio
        with torch.no_grad():
            self.calls.add_(1)
        return x * keep


def conv_out(size: int, kernel: int, stride: int = 1, pad: int = 0) -> int:
    """Output side of a convolution or pooling window (the textbook's formula, 7.2.4)."""
    return (size + 2 * pad - kernel) // stride + 1
