"""Each update rule against a step computed by hand from the textbook's formulas."""

import math

import pytest
import torch

from sweeps.optimizers import RULES


def hp(**values: float) -> dict[str, torch.Tensor]:
    return {k: torch.tensor(v, dtype=torch.float64) for k, v in values.items()}


def run(rule: str, grads: list[float], p0: float = 1.0, **hyper: float) -> float:
    param = torch.tensor(p0, dtype=torch.float64)
    state: dict = {}
    for g in grads:
        new = torch.empty_like(param)
        RULES[rule].step(param, torch.tensor(g, dtype=torch.float64), state, hp(**hyper), new)
        param = new
    return float(param)


def test_sgd() -> None:
    assert run("sgd", [0.5, -2.0], lr=0.1) == pytest.approx(1.0 - 0.05 + 0.2)


def test_momentum_accumulates_velocity() -> None:
    v1 = -0.1 * 0.5
    v2 = 0.9 * v1 - 0.1 * 0.25
    assert run("momentum", [0.5, 0.25], lr=0.1, momentum=0.9) == pytest.approx(1.0 + v1 + v2)


def test_adagrad_scales_by_accumulated_squares() -> None:
    h1 = 0.25
    p1 = 1.0 - 0.1 * 0.5 / (math.sqrt(h1) + 1e-7)
    h2 = h1 + 4.0
    p2 = p1 - 0.1 * 2.0 / (math.sqrt(h2) + 1e-7)
    assert run("adagrad", [0.5, 2.0], lr=0.1, eps=1e-7) == pytest.approx(p2, rel=1e-12)


def test_rmsprop_uses_decayed_average() -> None:
    h1 = 0.01 * 0.25
    p1 = 1.0 - 0.1 * 0.5 / (math.sqrt(h1) + 1e-7)
    h2 = 0.99 * h1 + 0.01 * 4.0
    p2 = p1 - 0.1 * 2.0 / (math.sqrt(h2) + 1e-7)
    got = run("rmsprop", [0.5, 2.0], lr=0.1, decay_rate=0.99, eps=1e-7)
    assert got == pytest.approx(p2, rel=1e-12)


def test_adam_textbook_bias_correction() -> None:
    b1, b2, lr, eps = 0.9, 0.999, 0.01, 1e-7
    p, m, v = 1.0, 0.0, 0.0
    for t, g in enumerate([0.5, -1.0, 0.2], start=1):
        lr_t = lr * math.sqrt(1 - b2**t) / (1 - b1**t)
        m += (1 - b1) * (g - m)
        v += (1 - b2) * (g * g - v)
        p -= lr_t * m / (math.sqrt(v) + eps)
    got = run("adam", [0.5, -1.0, 0.2], lr=lr, beta1=b1, beta2=b2, eps=eps)
    assert got == pytest.approx(p, rel=1e-12)


def test_rules_broadcast_per_member_hyperparameters() -> None:
    """A stack of members, each with its own learning rate, in one call."""
    param = torch.ones(3, 2, 2)
    grad = torch.ones(3, 2, 2)
    lrs = torch.tensor([0.1, 0.2, 0.3]).view(3, 1, 1)
    new = torch.empty_like(param)
    RULES["sgd"].step(param, grad, {}, {"lr": lrs}, new)
    assert torch.equal(param, torch.ones(3, 2, 2))
    assert torch.allclose(new[:, 0, 0], torch.tensor([0.9, 0.8, 0.7]))


def test_every_rule_lists_its_hyperparameters() -> None:
    assert set(RULES) == {"sgd", "momentum", "adagrad", "rmsprop", "adam"}
    for rule in RULES.values():
        assert "lr" in rule.hyperparameters
