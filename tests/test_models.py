"""Init statistics and the stacked MLP's shapes and member independence."""

import math

import pytest
import torch

from models.init import init_std
from models.mlp import StackedMLP


@pytest.mark.parametrize(
    ("scheme", "expected"),
    [("std", 0.01), ("xavier", math.sqrt(1 / 784)), ("he", math.sqrt(2 / 784))],
)
def test_init_std_formula(scheme: str, expected: float) -> None:
    assert init_std(scheme, 784, 0.01) == pytest.approx(expected)


def test_init_std_rejects_unknown_scheme() -> None:
    with pytest.raises(ValueError, match="glorot"):
        init_std("glorot", 10, 1.0)


@pytest.mark.parametrize("scheme", ["std", "xavier", "he"])
def test_initialized_weights_have_the_scheme_statistics(scheme: str) -> None:
    net = StackedMLP(2, [784, 400, 300, 10])
    net.initialize([scheme, scheme], [0.05, 0.05], [1, 2])
    for w, b in zip(net.weights, net.biases, strict=True):
        fan_in = w.shape[1]
        want = init_std(scheme, fan_in, 0.05)
        assert w.std().item() == pytest.approx(want, rel=0.03)
        assert abs(w.mean().item()) < 0.05 * want + 1e-4
        assert torch.count_nonzero(b) == 0


def test_same_seed_same_weights_across_populations() -> None:
    a = StackedMLP(3, [20, 8, 4])
    a.initialize(["he"] * 3, [0.01] * 3, [7, 8, 9])
    b = StackedMLP(1, [20, 8, 4])
    b.initialize(["he"], [0.01], [8])
    assert torch.equal(a.weights[0][1], b.weights[0][0])
    assert not torch.equal(a.weights[0][0], a.weights[0][1])


def test_forward_shapes_and_member_independence() -> None:
    net = StackedMLP(3, [6, 5, 4], activation="tanh")
    net.initialize(["xavier"] * 3, [1.0] * 3, [0, 1, 2])
    x = torch.randn(7, 6)
    out = net(x)
    assert out.shape == (3, 7, 4)
    with torch.no_grad():
        net.weights[0][2].mul_(10)
    out2 = net(x)
    assert torch.equal(out[:2], out2[:2])
    assert not torch.equal(out[2], out2[2])


def test_unknown_activation_names_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="relu, sigmoid, tanh"):
        StackedMLP(1, [2, 2], activation="gelu")
