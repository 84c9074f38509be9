"""The population trainer: members equal their solo runs, weight decay, determinism."""

import numpy as np
import pytest
import torch

from sweeps.config import ModelConfig, OptimizerConfig, TrainConfig
from sweeps.data import Dataset
from sweeps.errors import ConfigError
from sweeps.plan import Variant
from sweeps.population import Population
from sweeps.train import schedule, train_population

CPU = torch.device("cpu")


def variant(name: str, opt: str, lr: float, seed: int = 0, wd: float = 0.0, **model) -> Variant:
    spec = ModelConfig(input_size=12, hidden_sizes=[16, 16], output_size=3, **model)
    return Variant(name, spec, OptimizerConfig(name=opt, lr=lr, weight_decay=wd), seed)


@pytest.fixture
def data() -> Dataset:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(200, 12, generator=g)
    y = (x[:, 0] * 3).long().clamp(max=2)
    return Dataset("synthetic", "test", False, x[:150], y[:150], x[150:], y[150:])


TRAIN = TrainConfig(iterations=40, batch_size=16, progress=False)


def test_population_equals_members_trained_alone(data: Dataset) -> None:
    members = [
        variant("sgd", "sgd", 0.1, seed=1),
        variant("momentum", "momentum", 0.05, seed=2),
        variant("adagrad", "adagrad", 0.05, seed=3),
        variant("rmsprop", "rmsprop", 0.01, seed=4),
        variant("adam", "adam", 0.01, seed=5, init="xavier"),
    ]
    together = train_population(Population(members, CPU), data, TRAIN, seed=9)
    for k, member in enumerate(members):
        alone = train_population(Population([member], CPU), data, TRAIN, seed=9)
        np.testing.assert_allclose(together.losses[:, k], alone.losses[:, 0], rtol=1e-5, atol=1e-6)
        assert together.test_acc[k] == pytest.approx(alone.test_acc[0])


def test_losses_decrease(data: Dataset) -> None:
    result = train_population(
        Population([variant("adam", "adam", 0.01)], CPU),
        data,
        TrainConfig(iterations=200, batch_size=32, progress=False),
        seed=0,
    )
    assert result.losses[-20:].mean() < 0.7 * result.losses[:20].mean()
    assert result.train_acc[0] > 0.6


def test_same_seed_same_numbers_other_seed_other_numbers(data: Dataset) -> None:
    def losses(seed: int) -> np.ndarray:
        pop = Population([variant("sgd", "sgd", 0.1)], CPU)
        return train_population(pop, data, TRAIN, seed=seed).losses

    np.testing.assert_array_equal(losses(3), losses(3))
    assert not np.array_equal(losses(3), losses(4))


def test_weight_decay_adds_half_lambda_sum_of_squared_weights(data: Dataset) -> None:
    plain = Population([variant("a", "sgd", 0.1)], CPU)
    decayed = Population([variant("a", "sgd", 0.1, wd=0.1)], CPU)
    x, y = data.train_x[:8], data.train_y[:8]
    squares = sum(float((w.detach() ** 2).sum()) for w in plain.model.weight_tensors())
    with torch.no_grad():
        assert float(decayed.losses(x, y)[0]) == pytest.approx(
            float(plain.losses(x, y)[0]) + 0.05 * squares, rel=1e-5
        )
    # Biases are not decayed: the gradient of a bias is the same with and without lambda.
    gb = torch.autograd.grad(plain.losses(x, y).sum(), plain.model.biases[0])[0]
    gd = torch.autograd.grad(decayed.losses(x, y).sum(), decayed.model.biases[0])[0]
    assert torch.allclose(gb, gd)


def test_members_must_share_architecture() -> None:
    with pytest.raises(ValueError, match="architecture"):
        Population([variant("a", "sgd", 0.1), variant("b", "sgd", 0.1, activation="tanh")], CPU)


def test_epoch_schedule_and_per_epoch_accuracy(data: Dataset) -> None:
    train = TrainConfig(iterations=None, epochs=3, batch_size=50, progress=False)
    assert schedule(train, 150) == (9, 3)
    result = train_population(Population([variant("a", "sgd", 0.1)], CPU), data, train, seed=0)
    assert result.losses.shape == (9, 1)
    assert result.epoch_train_acc.shape == (3, 1)
    assert result.epoch_train_acc[-1, 0] == pytest.approx(result.train_acc[0])


@pytest.mark.parametrize(
    ("train", "match"),
    [
        (TrainConfig(iterations=0), "train.iterations"),
        (TrainConfig(epochs=-1), "train.epochs"),
        (TrainConfig(batch_size=0), "train.batch_size"),
    ],
)
def test_bad_budgets_are_config_errors(train: TrainConfig, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        schedule(train, 100)
