"""Search spaces written in the config, as Optuna distributions, and the textbook's narrowing.

`search.space` maps config paths to specs, either nested (`optimizer: {lr: {...}}`, so a bound
can be overridden from the command line) or dotted (`optimizer.lr: {...}`); both flatten to
the dotted key. A spec is `{type: float|int, low, high, log, step}` or
`{type: categorical, choices: [...]}`. Everything wrong with a spec is reported with its key
before any data is loaded.
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import fields
from typing import Any

import numpy as np
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from sweeps.config import OptimizerConfig
from sweeps.errors import ConfigError

TYPES = ("float", "int", "categorical")
SPEC_FIELDS = {"type", "low", "high", "log", "step", "choices"}
# Besides the model's own keys (`searchable`): an architecture key (width, kernel size, ...)
# splits the trials into one population per architecture, which the trainer handles too.
SEARCHABLE = (*(f"optimizer.{f.name}" for f in fields(OptimizerConfig)), "seed")

Space = dict[str, BaseDistribution]


def _is_spec(node: Mapping[str, Any]) -> bool:
    return bool(node) and set(node) <= SPEC_FIELDS


def flatten_space(tree: Mapping[str, Any], prefix: str = "") -> dict[str, dict[str, Any]]:
    """Nested or dotted keys -> {dotted key: spec}; a nested entry's fields override a dotted
    entry's for the same key (the nested form is what command-line overrides produce)."""
    flat: dict[str, dict[str, Any]] = {}
    for key, node in tree.items():
        name = f"{prefix}{key}"
        if not isinstance(node, Mapping):
            raise ConfigError(
                f"search.space.{name}: expected a spec like {{type: float, low: 1e-6, "
                f"high: 1e-2, log: true}}, got {node!r}"
            )
        if _is_spec(node):
            flat[name] = {**flat.get(name, {}), **node}
        else:
            for sub, spec in flatten_space(node, f"{name}.").items():
                flat[sub] = {**flat.get(sub, {}), **spec}
    return flat


def _distribution(key: str, spec: Mapping[str, Any]) -> BaseDistribution:
    where = f"search.space.{key}"
    kind = spec.get("type", "categorical" if "choices" in spec else "float")
    if kind not in TYPES:
        raise ConfigError(f"{where}.type={kind!r} is not valid; choose one of: {', '.join(TYPES)}")
    if kind == "categorical":
        extra = set(spec) - {"type", "choices"}
        choices = spec.get("choices")
        if extra or not isinstance(choices, Sequence) or isinstance(choices, str) or not choices:
            raise ConfigError(f"{where}: a categorical spec needs a non-empty `choices` list only")
        return CategoricalDistribution(list(choices))
    if "choices" in spec:
        raise ConfigError(f"{where}: `choices` needs type: categorical")
    if "low" not in spec or "high" not in spec:
        raise ConfigError(f"{where}: a {kind} spec needs `low` and `high`")
    low, high, log, step = spec["low"], spec["high"], bool(spec.get("log", False)), spec.get("step")
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (low, high)):
        raise ConfigError(f"{where}: low={low!r} and high={high!r} must be numbers")
    if low > high:
        raise ConfigError(f"{where}: low={low} is above high={high}")
    if log and low <= 0:
        raise ConfigError(f"{where}: log=true needs low > 0 (got low={low})")
    if log and step is not None:
        raise ConfigError(f"{where}: `step` and log=true cannot be combined")
    if kind == "int":
        if low != int(low) or high != int(high):
            raise ConfigError(f"{where}: an int spec needs whole-number bounds")
        return IntDistribution(int(low), int(high), log=log, step=int(step or 1))
    return FloatDistribution(float(low), float(high), log=log, step=step)


def searchable(model_keys: Iterable[str]) -> tuple[str, ...]:
    """Every key a trial may set, given the model config's keys."""
    return (*(f"model.{k}" for k in model_keys if k not in ("_target_", "name")), *SEARCHABLE)


def parse_space(tree: Mapping[str, Any], model_keys: Iterable[str]) -> Space:
    """`search.space` as {dotted key: Optuna distribution}, in the config's order; a model
    key must be one of the model config's (`model_keys`)."""
    specs = flatten_space(tree)
    if not specs:
        raise ConfigError(
            "search.space is empty; give at least one key, e.g. "
            "search.space.optimizer.lr={type: float, low: 1e-6, high: 1e-2, log: true}"
        )
    valid = searchable(model_keys)
    for key in specs:
        if key not in valid:
            raise ConfigError(
                f"search.space.{key}: not a searchable key; valid: {', '.join(valid)}"
            )
    return {key: _distribution(key, spec) for key, spec in specs.items()}


def narrow(space: Space, best: Sequence[Mapping[str, Any]]) -> Space:
    """The textbook's step 3: each range shrinks to the span of the values the best trials
    used (the span is the same on a log scale, where the range stays log); a categorical
    keeps the choices the best trials used. `best` holds those trials' params."""
    if not best:
        raise ValueError("narrowing needs at least one trial")
    narrowed: Space = {}
    for key, dist in space.items():
        values = [params[key] for params in best if key in params]
        if not values:
            narrowed[key] = dist
        elif isinstance(dist, CategoricalDistribution):
            narrowed[key] = CategoricalDistribution([c for c in dist.choices if c in values])
        elif isinstance(dist, IntDistribution):
            narrowed[key] = IntDistribution(min(values), max(values), log=dist.log, step=dist.step)
        else:
            low, high = float(np.min(values)), float(np.max(values))
            if dist.step is not None:  # keep the grid: bounds stay on low + n*step
                high = round(low + round((high - low) / dist.step) * dist.step, 12)
            narrowed[key] = FloatDistribution(low, high, log=dist.log, step=dist.step)
    return narrowed


def describe(space: Space) -> dict[str, str]:
    """One readable range per key, for MLflow params and the console."""
    out = {}
    for key, dist in space.items():
        if isinstance(dist, CategoricalDistribution):
            out[key] = "{" + ", ".join(map(str, dist.choices)) + "}"
        else:
            scale = " log" if dist.log else ""
            out[key] = f"[{dist.low:.4g}, {dist.high:.4g}]{scale}"
    return out
