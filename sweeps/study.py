"""Run one study: validate, load data, train every population, record and report.

Order matters for the user: everything that can fail on bad input (config, device, dataset)
runs before the first MLflow run is opened, and any later failure closes the open runs as
FAILED (KILLED on Ctrl-C) so the store never keeps a phantom RUNNING run. Studies that train
nothing (`kind: paths`, `kind: activations`) have their own modules and share the parent
run and table plumbing here.
"""

import logging
from typing import Any

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from sweeps.config import validate
from sweeps.data import Dataset, load_dataset
from sweeps.errors import ConfigError
from sweeps.multirun import multirun_parent
from sweeps.plan import Variant, expand_variants, group_by_architecture
from sweeps.report import format_table, training_outputs
from sweeps.runtime import provenance_tags, resolve_device
from sweeps.tracking import Recorder, flatten, tracking_uri
from sweeps.train import TrainResult, train_variants

log = logging.getLogger(__name__)


def dataset_tags(data: Dataset) -> dict[str, Any]:
    return {
        "dataset.name": data.name,
        "dataset.source": data.source,
        "dataset.fallback": str(data.fallback).lower(),
    } | {f"dataset.{split}_size": n for split, n in data.sizes().items()}


def load_data(cfg: DictConfig, device: Any) -> Dataset:
    """The configured dataset, cut to `dataset.train_size`, on the device."""
    ds = cfg.dataset
    data = load_dataset(ds.name, ds.root, ds.strict, ds.download, ds.download_timeout, ds.cache_dir)
    return (data.first(ds.train_size) if ds.train_size else data).to(device)


def check_shapes(variants: list[Variant], data: Dataset) -> None:
    """The data must fit every variant's input and output layers."""
    features = data.train_x.shape[1]
    classes = int(data.train_y.max()) + 1
    for v in variants:
        if v.model.input_size != features:
            raise ConfigError(
                f"model.input_size={v.model.input_size} (variant {v.name!r}) but {data.name} "
                f"samples have {features} features"
            )
        if v.model.output_size < classes:
            raise ConfigError(
                f"model.output_size={v.model.output_size} (variant {v.name!r}) but {data.name} "
                f"has {classes} classes"
            )


def child_metrics(
    result: TrainResult, k: int, split: str = "test", epochs: int | None = None
) -> list[tuple[str, float, int]]:
    """Member k's series and final values as (key, value, step) points.

    `train/loss` is stepped by iteration. Accuracies (`train/acc`, `{split}/acc`, split
    being the evaluation split) are stepped by epoch in epoch-based studies, up to `epochs`
    (a pruned trial's last one); otherwise logged once, at the last iteration.
    """
    recorded = len(result.epoch_train_acc)
    kept = recorded if epochs is None else min(epochs, recorded)
    steps = len(result.losses) * kept // recorded if recorded else len(result.losses)
    points = [("train/loss", v, i) for i, v in enumerate(result.losses[:steps, k])]
    final_step = len(result.losses)
    for e in range(kept):
        points.append(("train/acc", result.epoch_train_acc[e, k], e + 1))
        points.append((f"{split}/acc", result.epoch_test_acc[e, k], e + 1))
    if not recorded:
        points.append(("train/acc", result.train_acc[k], final_step))
        points.append((f"{split}/acc", result.test_acc[k], final_step))
    points.append(("train/seconds", result.seconds, final_step))
    return points


def start_parent(recorder: Recorder, cfg: DictConfig, tags: dict[str, Any]) -> str:
    """The invocation's parent run, with the resolved config as params and as config.yaml;
    in a Hydra multirun, itself a child of the multirun's run."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    parent = recorder.start(
        cfg.study,
        flatten(resolved),
        tags | {"sweeps.role": "study"},
        parent=multirun_parent(recorder),
    )
    recorder.log_text(parent, OmegaConf.to_yaml(resolved), "config.yaml")
    return parent


def finish_parent(
    recorder: Recorder, parent: str, study: str, table: pd.DataFrame, figures: dict[str, Any]
) -> None:
    """Log the figures and the summary table (summary.csv, and the console), close the run."""
    import matplotlib.pyplot as plt

    for name, fig in figures.items():
        recorder.log_figure(parent, fig, name)
        plt.close(fig)
    recorder.log_text(parent, table.to_csv(index=False), "summary.csv")
    print(f"\n{study} ({len(table)} variants)\n{format_table(table)}\n", flush=True)
    recorder.finish(parent)


def run_study(cfg: DictConfig) -> pd.DataFrame:
    """Run the study `cfg` describes and return its summary table (also printed and logged)."""
    validate(cfg)
    if cfg.kind == "paths":
        from sweeps.paths import run_paths

        return run_paths(cfg)
    if cfg.kind == "activations":
        from sweeps.activations import run_activations

        return run_activations(cfg)
    if cfg.kind == "suite":
        from sweeps.suite import run_suite

        return run_suite(cfg)
    if cfg.search is not None:
        from sweeps.search import run_search

        return run_search(cfg)
    variants = expand_variants(cfg)
    groups = group_by_architecture(variants)
    device = resolve_device(cfg.device)
    data = load_data(cfg, device)
    check_shapes(variants, data)

    tags = provenance_tags(device) | dataset_tags(data) | {"seed": cfg.seed}
    recorder = Recorder(tracking_uri(cfg.tracking.uri), cfg.tracking.experiment)
    with recorder.guarded():
        parent = start_parent(recorder, cfg, tags)
        histories: dict[str, dict[str, Any]] = {"loss": {}, "train": {}, "test": {}}
        finals = {}
        for i, group in enumerate(groups):
            results = train_group(
                recorder, parent, group, data, cfg, tags, f"{i + 1}/{len(groups)}"
            )
            for k, v in enumerate(group):
                histories["loss"][v.name] = results.losses[:, k]
                histories["train"][v.name] = results.epoch_train_acc[:, k]
                histories["test"][v.name] = results.epoch_test_acc[:, k]
                finals[v.name] = {
                    "train_acc": results.train_acc[k],
                    "test_acc": results.test_acc[k],
                    "seconds": results.seconds,
                    "diverged": bool(results.diverged_at[k] >= 0),
                }
        frames = {key: pd.DataFrame(series) for key, series in histories.items()}
        table = write_report(recorder, parent, cfg, frames, finals, variants)
    log.info("recorded in %s, experiment %r, run %s", recorder.uri, cfg.tracking.experiment, parent)
    return table


def train_group(
    recorder: Recorder,
    parent: str,
    group: list[Variant],
    data: Dataset,
    cfg: DictConfig,
    tags: dict[str, Any],
    label: str,
) -> TrainResult:
    """Train variants of one architecture and record each in its own child run."""
    children = [
        recorder.start(v.name, v.params(), tags | {"sweeps.variant": v.name}, parent=parent)
        for v in group
    ]
    desc = f"{cfg.study} [{label}: {', '.join(v.name for v in group)}]"
    result = train_variants(group, data, cfg.train, cfg.seed, desc=desc)
    for k, (v, child) in enumerate(zip(group, children, strict=True)):
        recorder.log_metrics(child, child_metrics(result, k))
        diverged = int(result.diverged_at[k])
        status = {"status": "ok", "population.size": result.chunk}
        if diverged >= 0:
            log.warning(
                "variant %r diverged at step %d (non-finite loss); frozen", v.name, diverged
            )
            status |= {"status": "diverged", "diverged_at": diverged}
        recorder.set_tags(child, status)
        recorder.finish(child)
    return result


def write_report(
    recorder: Recorder,
    parent: str,
    cfg: DictConfig,
    frames: dict[str, pd.DataFrame],
    finals: dict[str, dict[str, float]],
    variants: list[Variant],
) -> pd.DataFrame:
    """Figures, CSV table and console table for the study; closes the parent run."""
    keys = pd.DataFrame([v.params() for v in variants], index=[v.name for v in variants])
    final = pd.DataFrame.from_dict(finals, orient="index")
    table, figures = training_outputs(cfg.study, cfg.report, frames, final, keys)
    finish_parent(recorder, parent, cfg.study, table, figures)
    return table
