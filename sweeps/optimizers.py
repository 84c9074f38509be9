"""The textbook's update rules (ch. 6.1, `common/optimizer.py`), as pure tensor functions.

Each rule writes the new param into `out`, which may be `param` itself (an in-place update),
and updates `state` in place. Rules allocate nothing per step (temporaries live in the state
as `scratch`): for large populations the update, not the matmuls, bounds the step time, and
fresh multi-MB temporaries each step cost page faults as well as memory passes.

Hyperparameters are tensors that broadcast against the param, so one call updates a whole
stack of population members, each with its own learning rate, momentum, betas, ...; the same
rules drive the 2-D optimizer-path study.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

State = dict[str, Tensor]
Hyper = Mapping[str, Tensor]


def _zeros(state: State, name: str, like: Tensor) -> Tensor:
    """The state tensor `name`, created as zeros shaped like `like` on first use."""
    if name not in state:
        state[name] = torch.zeros_like(like)
    return state[name]


def sgd(param: Tensor, grad: Tensor, state: State, hp: Hyper, out: Tensor) -> None:
    """W <- W - lr * dL/dW."""
    torch.addcmul(param, grad, hp["lr"], value=-1, out=out)


def momentum(param: Tensor, grad: Tensor, state: State, hp: Hyper, out: Tensor) -> None:
    """v <- momentum * v - lr * dL/dW;  W <- W + v."""
    v = _zeros(state, "v", param)
    v.mul_(hp["momentum"]).addcmul_(grad, hp["lr"], value=-1)
    torch.add(param, v, out=out)


def _scaled_step(
    param: Tensor,
    numer: Tensor,
    h: Tensor,
    scale: Tensor,
    eps: Tensor,
    state: State,
    out: Tensor,
) -> None:
    """out <- param - scale * numer / (sqrt(h) + eps), through the state's scratch buffer."""
    tmp = _zeros(state, "scratch", param)
    torch.sqrt(h, out=tmp)
    tmp.add_(eps)
    torch.div(numer, tmp, out=tmp)
    tmp.mul_(scale)
    torch.sub(param, tmp, out=out)


def adagrad(param: Tensor, grad: Tensor, state: State, hp: Hyper, out: Tensor) -> None:
    """h <- h + g*g;  W <- W - lr * g / (sqrt(h) + eps)."""
    h = _zeros(state, "h", param)
    h.addcmul_(grad, grad)
    _scaled_step(param, grad, h, hp["lr"], hp["eps"], state, out)


def rmsprop(param: Tensor, grad: Tensor, state: State, hp: Hyper, out: Tensor) -> None:
    """h <- decay * h + (1 - decay) * g*g;  W <- W - lr * g / (sqrt(h) + eps)."""
    h = _zeros(state, "h", param)
    squared = torch.mul(grad, grad, out=_zeros(state, "scratch", param))
    h.lerp_(squared, 1 - hp["decay_rate"])
    _scaled_step(param, grad, h, hp["lr"], hp["eps"], state, out)


def adam(param: Tensor, grad: Tensor, state: State, hp: Hyper, out: Tensor) -> None:
    """The textbook's Adam: bias correction folded into the step size.

    lr_t = lr * sqrt(1 - beta2^t) / (1 - beta1^t);  m += (1-beta1)(g - m);
    v += (1-beta2)(g^2 - v);  W <- W - lr_t * m / (sqrt(v) + eps).
    """
    beta1, beta2 = hp["beta1"], hp["beta2"]
    t = _zeros(state, "t", param.new_zeros(()))
    m = _zeros(state, "m", param)
    v = _zeros(state, "v", param)
    t += 1
    m.lerp_(grad, 1 - beta1)
    v.lerp_(torch.mul(grad, grad, out=_zeros(state, "scratch", param)), 1 - beta2)
    lr_t = hp["lr"] * torch.sqrt(1 - beta2**t) / (1 - beta1**t)
    _scaled_step(param, m, v, lr_t, hp["eps"], state, out)


@dataclass(frozen=True)
class UpdateRule:
    """A rule and the hyperparameters it reads (the ones a run records as params)."""

    step: Callable[[Tensor, Tensor, State, Hyper, Tensor], None]
    hyperparameters: tuple[str, ...]


RULES: dict[str, UpdateRule] = {
    "sgd": UpdateRule(sgd, ("lr",)),
    "momentum": UpdateRule(momentum, ("lr", "momentum")),
    "adagrad": UpdateRule(adagrad, ("lr", "eps")),
    "rmsprop": UpdateRule(rmsprop, ("lr", "decay_rate", "eps")),
    "adam": UpdateRule(adam, ("lr", "beta1", "beta2", "eps")),
}
