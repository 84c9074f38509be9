"""Expand a study into its variants and group them into populations.

A variant is the base config with the experiment's per-variant overrides merged on top
(`variants.KEY: {name: ..., model: ..., optimizer: ..., seed: ...}`; the run is named
`name`, or KEY when no name is given). Variants that share an
architecture form one population; what may differ inside a population is per-member state
(init scheme and scale, dropout ratio, seed, optimizer type and hyperparameters; see
`sweeps.networks.architecture`).
"""

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from models.init import INIT_SCHEMES
from sweeps import networks
from sweeps.config import OptimizerConfig, check_choice, check_positive, flatten
from sweeps.data import Dataset
from sweeps.errors import ConfigError
from sweeps.numbers import short
from sweeps.optimizers import RULES


@dataclass
class VariantSchema:
    name: str | None = None  # the run name, when the key cannot be it (`std=0.01`)
    model: dict[str, Any] = field(default_factory=dict)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    seed: int = 0


@dataclass(frozen=True)
class Variant:
    name: str
    model: dict[str, Any]  # a model config, resolved (see sweeps.networks)
    optimizer: OptimizerConfig
    seed: int
    # With `seeds`, the replicate seed this member belongs to: its init seed and the seed of
    # the batch stream it shares with that replicate's other members. None: the study's own.
    replicate: int | None = None

    @property
    def base(self) -> str:
        """The variant's name without its replicate suffix: what claims and figures call it."""
        return self.name.removesuffix(replicate_suffix(self.replicate))

    def architecture(self) -> tuple[Any, ...]:
        """What members of one population must share."""
        return networks.architecture(self.model)

    def params(self) -> dict[str, Any]:
        """What distinguishes this variant, as MLflow params: model, every optimizer
        hyperparameter (`-` for those its rule does not read, so that every child of a study
        has the same keys and a column or group-by never mixes runs that lack one), seed."""
        opt = self.optimizer
        used = ("name", *RULES[opt.name].hyperparameters, "weight_decay")
        params = flatten(self.model, "model.")
        params.update(
            {f"optimizer.{k}": getattr(opt, k) if k in used else UNUSED for k in OPTIMIZER_KEYS}
        )
        params["seed"] = self.seed
        return params


UNUSED = "-"  # a param a variant does not have, where others of its study do
OPTIMIZER_KEYS = tuple(f.name for f in fields(OptimizerConfig))
# Short names of grid keys whose values are booleans: `BN 1.85e-4` and `noBN 1.85e-4`.
FLAG_NAMES = {"model.batchnorm": "BN"}


def replicate_suffix(seed: int | None) -> str:
    return "" if seed is None else f" seed={seed}"


def expand_replicates(cfg: DictConfig) -> list[Variant]:
    """The study's variants once per seed of `cfg.seeds` (each replicate expanded with
    `seed=S`, named `NAME seed=S`), replicates one after another; without `seeds`, the
    variants themselves. Replicates of one architecture train as one population."""
    if not cfg.seeds:
        return expand_variants(cfg)
    if len(set(cfg.seeds)) < len(cfg.seeds):
        raise ConfigError(f"seeds={list(cfg.seeds)} repeats a seed")
    replicas = []
    for seed in cfg.seeds:
        one = OmegaConf.merge(cfg, {"seed": seed})
        replicas += [
            replace(v, name=v.name + replicate_suffix(seed), replicate=seed)
            for v in expand_variants(one)
        ]
    return replicas


def run_params(variants: Sequence[Variant]) -> dict[str, dict[str, Any]]:
    """Each variant's params (by name) under the same keys: architectures differ in their
    model keys, which the others get as `-`."""
    own = {v.name: v.params() for v in variants}
    keys = list(dict.fromkeys(k for params in own.values() for k in params))
    return {name: {k: params.get(k, UNUSED) for k in keys} for name, params in own.items()}


def grid_label(key: str, value: Any) -> str:
    """`init_scale=0.0464` for (`model.init_scale`, 0.04641...): figure titles and legends."""
    return f"{key.rsplit('.', 1)[-1]}={short(value)}"


def point_name(key: str, value: Any) -> str:
    """A grid value as it reads in a run name: `1.85e-4`, `relu`, `BN` or `noBN`."""
    if isinstance(value, bool):
        flag = FLAG_NAMES.get(key, key.rsplit(".", 1)[-1])
        return flag if value else f"no{flag}"
    return short(value)


def grid_specs(variants: Mapping[str, Any], grid: Mapping[str, Sequence[Any]]) -> dict[str, Any]:
    """Each variant (or the base config) crossed with every combination of the grid's values.

    A grid point's run is named by its values alone, e.g. `BN 0.01`, behind the variant's own
    name when there are variants (`std=1 relu`): the keys are the same in every run of the
    study (they are its params), and names that all start `batchnorm=...` would be cut off
    in the UI before the part that differs.
    """
    specs: dict[str, Any] = {}
    for key, spec in (dict(variants) or {"": {}}).items():
        label = (spec or {}).get("name") or key
        for values in itertools.product(*grid.values()):
            pairs = list(zip(grid, values, strict=True))
            point = " ".join(point_name(k, v) for k, v in pairs)
            name = f"{label} {point}" if label else point
            dotlist = OmegaConf.from_dotlist([f"{k}={v}" for k, v in pairs])
            specs[f"{key}:{point}" if key else point] = OmegaConf.merge(
                spec or {}, dotlist, {"name": name}
            )
    return specs


def expand_variants(cfg: DictConfig) -> list[Variant]:
    """One Variant per entry of `cfg.variants` (in order) crossed with `cfg.grid`, or one
    from the base config."""
    specs = cfg.variants or {str(cfg.optimizer.name): {}}
    if cfg.grid:
        specs = grid_specs(
            OmegaConf.to_container(cfg.variants, resolve=True),
            OmegaConf.to_container(cfg.grid, resolve=True),
        )
    return build_variants(cfg, specs)


def build_variants(cfg: DictConfig, specs: Mapping[str, Any]) -> list[Variant]:
    """The base config (model, optimizer, seed) with each spec merged on top, checked; specs
    come from the experiment's variants, a grid, or search trials' sampled values."""
    base = OmegaConf.structured(VariantSchema)
    base.model = cfg.model
    base.optimizer = cfg.optimizer
    base.seed = cfg.seed
    root: VariantSchema = OmegaConf.to_object(base)
    validate_variant(Variant("", root.model, root.optimizer, root.seed), prefix="")
    variants: list[Variant] = []
    for name, spec in specs.items():
        try:
            merged = OmegaConf.merge(base, spec or {})
        except OmegaConfBaseException as err:
            raise ConfigError(
                f"variants.{name}: {err.msg if hasattr(err, 'msg') else err} "
                f"(a variant may set: name, model.*, optimizer.*, seed)"
            ) from err
        obj: VariantSchema = OmegaConf.to_object(merged)
        variant = Variant(obj.name or str(name), obj.model, obj.optimizer, obj.seed)
        validate_variant(variant, prefix=f"variants.{name}.")
        variants.append(variant)
    names = [v.name for v in variants]
    if len(set(names)) < len(names):
        raise ConfigError(f"variant names must be unique (they name the runs): {names}")
    for group in group_by_architecture(variants):
        with networks.on_meta():
            networks.build(group[0].model)
    return variants


def validate_variant(v: Variant, prefix: str) -> None:
    """Per-member values; the network's own arguments are its constructor's to check."""
    check_choice(f"{prefix}optimizer.name", v.optimizer.name, list(RULES))
    check_choice(f"{prefix}model.init", v.model.get("init"), INIT_SCHEMES)
    check_positive(f"{prefix}optimizer.lr", v.optimizer.lr)
    check_positive(f"{prefix}model.init_scale", v.model.get("init_scale"))
    dropout = v.model.get("dropout", 0.0)
    if not isinstance(dropout, int | float) or not 0 <= dropout < 1:
        raise ConfigError(f"{prefix}model.dropout={dropout!r} must be in [0, 1)")
    opt = v.optimizer
    if not 0 <= opt.weight_decay < math.inf:
        raise ConfigError(f"{prefix}optimizer.weight_decay={opt.weight_decay} must be >= 0")
    check_positive(f"{prefix}optimizer.eps", opt.eps)
    for key in ("momentum", "decay_rate", "beta1", "beta2"):
        if not 0 <= getattr(opt, key) < 1:
            raise ConfigError(f"{prefix}optimizer.{key}={getattr(opt, key)} must be in [0, 1)")


def group_by_architecture(variants: list[Variant]) -> list[list[Variant]]:
    """Populations: variants with one architecture, in the order they first appear."""
    groups: dict[tuple[Any, ...], list[Variant]] = {}
    for v in variants:
        groups.setdefault(v.architecture(), []).append(v)
    return list(groups.values())


def check_shapes(variants: list[Variant], data: Dataset) -> None:
    """The data must fit every architecture: one batch through each, on the meta device."""
    classes = int(data.train_y.max()) + 1
    for group in group_by_architecture(variants):
        networks.check_fits(group[0].model, data.sample_shape, classes, data.name)
