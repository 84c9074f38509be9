"""Model configs: which network a `model=` option builds, and what sets two members apart.

A model config is Hydra's `_target_` (any importable `nn.Module` class) with its constructor
arguments, plus keys that are not arguments: `name` (the config's name) and the per-member init
(`init`, `init_scale`, applied by `models.init.initialize`). A member's `dropout` ratio is an
argument, but not architecture: members whose configs are equal apart from `init`,
`init_scale` and the dropout ratio share one population, a member without dropout included
(`quiet_dropout`). For networks from elsewhere, whose `dropout` may build anything, whether
there is dropout at all stays architecture.

Checks run on the meta device, so no memory is allocated and no weight is drawn: a
constructor's complaint, and data that does not fit the network (named by its layer), are
reported before any training starts.
"""

import contextlib
import functools
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from sweeps.errors import ConfigError

NOT_ARGUMENTS = ("name", "init", "init_scale")
PER_MEMBER = ("init", "init_scale", "dropout")


def arguments(model: Mapping[str, Any]) -> dict[str, Any]:
    """What `instantiate` gets: the target and its constructor arguments."""
    return {k: v for k, v in model.items() if k not in NOT_ARGUMENTS}


def label(model: Mapping[str, Any]) -> str:
    return str(model.get("name") or model.get("_target_"))


def build(model: Mapping[str, Any]) -> nn.Module:
    """The network of `model`, on the current default device (see `on_meta`)."""
    if not model.get("_target_"):
        raise ConfigError(
            f"model={label(model)} has no _target_: set model._target_ to an nn.Module class, "
            "e.g. model=custom model._target_=my_pkg.MyNet"
        )
    try:
        net = instantiate(arguments(model), _convert_="all")
    except InstantiationException as err:
        # The constructor's own complaint, on one line, rather than Hydra's wrapping of it.
        cause = err.__cause__ or err
        shown = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
        raise ConfigError(f"model={label(model)} ({model['_target_']}): {shown}") from err
    if not isinstance(net, nn.Module):
        raise ConfigError(
            f"model._target_={model['_target_']} built a {type(net).__name__}, not an nn.Module"
        )
    return net


@contextmanager
def on_meta() -> Iterator[None]:
    """Build networks without memory or random draws."""
    with torch.device("meta"):
        yield


def own_dropout(model: Mapping[str, Any]) -> bool:
    """Whether `model` is one of this project's networks (`models.*`) with a `dropout`
    argument: they use it only to add a `models.layers.Dropout` of that ratio after the layers
    it names, so the network built with dropout layers at ratio 0 computes exactly what the
    one built without them does."""
    return str(model.get("_target_", "")).startswith("models.") and "dropout" in model


def architecture(model: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """What members of one population must share: the config without its per-member values;
    for networks not `own_dropout`, also whether it has dropout at all."""
    key = {k: repr(v) for k, v in model.items() if k not in PER_MEMBER}
    if not own_dropout(model):
        key["dropout"] = repr(bool(model.get("dropout")))
    return tuple(sorted(key.items()))


def quiet_dropout(model: Mapping[str, Any], ratio: float) -> tuple[nn.Module, dict[str, str]]:
    """The network of `model` (an `own_dropout` config with no dropout) built with dropout
    layers, as its population's members with dropout are, each at ratio 0; and the names of
    its parameters and buffers in the network its own config builds (the dropout layers'
    buffers have none), so that its checkpoint loads there. Layers at ratio 0 keep every unit
    and scale by 1 in evaluation: the member trains to the same numbers."""
    from models.layers import Dropout

    net = build({**model, "dropout": ratio})
    quiet: set[str] = set()
    for name, module in net.named_modules():
        if isinstance(module, Dropout):
            module.ratio.fill_(0.0)
            quiet |= {f"{name}.{buffer}" for buffer, _ in module.named_buffers(recurse=False)}
    with on_meta():
        own = build(model)
    stacked = [*net.named_parameters(), *((n, b) for n, b in net.named_buffers() if n not in quiet)]
    mine = [*own.named_parameters(), *own.named_buffers()]
    if [t.shape for _, t in stacked] != [t.shape for _, t in mine]:
        raise ValueError(f"model={label(model)}: dropout adds more than dropout layers")
    return net, {a: b for (a, _), (b, _) in zip(stacked, mine, strict=True)}


def parameter_count(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def has_convolutions(net: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.conv._ConvNd) for m in net.modules())


class Trace:
    """One forward pass watched layer by layer: which layer is running (so an error can name
    it), and how many activation elements per sample the leaf layers produce."""

    def __init__(self, net: nn.Module) -> None:
        self.stack: list[tuple[str, str, list[tuple[int, ...]]]] = []
        self.activations = 0
        self.handles = []
        for name, module in net.named_modules():
            if module is net:
                continue
            self.handles.append(module.register_forward_pre_hook(self._enter(name)))
            self.handles.append(module.register_forward_hook(self._leave))

    def _enter(self, name: str):
        def hook(module: nn.Module, inputs: tuple[Any, ...]) -> None:
            shapes = [tuple(t.shape) for t in inputs if isinstance(t, torch.Tensor)]
            self.stack.append((name, type(module).__name__, shapes))

        return hook

    def _leave(self, module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        self.stack.pop()
        if isinstance(output, torch.Tensor) and not any(module.children()):
            self.activations += output[0].numel()

    def where(self) -> str:
        if not self.stack:
            return ""
        name, kind, shapes = self.stack[-1]
        shown = ", ".join(str(s) for s in shapes)
        return f" in layer {name!r} ({kind}) with input shape {shown}"

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


@dataclass(frozen=True)
class Probe:
    """What one forward pass of two samples showed."""

    output_shape: tuple[int, ...] | None  # None: the network did not return a tensor
    parameters: int
    flops: int | None  # per sample, as PyTorch's flop counter counts them; None: not asked
    activations: int  # elements per sample, every leaf layer's output


class ProbeError(Exception):
    """The forward pass failed; the message names the layer."""


PROBE_BATCH = 2
# Networks with at most this many bytes of parameters are probed on the CPU: running on the
# meta device, like counting flops, imports torch._dynamo, about 1.4 s of every study's start
# (benchmarks/startup.py), while a small network's CPU pass takes milliseconds.
CPU_PROBE_BYTES = 2**28


@functools.lru_cache(maxsize=256)
def _probe(model_json: str, sample_shape: tuple[int, ...], flops: bool) -> Probe:
    model = json.loads(model_json)
    with torch.device("meta"):
        size = parameter_count(build(model))
    devices = ("cpu",) if 4 * size <= CPU_PROBE_BYTES else ("meta", "cpu")
    for device in devices:
        # The meta device allocates nothing; a network that reads a tensor's value (`.item()`,
        # Python control flow) cannot run there, and is probed on the CPU instead. On the CPU
        # the global random state is put back: building draws initial weights.
        with torch.random.fork_rng(devices=[]), torch.device(device):
            net = build(model)
        net.eval()
        trace = Trace(net)
        counter = FlopCounterMode(display=False) if flops else None
        try:
            with counter or contextlib.nullcontext():
                out = net(torch.zeros(PROBE_BATCH, *sample_shape, device=device))
        except Exception as err:  # a user's network may fail in any way: report it
            if device == "cpu":
                raise ProbeError(f"{trace.where()}: {err}") from err
            continue
        finally:
            trace.remove()
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else None
        count = math.ceil(counter.get_total_flops() / PROBE_BATCH) if counter else None
        return Probe(shape, parameter_count(net), count, trace.activations // PROBE_BATCH)
    raise AssertionError("unreachable: the CPU attempt returns or raises")


def probe(model: Mapping[str, Any], sample_shape: Sequence[int], flops: bool = False) -> Probe:
    """One forward pass of two samples through the network, on the CPU for a network of up
    to `CPU_PROBE_BYTES` of parameters, else on the meta device when it can run there (no
    memory); cached per config and shape. `flops`: count them too (slower to start)."""
    return _probe(json.dumps(dict(model), sort_keys=True), tuple(sample_shape), flops)


def check_fits(
    model: Mapping[str, Any],
    sample_shape: tuple[int, ...],
    classes: int,
    data_name: str,
    flops: bool = False,
) -> Probe:
    """Raise a ConfigError naming the layer when the data's shape does not fit the network,
    or when it gives fewer outputs than the data has classes."""
    where = f"model={label(model)} does not fit {data_name} samples of shape {sample_shape}"
    try:
        found = probe(model, sample_shape, flops)
    except ProbeError as err:
        raise ConfigError(f"{where}{err}") from err
    shape = found.output_shape
    if shape is None or len(shape) != 2 or shape[0] != PROBE_BATCH:
        raise ConfigError(f"{where}: it must return (batch, classes) logits, got {shape}")
    if shape[1] < classes:
        raise ConfigError(f"{where}: it has {shape[1]} outputs but {data_name} has {classes}")
    return found
