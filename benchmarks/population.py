"""How much a population saves over training its members one after another.

Measured in one run on one device and printed side by side:

1. the ceiling: GFLOP/s of one large float32 matmul;
2. step time of the optimizer study's MLP (784-100-100-100-100-10, ReLU, He init, batch 128
   drawn from a synthetic in-memory dataset, SGD lr 0.01): the plain PyTorch single-model
   loop ("sequential"), then `Population` with K members for each K, the largest K again
   with a weight decay per member (lambda 1e-4 to 1e-8, as the search draws), the study's own
   population of five different update rules (with the strategy `auto` picks, `stacked`, and
   again under `vmap`), and that step's matrix products alone (the floor); per-model time,
   speed-up over sequential and achieved GFLOP/s (also as a share of the ceiling);
3. end to end, `python -m sweeps.run +experiment=optimizers` (or `--experiment NAME`, e.g.
   `hparam_search`, whose 100 trials are one population) with the population path, with
   `train.max_members=1` (the variants or trials one after another), and with one training
   iteration or epoch (the fixed cost); for the optimizer study also the floor: the fixed
   cost plus its steps at the GEMM-only step time.

With `--model NAME` (any network in conf/model/), it measures that network's step instead:
the plain loop, every population strategy for each K, the compute floor and, for
simple_convnet, the textbook's NumPy step (see `benchmarks.networks`).

Run from the repository root:

    python -m benchmarks.population [--device auto|cpu|cuda] [--steps 200] [--ks 1,4,16,32,100]
        [--options-k 32] [--skip-e2e | --skip-steps] [--experiment optimizers]
        [--e2e-overrides train.iterations=200 ...] [--json results.json]
    python -m benchmarks.population --model simple_convnet [--ks 4,16,32] [--steps 20]
"""

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn

from benchmarks import progress, timed_study
from sweeps.config import OptimizerConfig, register
from sweeps.plan import Variant
from sweeps.population import Population

SIZES = [784, 100, 100, 100, 100, 10]
BATCH = 128
DATA_SIZE = 10_000
LR = 0.01
WARMUP_STEPS = 20
REPEATS = 3
# Forward 2x, backward 4x the multiply-adds (the conventional count: the first layer's input
# gradient, never computed since x needs no gradient, is counted too).
FLOPS_PER_MODEL_STEP = 6 * BATCH * sum(a * b for a, b in zip(SIZES[:-1], SIZES[1:], strict=True))
GEMM_FLOOR = "its GEMMs only (floor)"
STUDY_VMAP = "optimizer study (mixed rules), train.population=vmap"
DECAY = "population, weight decay per member"
CONF = Path(__file__).resolve().parent.parent / "conf"
# The optimizer study's update rules and learning rates (conf/experiment/optimizers.yaml);
# the other hyperparameters are OptimizerConfig's defaults, which match the study's.
STUDY_RULES = {"sgd": 0.01, "momentum": 0.01, "adagrad": 0.01, "rmsprop": 0.01, "adam": 0.001}


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so the clock measures the work and not its launch."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_gflops(device: torch.device, n: int = 2048, warmup: int = 3, repeats: int = 5) -> float:
    """The device's float32 ceiling: best GFLOP/s of an n x n @ n x n matmul."""
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    for _ in range(warmup):
        a @ b
    synchronize(device)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def batch_sampler(device: torch.device) -> Callable[[], tuple[Tensor, Tensor]]:
    """Fresh random mini-batches from a synthetic dataset held on the device, as in training."""
    generator = torch.Generator(device=device).manual_seed(0)
    x = torch.rand(DATA_SIZE, SIZES[0], device=device, generator=generator)
    y = torch.randint(0, SIZES[-1], (DATA_SIZE,), device=device, generator=generator)

    def sample() -> tuple[Tensor, Tensor]:
        idx = torch.randint(0, DATA_SIZE, (BATCH,), device=device, generator=generator)
        return x[idx], y[idx]

    return sample


def seconds_per_step(step: Callable[[], Any], steps: int, device: torch.device) -> float:
    """Median over REPEATS timed runs of `steps` steps, after warm-up steps."""
    for _ in range(WARMUP_STEPS):
        step()
    synchronize(device)
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        for _ in range(steps):
            step()
        synchronize(device)
        times.append((time.perf_counter() - start) / steps)
    return statistics.median(times)


def sequential_step(device: torch.device) -> Callable[[], Any]:
    """The plain PyTorch loop for one model: what each run of a sequential sweep costs."""
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for n_in, n_out in zip(SIZES[:-1], SIZES[1:], strict=True):
        linear = nn.Linear(n_in, n_out)
        nn.init.kaiming_normal_(linear.weight, nonlinearity="relu")
        nn.init.zeros_(linear.bias)
        layers += [linear, nn.ReLU()]
    model = nn.Sequential(*layers[:-1]).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    sample = batch_sampler(device)

    def step() -> Tensor:
        x, y = sample()
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.detach()

    return step


def population_step(
    variants: list[Variant], device: torch.device, **options: Any
) -> Callable[[], Any]:
    """One step of a population of `variants`, on the same batch stream as sequential;
    `options` are Population's `amp` / `compile` switches and its `strategy`."""
    pop = Population(variants, device, (SIZES[0],), **options)
    sample = batch_sampler(device)
    return lambda: pop.step(*sample())


def gemm_step(device: torch.device, k: int) -> Callable[[], Any]:
    """Only the matrix products of a K-member step on a shared batch, in the population's
    shapes (one wide GEMM for layer 0, batched ones after it): the floor a step could reach
    if every other operation cost nothing."""
    generator = torch.Generator(device=device).manual_seed(0)

    def rand(*shape: int) -> Tensor:
        return torch.randn(*shape, device=device, generator=generator)

    x, grad0 = rand(BATCH, SIZES[0]), rand(BATCH, k * SIZES[1])
    w0 = rand(SIZES[0], k * SIZES[1])
    layers = [
        (rand(k, BATCH, n_in), rand(k, n_in, n_out), rand(k, BATCH, n_out))
        for n_in, n_out in zip(SIZES[1:-1], SIZES[2:], strict=True)
    ]  # (input, weights, output gradient) of each layer after the first

    def step() -> None:
        x @ w0
        x.t() @ grad0
        for h, w, grad in layers:
            torch.bmm(h, w)
            torch.bmm(grad, w.transpose(1, 2))
            torch.bmm(h.transpose(1, 2), grad)

    return step


def variant(name: str, lr: float, seed: int, weight_decay: float = 0.0) -> Variant:
    """A member of the study's architecture (conf/model/mlp.yaml) with this rule."""
    model = OmegaConf.to_container(OmegaConf.load(CONF / "model" / "mlp.yaml"))
    return Variant(name, model, OptimizerConfig(name=name, lr=lr, weight_decay=weight_decay), seed)


def step_benchmarks(
    device: torch.device, ks: list[int], steps: int, ceiling: float, options_k: int | None
) -> list[dict]:
    """One row per measurement; per-model speed-up is relative to the sequential loop.
    With `options_k`, also a population of that size with bf16 autocast and with
    torch.compile (its compilation falls in the warm-up steps, outside the timing)."""
    cases: list[tuple[str, int, Callable[[], Callable[[], Any]]]] = [
        ("sequential", 1, lambda: sequential_step(device))
    ]
    for k in ks:
        members = [variant("sgd", LR, seed) for seed in range(k)]
        cases.append(("population", k, lambda m=members: population_step(m, device)))
    # Weight decay as the search draws it, one lambda per member: what the decay adds.
    decayed = [variant("sgd", LR, seed, 10 ** -(4 + 4 * seed / ks[-1])) for seed in range(ks[-1])]
    cases.append((DECAY, ks[-1], lambda: population_step(decayed, device)))
    if options_k:
        members = [variant("sgd", LR, seed) for seed in range(options_k)]
        for option in ("amp", "compile"):
            build = lambda m=members, o=option: population_step(m, device, **{o: True})  # noqa: E731
            cases.append((f"population, train.{option}=true", options_k, build))
    study = [variant(name, lr, 0) for name, lr in STUDY_RULES.items()]
    cases.append(("optimizer study (mixed rules)", 5, lambda: population_step(study, device)))
    # The strategy `auto` picks for the MLP (stacked) against the generic one it replaced.
    vmap = lambda: population_step(study, device, strategy="vmap")  # noqa: E731
    cases.append((STUDY_VMAP, 5, vmap))
    cases.append((GEMM_FLOOR, 5, lambda: gemm_step(device, len(study))))
    rows: list[dict] = []
    for mode, k, build in cases:
        progress(f"{mode}, K={k}: {WARMUP_STEPS} warm-up + {REPEATS} x {steps} steps")
        seconds = seconds_per_step(build(), steps, device)
        sequential = rows[0]["step_ms"] / 1e3 if rows else seconds  # the first case
        gflops = k * FLOPS_PER_MODEL_STEP / seconds / 1e9
        rows.append(
            {
                "mode": mode,
                "K": k,
                "step_ms": seconds * 1e3,
                "per_model_ms": seconds / k * 1e3,
                "speedup_vs_sequential": sequential / (seconds / k),
                "GFLOP/s": gflops,
                "pct_of_ceiling": 100 * gflops / ceiling,
            }
        )
    return rows


def study_config(experiment: str, overrides: list[str]) -> DictConfig:
    """The study's composed config, as the end-to-end runs will see it."""
    register()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=[f"+experiment={experiment}", *overrides])


def e2e_runs(cfg: DictConfig) -> list[tuple[str, list[str]]]:
    """The end-to-end runs and their extra overrides: the population path, one member after
    another, and the shortest budget of the study's kind (one iteration or one epoch), which
    leaves what a run costs besides training (interpreter, imports, stores, logging,
    figures)."""
    shortest = ["train.epochs=1"] if cfg.train.epochs is not None else ["train.iterations=1"]
    return [("population", []), ("sequential", ["train.max_members=1"]), ("fixed", shortest)]


def study_seconds(experiment: str, device: str, overrides: list[str]) -> float:
    """Wall time of the real study command, in a scratch dir with its own MLflow (and
    Optuna) store."""
    with tempfile.TemporaryDirectory() as tmp:
        return timed_study(Path(tmp), experiment, device, overrides)


def end_to_end(
    experiment: str, device: str, overrides: list[str], rows: list[dict]
) -> tuple[dict[str, float], list[tuple[str, list[str]]]]:
    """Seconds of each end-to-end run (see `e2e_runs`), the speed-up, the training time (the
    population run less the fixed cost) and, for the optimizer study when `rows` holds the
    GEMM-only step, the floor; also the runs and their extra overrides."""
    cfg = study_config(experiment, overrides)
    runs = e2e_runs(cfg)
    e2e: dict[str, float] = {}
    for label, extra in runs:
        progress(f"end to end, {label}: python -m sweeps.run +experiment={experiment}")
        e2e[f"{label}_s"] = study_seconds(experiment, device, [*overrides, *extra])
    e2e["speedup"] = e2e["sequential_s"] / e2e["population_s"]
    e2e["training_s"] = e2e["population_s"] - e2e["fixed_s"]
    floor = next((r for r in rows if r["mode"] == GEMM_FLOOR), None)
    if experiment == "optimizers" and floor and cfg.train.epochs is None:
        e2e["floor_s"] = e2e["fixed_s"] + cfg.train.iterations * floor["step_ms"] / 1e3
    return e2e, runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--steps", type=int, default=200, help="timed steps per repeat")
    parser.add_argument("--ks", default="1,4,16,32,100", help="population sizes, comma-separated")
    parser.add_argument(
        "--options-k", type=int, help="also time this K with train.amp and with train.compile"
    )
    parser.add_argument("--skip-e2e", action="store_true", help="skip the end-to-end study runs")
    parser.add_argument("--skip-steps", action="store_true", help="only the end-to-end runs")
    parser.add_argument("--experiment", default="optimizers", help="study timed end to end")
    parser.add_argument("--e2e-overrides", nargs="*", default=[], help="extra Hydra overrides")
    parser.add_argument("--json", help="also write every number to this JSON file")
    parser.add_argument(
        "--model", help="time this network of conf/model/ (see benchmarks.networks)"
    )
    args = parser.parse_args()
    use_cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    device = torch.device("cuda" if use_cuda else "cpu")
    name = torch.cuda.get_device_name(device) if use_cuda else "cpu"
    threads = "" if use_cuda else f", {torch.get_num_threads()} threads"
    header = f"device: {name}{threads}; torch {torch.__version__}"
    ks = [int(k) for k in args.ks.split(",")]
    if args.model:
        model_main(args, device, header, ks)
        return

    ceiling, rows = 0.0, []
    if not args.skip_steps:
        progress("ceiling: 2048 x 2048 float32 matmul")
        ceiling = matmul_gflops(device)
        rows = step_benchmarks(device, ks, args.steps, ceiling, args.options_k)
    e2e: dict[str, float] = {}
    runs: list[tuple[str, list[str]]] = []
    if not args.skip_e2e:
        e2e, runs = end_to_end(args.experiment, device.type, args.e2e_overrides, rows)

    print(header)
    if rows:
        print(f"ceiling (2048^3 float32 matmul): {ceiling:.1f} GFLOP/s")
        print(f"MLP {'-'.join(map(str, SIZES))}, batch {BATCH}, median of {REPEATS} x {args.steps}")
        print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if e2e:
        overrides = " ".join(args.e2e_overrides) or "(none)"
        print(f"end to end, +experiment={args.experiment}, extra overrides: {overrides}")
        print(f"  population (default):              {e2e['population_s']:.1f} s")
        print(f"  sequential (train.max_members=1):  {e2e['sequential_s']:.1f} s")
        print(f"  speed-up: {e2e['speedup']:.2f}x")
        print(f"  fixed cost ({' '.join(runs[-1][1])}):   {e2e['fixed_s']:.1f} s")
        print(f"  training steps (the difference):   {e2e['training_s']:.1f} s")
        if "floor_s" in e2e:
            print(f"  floor (fixed + steps at GEMM-only): {e2e['floor_s']:.1f} s")
    if args.json:
        results = {"header": header, "ceiling_gflops": ceiling, "steps": args.steps}
        results |= {"step_times": rows, "e2e": e2e, "e2e_overrides": args.e2e_overrides}
        results["experiment"] = args.experiment
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)


def model_main(args: argparse.Namespace, device: torch.device, header: str, ks: list[int]) -> None:
    """`--model NAME`: that network's step, alone and in populations."""
    from benchmarks.networks import BATCH, model_benchmark

    progress("ceiling: 2048 x 2048 float32 matmul")
    ceiling = matmul_gflops(device)
    rows = model_benchmark(CONF, args.model, device, ks, args.steps, ceiling, seconds_per_step)
    print(header)
    print(f"ceiling (2048^3 float32 matmul): {ceiling:.1f} GFLOP/s")
    print(f"model={args.model}, batch {BATCH}, median of {REPEATS} x {args.steps} steps")
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if args.json:
        results = {"header": header, "model": args.model, "ceiling_gflops": ceiling}
        with open(args.json, "w") as fh:
            json.dump(results | {"steps": args.steps, "step_times": rows}, fh, indent=2)


if __name__ == "__main__":
    main()
