"""Search-space specs from the config, and the textbook's range narrowing."""

import math

import pytest
from omegaconf import OmegaConf
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from sweeps.errors import ConfigError
from sweeps.space import Space, describe, narrow, parse_space
from tests.helpers import ROOT

LR = {"type": "float", "low": 1e-6, "high": 1e-2, "log": True}
MODEL_KEYS = list(OmegaConf.load(ROOT / "conf" / "model" / "mlp.yaml"))


def parse(tree: dict) -> Space:
    """A space over the default model's keys."""
    return parse_space(tree, MODEL_KEYS)


def test_dotted_and_nested_keys_flatten_to_the_same_space() -> None:
    dotted = parse({"optimizer.lr": LR, "model.init_scale": {"low": 0.01, "high": 1.0}})
    nested = parse({"optimizer": {"lr": LR}, "model": {"init_scale": {"low": 0.01, "high": 1.0}}})
    assert dotted == nested
    assert dotted["optimizer.lr"] == FloatDistribution(1e-6, 1e-2, log=True)
    assert dotted["model.init_scale"] == FloatDistribution(0.01, 1.0)


def test_a_nested_override_changes_one_field_of_a_dotted_spec() -> None:
    space = parse({"optimizer.lr": LR, "optimizer": {"lr": {"low": 1e-5}}})
    assert space["optimizer.lr"] == FloatDistribution(1e-5, 1e-2, log=True)


def test_int_and_categorical_specs() -> None:
    space = parse(
        {
            "seed": {"type": "int", "low": 0, "high": 9},
            "optimizer.name": {"type": "categorical", "choices": ["sgd", "adam"]},
            "model.activation": {"choices": ["relu", "tanh"]},
        }
    )
    assert space["seed"] == IntDistribution(0, 9)
    assert space["optimizer.name"] == CategoricalDistribution(["sgd", "adam"])
    assert space["model.activation"] == CategoricalDistribution(["relu", "tanh"])


@pytest.mark.parametrize(
    ("tree", "message"),
    [
        ({}, "search.space is empty"),
        ({"optimizer.lr": {"type": "real", "low": 0, "high": 1}}, "type='real' is not valid"),
        ({"optimizer.lr": {"type": "float", "low": 1e-6}}, "needs `low` and `high`"),
        ({"optimizer.lr": {"low": 1.0, "high": 0.1}}, "low=1.0 is above high=0.1"),
        ({"optimizer.lr": {"low": 0.0, "high": 0.1, "log": True}}, "log=true needs low > 0"),
        ({"optimizer.lr": {"low": "a", "high": 0.1}}, "must be numbers"),
        ({"optimizer.name": {"type": "categorical", "choices": []}}, "non-empty `choices`"),
        ({"optimizer.lr": {"type": "float", "choices": [1]}}, "needs type: categorical"),
        ({"optimizer.lr": {"low": 0.1, "high": 1, "choices": [1]}}, "`choices` list only"),
        ({"seed": {"type": "int", "low": 0.5, "high": 3}}, "whole-number bounds"),
        ({"optimizer.lr": 0.01}, "expected a spec"),
        ({"optimizer.lrr": {"low": 0.1, "high": 1}}, "not a searchable key"),
        ({"train.epochs": {"low": 1, "high": 5}}, "valid: model.init, model.init_scale"),
        ({"model.width": {"choices": [1, 2]}}, "not a searchable key"),
        ({"model.name": {"choices": ["mlp"]}}, "not a searchable key"),
    ],
)
def test_bad_specs_name_the_key_and_the_problem(tree: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        parse(tree)


def test_narrow_takes_the_span_of_the_best_trials_on_their_scale() -> None:
    space = parse(
        {
            "optimizer.lr": LR,
            "model.init_scale": {"low": 0.0, "high": 1.0},
            "seed": {"type": "int", "low": 0, "high": 100},
            "optimizer.name": {"choices": ["sgd", "momentum", "adam"]},
        }
    )
    best = [
        {"optimizer.lr": 3e-3, "model.init_scale": 0.2, "seed": 7, "optimizer.name": "adam"},
        {"optimizer.lr": 9e-3, "model.init_scale": 0.6, "seed": 40, "optimizer.name": "sgd"},
        {"optimizer.lr": 5e-3, "model.init_scale": 0.3, "seed": 12, "optimizer.name": "adam"},
    ]
    narrowed = narrow(space, best)
    assert narrowed["optimizer.lr"] == FloatDistribution(3e-3, 9e-3, log=True)
    assert narrowed["model.init_scale"] == FloatDistribution(0.2, 0.6)
    assert narrowed["seed"] == IntDistribution(7, 40)
    # The config's order of choices is kept; unused ones go.
    assert narrowed["optimizer.name"] == CategoricalDistribution(["sgd", "adam"])
    # Narrowing again with the same trials changes nothing: the span is a fixed point.
    assert narrow(narrowed, best) == narrowed
    # On the log scale the span covers log10(9e-3) - log10(3e-3) decades.
    lr = narrowed["optimizer.lr"]
    assert math.log10(lr.high / lr.low) == pytest.approx(math.log10(3))


def test_narrow_keeps_a_stepped_range_on_its_grid() -> None:
    space = parse({"model.dropout": {"low": 0.0, "high": 0.5, "step": 0.1}})
    narrowed = narrow(space, [{"model.dropout": 0.1}, {"model.dropout": 0.3}])
    assert narrowed["model.dropout"].low == pytest.approx(0.1)
    assert narrowed["model.dropout"].high == pytest.approx(0.3)
    assert narrowed["model.dropout"].step == 0.1


def test_describe_reads_like_the_config() -> None:
    space = parse({"optimizer.lr": LR, "optimizer.name": {"choices": ["sgd", "adam"]}})
    assert describe(space) == {
        "optimizer.lr": "[1e-06, 0.01] log",
        "optimizer.name": "{sgd, adam}",
    }
