"""Init statistics, the textbook's layers (Affine, BatchNorm, Dropout) and MLP, counter RNG."""

import math

import pytest
import torch

from models.counter_rng import member_keys, uniform
from models.init import init_std, initialize
from models.layers import BN_EPS, BatchNorm, Dropout
from models.mlp import MLP


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
@torch.no_grad()
def test_initialized_weights_have_the_scheme_statistics(scheme: str) -> None:
    net = MLP(784, [400, 300], 10, batchnorm=True)
    initialize(net, scheme, 0.05, seed=1)
    affines = [m for m in net.modules() if hasattr(m, "fan_in")]
    for layer in affines:
        want = init_std(scheme, layer.weight.shape[0], 0.05)
        assert float(layer.weight.std()) == pytest.approx(want, rel=0.03)
        assert abs(float(layer.weight.mean())) < 0.05 * want + 1e-4
        assert torch.count_nonzero(layer.bias) == 0
    for bn in (m for m in net.modules() if isinstance(m, BatchNorm)):
        assert torch.all(bn.weight == 1) and torch.all(bn.bias == 0)


def test_same_seed_same_weights() -> None:
    a, b, c = MLP(20, [8], 4), MLP(20, [8], 4), MLP(20, [8], 4)
    initialize(a, "he", 0.01, seed=8)
    initialize(b, "he", 0.01, seed=8)
    initialize(c, "he", 0.01, seed=9)
    flat = [torch.cat([p.flatten() for p in n.parameters()]) for n in (a, b, c)]
    assert torch.equal(flat[0], flat[1]) and not torch.equal(flat[0], flat[2])


@torch.no_grad()
def test_mlp_is_the_textbooks_affine_stack() -> None:
    net = MLP(5, [4], 3, activation="sigmoid")
    initialize(net, "he", 1.0, seed=0)
    w0, b0, w1, b1 = net.parameters()
    x = torch.randn(6, 5)
    assert torch.allclose(net(x), torch.sigmoid(x @ w0 + b0) @ w1 + b1, atol=1e-6)
    assert net(torch.randn(6, 1, 1, 5)).shape == (6, 3), "images are flattened"


@torch.no_grad()
def test_batchnorm_normalizes_and_tracks_running_stats() -> None:
    bn = BatchNorm(4)
    x = torch.randn(64, 4, 3, 3) * 3 + 2
    out = bn(x)
    assert torch.allclose(out.mean(dim=(0, 2, 3)), torch.zeros(4), atol=1e-5)
    assert torch.allclose(out.var(dim=(0, 2, 3), unbiased=False), torch.ones(4), atol=1e-3)
    mean = x.mean(dim=(0, 2, 3))
    var = x.var(dim=(0, 2, 3), unbiased=False)  # the textbook keeps the biased variance
    assert torch.allclose(bn.running_mean, 0.1 * mean, atol=1e-6)
    assert torch.allclose(bn.running_var, 0.9 + 0.1 * var, atol=1e-5)
    bn.eval()
    by_hand = (x - bn.running_mean.view(1, -1, 1, 1)) / torch.sqrt(
        bn.running_var.view(1, -1, 1, 1) + BN_EPS
    )
    assert torch.allclose(bn(x), by_hand, atol=1e-5)


@torch.no_grad()
def test_dropout_masks_train_and_scales_in_evaluation() -> None:
    drop = Dropout(0.5)
    drop.key.fill_(int(member_keys(torch.tensor([3]))[0]))
    x = torch.ones(20, 1000)
    first = drop(x)
    assert 0.45 < float(first.mean()) < 0.55
    assert set(first.unique().tolist()) == {0.0, 1.0}
    assert not torch.equal(drop(x), first), "the next call draws new masks"
    again = Dropout(0.5)
    again.key.copy_(drop.key)
    assert torch.equal(again(x), first), "masks are a function of key and call count"
    drop.eval()
    assert torch.equal(drop(x), 0.5 * x)


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


def _mix(x: int) -> int:
    x = (((x >> 16) ^ x) * 0x45D9F3B) & 0xFFFFFFFF
    x = (((x >> 16) ^ x) * 0x45D9F3B) & 0xFFFFFFFF
    return (x >> 16) ^ x


def _draw(seed: int, counter: int, stream: int, index: int) -> float:
    """The stream's definition on Python integers, element by element."""
    m = 0xFFFFFFFF
    key = _mix((seed & m) ^ 0x3C6EF372)
    key = _mix(key ^ _mix((counter * 0x9E3779B9 + stream * 0x85EBCA6B + 0x27D4EB2F) & m))
    bits = _mix((_mix((key + index * 0x9E3779B9 + 0x165667B1) & m) + key) & m)
    return (bits >> 8) / (1 << 24)


def test_counter_rng_matches_its_definition_on_integers() -> None:
    """The int32 fast path gives the bits the 32-bit hash defines, for keys on both sides of
    2^31 and for elements in the vector loops' remainders (n not a multiple of the width)."""
    seeds = [0, 1, 7, 12345, 2**31 + 5, 2**40 + 3]
    keys = member_keys(torch.tensor(seeds))
    assert bool((keys > 0x7FFFFFFF).any()) and bool((keys < 0x7FFFFFFF).any())
    shape = (37, 29)
    u = uniform(keys, torch.tensor(987654), 3, shape).view(len(seeds), -1)
    for k, seed in enumerate(seeds):
        for i in (0, 1, 500, 37 * 29 - 2, 37 * 29 - 1):
            assert float(u[k, i]) == _draw(seed, 987654, 3, i)


def test_unknown_activation_names_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="relu, sigmoid, tanh"):
        MLP(2, [2], 2, activation="gelu")
