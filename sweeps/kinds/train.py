"""kind=train: a study's variants (crossed with its grid) trained as populations.

Order matters for the user: everything that can fail on bad input (config, device, dataset,
shapes) runs before the first MLflow run is opened. Variants that share an architecture train
as one population; each variant gets a child run with its loss and accuracy series, and the
parent gets the study's figure and summary table.
"""

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from sweeps import checkpoints
from sweeps.config import config_hash
from sweeps.data import load_data
from sweeps.device import resolve_device
from sweeps.errors import ConfigError
from sweeps.figures import accuracy_figure, colour, grid_figure, loss_figure
from sweeps.plan import (
    Variant,
    check_shapes,
    expand_variants,
    group_by_architecture,
    run_params,
)
from sweeps.recording import (
    CONFIG_TAG,
    RUN_COLOUR,
    RecordedStudy,
    RunRecord,
    Store,
    StudyRun,
    dataset_tags,
    provenance_tags,
    study_run,
)
from sweeps.tables import show, summary_table
from sweeps.trainer import Training, TrainResult, check_memory, train_variants

log = logging.getLogger(__name__)

# Per-variant histories a study's outputs are built from: "loss" (iteration x variant) and,
# for epoch-based studies, "train" and "test" accuracy (epoch x variant). A training study's
# evaluation split is the test set: only searches hold out validation data (config.validate).
Histories = dict[str, dict[str, np.ndarray]]


def run(cfg: DictConfig) -> pd.DataFrame:
    """Train every variant, record each in a child run; returns the summary table."""
    variants = expand_variants(cfg)
    check_report(cfg, variants)
    groups = group_by_architecture(variants)
    epoch_based = cfg.train.epochs is not None
    device = resolve_device(cfg.device)
    data = load_data(cfg.dataset, device)
    check_shapes(variants, data)
    check_memory(variants, cfg.train, data)
    training = Training(data, cfg.train, cfg.seed, keep_states=cfg.train.checkpoints)
    dataset = OmegaConf.to_container(cfg.dataset, resolve=True)
    tags = provenance_tags(device) | dataset_tags(data) | {"seed": cfg.seed}
    identity = {CONFIG_TAG: config_hash(cfg)} if cfg.resume else {}
    with study_run(cfg, tags, identity) as study:
        histories: Histories = {"loss": {}, "train": {}, "test": {}}
        finals = {}
        reused = study.resume() if cfg.resume else {}
        for v in variants:
            if v.name in reused:
                recorded(study.recorder, reused[v.name], v.name, epoch_based, histories, finals)
        if reused:
            log.info("resumed: %d of %d variants reused", len(finals), len(variants))
        params = run_params(variants)
        looks = {v.name: (params[v.name], colour(i)) for i, v in enumerate(variants)}
        groups = [[v for v in g if v.name not in finals] for g in groups]
        groups = [g for g in groups if g]
        for i, group in enumerate(groups):
            names = ", ".join(v.name for v in group)
            desc = f"{cfg.study} [{i + 1}/{len(groups)}: {names}]"
            result = train_group(study, group, training, desc, dataset, looks)
            for k, v in enumerate(group):
                histories["loss"][v.name] = result.loss_series(k)
                histories["train"][v.name] = result.epoch_train_acc[:, k]
                histories["test"][v.name] = result.epoch_eval_acc[:, k]
                finals[v.name] = {
                    "train_acc": float(result.train_acc[k]),  # as a reused or redrawn
                    "test_acc": float(result.eval_acc[k]),  # variant's, read from MLflow
                    "seconds": result.seconds,
                    "diverged": bool(result.diverged_at[k] >= 0),
                }
        order = [v.name for v in variants]  # reused variants came first
        histories = {key: {n: h[n] for n in order if n in h} for key, h in histories.items()}
        table, figures = outputs(cfg, variants, histories, {n: finals[n] for n in order})
        study.log_outputs(figures, {"summary.csv": table})
        study.finish()
    show(f"{cfg.study} ({len(table)} variants)", table)
    return table


def check_report(cfg: DictConfig, variants: list[Variant]) -> None:
    """`report.panels` and `report.lines` name variant keys; a typo would fail only when the
    figure is drawn, after all the training."""
    keys = sorted(variants[0].params())
    for name in ("panels", "lines"):
        key = cfg.report[name]
        if key is not None and key not in keys:
            raise ConfigError(
                f"report.{name}={key!r} is not a variant key; valid: {', '.join(keys)}"
            )


def train_group(
    study: StudyRun,
    group: list[Variant],
    training: Training,
    desc: str,
    dataset: Mapping[str, Any],
    looks: Mapping[str, tuple[Mapping[str, Any], str]],
) -> TrainResult:
    """Train variants of one architecture and record each in its own child run, with its
    checkpoint when `training.keep_states` (`dataset`: the config it names). `looks`: each
    variant's params (`run_params`) and its line's colour in the study's figures, which is
    its colour in MLflow's charts too."""
    children = [
        study.child(
            v.name, looks[v.name][0], {"sweeps.variant": v.name, RUN_COLOUR: looks[v.name][1]}
        )
        for v in group
    ]
    result = train_variants(group, training, desc)
    for k, (v, child) in enumerate(zip(group, children, strict=True)):
        diverged = int(result.diverged_at[k])
        status = {"status": "ok", **result.tags()}
        if diverged >= 0:
            log.warning(
                "variant %r diverged at step %d (non-finite loss); frozen", v.name, diverged
            )
            status |= {"status": "diverged", "diverged_at": diverged}
        if result.states is not None:
            shape = training.data.sample_shape
            study.log_checkpoint(
                child, checkpoints.files(v.model, dataset, shape, result.states[k])
            )
        study.close_child(child, result.points(k, training.data.eval_split), status)
    return result


def rebuild(study: RecordedStudy) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The table and figures from the children's params and metric histories."""
    cfg = study.config
    variants = expand_variants(cfg)
    epoch_based = cfg.train.epochs is not None
    histories: Histories = {"loss": {}, "train": {}, "test": {}}
    finals: dict[str, dict[str, Any]] = {}
    for v in variants:
        recorded(study.store, study.children[v.name], v.name, epoch_based, histories, finals)
    return outputs(cfg, variants, histories, finals)


def recorded(
    store: Store,
    child: RunRecord,
    name: str,
    epoch_based: bool,
    histories: Histories,
    finals: dict[str, dict[str, Any]],
) -> None:
    """Fill in a variant's histories and final values from its recorded run."""
    histories["loss"][name] = store.history(child.run_id, "train/loss")
    if epoch_based:
        histories["train"][name] = store.history(child.run_id, "train/acc")
        histories["test"][name] = store.history(child.run_id, "test/acc")
    finals[name] = {
        "train_acc": child.metrics["train/acc"],
        "test_acc": child.metrics["test/acc"],
        "seconds": float(child.tags["population.seconds"]),
        "diverged": child.tags.get("status") == "diverged",
    }


def outputs(
    cfg: DictConfig,
    variants: list[Variant],
    histories: Histories,
    finals: dict[str, dict[str, Any]],
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The study's summary table and figures (file name -> figure).

    `finals`: train_acc, test_acc, seconds, diverged by variant. The study's figure
    `STUDY.png` is the textbook's: accuracy curves for epoch-based studies (a panel per
    variant, or the `report.panels` x `report.lines` grid; the loss then goes to
    `STUDY_loss.png`), else loss curves.
    """
    study, report = cfg.study, cfg.report
    # Series, not arrays: a diverged variant's loss series ends early (NaN after it).
    frames = {
        key: pd.DataFrame({name: pd.Series(h, dtype=float) for name, h in series.items()})
        for key, series in histories.items()
    }
    losses = frames["loss"]
    final = pd.DataFrame.from_dict(finals, orient="index")
    table = summary_table(losses, final, smooth=report.smooth)
    ylim = list(report.ylim) if report.ylim else None
    figures: dict[str, Any] = {}
    if len(frames["train"]):
        epochs = pd.RangeIndex(1, len(frames["train"]) + 1)
        train, test = frames["train"].set_index(epochs), frames["test"].set_index(epochs)
        if report.panels and report.lines:
            keys = pd.DataFrame([v.params() for v in variants], index=[v.name for v in variants])
            figure = grid_figure(train, keys, report.panels, report.lines, study)
        else:
            figure = accuracy_figure(train, test, study)
        figures[f"{study}.png"] = figure
        ylim = None
    loss_name = f"{study}_loss.png" if figures else f"{study}.png"
    figures[loss_name] = loss_figure(losses, f"{study}: training loss", report.smooth, ylim)
    return table, figures
