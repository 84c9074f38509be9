"""The fast path for `models.mlp.MLP` populations: K textbook MLPs (MultiLayerNetExtend) as one
module, numerically the same network as `models.mlp.MLP` (a test holds them equal).

Parameters live in two *banks*, so an update rule is a handful of tensor operations per bank
on a slice of members, however deep the network:
- `wide`, (in, K, out): the first layer's weights, laid out so that inputs shared by all
  members meet every member's weights in one GEMM, forward and backward, with no copy;
- `flat`, (K, P): everything else, member k's in row k.
The layers' tensors are leaf views into the banks: autograd computes their gradients directly
(a slice of a single flat leaf would make every backward pass materialise a zero (K, P)
gradient per layer). Hidden layer: Affine -> [BatchNorm] -> activation -> [Dropout], as in
the textbook.
Dropout masks come from the member's counter-based stream, keyed and counted as
`models.layers.Dropout` does.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from models.counter_rng import member_keys, uniform
from models.init import init_std
from models.layers import ACTIVATIONS, BN_EPS, BN_MOMENTUM, check_activation

RUNNING = ("running_mean", "running_var")


@dataclass(frozen=True)
class Bank:
    """A parameter tensor holding all members, along dimension `member_dim`."""

    params: Tensor
    member_dim: int

    def members(self, t: Tensor, start: int, stop: int) -> Tensor:
        """Members [start, stop) of `t`, a tensor laid out like `params`."""
        return t.narrow(self.member_dim, start, stop - start)

    def per_member(self, values: Tensor) -> Tensor:
        """(k,) values shaped to broadcast against k members of this bank."""
        shape = [1] * self.params.dim()
        shape[self.member_dim] = -1
        return values.view(shape)


@dataclass(frozen=True)
class Slot:
    """Where one parameter tensor sits in a member's flat row."""

    start: int
    shape: tuple[int, ...]

    @property
    def end(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return self.start + n


class StackedMLP(nn.Module):
    """K fully connected networks of one shape, each with its own parameters and noise.

    `dropout` holds each member's dropout ratio (0 disables it for that member); dropout is
    the textbook's: masks in training, scaling by (1 - ratio) in evaluation.
    """

    def __init__(
        self,
        members: int,
        sizes: Sequence[int],
        activation: str = "relu",
        batchnorm: bool = False,
        dropout: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        check_activation(activation)
        self.members = members
        self.sizes = tuple(sizes)
        self.activation = activation
        self.batchnorm = batchnorm
        self.layers: list[dict[str, Slot]] = []
        offset = 0
        for i, (n_in, n_out) in enumerate(zip(self.sizes[:-1], self.sizes[1:], strict=True)):
            shapes = {"W": (n_in, n_out), "b": (1, n_out)} if i else {"b": (1, n_out)}
            hidden = i < len(self.sizes) - 2
            if batchnorm and hidden:
                shapes |= {"gamma": (1, n_out), "beta": (1, n_out)}
                self.register_buffer(f"running_mean{i}", torch.zeros(members, 1, n_out))
                self.register_buffer(f"running_var{i}", torch.ones(members, 1, n_out))
            layer = {}
            for name, shape in shapes.items():
                layer[name] = Slot(offset, shape)
                offset = layer[name].end
            self.layers.append(layer)
        self.register_buffer("flat", torch.zeros(members, offset))
        self.register_buffer("wide", torch.zeros(self.sizes[0], members, self.sizes[1]))
        ratios = torch.tensor(list(dropout) if dropout is not None else [0.0] * members)
        self.register_buffer("dropout", ratios.view(members, 1, 1))
        self.use_dropout = bool((ratios > 0).any())
        self.register_buffer("keys", torch.zeros(members, dtype=torch.int64))
        self.register_buffer("calls", torch.zeros((), dtype=torch.int64))
        self._bind()

    def _bind(self) -> None:
        """(Re)create the leaf views into the banks: layer 0's W, then `flat` in slot order."""
        self.w0 = self.wide.view(self.wide.shape).requires_grad_()
        self.views: list[dict[str, Tensor]] = [
            {
                name: self.flat[:, slot.start : slot.end]
                .view(self.members, *slot.shape)
                .requires_grad_()
                for name, slot in layer.items()
            }
            for layer in self.layers
        ]

    def _apply(self, fn, recurse: bool = True):
        """Moving the module replaces the banks' tensors; the views must follow them."""
        super()._apply(fn, recurse)
        self._bind()
        return self

    def param(self, layer: int, name: str) -> Tensor:
        """Layer `layer`'s tensor `name` for all members: (K, *shape)."""
        if (layer, name) == (0, "W"):
            return self.w0.permute(1, 0, 2)
        return self.views[layer][name]

    def weight_shape(self, layer: int) -> tuple[int, int]:
        return self.sizes[layer], self.sizes[layer + 1]

    def leaves(self) -> list[Tensor]:
        """Every parameter view: layer 0's W, then the rest in the order of their slots."""
        return [self.w0, *(view for layer in self.views for view in layer.values())]

    def banks(self) -> list[Bank]:
        return [Bank(self.wide, 1), Bank(self.flat, 0)]

    def bank_grads(self, grads: list[Tensor], flat_out: Tensor) -> list[Tensor]:
        """Gradients of `leaves()` laid out like `banks()`: layer 0's as autograd gave it, the
        rest copied into `flat_out` (one pass per layer, no allocation)."""
        slots = [slot for layer in self.layers for slot in layer.values()]
        for slot, g in zip(slots, grads[1:], strict=True):
            flat_out[:, slot.start : slot.end].view(self.members, *slot.shape).copy_(g)
        return [grads[0], flat_out]

    def member_vector(self, k: int) -> Tensor:
        """All of member k's parameters as one vector (for comparing members)."""
        return torch.cat([self.wide[:, k, :].flatten(), self.flat[k]])

    @torch.no_grad()
    def member_tensors(self, k: int) -> list[Tensor]:
        """Member k's parameters and buffers in the order of `models.mlp.MLP`'s state dict:
        per hidden layer W, b, [gamma, beta, running mean and variance], [dropout ratio, key,
        calls]; then the output layer's W, b."""
        tensors: list[Tensor] = []
        for i, layer in enumerate(self.layers):
            tensors += [self.param(i, "W")[k], self.param(i, "b")[k].view(-1)]
            if "gamma" in layer:
                tensors += [self.param(i, "gamma")[k].view(-1), self.param(i, "beta")[k].view(-1)]
                tensors += [getattr(self, f"{stat}{i}")[k].view(-1) for stat in RUNNING]
            if self.use_dropout and i < len(self.layers) - 1:
                tensors += [self.dropout[k].view(()), self.keys[k], self.calls]
        return [t.detach() for t in tensors]

    @torch.no_grad()
    def initialize(
        self, schemes: Sequence[str], scales: Sequence[float], seeds: Sequence[int]
    ) -> None:
        """Draw each member's weights from its own seeded CPU generator; biases 0, gamma 1.

        Drawing on the CPU makes a member's start independent of the device and of which other
        members share the population, so a population equals its members trained alone. The
        seeds also key each member's dropout masks.
        """
        self.flat.zero_()
        self.wide.zero_()
        for k, (scheme, scale, seed) in enumerate(zip(schemes, scales, seeds, strict=True)):
            generator = torch.Generator().manual_seed(int(seed))
            for i, layer in enumerate(self.layers):
                fan_in, fan_out = self.weight_shape(i)
                std = init_std(scheme, fan_in, float(scale))
                sample = torch.randn(fan_in, fan_out, generator=generator) * std
                self.param(i, "W")[k].copy_(sample)
                if "gamma" in layer:
                    self.param(i, "gamma")[k].fill_(1.0)
        self.keys.copy_(member_keys(torch.tensor([int(s) for s in seeds])))

    def first_affine(self, x: Tensor, per_member: bool) -> Tensor:
        """Layer 0; inputs shared by all members become one wide GEMM over all members."""
        b = self.param(0, "b")
        if not per_member:
            x = x.reshape(len(x), -1)
            n_in, k, n_out = self.w0.shape
            return (x @ self.w0.view(n_in, k * n_out)).view(len(x), k, n_out).transpose(0, 1) + b
        return torch.baddbmm(b, x.reshape(*x.shape[:2], -1), self.param(0, "W"))

    def batch_norm(self, h: Tensor, i: int) -> Tensor:
        mean_buf, var_buf = getattr(self, f"running_mean{i}"), getattr(self, f"running_var{i}")
        if self.training:
            mean = h.mean(dim=1, keepdim=True)
            var = h.var(dim=1, keepdim=True, unbiased=False)
            with torch.no_grad():
                mean_buf.mul_(BN_MOMENTUM).add_((1 - BN_MOMENTUM) * mean.float())
                var_buf.mul_(BN_MOMENTUM).add_((1 - BN_MOMENTUM) * var.float())
        else:
            mean, var = mean_buf, var_buf
        normed = (h - mean) / torch.sqrt(var + BN_EPS)
        return self.param(i, "gamma") * normed + self.param(i, "beta")

    def forward(self, x: Tensor, per_member: bool = False) -> Tensor:
        """Logits (K, B, classes) for inputs (B, ...) shared by all members or (K, B, ...) each;
        samples are flattened."""
        act = ACTIVATIONS[self.activation]
        last = len(self.layers) - 1
        h = self.first_affine(x, per_member)
        for i in range(len(self.layers)):
            if i > 0:
                h = torch.baddbmm(self.param(i, "b"), h, self.param(i, "W"))
            if i == last:
                break
            if "gamma" in self.layers[i]:
                h = self.batch_norm(h, i)
            h = act(h)
            if self.use_dropout:
                if self.training:
                    keep = uniform(self.keys, self.calls, 1 + i, tuple(h.shape[1:]))
                    h = h * (keep >= self.dropout)
                else:
                    h = h * (1.0 - self.dropout)
        if self.training and self.use_dropout:
            self.calls += 1
        return h

    def weight_penalty(self) -> Tensor:
        """(K,) sum of squared weights (biases, gamma, beta excluded): the L2 term's sum."""
        rest = sum(layer["W"].pow(2).sum(dim=(1, 2)) for layer in self.views[1:])
        return self.w0.pow(2).sum(dim=(0, 2)) + rest
