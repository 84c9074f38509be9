"""Init statistics, the stacked MLP fast path (shapes, member independence, BN, dropout),
counter RNG."""

import math

import pytest
import torch

from models.counter_rng import member_keys, uniform
from models.init import init_std
from models.layers import BN_EPS
from sweeps.stacked_mlp import StackedMLP


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
    net = StackedMLP(2, [784, 400, 300, 10], batchnorm=True)
    net.initialize([scheme, scheme], [0.05, 0.05], [1, 2])
    for i, layer in enumerate(net.layers):
        w = net.param(i, "W")
        want = init_std(scheme, net.weight_shape(i)[0], 0.05)
        assert w.std().item() == pytest.approx(want, rel=0.03)
        assert abs(w.mean().item()) < 0.05 * want + 1e-4
        assert torch.count_nonzero(net.param(i, "b")) == 0
        if "gamma" in layer:
            assert torch.all(net.param(i, "gamma") == 1) and torch.all(net.param(i, "beta") == 0)


def test_same_seed_same_weights_across_populations() -> None:
    a = StackedMLP(3, [20, 8, 4])
    a.initialize(["he"] * 3, [0.01] * 3, [7, 8, 9])
    b = StackedMLP(1, [20, 8, 4])
    b.initialize(["he"], [0.01], [8])
    assert torch.equal(a.member_vector(1), b.member_vector(0))
    assert not torch.equal(a.member_vector(0), a.member_vector(1))


def test_forward_shapes_and_member_independence() -> None:
    net = StackedMLP(3, [6, 5, 4], activation="tanh")
    net.initialize(["xavier"] * 3, [1.0] * 3, [0, 1, 2])
    x = torch.randn(7, 6)
    out = net(x)
    assert out.shape == (3, 7, 4)
    per_member = net(x.expand(3, 7, 6), per_member=True)
    assert torch.allclose(out, per_member, atol=1e-6)
    with torch.no_grad():
        net.flat[2].mul_(10)
        net.wide[:, 2].mul_(10)
    out2 = net(x)
    assert torch.equal(out[:2], out2[:2])
    assert not torch.equal(out[2], out2[2])


def test_forward_matches_a_plain_mlp() -> None:
    net = StackedMLP(2, [5, 4, 3], activation="sigmoid")
    net.initialize(["he", "std"], [1.0, 0.5], [0, 1])
    x = torch.randn(6, 5)
    w0, b0, w1, b1 = (net.param(i, n)[1] for i in (0, 1) for n in ("W", "b"))
    expected = torch.sigmoid(x @ w0 + b0) @ w1 + b1
    assert torch.allclose(net(x)[1], expected, atol=1e-6)


def test_batchnorm_normalizes_per_member_and_tracks_running_stats() -> None:
    net = StackedMLP(2, [5, 4, 3], batchnorm=True, activation="relu")
    net.initialize(["he", "he"], [1.0, 1.0], [0, 1])
    x = torch.randn(64, 5) * 3 + 2
    h = net.first_affine(x, per_member=False)
    normed = net.batch_norm(h, 0)
    assert torch.allclose(normed.mean(dim=1), torch.zeros(2, 4), atol=1e-5)
    assert torch.allclose(normed.var(dim=1, unbiased=False), torch.ones(2, 4), atol=1e-3)
    expected_mean = 0.1 * h.mean(dim=1, keepdim=True)
    assert torch.allclose(net.running_mean0, expected_mean.detach(), atol=1e-6)
    net.eval()
    evaluated = net.batch_norm(h, 0)
    by_hand = (h - net.running_mean0) / torch.sqrt(net.running_var0 + BN_EPS)
    assert torch.allclose(evaluated, by_hand, atol=1e-6)


@torch.no_grad()
def test_dropout_masks_per_member_and_eval_scaling() -> None:
    net = StackedMLP(2, [10, 2000, 2], dropout=[0.5, 0.0])
    net.initialize(["he", "he"], [1.0, 1.0], [3, 3])
    net.param(1, "W").fill_(1.0)
    net.param(0, "W").abs_()
    x = torch.ones(1, 10)
    full = torch.relu(net.first_affine(x, per_member=False)).sum(dim=2).squeeze(1)
    trained = net(x).squeeze(1)[:, 0]
    assert trained[1] == pytest.approx(float(full[1]), rel=1e-5)
    assert 0.45 < float(trained[0] / full[0]) < 0.55
    assert not torch.equal(net(x).squeeze(1)[:, 0], trained), "the next call draws new masks"
    net.eval()
    assert float(net(x).squeeze(1)[0, 0]) == pytest.approx(0.5 * float(full[0]), rel=1e-5)


def test_counter_rng_streams() -> None:
    keys = member_keys(torch.tensor([1, 2, 3]))
    step = torch.tensor(5)
    u = uniform(keys, step, 1, (100, 100))
    assert u.shape == (3, 100, 100) and float(u.min()) >= 0 and float(u.max()) < 1
    assert abs(float(u.mean()) - 0.5) < 0.01 and abs(float(u.std()) - math.sqrt(1 / 12)) < 0.01
    assert torch.equal(u[1], uniform(member_keys(torch.tensor([2])), step, 1, (100, 100))[0])
    assert not torch.equal(u, uniform(keys, step + 1, 1, (100, 100)))
    assert not torch.equal(u, uniform(keys, step, 2, (100, 100)))
    assert abs(float(torch.corrcoef(u.view(3, -1))[0, 1])) < 0.03


def test_unknown_activation_names_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="relu, sigmoid, tanh"):
        StackedMLP(1, [2, 2], activation="gelu")
