"""The textbook's update rules (ch. 6.1, `common/optimizer.py`), as pure tensor functions.

Each rule maps (param, grad, state, hyperparameters) to the new param and updates `state` in
place. Hyperparameters are tensors that broadcast against the param, so one call updates a
whole stack of population members, each with its own learning rate, momentum, betas, ...; the
same rules drive the 2-D optimizer-path study.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

State = dict[str, Tensor]
Hyper = Mapping[str, Tensor]


def sgd(param: Tensor, grad: Tensor, state: State, hp: Hyper) -> Tensor:
    """W <- W - lr * dL/dW."""
    return param - hp["lr"] * grad


def momentum(param: Tensor, grad: Tensor, state: State, hp: Hyper) -> Tensor:
    """v <- momentum * v - lr * dL/dW;  W <- W + v."""
    v = hp["momentum"] * state.get("v", torch.zeros_like(param)) - hp["lr"] * grad
    state["v"] = v
    return param + v


def adagrad(param: Tensor, grad: Tensor, state: State, hp: Hyper) -> Tensor:
    """h <- h + g*g;  W <- W - lr * g / (sqrt(h) + eps)."""
    h = state.get("h", torch.zeros_like(param)) + grad * grad
    state["h"] = h
    return param - hp["lr"] * grad / (h.sqrt() + hp["eps"])


def rmsprop(param: Tensor, grad: Tensor, state: State, hp: Hyper) -> Tensor:
    """h <- decay * h + (1 - decay) * g*g;  W <- W - lr * g / (sqrt(h) + eps)."""
    decay = hp["decay_rate"]
    h = decay * state.get("h", torch.zeros_like(param)) + (1 - decay) * grad * grad
    state["h"] = h
    return param - hp["lr"] * grad / (h.sqrt() + hp["eps"])


def adam(param: Tensor, grad: Tensor, state: State, hp: Hyper) -> Tensor:
    """The textbook's Adam: bias correction folded into the step size.

    lr_t = lr * sqrt(1 - beta2^t) / (1 - beta1^t);  m += (1-beta1)(g - m);
    v += (1-beta2)(g^2 - v);  W <- W - lr_t * m / (sqrt(v) + eps).
    """
    beta1, beta2 = hp["beta1"], hp["beta2"]
    t = state.get("t", torch.zeros((), device=param.device)) + 1
    m = state.get("m", torch.zeros_like(param))
    v = state.get("v", torch.zeros_like(param))
    m = m + (1 - beta1) * (grad - m)
    v = v + (1 - beta2) * (grad * grad - v)
    state.update(t=t, m=m, v=v)
    lr_t = hp["lr"] * torch.sqrt(1 - beta2**t) / (1 - beta1**t)
    return param - lr_t * m / (v.sqrt() + hp["eps"])


@dataclass(frozen=True)
class UpdateRule:
    """A rule and the hyperparameters it reads (the ones a run records as params)."""

    step: Callable[[Tensor, Tensor, State, Hyper], Tensor]
    hyperparameters: tuple[str, ...]


RULES: dict[str, UpdateRule] = {
    "sgd": UpdateRule(sgd, ("lr",)),
    "momentum": UpdateRule(momentum, ("lr", "momentum")),
    "adagrad": UpdateRule(adagrad, ("lr", "eps")),
    "rmsprop": UpdateRule(rmsprop, ("lr", "decay_rate", "eps")),
    "adam": UpdateRule(adam, ("lr", "beta1", "beta2", "eps")),
}
