"""The forward pass of K members through the textbook's layers as batched tensor operations:
the `stacked` strategy of `sweeps.stacks`.

`vmap` runs any module's members together, but wraps every operation of every step in its
batching machinery: the optimizer study's five-member step took 3.61 ms under it against 3.05
ms stacked (docs/DESIGN.md, "Layers stacked by hand"). A network built only from the layers
below (the MLP, with or without BatchNorm and Dropout) is run here instead: each layer's
member-batched form is written out once, with every activation laid out (K, B, ...). The
numbers are each layer's own (`tests/test_stacked_layers.py` checks every form against the layer,
and `tests/test_population.py` checks populations against their members trained alone).
Anything else, a layer without a form here or a forward that is not a chain of layers,
runs under `vmap`.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, fx, nn

from models.counter_rng import uniform
from models.layers import ACTIVATIONS, Activation, Affine, BatchNorm, Dropout, batch_moments

# A layer's member-batched form: the layer (for its settings), its parameters and buffers
# stacked per member (K, ...) by local name, the input (K, B, ...) -> the output (K, B, ...).
Form = Callable[[nn.Module, Mapping[str, Tensor], Tensor], Tensor]


def per_member(values: Tensor, x: Tensor, dim: int | None = None) -> Tensor:
    """(K,) values, or (K, n) along `dim` of x, shaped to broadcast over x (K, B, ...)."""
    shape = [values.shape[0]] + [1] * (x.dim() - 1)
    if dim is not None:
        shape[dim] = -1
    return values.view(shape)


def affine(layer: Affine, tensors: Mapping[str, Tensor], x: Tensor) -> Tensor:
    return torch.baddbmm(tensors["bias"].unsqueeze(1), x, tensors["weight"])


def activation(layer: Activation, tensors: Mapping[str, Tensor], x: Tensor) -> Tensor:
    return ACTIVATIONS[layer.name](x)


def flatten(layer: nn.Flatten, tensors: Mapping[str, Tensor], x: Tensor) -> Tensor:
    """The layer's dimensions, one further along (the member axis leads)."""
    end = layer.end_dim if layer.end_dim < 0 else layer.end_dim + 1
    return x.flatten(layer.start_dim + 1, end)


def batchnorm(layer: BatchNorm, tensors: Mapping[str, Tensor], x: Tensor) -> Tensor:
    """`BatchNorm.forward` per member: statistics over the batch and the spatial dimensions."""
    if layer.training:
        mean, var = batch_moments(x, [1, *range(3, x.dim())])
        with torch.no_grad():
            rate = 1 - layer.momentum
            tensors["running_mean"].mul_(layer.momentum).add_(rate * mean.float())
            tensors["running_var"].mul_(layer.momentum).add_(rate * var.float())
    else:
        mean, var = tensors["running_mean"], tensors["running_var"]
    scale = tensors["weight"] * torch.rsqrt(var + layer.eps)
    shift = tensors["bias"] - mean * scale
    return torch.addcmul(per_member(shift, x, 2), x, per_member(scale, x, 2))


def dropout(layer: Dropout, tensors: Mapping[str, Tensor], x: Tensor) -> Tensor:
    """`Dropout.forward` per member: each member's masks from its own key and call count."""
    ratio = per_member(tensors["ratio"], x)
    if not layer.training:
        return x * (1.0 - ratio)
    keep = uniform(tensors["key"], tensors["calls"], layer.stream, tuple(x.shape[1:])) >= ratio
    with torch.no_grad():
        tensors["calls"].add_(1)
    return x * keep


FORMS: dict[type[nn.Module], Form] = {
    Affine: affine,
    Activation: activation,
    nn.Flatten: flatten,
    BatchNorm: batchnorm,
    Dropout: dropout,
}


@dataclass(frozen=True)
class Step:
    """One layer of the chain: its form, the layer, and its qualified name in the network."""

    form: Form
    layer: nn.Module
    name: str


class _Tracer(fx.Tracer):
    """Stops at the layers that have a form, so the graph names them and nothing inside."""

    def is_leaf_module(self, m: nn.Module, qualified_name: str) -> bool:
        return type(m) in FORMS or super().is_leaf_module(m, qualified_name)


def chain(network: nn.Module) -> list[Step] | str:
    """The layers the network's forward calls, in order, each on the one before's output; or
    why the network is not such a chain of layers with a form (then `vmap` runs it)."""
    try:
        graph = _Tracer().trace(network)
    except Exception as err:  # anything fx cannot trace is simply not a chain
        return f"its forward cannot be traced ({type(err).__name__})"
    modules = dict(network.named_modules())
    steps: list[Step] = []
    previous = None
    for node in graph.nodes:
        if node.op == "placeholder":
            previous = node
            continue
        if node.op == "output":
            return steps if node.args[0] is previous else "its output is not its last layer's"
        layer = modules.get(node.target) if node.op == "call_module" else None
        what = node.target if layer is not None else node.name  # a layer's name, or `add`
        if layer is None or type(layer) not in FORMS:
            return f"{what} has no stacked form"
        if node.args != (previous,) or node.kwargs:
            return f"{what} does not take the previous layer's output alone"
        steps.append(Step(FORMS[type(layer)], layer, node.target))
        previous = node
    return "its forward returns nothing"


Bound = list[tuple[Step, dict[str, Tensor]]]


def bind(steps: list[Step], tensors: Mapping[str, Tensor]) -> Bound:
    """Each step with its layer's parameters and buffers (K, ...), from `tensors` by
    qualified name, under the layer's own names."""
    bound = []
    for step in steps:
        prefix = f"{step.name}."
        own = {k[len(prefix) :]: t for k, t in tensors.items() if k.startswith(prefix)}
        bound.append((step, own))
    return bound


def run_chain(bound: Bound, x: Tensor) -> Tensor:
    """Every member's output (K, B, ...) for inputs (K, B, ...)."""
    for step, tensors in bound:
        x = step.form(step.layer, tensors, x)
    return x
