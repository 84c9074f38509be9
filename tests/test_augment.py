"""Nielsen's data expansion: whole-pixel shifts per member, the same alone or together."""

import dataclasses

import numpy as np
import pytest
import torch

from models.counter_rng import member_keys
from sweeps.augment import augment
from sweeps.config import OptimizerConfig, TrainConfig
from sweeps.data import Dataset
from sweeps.errors import ConfigError
from sweeps.plan import Variant
from sweeps.trainer import Training, train_variants
from tests.helpers import model_config

KEYS = member_keys(torch.tensor([1, 2, 3]))


def dot_images(k: int, b: int) -> torch.Tensor:
    x = torch.zeros(k, b, 1, 28, 28)
    x[..., 14, 14] = 1.0
    return x


def test_shifts_move_whole_pixels_within_the_range() -> None:
    out = augment(dot_images(3, 50), KEYS, torch.tensor(0), shift=2, rotate=0.0)
    assert torch.allclose(out.sum(dim=(2, 3, 4)), torch.ones(3, 50))
    where = (out[:, :, 0] == 1).nonzero()[:, 2:]
    assert len(where) == 150 and (where - 14).abs().max() <= 2
    moves = {tuple(p) for p in (where - 14).tolist()}
    assert len(moves) > 10, "shifts in both directions and axes"


def test_draws_are_per_member_and_per_step() -> None:
    x = dot_images(3, 20)
    first = augment(x, KEYS, torch.tensor(5), 1, 10.0)
    assert torch.equal(first, augment(x, KEYS, torch.tensor(5), 1, 10.0))
    assert not torch.equal(first, augment(x, KEYS, torch.tensor(6), 1, 10.0))
    alone = augment(x[1:2], KEYS[1:2], torch.tensor(5), 1, 10.0)
    assert torch.equal(first[1:2], alone)
    assert not torch.equal(first[0], first[1])


@pytest.mark.parametrize("name", ["mlp", "lenet5"])
def test_augmented_population_equals_its_members_alone(name: str, images: Dataset) -> None:
    model = model_config(name)
    variants = [
        Variant(f"m{k}", model, OptimizerConfig(name="momentum", lr=0.02), seed=k) for k in range(3)
    ]
    config = TrainConfig(
        iterations=3, batch_size=4, eval_batch_size=8, progress=False, augment=True
    )
    together = train_variants(variants, Training(images, config, seed=1), "t")
    plain = train_variants(
        variants, Training(images, dataclasses.replace(config, augment=False), seed=1), "t"
    )
    assert not np.allclose(together.losses[1:], plain.losses[1:])
    for k, member in enumerate(variants):
        alone = train_variants([member], Training(images, config, seed=1), "t")
        np.testing.assert_allclose(together.losses[:, k], alone.losses[:, 0], rtol=1e-4)


def test_augment_needs_images() -> None:
    x = torch.rand(20, 12)
    y = torch.randint(0, 3, (20,))
    flat = Dataset("flat", "test", False, x, y, x, y)
    model = {"_target_": "models.mlp.MLP", "name": "mlp", "init": "he", "init_scale": 0.01}
    model |= {"input_size": 12, "hidden_sizes": [4], "output_size": 3}
    config = TrainConfig(iterations=2, batch_size=4, progress=False, augment=True)
    with pytest.raises(ConfigError, match=r"train.augment=true needs images .* shape \(12,\)"):
        train_variants([Variant("a", model, OptimizerConfig(), 0)], Training(flat, config, 0), "t")
