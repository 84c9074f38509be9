"""Step time of any network in conf/model/, trained alone and in populations, side by side.

`python -m benchmarks.population --model NAME` runs this: one training step on a batch of 100
synthetic 28x28 images (the textbook's batch), per model, for
1. the plain PyTorch loop of one model (`torch.optim.SGD`), in the default layout and in
   channels-last;
2. `Population` with each strategy (`stacked` where the network is a chain of layers with
   stacked forms, `vmap`, `loop`) for every K, marking the one `train.population=auto`
   picks on this device;
3. the compute floor: the step's FLOPs (3x the forward pass, PyTorch's count) at the large
   matmul's rate, the time no implementation of the step could beat here;
4. for simple_convnet, the textbook's own NumPy step (im2col, `benchmarks.numpy_convnet`).
Speed-ups are per model, against the plain loop.
"""

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from benchmarks import progress
from benchmarks.numpy_convnet import SimpleConvNet
from models.init import initialize
from sweeps.config import OptimizerConfig, config_names
from sweeps.networks import build, on_meta, probe
from sweeps.plan import Variant
from sweeps.population import Population
from sweeps.stacked_layers import chain
from sweeps.stacks import choose_strategy

BATCH = 100
DATA_SIZE = 2000
LR = 0.01


def load_model(conf: Any, name: str) -> dict[str, Any]:
    path = conf / "model" / f"{name}.yaml"
    if not path.is_file():
        valid = config_names("model", exclude=("custom",))
        raise SystemExit(f"--model {name!r} is not in {conf / 'model'}; valid: {', '.join(valid)}")
    return OmegaConf.to_container(OmegaConf.load(path))


def images(device: torch.device) -> Callable[[], tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator(device=device).manual_seed(0)
    x = torch.rand(DATA_SIZE, 1, 28, 28, device=device, generator=generator)
    y = torch.randint(0, 10, (DATA_SIZE,), device=device, generator=generator)

    def sample() -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.randint(0, DATA_SIZE, (BATCH,), device=device, generator=generator)
        return x[idx], y[idx]

    return sample


def plain_step(model: dict, device: torch.device, channels_last: bool) -> Callable[[], Any]:
    """The ordinary single-model loop: what each run of a sequential sweep costs."""
    net = build(model)
    initialize(net, model["init"], model["init_scale"], seed=0)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    net = net.to(device, memory_format=layout)
    optimizer = torch.optim.SGD(net.parameters(), lr=LR)
    sample = images(device)

    def step() -> torch.Tensor:
        x, y = sample()
        loss = F.cross_entropy(net(x.contiguous(memory_format=layout)), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.detach()

    return step


def population_step(model: dict, device: torch.device, k: int, strategy: str) -> Callable:
    variants = [Variant(f"m{i}", model, OptimizerConfig(lr=LR), i) for i in range(k)]
    pop = Population(variants, device, (1, 28, 28), strategy=strategy)
    sample = images(device)
    return lambda: pop.step(*sample())


def numpy_step() -> Callable[[], Any]:
    net = SimpleConvNet()
    rng = np.random.default_rng(0)
    x = rng.random((DATA_SIZE, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, DATA_SIZE)

    def step() -> float:
        idx = rng.integers(0, DATA_SIZE, BATCH)
        return net.step(x[idx], y[idx], LR)

    return step


def model_benchmark(
    conf: Any,
    name: str,
    device: torch.device,
    ks: list[int],
    steps: int,
    ceiling: float,
    seconds_per_step: Callable[[Callable[[], Any], int, torch.device], float],
) -> list[dict]:
    """One row per measurement; `seconds_per_step(step, steps, device)` times a step."""
    model = load_model(conf, name)
    with on_meta():
        stacks = isinstance(chain(build(model)), list)
    strategies = ["stacked", "vmap", "loop"] if stacks else ["vmap", "loop"]
    auto = choose_strategy(model, device, "auto")
    cases: list[tuple[str, int, Callable[[], Callable[[], Any]]]] = [
        ("plain loop", 1, lambda: plain_step(model, device, channels_last=False)),
        ("plain loop, channels-last", 1, lambda: plain_step(model, device, channels_last=True)),
    ]
    for strategy in strategies:
        label = f"population, {strategy}" + (" (auto)" if strategy == auto else "")
        for k in ks:
            build_step = lambda s=strategy, k=k: population_step(model, device, k, s)  # noqa: E731
            cases.append((label, k, build_step))
    if name == "simple_convnet" and device.type == "cpu":
        cases.append(("textbook NumPy (im2col)", 1, numpy_step))
    rows: list[dict] = []
    for mode, k, build_step in cases:
        progress(f"{name}: {mode}, K={k}")
        start = time.perf_counter()
        step = build_step()
        seconds = seconds_per_step(step, steps, device)
        progress(f"  {seconds * 1e3:.2f} ms per step ({time.perf_counter() - start:.0f} s)")
        rows.append({"mode": mode, "K": k, "step_ms": seconds * 1e3})
    flops = 3 * BATCH * probe(model, (1, 28, 28), flops=True).flops
    rows.append({"mode": "compute floor (FLOPs at the matmul rate)", "K": 1})
    rows[-1]["step_ms"] = flops / (ceiling * 1e9) * 1e3
    plain = rows[0]["step_ms"]
    for row in rows:
        row["per_model_ms"] = row["step_ms"] / row["K"]
        row["speedup_vs_plain"] = plain / row["per_model_ms"]
        row["GFLOP/s"] = flops * row["K"] / (row["step_ms"] / 1e3) / 1e9
    return rows
