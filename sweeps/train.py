"""The training loop: a population steps on one shared stream of mini-batches.

Batches are drawn with replacement (the textbook's `np.random.choice(train_size, batch_size)`)
by indexing tensors that already live on the device. Losses stay on the device until the end
of training, so the step loop never waits for the host.
"""

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from sweeps.config import TrainConfig
from sweeps.data import Dataset
from sweeps.errors import ConfigError
from sweeps.population import Population


@dataclass
class TrainResult:
    """Per-member histories; arrays are (steps, K) or (K,)."""

    losses: np.ndarray
    train_acc: np.ndarray
    test_acc: np.ndarray
    seconds: float
    steps_per_epoch: int | None = None
    epoch_train_acc: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))
    epoch_test_acc: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))


def schedule(train: TrainConfig, train_size: int) -> tuple[int, int | None]:
    """(total iterations, iterations per epoch or None).

    An epoch is max(N / batch, 1) iterations, as in the textbook's Trainer; `train.epochs`
    takes precedence over `train.iterations` when set.
    """
    if train.batch_size <= 0:
        raise ConfigError(f"train.batch_size={train.batch_size} must be positive")
    if train.epochs is not None:
        if train.epochs <= 0:
            raise ConfigError(f"train.epochs={train.epochs} must be positive")
        per_epoch = max(math.ceil(train_size / train.batch_size), 1)
        return train.epochs * per_epoch, per_epoch
    if train.iterations is None or train.iterations <= 0:
        raise ConfigError(
            f"train.iterations={train.iterations} must be positive (or set train.epochs)"
        )
    return train.iterations, None


def train_population(
    pop: Population, data: Dataset, train: TrainConfig, seed: int, desc: str = "train"
) -> TrainResult:
    """Train every member of `pop` on the same batch sequence, seeded by `seed`."""
    total, per_epoch = schedule(train, len(data.train_y))
    device = data.train_x.device
    generator = torch.Generator(device=device).manual_seed(seed)
    losses = torch.empty(total, pop.size, device=device)
    epoch_train, epoch_test = [], []
    n = len(data.train_y)
    start = time.perf_counter()
    for i in tqdm(range(total), desc=desc, unit="it", disable=not train.progress, mininterval=0.5):
        idx = torch.randint(0, n, (train.batch_size,), device=device, generator=generator)
        losses[i] = pop.step(data.train_x[idx], data.train_y[idx])
        if per_epoch and (i + 1) % per_epoch == 0:
            epoch_train.append(pop.accuracy(data.train_x, data.train_y, train.eval_batch_size))
            epoch_test.append(pop.accuracy(data.test_x, data.test_y, train.eval_batch_size))
    train_acc = pop.accuracy(data.train_x, data.train_y, train.eval_batch_size)
    test_acc = pop.accuracy(data.test_x, data.test_y, train.eval_batch_size)
    seconds = time.perf_counter() - start

    def host(rows: list[torch.Tensor]) -> np.ndarray:
        return torch.stack(rows).cpu().numpy() if rows else np.empty((0, pop.size))

    return TrainResult(
        losses=losses.cpu().numpy(),
        train_acc=train_acc.cpu().numpy(),
        test_acc=test_acc.cpu().numpy(),
        seconds=seconds,
        steps_per_epoch=per_epoch,
        epoch_train_acc=host(epoch_train),
        epoch_test_acc=host(epoch_test),
    )
