"""The config schema (Hydra structured configs) and the checks Hydra's types cannot express.

The schema makes Hydra reject unknown keys and ill-typed values at compose time; `validate`
rejects values outside their allowed sets before any data is loaded or any run is opened.
"""

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from sweeps.errors import ConfigError

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
DEVICES = ("auto", "cpu", "cuda")


def config_names(group: str, exclude: tuple[str, ...] = ()) -> list[str]:
    """The options of a config group (`conf/GROUP/NAME.yaml`), sorted, less `exclude`."""
    paths = (CONF_DIR / group).glob("*.yaml")
    return sorted(p.stem for p in paths if p.stem not in exclude)


@functools.cache
def study_description(name: str) -> str:
    """A study's one line (`description` in conf/experiment/NAME.yaml), read from the file
    rather than composed: `--help` and the gallery list every study without Hydra. Once per
    process: Hydra resolves the help template, which lists them all, twice in every run."""
    return str(OmegaConf.load(CONF_DIR / "experiment" / f"{name}.yaml").get("description") or "")


def compose_study(name: str, overrides: list[str], key: str = "study") -> DictConfig:
    """The study `conf/experiment/NAME.yaml` with `overrides`, composed as `python -m
    sweeps.run +experiment=NAME OVERRIDES` would: for commands that run several studies
    (`key`: where the name came from, for the error naming an unknown one)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    experiments = config_names("experiment", exclude=("suite",))
    if name not in experiments:
        raise ConfigError(f"{key}: unknown study {name!r}; valid: {', '.join(experiments)}")
    overrides = [f"+experiment={name}", *overrides]
    if GlobalHydra.instance().is_initialized():
        return compose("config", overrides=overrides)
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("config", overrides=overrides)


DATASETS = ("mnist", "fashion_mnist")


@dataclass
class DatasetConfig:
    name: str = "mnist"
    root: str | None = None
    strict: bool = False
    download: bool = True
    download_timeout: float = 15.0
    cache_dir: str | None = None
    train_size: int | None = None  # the textbook's "first N training samples"
    # Searches: this fraction of the (shuffled) training samples becomes the validation split.
    val_fraction: float = 0.0
    split_seed: int = 0


@dataclass
class OptimizerConfig:
    name: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    decay_rate: float = 0.99
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-7
    weight_decay: float = 0.0


@dataclass
class TrainConfig:
    iterations: int | None = 2000
    epochs: int | None = None
    batch_size: int = 128
    eval_batch_size: int = 10000
    shared_batches: bool = True
    max_members: int | None = None
    amp: bool = False
    compile: bool = False
    population: str = "auto"  # how members run together: see sweeps.stacks.STRATEGIES
    checkpoints: bool = True  # each member's final weights as artifacts of its run
    # Nielsen's data expansion (sweeps.augment): random whole-pixel shifts up to
    # `augment_shift` each way, and rotations up to `augment_rotate` degrees, per member.
    augment: bool = False
    augment_shift: int = 1
    augment_rotate: float = 0.0
    progress: bool = True
    # torch's intra-op threads: N, or `auto` = the cores this process may use shared among
    # the workers on this machine (sweeps.device.set_threads)
    threads: str = "auto"


@dataclass
class TrackingConfig:
    uri: str | None = None
    experiment: str = "${study}"
    # MLflow's system metrics on the parent run (`sweeps.system_metrics`): auto = on a GPU.
    system_metrics: str = "auto"


@dataclass
class ReportConfig:
    smooth: bool = True
    ylim: list[float] | None = None
    # Epoch-based studies: one panel per value of `panels`, one line per value of `lines`
    # (dotted variant keys, e.g. model.init_scale / model.batchnorm); unset: a panel per variant.
    panels: str | None = None
    lines: str | None = None


@dataclass
class PathsConfig:
    """kind=optimizer_paths: minimise f(x, y) = x^2/20 + y^2 from `start` for `steps` steps."""

    start: list[float] = field(default_factory=lambda: [-7.0, 2.0])
    steps: int = 30


@dataclass
class ProbeConfig:
    """kind=activations: a stack of `layers` x `width` units fed `samples` N(0, 1) inputs."""

    samples: int = 1000
    width: int = 100
    layers: int = 5
    bins: int = 30


@dataclass
class SuiteConfig:
    """kind=suite: run these experiments, each with `overrides` and the command line's."""

    studies: list[str] = field(default_factory=list)
    overrides: list[str] = field(default_factory=list)
    # studies run at once, each in its own worker process: N, or `auto` (sweeps.lanes)
    workers: str = "auto"


@dataclass
class ArchitecturesConfig:
    """kind=architectures: train each of `models` (conf/model/NAME.yaml) on the same data and
    budget, each with its document's settings: `recipes.NAME` may set `optimizer`, `train` and
    `model` values, merged over the study's."""

    models: list[str] = field(default_factory=list)
    recipes: dict[str, Any] = field(default_factory=dict)


@dataclass
class SearchConfig:
    """`+search=NAME`: Optuna trials over `space` instead of the experiment's variants.

    `space` maps variant keys (`optimizer.lr`, nested or dotted) to `{type, low, high, log,
    step}` or `{choices}`; see `sweeps.space`.
    """

    space: dict[str, Any] = field(default_factory=dict)
    sampler: str = "random"
    pruner: str = "none"
    n_trials: int = 100  # per round, in total over every invocation that resumes the study
    batch: int = 100  # trials asked at once and trained as one population
    storage: str | None = None  # default: sqlite optuna.db beside mlflow.db
    study_name: str | None = None  # default: the study's name + trial-defining overrides
    rounds: int = 1
    top: float = 0.2  # narrowing: the best fraction of a round's trials spans the next ranges
    retrain: bool = True  # the best configuration on train+validation, scored once on test
    workers: int = 1  # local worker processes on this study (more machines: same command)
    heartbeat: float = 10.0  # seconds between a worker's signs of life on its trials
    grace: float = 60.0  # seconds of silence after which a worker's trials are taken over
    # Each epoch's validation accuracy as an Optuna intermediate value (what pruners judge and
    # optuna-dashboard draws); null: only with a pruner. One storage transaction per trial
    # and epoch: 5,000 in the textbook's search, 5.3 s on 2026-11-30 (benchmarks.stores);
    # MLflow has the curves either way.
    curves: bool | None = None


@dataclass
class Config:
    study: str = "default"
    # What the study reproduces, in one line: `--help` lists it (sweeps.run.studies_help).
    description: str = ""
    # Reuse the finished variants of an interrupted run of the same study and config.
    resume: bool = True
    kind: str = "train"  # a module of sweeps/kinds/; `+search` turns `train` into `search`
    seed: int = 0
    # Repeat the study once per seed (training studies: as one population, members = variants
    # x seeds); each claim is then judged per seed.
    seeds: list[int] | None = None
    # The documents' findings the study tests: NAME: {says: in words, check: an expression of
    # sweeps.claims, e.g. `final_loss[sgd] >= 3 * final_loss[adam]`}; checked after every run.
    # Free-form here, so that `+claims.NAME.check=...` adds one; sweeps.claims checks each.
    claims: dict[str, Any] = field(default_factory=dict)
    # Overrides that make the study a quick check (`python -m sweeps.verify --budget quick`).
    quick: list[str] = field(default_factory=list)
    device: str = "auto"
    dataset: DatasetConfig = MISSING
    # conf/model/NAME.yaml: `_target_` (an nn.Module class), its arguments, and the per-member
    # `init` / `init_scale` (see sweeps.networks). Free-form, since any network's arguments go.
    model: dict[str, Any] = MISSING
    optimizer: OptimizerConfig = MISSING
    train: TrainConfig = field(default_factory=TrainConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    suite: SuiteConfig = field(default_factory=SuiteConfig)
    architectures: ArchitecturesConfig = field(default_factory=ArchitecturesConfig)
    search: SearchConfig | None = None
    variants: dict[str, Any] = field(default_factory=dict)
    # Cartesian product over dotted variant keys, applied to every variant: {KEY: [values]}.
    grid: dict[str, Any] = field(default_factory=dict)


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config -> dotted keys (lists stay values), as MLflow params want them."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


# Settings that change how a study runs, where it is recorded or how it is described, not what
# it computes.
NOT_RESULTS = (
    "tracking",
    "resume",
    "train.progress",
    "train.threads",
    "train.max_members",
    "description",
    "claims",
    "quick",
)


def config_hash(cfg: DictConfig) -> str:
    """A digest of what a study computes: equal for two invocations whose variants would
    train to the same numbers, so one may reuse the other's finished variants."""
    import hashlib
    import json

    flat = flatten(OmegaConf.to_container(cfg, resolve=True))
    kept = {k: v for k, v in flat.items() if not k.startswith(NOT_RESULTS)}
    return hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()[:16]


def logspace(start: float, stop: float, num: int) -> list[float]:
    """`${logspace:0,-4,16}` in a config: numpy's logspace, the textbook's scale grids."""
    import numpy as np

    return [float(v) for v in np.logspace(float(start), float(stop), int(num))]


def register() -> None:
    """Make the schema available to `conf/config.yaml` as `base_config`."""
    if not OmegaConf.has_resolver("logspace"):
        OmegaConf.register_new_resolver("logspace", logspace)
    cs = ConfigStore.instance()
    cs.store(name="base_config", node=Config)
    cs.store(group="dataset", name="base_dataset", node=DatasetConfig)
    cs.store(group="optimizer", name="base_optimizer", node=OptimizerConfig)


SWITCHES = ("auto", "true", "false")


def check_choice(key: str, value: Any, valid: tuple[str, ...] | list[str]) -> None:
    """Raise ConfigError unless `value` is one of `valid`."""
    if value not in valid:
        raise ConfigError(f"{key}={value!r} is not valid; choose one of: {', '.join(valid)}")


def check_positive(key: str, value: float | None) -> None:
    """Raise ConfigError unless `value` is a positive, finite number."""
    if value is None or not value > 0 or not math.isfinite(value):
        raise ConfigError(f"{key}={value!r} must be a positive number")


SEED_LIMIT = 2**32  # numpy's and Optuna's samplers take seeds below 2^32


def check_budget(train: "TrainConfig | DictConfig") -> None:
    """The training budget and batch sizes, before any data is loaded or run opened."""
    check_positive("train.batch_size", train.batch_size)
    check_positive("train.eval_batch_size", train.eval_batch_size)
    if train.epochs is not None:
        check_positive("train.epochs", train.epochs)
    elif train.iterations is None or not train.iterations > 0:
        raise ConfigError(
            f"train.iterations={train.iterations!r} must be a positive number (or set train.epochs)"
        )
    if train.max_members is not None:
        check_positive("train.max_members", train.max_members)


def validate(cfg: DictConfig) -> None:
    """Checks on the top-level config; the kind is checked by the registry (`sweeps.kinds`),
    per-variant values by `sweeps.plan`."""
    check_choice("device", cfg.device, DEVICES)
    check_choice("dataset.name", cfg.dataset.name, DATASETS)
    seeds = {"seed": cfg.seed, "dataset.split_seed": cfg.dataset.split_seed}
    seeds |= {f"seeds[{i}]": s for i, s in enumerate(cfg.seeds or [])}
    for key, value in seeds.items():
        if not 0 <= value < SEED_LIMIT:
            raise ConfigError(f"{key}={value} must be in [0, 2^32)")
    if cfg.seeds is not None and (cfg.kind != "train" or cfg.search is not None):
        what = "a search" if cfg.search is not None else f"kind={cfg.kind}"
        raise ConfigError(
            f"seeds={list(cfg.seeds)} repeats training studies, not {what}: repeat it with "
            "`python -m sweeps.verify --seeds N` or `-m seed=1,2,3`"
        )
    if cfg.seeds is not None and not cfg.seeds:
        raise ConfigError("seeds=[] names no seed; give seeds=[1,2,3] or leave it unset")
    if not cfg.tracking.experiment:
        raise ConfigError("tracking.experiment must be a non-empty name")
    check_choice("tracking.system_metrics", str(cfg.tracking.system_metrics).lower(), SWITCHES)
    if cfg.dataset.train_size is not None:
        check_positive("dataset.train_size", cfg.dataset.train_size)
    if cfg.kind in ("train", "architectures"):
        check_budget(cfg.train)
    check_positive("paths.steps", cfg.paths.steps)
    for key in ("samples", "width", "layers", "bins"):
        check_positive(f"probe.{key}", cfg.probe[key])
    if cfg.train.threads != "auto" and not (
        str(cfg.train.threads).isdigit() and int(cfg.train.threads) > 0
    ):
        raise ConfigError(
            f"train.threads={cfg.train.threads!r} is not valid; give a positive number or auto"
        )
    if not cfg.study:
        raise ConfigError("study must be a non-empty name (it names the MLflow experiment)")
    if not 0 <= cfg.dataset.val_fraction < 1:
        raise ConfigError(f"dataset.val_fraction={cfg.dataset.val_fraction} must be in [0, 1)")
    if cfg.search is None and cfg.kind != "architectures" and cfg.dataset.val_fraction:
        raise ConfigError(
            "dataset.val_fraction is used by searches and kind=architectures only; "
            "add +search=NAME or set it to 0"
        )
