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

from sweeps import checkpoints, verdicts
from sweeps.claims import Claim, Results
from sweeps.config import config_hash
from sweeps.data import load_data
from sweeps.device import resolve_device
from sweeps.errors import ConfigError
from sweeps.figures import Band, accuracy_figure, colour, grid_figure, loss_figure
from sweeps.plan import (
    Variant,
    check_shapes,
    expand_replicates,
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
from sweeps.tables import show, smooth_curve, summary_table
from sweeps.trainer import Training, TrainResult, check_memory, train_variants

log = logging.getLogger(__name__)

# Per-variant histories a study's outputs are built from: "loss" (iteration x variant) and,
# for epoch-based studies, "train" and "test" accuracy (epoch x variant). A training study's
# evaluation split is the test set: only searches hold out validation data (config.validate).
Histories = dict[str, dict[str, np.ndarray]]


def run(cfg: DictConfig) -> pd.DataFrame:
    """Train every variant, record each in a child run; returns the summary table."""
    variants = expand_replicates(cfg)
    check_report(cfg, variants)
    claims = verdicts.check(cfg, dry_results(cfg, variants))
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
        table, figures, judged = outputs(
            cfg, variants, histories, {n: finals[n] for n in order}, claims
        )
        study.log_outputs(figures, {"summary.csv": table, **verdicts.files(judged)})
        study.finish()
    show(f"{cfg.study} ({len(table)} variants)", table)
    verdicts.show(judged)
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


def rebuild(study: RecordedStudy) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    """The tables and figures from the children's params and metric histories."""
    cfg = study.config
    variants = expand_replicates(cfg)
    epoch_based = cfg.train.epochs is not None
    histories: Histories = {"loss": {}, "train": {}, "test": {}}
    finals: dict[str, dict[str, Any]] = {}
    for v in variants:
        recorded(study.store, study.children[v.name], v.name, epoch_based, histories, finals)
    table, figures, judged = outputs(cfg, variants, histories, finals, verdicts.claims_of(cfg))
    return {"summary.csv": table, **verdicts.files(judged)}, figures


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
    claims: list[Claim],
) -> tuple[pd.DataFrame, dict[str, Any], pd.DataFrame]:
    """The study's summary table, figures (file name -> figure) and claims table.

    `finals`: train_acc, test_acc, seconds, diverged by variant. The study's figure
    `STUDY.png` is the textbook's: accuracy curves for epoch-based studies (a panel per
    variant, or the `report.panels` x `report.lines` grid; the loss then goes to
    `STUDY_loss.png`), else loss curves. Over seeds (`seeds`), each line is the variants'
    mean with a band from the lowest to the highest seed.
    """
    study, report = cfg.study, cfg.report
    frames = history_frames(histories)
    final = pd.DataFrame.from_dict(finals, orient="index")
    table = summary_table(frames["loss"], final, smooth=report.smooth)
    judged = verdicts.judge(claims, seed_results(cfg, variants, frames, table))
    lines, bands = over_seeds(frames, variants)
    title = study
    if bands:
        seeds = len({v.replicate for v in variants})
        title = f"{study} (mean of {seeds} seeds; bands: lowest..highest)"
    ylim = list(report.ylim) if report.ylim else None
    figures: dict[str, Any] = {}
    if len(lines["train"]):
        train, test = per_epoch(lines["train"]), per_epoch(lines["test"])
        train_band, test_band = (
            (tuple(map(per_epoch, bands[k])) for k in ("train", "test")) if bands else (None, None)
        )
        if report.panels and report.lines:
            first = [v for v in variants if v.replicate == variants[0].replicate]
            keys = pd.DataFrame([v.params() for v in first], index=[v.base for v in first])
            figure = grid_figure(train, keys, report.panels, report.lines, title, train_band)
        else:
            both = (train_band, test_band) if bands else None
            figure = accuracy_figure(train, test, title, both)
        figures[f"{study}.png"] = figure
        ylim = None
    loss_name = f"{study}_loss.png" if figures else f"{study}.png"
    figures[loss_name] = loss_figure(
        lines["loss"], f"{title}: training loss", report.smooth, ylim, bands.get("loss")
    )
    return table, figures, judged


def per_epoch(frame: pd.DataFrame) -> pd.DataFrame:
    """A per-epoch frame indexed by epoch, from 1."""
    return frame.set_axis(pd.RangeIndex(1, len(frame) + 1))


def history_frames(histories: Histories) -> dict[str, pd.DataFrame]:
    """Histories as frames (step x run); series, not arrays: a diverged variant's loss
    series ends early (NaN after it)."""
    return {
        key: pd.DataFrame({name: pd.Series(h, dtype=float) for name, h in series.items()})
        for key, series in histories.items()
    }


def over_seeds(
    frames: dict[str, pd.DataFrame], variants: list[Variant]
) -> tuple[dict[str, pd.DataFrame], dict[str, Band]]:
    """Each variant's line: its series, or over seeds their mean, with the band from the
    lowest to the highest seed at each step (none without seeds)."""
    if all(v.replicate is None for v in variants):
        return frames, {}
    base = {v.name: v.base for v in variants}
    lines, bands = {}, {}
    for key, frame in frames.items():
        grouped = frame.T.groupby(lambda name: base[name], sort=False)
        lines[key] = grouped.mean().T
        bands[key] = (grouped.min().T, grouped.max().T)
    return lines, bands


def seed_results(
    cfg: DictConfig, variants: list[Variant], frames: dict[str, pd.DataFrame], table: pd.DataFrame
) -> dict[int, Results]:
    """What claims read, per seed: each replicate's final values, params and series
    (`loss`, smoothed as the figure draws it when `report.smooth`; per epoch `train_acc`,
    `test_acc` and `gap`), its variants named as without seeds."""
    rows = table.set_index("variant")
    replicates: dict[int, list[Variant]] = {}
    for v in variants:
        replicates.setdefault(cfg.seed if v.replicate is None else v.replicate, []).append(v)
    results = {}
    for seed, members in replicates.items():
        names = {v.name: v.base for v in members}
        losses = frames["loss"][list(names)]
        if cfg.report.smooth:
            losses = pd.DataFrame(
                {n: pd.Series(smooth_curve(losses[n].dropna().to_numpy())) for n in names}
            )
        series = {"loss": losses}
        if len(frames["train"]):
            train, test = frames["train"][list(names)], frames["test"][list(names)]
            series |= {"train_acc": train, "test_acc": test, "gap": train - test}
        results[seed] = Results(
            table=rows.loc[list(names)].select_dtypes("number").rename(index=names),
            params=pd.DataFrame([v.params() for v in members], index=list(names.values())),
            series={k: f.rename(columns=names) for k, f in series.items()},
            aliases=verdicts.aliases(cfg),
            score="test_acc",
        )
    return results


def dry_results(cfg: DictConfig, variants: list[Variant]) -> Results:
    """Results shaped like the study's, all zeros: the claims are checked against them before
    any training."""
    epochs = [0.0] if cfg.train.epochs is not None else []
    histories: Histories = {
        "loss": {v.name: np.zeros(1) for v in variants},
        "train": {v.name: np.asarray(epochs) for v in variants},
        "test": {v.name: np.asarray(epochs) for v in variants},
    }
    frames = history_frames(histories)
    zero = {"train_acc": 0.0, "test_acc": 0.0, "seconds": 0.0, "diverged": False}
    final = pd.DataFrame.from_dict({v.name: zero for v in variants}, orient="index")
    table = summary_table(frames["loss"], final, smooth=False)
    return next(iter(seed_results(cfg, variants, frames, table).values()))
