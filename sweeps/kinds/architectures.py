"""kind=architectures: several networks on the same data and budget, each with the settings its
document used.

Each name of `architectures.models` is a model config (conf/model/NAME.yaml); its recipe
(`architectures.recipes.NAME`: `optimizer`, `train` and `model` values) is merged on top of
the study's own. Every network trains on the training split less a validation split, is scored
on validation after each epoch, and its final weights once on the test set. Each gets a child
run (params, curves, `model.params`, `model.flops` per sample, seconds per epoch, test
accuracy, and its checkpoint); the parent gets the table and the figures of test accuracy
against size and against training time.
"""

from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from sweeps import checkpoints, verdicts
from sweeps.config import CONF_DIR, check_positive, config_names
from sweeps.data import Dataset, load_data
from sweeps.device import resolve_device
from sweeps.errors import ConfigError
from sweeps.figures import pyplot
from sweeps.networks import Probe, check_fits
from sweeps.numbers import fraction
from sweeps.plan import Variant, build_variants, run_params
from sweeps.recording import RecordedStudy, StudyRun, dataset_tags, provenance_tags, study_run
from sweeps.tables import show
from sweeps.trainer import Training, check_memory, train_variants

RECIPE_KEYS = ("optimizer", "train", "model")
COLUMNS = [
    "architecture",
    "parameters",
    "mflops_per_sample",
    "seconds_per_epoch",
    "best_val_acc",
    "test_acc",
]


def study_config(cfg: DictConfig, name: str) -> DictConfig:
    """The study's config with network NAME and its recipe merged on top."""
    valid = config_names("model", exclude=("custom",))
    if name not in valid:
        raise ConfigError(
            f"architectures.models: unknown model {name!r}; valid: {', '.join(valid)}"
        )
    recipe = OmegaConf.to_container(cfg.architectures.recipes.get(name) or {}, resolve=True)
    unknown = set(recipe) - set(RECIPE_KEYS)
    if unknown:
        raise ConfigError(
            f"architectures.recipes.{name}: unknown keys {sorted(unknown)}; "
            f"a recipe may set: {', '.join(RECIPE_KEYS)}"
        )
    model = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "model" / f"{name}.yaml"))
    one = cfg.copy()
    try:
        one.model = {**model, **recipe.get("model", {})}
        one.optimizer = OmegaConf.merge(cfg.optimizer, recipe.get("optimizer", {}))
        one.train = OmegaConf.merge(cfg.train, recipe.get("train", {}))
    except OmegaConfBaseException as err:
        raise ConfigError(f"architectures.recipes.{name}: {err}") from err
    return one


def plan(cfg: DictConfig) -> list[tuple[DictConfig, Variant]]:
    """Each network's config and variant, all checked before any data is loaded."""
    if not cfg.architectures.models:
        raise ConfigError("architectures.models is empty; list networks, e.g. [mlp, lenet5]")
    if cfg.train.epochs is None:
        raise ConfigError("kind=architectures compares networks per epoch: set train.epochs")
    check_positive("dataset.val_fraction", cfg.dataset.val_fraction)
    planned = []
    for name in cfg.architectures.models:
        one = study_config(cfg, name)
        planned.append((one, build_variants(one, {name: {}})[0]))
    return planned


def run(cfg: DictConfig) -> pd.DataFrame:
    planned = plan(cfg)
    verdicts.check_table(cfg, [v.name for _, v in planned], COLUMNS[1:], "architecture")
    device = resolve_device(cfg.device)
    full = load_data(cfg.dataset, device)
    data = full.validation_split(cfg.dataset.val_fraction, cfg.dataset.split_seed)
    classes = int(full.train_y.max()) + 1
    probes = {
        v.name: check_fits(v.model, data.sample_shape, classes, data.name, flops=True)
        for _, v in planned
    }
    for one, v in planned:
        check_memory([v], one.train, data)
    tags = provenance_tags(device) | dataset_tags(data) | {"seed": cfg.seed}
    rows = []
    params = run_params([v for _, v in planned])
    with study_run(cfg, tags) as study:
        for i, (one, variant) in enumerate(planned):
            desc = f"{cfg.study} [{i + 1}/{len(planned)}: {variant.name}]"
            probe = probes[variant.name]
            child = study.child(
                variant.name, params[variant.name], {"sweeps.variant": variant.name}
            )
            rows.append(train_one(study, child, one, variant, data, full, desc, probe))
        table = pd.DataFrame(rows, columns=COLUMNS)
        judged = verdicts.judge_table(cfg, table, "architecture")
        study.log_outputs(
            figures(table, cfg.study), {"summary.csv": table, **verdicts.files(judged)}
        )
        study.finish()
    show(f"{cfg.study} ({len(table)} networks)", table)
    verdicts.show(judged)
    return table


def train_one(
    study: StudyRun,
    child: str,
    cfg: DictConfig,
    variant: Variant,
    data: Dataset,
    full: Dataset,
    desc: str,
    probe: Probe,
) -> list[Any]:
    """Train one network, score its final weights on the test set, record its child run."""
    training = Training(data, cfg.train, cfg.seed, keep_states=True)
    result = train_variants([variant], training, desc)
    state = result.states[0]
    dataset = OmegaConf.to_container(cfg.dataset, resolve=True)
    files = checkpoints.files(variant.model, dataset, data.sample_shape, state)
    _, net = checkpoints.restore(*files.values(), device=full.eval_x.device)
    predicted = checkpoints.predict(net, full.eval_x, cfg.train.eval_batch_size)
    test_acc = float(fraction(int((predicted == full.eval_y).sum()), len(full.eval_y)))
    per_epoch = round(result.seconds / cfg.train.epochs, 3)
    best_val = float(np.max(result.epoch_eval_acc[:, 0]))
    last = max(len(result.loss_series(0)) - 1, 0)
    points = result.points(0, data.eval_split) + [
        ("test/acc", test_acc, last),
        ("model.params", probe.parameters, 0),
        ("model.flops", probe.flops, 0),
        ("train/seconds_per_epoch", per_epoch, last),
    ]
    study.log_checkpoint(child, files)
    status = {"status": "diverged" if result.diverged_at[0] >= 0 else "ok"}
    study.close_child(child, points, status | result.tags() | {"model.name": variant.name})
    return [variant.name, probe.parameters, probe.flops / 1e6, per_epoch, best_val, test_acc]


def figures(table: pd.DataFrame, study: str) -> dict[str, Any]:
    """Test accuracy against parameters (log scale) and against seconds per epoch."""
    plt = pyplot()
    out = {}
    for column, label, name in (
        ("parameters", "parameters (log scale)", f"{study}_params.png"),
        ("seconds_per_epoch", "seconds per epoch (log scale)", f"{study}_time.png"),
    ):
        fig, ax = plt.subplots(figsize=(7, 5))
        ax.scatter(table[column], table["test_acc"])
        for _, row in table.iterrows():
            ax.annotate(
                row["architecture"],
                (row[column], row["test_acc"]),
                fontsize=8,
                xytext=(4, 2),
                textcoords="offset points",
            )
        ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("test accuracy")
        ax.set_title(f"{study}: test accuracy vs {column.replace('_', ' ')}")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        out[name] = fig
    return out


def rebuild(study: RecordedStudy) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    """The tables and figures from the children's metrics."""
    rows = []
    for name in study.config.architectures.models:
        m = study.children[name].metrics
        rows.append(
            [
                name,
                int(m["model.params"]),
                m["model.flops"] / 1e6,
                m["train/seconds_per_epoch"],
                float(np.max(study.history(name, "val/acc"))),
                m["test/acc"],
            ]
        )
    table = pd.DataFrame(rows, columns=COLUMNS)
    tables = {
        "summary.csv": table,
        **verdicts.files(verdicts.judge_table(study.config, table, "architecture")),
    }
    return tables, figures(table, study.config.study)
