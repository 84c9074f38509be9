"""The population contract, for every network in conf/model/: K members trained together give
the numbers each gives trained alone, stacked by hand, vectorized or looped, with
every update rule, BatchNorm and dropout where the network has them; and a module that cannot
be vectorized still trains."""

import logging

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from models.init import init_std, initialize
from sweeps.config import OptimizerConfig, TrainConfig
from sweeps.data import Dataset
from sweeps.errors import ConfigError
from sweeps.networks import build
from sweeps.plan import Variant, group_by_architecture
from sweeps.population import Population
from sweeps.stacked_layers import chain
from sweeps.stacks import choose_strategy
from sweeps.trainer import Training, train_variants
from tests.helpers import ROOT, model_config

MODELS = sorted(p.stem for p in (ROOT / "conf" / "model").glob("*.yaml") if p.stem != "custom")
RULES = [("sgd", 0.05), ("momentum", 0.02), ("adagrad", 0.02), ("rmsprop", 0.002), ("adam", 0.002)]
CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny steps: threads would only wait on each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def members(model: dict) -> list[Variant]:
    """One member per update rule, each with its own seed."""
    return [
        Variant(rule, model, OptimizerConfig(name=rule, lr=lr), seed)
        for seed, (rule, lr) in enumerate(RULES)
    ]


def train(variants: list[Variant], data: Dataset, strategy: str):
    config = TrainConfig(
        iterations=2, batch_size=4, eval_batch_size=8, progress=False, population=strategy
    )
    return train_variants(variants, Training(data, config, seed=1, keep_states=True), "t")


@pytest.mark.parametrize("name", MODELS)
def test_a_population_equals_its_members_trained_alone(name: str, images: Dataset) -> None:
    model = model_config(name)
    variants = members(model)
    results = {}
    stacks = isinstance(chain(build(model)), list)
    for strategy in ("stacked", "vmap", "loop"):
        together = train(variants, images, strategy)
        # A network that is not a chain of layers with stacked forms runs under vmap.
        expected = "vmap" if strategy == "stacked" and not stacks else strategy
        assert together.strategy == expected and together.chunk == len(variants)
        for k, member in enumerate(variants):
            alone = train([member], images, strategy)
            np.testing.assert_allclose(
                together.losses[:, k], alone.losses[:, 0], rtol=1e-4, atol=1e-5
            )
            assert together.eval_acc[k] == pytest.approx(alone.eval_acc[0])
            assert_state_scores(member.model, together.states[k], images, together.eval_acc[k])
        results[strategy] = together
    # Both strategies compute the same network.
    first, *others = results.values()
    for other in others:
        np.testing.assert_allclose(other.losses, first.losses, rtol=1e-4, atol=1e-5)


def assert_state_scores(model: dict, state: dict, data: Dataset, accuracy: float) -> None:
    """A member's state dict, loaded into its own network, scores what the population did."""
    net = build(model)
    net.load_state_dict(state)
    net.eval()
    with torch.no_grad():
        correct = (net(data.eval_x).argmax(dim=1) == data.eval_y).float().mean()
    assert float(correct) == pytest.approx(accuracy)


def test_members_that_differ_only_per_member_share_a_population() -> None:
    model = model_config("mlp")
    same = [
        Variant("a", {**model, "init": "std", "init_scale": 0.1}, OptimizerConfig(), 0),
        Variant("b", {**model, "dropout": 0.5}, OptimizerConfig(name="adam"), 1),
        Variant("c", {**model, "dropout": 0.0}, OptimizerConfig(), 2),
        Variant("d", {**model, "hidden_sizes": [50]}, OptimizerConfig(), 3),
    ]
    assert [[v.name for v in g] for g in group_by_architecture(same)] == [["a", "b", "c"], ["d"]]


@pytest.mark.parametrize(
    ("name", "device", "expected"),
    [
        ("mlp", "cpu", "stacked"),
        ("mlp", "cuda", "stacked"),
        ("lenet5", "cpu", "loop"),
        ("lenet5", "cuda", "vmap"),
    ],
)
def test_strategy_by_rule(name: str, device: str, expected: str) -> None:
    assert choose_strategy(model_config(name), torch.device(device), "auto") == expected


def test_an_unknown_strategy_names_the_valid_ones() -> None:
    valid = "auto, stacked, vmap, loop"
    with pytest.raises(
        ConfigError, match=f"train.population='fast' is not valid; choose one of: {valid}"
    ):
        choose_strategy(model_config("mlp"), CPU, "fast")


class DataDependent(nn.Module):
    """A module `vmap` cannot batch: Python control flow on a tensor's value."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(784, 10)

    def forward(self, x: Tensor) -> Tensor:
        out = self.fc(x.flatten(1))
        return out * 2 if bool(out.mean() > 1e9) else out


def test_a_module_that_cannot_be_vectorized_trains_one_member_after_another(
    images: Dataset, caplog: pytest.LogCaptureFixture
) -> None:
    model = {"_target_": f"{__name__}.DataDependent", "name": "dd", "init": "he", "init_scale": 1}
    variants = members(model)[:3]
    with caplog.at_level(logging.WARNING, logger="sweeps.stacks"):
        together = train(variants, images, "vmap")
    assert together.strategy == "loop" and "vmap" in together.fallback
    assert [r.message for r in caplog.records].count(caplog.records[0].message) == 1
    assert "cannot be vectorized" in caplog.records[0].message
    alone = train(variants[1:2], images, "loop")
    np.testing.assert_allclose(together.losses[:, 1], alone.losses[:, 0], rtol=1e-5)


@pytest.mark.parametrize("scheme", ["std", "xavier", "he"])
def test_init_schemes_use_the_fan_in_of_any_layer(scheme: str) -> None:
    net = nn.Sequential(nn.Conv2d(8, 64, 3), nn.Linear(200, 300))
    initialize(net, scheme, 0.05, seed=0)
    for layer, fan_in in ((net[0], 8 * 3 * 3), (net[1], 200)):
        assert float(layer.weight.detach().std()) == pytest.approx(
            init_std(scheme, fan_in, 0.05), rel=0.05
        )
        assert torch.count_nonzero(layer.bias) == 0


def test_weight_decay_penalizes_weights_only(images: Dataset) -> None:
    model = model_config("lenet5")
    plain = Population(members(model)[:1], CPU, (1, 28, 28), strategy="loop")
    decayed_variant = Variant("wd", model, OptimizerConfig(weight_decay=0.1), 0)
    decayed = Population([decayed_variant], CPU, (1, 28, 28), strategy="loop")
    x, y = images.train_x[:4], images.train_y[:4]
    with torch.no_grad():
        squares = sum(float(p.pow(2).sum()) for p in plain.model.member_params(0) if p.dim() >= 2)
    (loss_decayed, (grad_decayed,)), (loss_plain, (grad_plain,)) = (
        decayed.gradients(x, y),
        plain.gradients(x, y),
    )
    assert float(loss_decayed[0] - loss_plain[0]) == pytest.approx(0.05 * squares, rel=1e-4)
    # Channels-last convolution weights are decayed in their own layout, biases not at all.
    for slot, param in zip(plain.model.slots, plain.model.member_params(0), strict=True):
        gap = slot.view(grad_decayed[0] - grad_plain[0])
        torch.testing.assert_close(gap, 0.1 * param.detach() if param.dim() >= 2 else 0 * gap)
