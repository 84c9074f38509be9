"""The population trainer: members equal their solo runs, BN, dropout, divergence, chunks."""

import dataclasses

import numpy as np
import pytest
import torch

from sweeps.config import OptimizerConfig, TrainConfig
from sweeps.data import Dataset
from sweeps.errors import ConfigError
from sweeps.networks import build
from sweeps.plan import Variant
from sweeps.population import Population
from sweeps.trainer import (
    Training,
    TrainResult,
    members_per_chunk,
    schedule,
    train_population,
    train_variants,
)

CPU = torch.device("cpu")
MLP = {"_target_": "models.mlp.MLP", "name": "mlp", "init": "he", "init_scale": 0.01}
SAMPLE = (12,)
STRATEGIES = ("stacked", "vmap", "loop")  # every way to run a population


def variant(
    name: str, opt: str = "sgd", lr: float = 0.1, seed: int = 0, wd: float = 0.0, **model
) -> Variant:
    spec = {**MLP, "input_size": 12, "hidden_sizes": [16, 16], "output_size": 3, **model}
    return Variant(name, spec, OptimizerConfig(name=opt, lr=lr, weight_decay=wd), seed)


@pytest.fixture
def data() -> Dataset:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(200, 12, generator=g)
    y = (x[:, 0] * 3).long().clamp(max=2)
    return Dataset("synthetic", "test", False, x[:150], y[:150], x[150:], y[150:])


TRAIN = TrainConfig(iterations=40, batch_size=16, progress=False)
OPTIMIZERS = [
    ("sgd", 0.1),
    ("momentum", 0.05),
    ("adagrad", 0.05),
    ("rmsprop", 0.01),
    ("adam", 0.01),
]


def assert_population_equals_solo_runs(
    members: list[Variant], data: Dataset, train: TrainConfig
) -> None:
    together = train_variants(members, Training(data, train, 9), "t")
    assert together.chunk == len(members)
    for k, member in enumerate(members):
        alone = train_variants([member], Training(data, train, 9), "t")
        np.testing.assert_allclose(together.losses[:, k], alone.losses[:, 0], rtol=1e-4, atol=1e-6)
        assert together.eval_acc[k] == pytest.approx(alone.eval_acc[0])


def test_every_optimizer_in_one_population_equals_solo_runs(data: Dataset) -> None:
    # Interleaved rules: the population regroups members by rule and must map them back.
    members = [
        variant(f"{opt}{i}", opt, lr * (1 + i), seed=10 * i + j)
        for i in range(2)
        for j, (opt, lr) in enumerate(OPTIMIZERS)
    ]
    assert_population_equals_solo_runs(members, data, TRAIN)


def test_batchnorm_and_dropout_populations_equal_solo_runs(data: Dataset) -> None:
    # Not adaptive rules with BN here: the bias before a BN layer has a zero gradient in exact
    # arithmetic, and AdaGrad/RMSprop/Adam divide that float noise by its own magnitude, so
    # batched and solo runs drift apart by more than float tolerance, through no bug.
    members = [
        variant("bn", "sgd", 0.1, seed=1, batchnorm=True, init="std", init_scale=0.1, dropout=0.1),
        variant("bn-drop", "momentum", 0.05, seed=3, batchnorm=True, dropout=0.5),
        variant("bn-drop2", "sgd", 0.05, seed=2, batchnorm=True, dropout=0.2),
    ]
    assert_population_equals_solo_runs(members, data, TRAIN)
    plain = [
        variant("drop", "sgd", 0.1, seed=4, dropout=0.3),
        variant("light", "sgd", 0.1, seed=5, dropout=0.05),
        variant("drop-adam", "adam", 0.01, seed=6, dropout=0.2),
    ]
    assert_population_equals_solo_runs(plain, data, TRAIN)


def test_members_without_dropout_train_beside_members_with_it(data: Dataset) -> None:
    """A member without dropout joins a population with dropout (its layers at ratio 0):
    it trains to its solo numbers, and its checkpoint loads into its own network."""
    members = [
        variant("none", "sgd", 0.1, seed=1, dropout=0.0),
        variant("drop", "sgd", 0.1, seed=1, dropout=0.3),
        variant("bn-none", "momentum", 0.05, seed=2, batchnorm=True, dropout=0.0),
    ]
    assert_population_equals_solo_runs(members[:2], data, TRAIN)
    bn = [variant("bn-drop", "momentum", 0.05, seed=3, batchnorm=True, dropout=0.2), members[2]]
    assert_population_equals_solo_runs(bn, data, TRAIN)
    result = train_variants(bn, Training(data, TRAIN, 9, keep_states=True), "t")
    own = build(bn[1].model)
    assert result.states[1].keys() == own.state_dict().keys()  # no dropout layers' buffers
    own.load_state_dict(result.states[1])


def test_own_batches_per_member_equal_solo_runs(data: Dataset) -> None:
    train = dataclasses.replace(TRAIN, shared_batches=False)
    members = [variant("a", seed=1), variant("b", seed=2), variant("c", "adam", 0.01, seed=3)]
    assert_population_equals_solo_runs(members, data, train)
    # Same start (same seed for init), different batch streams: different losses.
    same_init = [variant("a", seed=1), variant("b", seed=1)]
    shared = train_variants(same_init, Training(data, TRAIN, 0), "t")
    assert np.array_equal(shared.losses[:, 0], shared.losses[:, 1])


def test_chunks_give_the_same_numbers(data: Dataset) -> None:
    members = [variant(f"m{k}", opt, lr, seed=k) for k, (opt, lr) in enumerate(OPTIMIZERS)]
    whole = train_variants(members, Training(data, TRAIN, 1), "t")
    chunked = train_variants(
        members, Training(data, dataclasses.replace(TRAIN, max_members=2), 1), "t"
    )
    assert chunked.chunk == 2
    np.testing.assert_allclose(chunked.losses, whole.losses, rtol=1e-5, atol=1e-6)


def test_chunk_size_from_memory_estimate(data: Dataset) -> None:
    members = [variant("a")] * 3
    assert members_per_chunk(members, TRAIN, data) > 1000
    with pytest.raises(ConfigError, match="train.max_members"):
        members_per_chunk(members, dataclasses.replace(TRAIN, max_members=0), data)


def test_diverged_member_is_frozen_others_go_on(data: Dataset) -> None:
    members = [variant("ok", "sgd", 0.1, seed=1), variant("boom", "sgd", 1e30, seed=1)]
    pop = Population(members, CPU, SAMPLE)
    result = train_population(pop, Training(data, TRAIN, 0))
    k_ok, k_boom = pop.names.index("ok"), pop.names.index("boom")
    assert result.diverged_at[k_ok] == -1
    step = int(result.diverged_at[k_boom])
    assert step >= 0 and not np.isfinite(result.losses[step, k_boom])
    assert np.isfinite(result.losses[:, k_ok]).all()
    frozen = pop.model.member_vector(k_boom).clone()
    pop.host_checks = False  # the accelerator's masked path must freeze it too
    pop.step(data.train_x[:16], data.train_y[:16])
    pop.host_checks = True
    pop.step(data.train_x[:16], data.train_y[:16])
    assert torch.equal(pop.model.member_vector(k_boom), frozen)
    alone = train_variants([members[0]], Training(data, TRAIN, 0), "t")
    np.testing.assert_allclose(result.losses[:, k_ok], alone.losses[:, 0], rtol=1e-5)


def test_losses_decrease(data: Dataset) -> None:
    train = TrainConfig(iterations=200, batch_size=32, progress=False)
    result = train_variants([variant("adam", "adam", 0.01)], Training(data, train, 0), "t")
    assert result.losses[-20:].mean() < 0.7 * result.losses[:20].mean()
    assert result.train_acc[0] > 0.6


def test_bf16_autocast_trains_close_to_float32(data: Dataset) -> None:
    members = [variant("adam", "adam", 0.01)]
    exact = train_variants(members, Training(data, TRAIN, 0), "t")
    amp = train_variants(members, Training(data, dataclasses.replace(TRAIN, amp=True), 0), "t")
    assert not np.array_equal(amp.losses, exact.losses)
    np.testing.assert_allclose(amp.losses[-5:], exact.losses[-5:], rtol=0.1, atol=0.05)


def test_same_seed_same_numbers_other_seed_other_numbers(data: Dataset) -> None:
    def losses(seed: int) -> np.ndarray:
        return train_variants([variant("sgd")], Training(data, TRAIN, seed), "t").losses

    np.testing.assert_array_equal(losses(3), losses(3))
    assert not np.array_equal(losses(3), losses(4))


def test_weight_decay_adds_half_lambda_sum_of_squared_weights(data: Dataset) -> None:
    """The textbook's decay: 0.5*lambda*sum(W^2) in the loss and lambda*W in the weights'
    gradient, biases untouched; the same for a looped stack as for a vectorized one."""
    for strategy in STRATEGIES:
        plain = Population([variant("a")], CPU, SAMPLE, strategy=strategy)
        decayed = Population([variant("a", wd=0.1)], CPU, SAMPLE, strategy=strategy)
        x, y = data.train_x[:8], data.train_y[:8]
        model = plain.model
        weights = [s for s in model.slots if len(s.shape) >= 2]
        assert len(weights) == 3
        squares = sum(float((s.view(model.flat[0]) ** 2).sum()) for s in weights)
        loss_plain, (grad_plain,) = plain.gradients(x, y)
        loss_decayed, (grad_decayed,) = decayed.gradients(x, y)
        assert float(loss_decayed[0]) == pytest.approx(
            float(loss_plain[0]) + 0.05 * squares, rel=1e-5
        )
        expected = torch.zeros_like(model.flat)
        for s in weights:
            s.view(expected).copy_(0.1 * s.view(model.flat))
        torch.testing.assert_close(grad_decayed - grad_plain, expected, rtol=1e-4, atol=1e-6)


def test_each_member_decays_by_its_own_lambda(data: Dataset) -> None:
    """Members with different decays (and one without) in one population get exactly the
    gradient each gets alone."""
    members = [variant("a", wd=0.1), variant("b", seed=1), variant("c", seed=2, wd=0.3)]
    x, y = data.train_x[:8], data.train_y[:8]
    for strategy in STRATEGIES:
        _, (together,) = Population(members, CPU, SAMPLE, strategy=strategy).gradients(x, y)
        for k, member in enumerate(members):
            _, (alone,) = Population([member], CPU, SAMPLE, strategy=strategy).gradients(x, y)
            torch.testing.assert_close(together[k], alone[0], rtol=1e-5, atol=1e-7)


def test_members_must_share_architecture() -> None:
    with pytest.raises(ValueError, match="architecture"):
        Population([variant("a"), variant("b", activation="tanh")], CPU, SAMPLE)


def test_epoch_schedule_and_per_epoch_accuracy(data: Dataset) -> None:
    train = TrainConfig(iterations=None, epochs=3, batch_size=50, progress=False)
    assert schedule(train, 150) == (9, 3)
    result = train_variants([variant("a")], Training(data, train, 0), "t")
    assert result.losses.shape == (9, 1)
    assert result.epoch_train_acc.shape == (3, 1)
    assert result.epoch_train_acc[-1, 0] == pytest.approx(result.train_acc[0])


def test_without_curves_the_splits_are_read_once_for_the_same_scores(data: Dataset) -> None:
    train = TrainConfig(iterations=None, epochs=3, batch_size=50, progress=False)
    members = [variant("a", dropout=0.5), variant("b", seed=1, dropout=0.5)]
    curves = train_variants(members, Training(data, train, 0), "t")
    reads = []
    once = Training(data, train, 0, curves=False)
    original = Population.correct
    try:
        Population.correct = lambda pop, x, *rest: reads.append(len(x)) or original(pop, x, *rest)
        final = train_variants(members, once, "t")
    finally:
        Population.correct = original
    assert reads == [len(data.train_y), len(data.eval_y)]
    assert final.epoch_train_acc.shape == final.epoch_eval_acc.shape == (0, 2)
    np.testing.assert_array_equal(final.losses, curves.losses)
    np.testing.assert_array_equal(final.train_acc, curves.train_acc)
    np.testing.assert_array_equal(final.eval_acc, curves.eval_acc)


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


def test_a_loss_per_epoch_is_the_mean_of_the_steps_kept() -> None:
    losses = np.array([[4.0, 1.0], [2.0, 1.0], [1.0, np.inf], [3.0, np.inf]])  # 2 epochs x 2
    result = TrainResult(
        losses=losses,
        train_acc=np.zeros(2),
        eval_acc=np.zeros(2),
        diverged_at=np.array([-1, 2]),
        epoch_train_acc=np.zeros((2, 2)),
        epoch_eval_acc=np.zeros((2, 2)),
        seconds=1.0,
        chunk=2,
    )
    assert result.epoch_losses(0).tolist() == [3.0, 2.0]
    assert result.epoch_losses(1).tolist() == [1.0]  # diverged in epoch 2: its finite steps
    assert result.epoch_losses(0, epochs=1).tolist() == [3.0]  # pruned after epoch 1
    by_epoch = [p for p in result.points(0, "val", loss_per_epoch=True) if p[0] == "train/loss"]
    assert by_epoch == [("train/loss", 3.0, 1), ("train/loss", 2.0, 2)]
    by_step = [p for p in result.points(0, "val") if p[0] == "train/loss"]
    assert [step for _, _, step in by_step] == [0, 1, 2, 3]
