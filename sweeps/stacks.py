"""K networks of one architecture behind one interface, for `sweeps.population`.

Three ways to run them, chosen per architecture and device (`choose_strategy`):
- `stacked`: a network that is a chain of the textbook's layers (the MLP) runs each layer's
  member-batched form, written out in `sweeps.stacked_layers`: batched kernels as under
  `vmap`, without its per-operation machinery (the optimizer study's step: 3.05 against 3.61 ms).
- `vmap`: any module, through `torch.func`: one `functional_call` vectorized over the members'
  stacked parameters and buffers (per-member BatchNorm statistics, dropout keyed by each
  member's seed). Small kernels batched into large ones: what a GPU needs.
- `loop`: the same members called one after another each step. On a CPU a small CNN's step is
  bound by its activations' memory traffic, not by per-op overhead, so vectorizing it is slower
  than calling each member (DESIGN.md, "Populations of CNNs"); and a module that cannot be
  vectorized still trains this way.

Either way a member's parameters are row k of one flat (K, P) bank, so each update rule is a
handful of tensor operations over all members (`sweeps.optimizers`). (An earlier hand-built
MLP with its own parameter layout went when `vmap` came within 15% of it; the stacked forms
keep the one bank: docs/DESIGN.md, "Layers stacked by hand".)
"""

import copy
import itertools
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

from models.counter_rng import member_keys
from models.init import initialize
from sweeps.errors import ConfigError
from sweeps.networks import build, has_convolutions, on_meta, own_dropout, quiet_dropout
from sweeps.stacked_layers import Step, bind, chain, run_chain

log = logging.getLogger(__name__)

STRATEGIES = ("auto", "stacked", "vmap", "loop")
# What runs instead when a strategy cannot run a network, in order.
FALLBACKS: dict[str, tuple[str, ...]] = {"stacked": ("vmap", "loop"), "vmap": ("loop",), "loop": ()}
CANNOT = {"stacked": "has no stacked form", "vmap": "cannot be vectorized"}
INSTEAD = {"vmap": "its members run under vmap", "loop": "its members train one after another"}


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
class Member:
    """One member's network and how it starts."""

    model: Mapping[str, Any]
    seed: int


@dataclass(frozen=True)
class Slot:
    """Where one parameter sits in a member's flat row, and in which memory layout: a
    channels-last convolution weight is stored (out, kh, kw, in) and seen as (out, in, kh, kw)."""

    name: str
    start: int
    shape: torch.Size
    channels_last: bool = False

    @property
    def end(self) -> int:
        return self.start + math.prod(self.shape)

    def view(self, row: Tensor) -> Tensor:
        """The parameter, of one member's row (P,) or of every member's rows (K, P)."""
        lead = row.shape[:-1]
        segment = row[..., self.start : self.end]
        if not self.channels_last:
            return segment.view(*lead, *self.shape)
        o, c, h, w = self.shape
        n = len(lead)
        return segment.view(*lead, o, h, w, c).permute(*range(n), n, n + 3, n + 1, n + 2)


class ModuleStack:
    """Any module's K members: parameters in one flat bank, buffers stacked per name, and one
    parameter-free copy of the module on the meta device that `functional_call` runs."""

    def __init__(
        self,
        nets: Sequence[nn.Module],
        seeds: Sequence[int],
        strategy: str,
        names: Sequence[Mapping[str, str] | None] | None = None,
        steps: Sequence[Step] = (),
    ) -> None:
        """`strategy`: `stacked` (with `steps`, the networks' chain of layers), `vmap` or
        `loop`; a loop keeps convolution weights and image inputs channels-last, the faster
        layout for a single network's convolutions on this CPU (README, "Performance").
        `names[k]`, where given, maps member k's parameter and buffer names to those of the
        network its own config builds (`networks.quiet_dropout`), for its state dict."""
        self.vectorized = strategy != "loop"
        channels_last = self.channels_last = strategy == "loop"
        self.names = list(names) if names is not None else [None] * len(nets)
        self.members = len(nets)
        named = list(nets[0].named_parameters())
        self.slots: list[Slot] = []
        offset = 0
        for name, p in named:
            self.slots.append(Slot(name, offset, p.shape, channels_last and p.dim() == 4))
            offset = self.slots[-1].end
        self.weights = [i for i, (_, p) in enumerate(named) if p.dim() >= 2]
        self.flat = torch.zeros(self.members, offset)
        for row, net in zip(self.flat, nets, strict=True):
            for slot, p in zip(self.slots, net.parameters(), strict=True):
                slot.view(row).copy_(p.detach())
        self.buffers = {
            name: torch.stack([dict(net.named_buffers())[name] for net in nets])
            for name, _ in nets[0].named_buffers()
        }
        self.keys = member_keys(torch.tensor([int(s) for s in seeds]))
        self.base = copy.deepcopy(nets[0]).to("meta")
        layers = dict(self.base.named_modules())
        # The chain's layers are the base's, so that train() and eval() reach them.
        self.steps = [Step(s.form, layers[s.name], s.name) for s in steps]
        self._bind()

    def to(self, device: torch.device) -> "ModuleStack":
        self.flat = self.flat.to(device)
        self.buffers = {name: b.to(device) for name, b in self.buffers.items()}
        self.keys = self.keys.to(device)
        self._bind()
        return self

    def _bind(self) -> None:
        """Leaf views into the bank: (K, *shape) per parameter when vectorized, one per member
        and parameter in a loop, so autograd hands back each member's gradient separately."""
        if self.vectorized:
            self.views = [s.view(self.flat).requires_grad_() for s in self.slots]
            named = {s.name: v for s, v in zip(self.slots, self.views, strict=True)}
            self.chain = bind(self.steps, named | self.buffers)
        else:
            self.views = [
                s.view(self.flat[k]).requires_grad_()
                for k in range(self.members)
                for s in self.slots
            ]

    def member_params(self, k: int) -> list[Tensor]:
        n = len(self.slots)
        return self.views[k * n : (k + 1) * n]

    def train(self, mode: bool = True) -> "ModuleStack":
        self.base.train(mode)
        return self

    def eval(self) -> "ModuleStack":
        return self.train(False)

    def _call(self, params: Sequence[Tensor], buffers: Mapping[str, Tensor], x: Tensor) -> Tensor:
        named = {s.name: p for s, p in zip(self.slots, params, strict=True)}
        return functional_call(self.base, (named, dict(buffers)), (x,))

    def __call__(self, x: Tensor, per_member: bool = False) -> Tensor:
        """Logits (K, B, classes) for inputs (B, ...) shared by all members, or (K, B, ...)."""
        if self.steps:
            return run_chain(self.chain, x if per_member else x.expand(self.members, *x.shape))
        if self.vectorized:
            return vmap(self._call, in_dims=(0, 0, 0 if per_member else None))(
                self.views, self.buffers, x
            )
        return torch.stack(
            [self.member_forward(k, x[k] if per_member else x) for k in range(self.members)]
        )

    def member_forward(self, k: int, x: Tensor) -> Tensor:
        """Member k alone (the loop): logits (B, classes)."""
        buffers = {name: b[k] for name, b in self.buffers.items()}
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return self._call(self.member_params(k), buffers, x)

    def leaves(self) -> list[Tensor]:
        return self.views

    def banks(self) -> list[Bank]:
        return [Bank(self.flat, 0)]

    def bank_grads(
        self, grads: Sequence[Tensor], flat_out: Tensor, decay: Tensor | None = None
    ) -> list[Tensor]:
        """The vectorized stack's gradients of `leaves()` into `flat_out`, with `decay` (K,)
        as `_move_grads` adds it; a looped stack hands each member's over with `member_grads`
        as it goes."""
        self._move_grads(grads, flat_out, self.flat, decay)
        return [flat_out]

    def member_grads(
        self, k: int, grads: Sequence[Tensor], flat_out: Tensor, decay: Tensor | None = None
    ) -> None:
        """Member k's gradients (of `member_params(k)`) into its row of `flat_out`, with the
        member's `decay` (0-dim) as `_move_grads` adds it."""
        self._move_grads(grads, flat_out[k], self.flat[k], decay)

    def _move_grads(
        self, grads: Sequence[Tensor], out: Tensor, params: Tensor, decay: Tensor | None
    ) -> None:
        """Each slot's gradient into `out`, laid out like `params` (the bank, or one member's
        row of it). With `decay`, a weight's gradient gets `decay * W` on the way: the gradient
        of the textbook's 0.5*decay*sum(W^2), in the pass that moves the gradient anyway (for
        a large population each pass is one over every parameter; a second one for the decay
        took a sixth of the search's step)."""
        for i, (s, g) in enumerate(zip(self.slots, grads, strict=True)):
            if decay is None or i not in self.weights:
                s.view(out).copy_(g)
            else:
                factor = decay.reshape(*decay.shape, *[1] * len(s.shape))
                torch.addcmul(g, s.view(params), factor, out=s.view(out))

    def weight_penalty(self) -> Tensor:
        """(K,) sum of squared weights (parameters with 2 or more dimensions), outside autograd
        (`_move_grads` adds its gradient); as squared norms, one read of the weights with no
        temporary."""
        with torch.no_grad():
            norms = [torch.linalg.vector_norm(w, dim=1) for w in self._weight_segments(self.flat)]
            return sum(n.square() for n in norms)

    def _weight_segments(self, bank: Tensor) -> list[Tensor]:
        """The (K, n) column ranges of a (K, P) bank that hold weights, adjacent ones merged."""
        ranges: list[list[int]] = []
        for i in self.weights:
            slot = self.slots[i]
            if ranges and ranges[-1][1] == slot.start:
                ranges[-1][1] = slot.end
            else:
                ranges.append([slot.start, slot.end])
        return [bank[:, a:b] for a, b in ranges]

    def member_vector(self, k: int) -> Tensor:
        return self.flat[k]

    @torch.no_grad()
    def member_state(self, k: int) -> dict[str, Tensor]:
        """Member k as the state dict of its own network, copied to the CPU: what a
        checkpoint holds and what `sweeps.evaluate` loads."""
        state = {s.name: s.view(self.flat[k]) for s in self.slots}
        state |= {name: b[k] for name, b in self.buffers.items()}
        names = self.names[k]
        if names is not None:
            state = {names[key]: t for key, t in state.items() if key in names}
        return {
            key: t.detach().to("cpu", memory_format=torch.contiguous_format, copy=True)
            for key, t in state.items()
        }

    def vectorizes(self, sample_shape: Sequence[int]) -> str | None:
        """None when a training step of two samples runs vectorized; otherwise why not. The
        buffers are restored, so the probe leaves no trace."""
        saved = {name: b.clone() for name, b in self.buffers.items()}
        try:
            x = torch.zeros(2, *sample_shape, device=self.flat.device)
            self(x).sum().backward()
            return None
        except RuntimeError as err:
            return str(err).splitlines()[0]
        finally:
            for name, b in saved.items():
                self.buffers[name].copy_(b)
            for view in self.views:
                view.grad = None


def choose_strategy(model: Mapping[str, Any], device: torch.device, requested: str) -> str:
    """`auto`: on a CPU a network with convolutions loops over its members (measured: `python
    -m benchmarks.population --model NAME`); a chain of layers with stacked forms is stacked;
    everything else runs under `vmap`."""
    if requested not in STRATEGIES:
        raise ConfigError(
            f"train.population={requested!r} is not valid; choose one of: {', '.join(STRATEGIES)}"
        )
    if requested != "auto":
        return requested
    with on_meta():
        net = build(model)
    if device.type == "cpu" and has_convolutions(net):
        return "loop"
    return "stacked" if isinstance(chain(net), list) else "vmap"


def build_stack(
    members: Sequence[Member],
    device: torch.device,
    strategy: str,
    sample_shape: Sequence[int],
) -> tuple[ModuleStack, str, str | None]:
    """The members as one stack on `device`: (stack, strategy used, why it differs from the
    one chosen, or None)."""
    chosen = choose_strategy(members[0].model, device, strategy)
    ratio = max(float(m.model.get("dropout") or 0.0) for m in members)
    nets, names = [], []
    for m in members:
        if ratio and not m.model.get("dropout") and own_dropout(m.model):
            net, renamed = quiet_dropout(m.model, ratio)  # beside members with dropout
        else:
            net, renamed = build(m.model), None
        initialize(net, m.model["init"], m.model["init_scale"], m.seed)
        nets.append(net)
        names.append(renamed)
    seeds = [m.seed for m in members]
    candidates = (chosen, *FALLBACKS[chosen])  # ending with the loop, which runs any network
    reason = None
    for used, then in itertools.pairwise(candidates):
        steps = chain(nets[0]) if used == "stacked" else []
        if isinstance(steps, str):
            why = steps
        else:
            stack = ModuleStack(nets, seeds, used, names, steps).to(device)
            why = stack.vectorizes(sample_shape)
            if why is None:
                return stack, used, reason
        reason = why
        name = members[0].model.get("name")
        log.warning("model=%s %s (%s): %s", name, CANNOT[used], why, INSTEAD[then])
    return ModuleStack(nets, seeds, "loop", names).to(device), "loop", reason
