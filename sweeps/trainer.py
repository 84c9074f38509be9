"""The training loop: populations step on a stream of mini-batches kept on the device.

What one call trains on and how (data, budget, seed, per-epoch hook) travels as one
`Training`; results come back per member as a `TrainResult`, evaluated on the data's
evaluation split (test, or validation in a search).

Batches are drawn with replacement (the textbook's `np.random.choice(train_size, batch_size)`)
by indexing tensors that already live on the device: one stream shared by every member
(seeded by the study seed; with `seeds`, one per replicate seed), or with
`train.shared_batches=false` one stream per member keyed by its seed. Losses stay on the
device until training ends, so the loop never waits for the host. A population too large
for the device's memory is trained in chunks of members.
"""

import gc
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from models.counter_rng import uniform
from sweeps import interrupts, lanes
from sweeps.augment import augment
from sweeps.config import TrainConfig, check_budget
from sweeps.data import Dataset
from sweeps.errors import ConfigError
from sweeps.networks import probe
from sweeps.numbers import LOSS_DIGITS, fraction, significant
from sweeps.plan import Variant, group_by_architecture
from sweeps.population import Population
from sweeps.stacks import choose_strategy

log = logging.getLogger(__name__)

BATCH_STREAM = 0  # counter-RNG stream for per-member batches; dropout layers use 1, 2, ...
MEMORY_FRACTION = 0.5

# Called after each epoch with (members as the caller's indices, epoch from 1, train
# accuracy, evaluation accuracy), arrays in the same member order; returns which of those
# members to stop (freeze) from now on, or None. Pruners hook in here. After running out of
# memory the population starts over in smaller chunks, so a callback may see an epoch again.
EpochCallback = Callable[[np.ndarray, int, np.ndarray, np.ndarray], np.ndarray | None]


@dataclass(frozen=True)
class Training:
    """What every population of one call trains on, and how: the data (models are evaluated
    on its evaluation split), the budget and batch settings, the seed of the shared batch
    stream, and an optional per-epoch hook (a search's pruner)."""

    data: Dataset
    config: TrainConfig
    seed: int
    on_epoch: EpochCallback | None = None
    keep_states: bool = False  # return each member's final state dict (checkpoints)
    # Evaluate after every epoch (the accuracy curves; always with `on_epoch`), or only once
    # training ends: a search retraining its best trial reads its test set once, for the one
    # score it reports.
    curves: bool = True


@dataclass
class TrainResult:
    """Per-member results, members along the last axis in the caller's order. `eval_*` are
    accuracies on the data's evaluation split (`Dataset.eval_split`)."""

    losses: np.ndarray  # (steps, K)
    train_acc: np.ndarray  # (K,)
    eval_acc: np.ndarray  # (K,)
    diverged_at: np.ndarray  # (K,) first step with a non-finite loss, -1 if none
    epoch_train_acc: np.ndarray  # (epochs, K); empty for iteration-based studies
    epoch_eval_acc: np.ndarray
    seconds: float
    chunk: int  # members trained together
    strategy: str = ""  # how they ran together (sweeps.stacks.STRATEGIES)
    fallback: str | None = None  # why not the strategy chosen, when it could not run
    states: list[dict[str, torch.Tensor]] | None = None  # final weights, with keep_states
    peak_memory: int | None = None  # bytes the device held at most (CUDA only)

    def take(self, order: np.ndarray) -> "TrainResult":
        """Back to the caller's order, given `order[j]` = caller's index of stored member j."""
        inverse = np.argsort(order)
        states = [self.states[i] for i in inverse] if self.states is not None else None
        arrays = {f: getattr(self, f)[..., inverse] for f in MEMBER_ARRAYS}
        return replace(self, **arrays, states=states)

    def tags(self) -> dict[str, Any]:
        """How the members trained, for each member's run: members together, the strategy,
        why it is not the one chosen when the network could not run that way, and the time
        they shared (one number for all, so a tag rather than a metric to compare)."""
        tags: dict[str, Any] = {
            "population.size": self.chunk,
            "population.strategy": self.strategy,
            "population.seconds": self.seconds,
        }
        if self.fallback:
            tags["population.fallback"] = self.fallback
        return tags

    def loss_series(self, k: int, epochs: int | None = None) -> np.ndarray:
        """Member k's losses as recorded: up to `epochs` (a pruned trial's last one), and for
        a diverged member only its finite losses, up to the step where it diverged (the rest
        are inf, which would stretch every loss chart to 1e308)."""
        recorded = len(self.epoch_train_acc)
        kept = recorded if epochs is None else min(epochs, recorded)
        steps = len(self.losses) * kept // recorded if recorded else len(self.losses)
        if self.diverged_at[k] >= 0:
            steps = min(steps, int(self.diverged_at[k]))
        return self.losses[:steps, k]

    def epoch_losses(self, k: int, epochs: int | None = None) -> np.ndarray:
        """Member k's mean loss over each epoch's steps that `loss_series` keeps (so a
        diverged member's last epoch is the mean of its finite steps)."""
        losses = self.loss_series(k, epochs)
        steps = len(self.losses) // len(self.epoch_train_acc)
        return np.array([losses[i : i + steps].mean() for i in range(0, len(losses), steps)])

    def points(
        self, k: int, split: str, epochs: int | None = None, loss_per_epoch: bool = False
    ) -> list[tuple[str, float, int]]:
        """Member k's series and final values as (key, value, step) metric points.

        `train/loss` is stepped by iteration (`loss_series`), or with `loss_per_epoch` (and an
        epoch-based budget) by epoch, each the epoch's mean. Accuracies (`train/acc`,
        `{split}/acc`, split naming the evaluation split) are stepped by epoch in epoch-based
        studies, up to `epochs`; otherwise logged once, at the last step of the loss series,
        so a chart of both ends them together.
        """
        losses = self.loss_series(k, epochs)
        points = [("train/loss", v, i) for i, v in enumerate(losses)]
        if loss_per_epoch and len(self.epoch_train_acc):
            points = [("train/loss", v, e + 1) for e, v in enumerate(self.epoch_losses(k, epochs))]
        kept = len(self.epoch_train_acc) if epochs is None else epochs
        for e in range(min(kept, len(self.epoch_train_acc))):
            points.append(("train/acc", self.epoch_train_acc[e, k], e + 1))
            points.append((f"{split}/acc", self.epoch_eval_acc[e, k], e + 1))
        last = max(len(losses) - 1, 0)
        if not len(self.epoch_train_acc):
            points.append(("train/acc", self.train_acc[k], last))
            points.append((f"{split}/acc", self.eval_acc[k], last))
        if self.peak_memory is not None:
            points.append(("population/peak_memory_mib", round(self.peak_memory / 2**20, 1), last))
        return points


MEMBER_ARRAYS = (
    "losses",
    "train_acc",
    "eval_acc",
    "diverged_at",
    "epoch_train_acc",
    "epoch_eval_acc",
)


def merge(parts: Sequence[TrainResult]) -> TrainResult:
    """Chunks trained one after another, as one result; seconds add up."""
    arrays = {f: np.concatenate([getattr(p, f) for p in parts], axis=-1) for f in MEMBER_ARRAYS}
    states = None if parts[0].states is None else [s for p in parts for s in p.states or []]
    return replace(
        parts[0],
        **arrays,
        seconds=sum(p.seconds for p in parts),
        chunk=max(p.chunk for p in parts),
        states=states,
        peak_memory=None if parts[0].peak_memory is None else max(p.peak_memory for p in parts),
    )


def schedule(train: TrainConfig, train_size: int) -> tuple[int, int | None]:
    """(total iterations, iterations per epoch or None).

    An epoch is max(N / batch, 1) iterations (rounded up), as in the textbook's Trainer;
    `train.epochs` takes precedence over `train.iterations` when set.
    """
    check_budget(train)
    if train.epochs is not None:
        per_epoch = max(math.ceil(train_size / train.batch_size), 1)
        return train.epochs * per_epoch, per_epoch
    return train.iterations, None


def check_augment(train: TrainConfig, data: Dataset) -> None:
    if not train.augment:
        return
    if data.train_x.dim() != 4:
        raise ConfigError(
            f"train.augment=true needs images (N, C, H, W); {data.name} samples have shape "
            f"{data.sample_shape}"
        )
    if train.augment_shift < 0 or train.augment_rotate < 0:
        raise ConfigError(
            f"train.augment_shift={train.augment_shift} and train.augment_rotate="
            f"{train.augment_rotate} must be >= 0"
        )


def available_bytes(device: torch.device) -> int:
    """Free memory where the population will live."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def member_bytes(
    variant: Variant, train: TrainConfig, train_size: int, sample_shape: tuple[int, ...]
) -> tuple[int, int]:
    """A generous estimate of one member's memory, as (parameters with gradient, optimizer
    state and update temporaries; activations of a training step or an evaluation chunk)."""
    network = probe(variant.model, sample_shape)
    inputs = 0 if train.shared_batches else math.prod(sample_shape)
    step = train.batch_size * (network.activations * 4 + inputs)
    evaluation = min(train.eval_batch_size, train_size) * network.activations
    return 4 * network.parameters * 6, 4 * max(step, evaluation)


def check_memory(variants: Sequence[Variant], train: TrainConfig, data: Dataset) -> None:
    """One member of each architecture must fit in the free memory, before any run opens:
    otherwise the first step fails deep in torch's allocator, with runs half-written."""
    free = available_bytes(data.train_x.device)
    for group in group_by_architecture(list(variants)):
        state, activations = member_bytes(group[0], train, len(data.train_y), data.sample_shape)
        if state + activations > free:
            raise ConfigError(
                f"model={group[0].model.get('name', '?')} with train.batch_size="
                f"{train.batch_size} needs about {(state + activations) / 2**30:.1f} GiB for one "
                f"member; {free / 2**30:.1f} GiB are free on {data.train_x.device}: lower "
                "train.batch_size or the model's size"
            )


def members_per_chunk(variants: Sequence[Variant], train: TrainConfig, data: Dataset) -> int:
    """Members that fit in a share of the free memory. Members one after another (`loop`)
    hold one member's activations at a time; otherwise every member's are alive at once."""
    check_budget(train)
    if train.max_members is not None:
        return train.max_members
    device = data.train_x.device
    state, activations = member_bytes(variants[0], train, len(data.train_y), data.sample_shape)
    budget = int(available_bytes(device) * MEMORY_FRACTION)
    if choose_strategy(variants[0].model, device, train.population) == "loop":
        return max(1, (budget - activations) // state)
    return max(1, budget // (state + activations))


def train_variants(variants: Sequence[Variant], training: Training, desc: str) -> TrainResult:
    """Train variants of one architecture as populations of at most the chunk size that
    fits; halve the chunk and start over if the device still runs out of memory."""
    data, train = training.data, training.config
    device = data.train_x.device
    chunk = members_per_chunk(variants, train, data)
    while True:
        parts = [variants[i : i + chunk] for i in range(0, len(variants), chunk)]
        try:
            results = []
            for j, part in enumerate(parts):
                label = f"{desc} chunk {j + 1}/{len(parts)}" if len(parts) > 1 else desc
                pop = Population(
                    part,
                    device,
                    data.sample_shape,
                    amp=train.amp,
                    compile=train.compile,
                    strategy=train.population,
                )
                members = j * chunk + pop.order
                result = train_population(pop, training, label, members)
                results.append(result.take(pop.order))
            return merge(results)
        except torch.OutOfMemoryError:
            if chunk == 1:
                raise
            chunk = max(1, chunk // 2)
            log.warning("out of memory: retrying with populations of %d members", chunk)
            gc.collect()  # tensors held by cyclic garbage (sweeps.collector collects it late)
            if device.type == "cuda":
                torch.cuda.empty_cache()


class BatchStreams:
    """The shared batch streams of a population: one, seeded by the study's seed, or with
    replicates (`seeds`) one per replicate seed, each drawing exactly what a study run with
    that seed alone draws, so replicate S matches `seed=S`."""

    def __init__(self, replicates: Sequence[int | None], seed: int, device: torch.device) -> None:
        seeds = [seed if r is None else r for r in replicates]
        distinct = list(dict.fromkeys(seeds))
        self.generators = [torch.Generator(device=device).manual_seed(s) for s in distinct]
        self.rows = torch.tensor([distinct.index(s) for s in seeds], device=device)
        self.device = device

    def draw(self, n: int, batch_size: int) -> torch.Tensor:
        """Indices of the next batch: (B,) shared by every member, or (K, B) by replicate."""
        draws = [
            torch.randint(0, n, (batch_size,), device=self.device, generator=g)
            for g in self.generators
        ]
        return draws[0] if len(draws) == 1 else torch.stack(draws)[self.rows]


def train_population(
    pop: Population, training: Training, desc: str = "train", members: np.ndarray | None = None
) -> TrainResult:
    """Train every member of `pop`; results in the population's stored member order.

    `training.on_epoch` sees the stored members as `members` (default: their stored
    positions); it costs one host sync per epoch, which only a caller that needs the numbers
    pays for.
    """
    data, train, on_epoch = training.data, training.config, training.on_epoch
    total, per_epoch = schedule(train, len(data.train_y))
    check_augment(train, data)
    device = data.train_x.device
    streams = BatchStreams(pop.replicates, training.seed, device)
    losses = torch.empty(total, pop.size, device=device)
    epoch_train, epoch_eval = [], []
    n, n_eval = len(data.train_y), len(data.eval_y)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    bar = tqdm(
        range(total),
        desc=desc,
        unit="it",
        disable=not train.progress,
        mininterval=0.5,
        position=lanes.position(),
    )
    for i in bar:
        interrupts.check()
        if train.shared_batches:
            idx = streams.draw(n, train.batch_size)
        else:
            u = uniform(pop.model.keys, pop.step_count, BATCH_STREAM, (train.batch_size,))
            idx = (u * n).long().clamp_(max=n - 1)
        x, y = data.train_x[idx], data.train_y[idx]
        if train.augment:
            if y.dim() == 1:  # every member moves the shared batch its own way
                x, y = x.expand(pop.size, *x.shape), y.expand(pop.size, len(y))
            shift, rotate = train.augment_shift, train.augment_rotate
            x = augment(x, pop.model.keys, pop.step_count, shift, rotate)
        losses[i] = pop.step(x, y)
        if per_epoch and (training.curves or on_epoch) and (i + 1) % per_epoch == 0:
            epoch_train.append(pop.correct(data.train_x, data.train_y, train.eval_batch_size))
            epoch_eval.append(pop.correct(data.eval_x, data.eval_y, train.eval_batch_size))
            if on_epoch is not None:
                ids = np.arange(pop.size) if members is None else members
                stop = on_epoch(
                    ids,
                    len(epoch_train),
                    fraction(epoch_train[-1].cpu(), n),
                    fraction(epoch_eval[-1].cpu(), n_eval),
                )
                if stop is not None and stop.any():
                    pop.stop(torch.as_tensor(stop))
    if epoch_train:  # the last epoch's evaluation is the final one
        train_acc, eval_acc = epoch_train[-1], epoch_eval[-1]
    else:
        train_acc = pop.correct(data.train_x, data.train_y, train.eval_batch_size)
        eval_acc = pop.correct(data.eval_x, data.eval_y, train.eval_batch_size)
    seconds = time.perf_counter() - start

    def host(rows: list[torch.Tensor], total: int) -> np.ndarray:
        return fraction(torch.stack(rows).cpu(), total) if rows else np.empty((0, pop.size))

    return TrainResult(
        losses=significant(losses.cpu(), LOSS_DIGITS),
        train_acc=fraction(train_acc.cpu(), n),
        eval_acc=fraction(eval_acc.cpu(), n_eval),
        diverged_at=pop.diverged_at.cpu().numpy(),
        epoch_train_acc=host(epoch_train, n),
        epoch_eval_acc=host(epoch_eval, n_eval),
        seconds=round(seconds, 3),
        chunk=pop.size,
        strategy=pop.strategy,
        fallback=pop.fallback,
        states=pop.states() if training.keep_states else None,
        peak_memory=torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None,
    )
