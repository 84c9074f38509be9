"""Redraw a study's figures and table from the MLflow store alone (`python -m sweeps.report`).

The parent run's `config.yaml` says what the study was; its child runs' params and metric
histories hold the numbers. So a study run yesterday, or on another machine sharing the
tracking server, can be redrawn without re-training. (The activation histograms are the one
exception: MLflow holds only their per-layer statistics, so the untrained stack is recomputed
from the recorded config and seed, which is deterministic.)
"""

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from sweeps.config import Config, register
from sweeps.errors import UserError
from sweeps.plan import expand_variants
from sweeps.report import format_table, training_outputs
from sweeps.tracking import metric_history, tracking_uri


def find_study_run(client: Any, experiment: str, run_id: str | None) -> Any:
    """The given parent run, or the experiment's latest finished one."""
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        names = sorted(e.name for e in client.search_experiments())
        raise UserError(f"no MLflow experiment {experiment!r}; there are: {', '.join(names)}")
    if run_id:
        run = client.get_run(run_id)
        if run.info.experiment_id != exp.experiment_id:
            raise UserError(f"run {run_id} is not in experiment {experiment!r}")
        return run
    runs = client.search_runs(
        [exp.experiment_id],
        filter_string="tags.`sweeps.role` = 'study' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not runs:
        raise UserError(f"experiment {experiment!r} has no finished study run")
    return runs[0]


def load_config(client: Any, run: Any) -> DictConfig:
    """The study's resolved config, checked against the schema."""
    register()
    with tempfile.TemporaryDirectory() as tmp:
        path = client.download_artifacts(run.info.run_id, "config.yaml", tmp)
        return OmegaConf.merge(OmegaConf.structured(Config), OmegaConf.load(path))


def training_study(client: Any, cfg: DictConfig, children: dict[str, Any]):
    variants = expand_variants(cfg)
    epoch_based = cfg.train.epochs is not None
    frames: dict[str, dict[str, np.ndarray]] = {"loss": {}, "train": {}, "test": {}}
    finals = {}
    for v in variants:
        run = children[v.name]
        run_id, metrics = run.info.run_id, run.data.metrics
        frames["loss"][v.name] = metric_history(client, run_id, "train/loss")
        if epoch_based:
            frames["train"][v.name] = metric_history(client, run_id, "train/acc")
            frames["test"][v.name] = metric_history(client, run_id, "test/acc")
        finals[v.name] = {
            "train_acc": metrics["train/acc"],
            "test_acc": metrics["test/acc"],
            "seconds": metrics["train/seconds"],
            "diverged": run.data.tags.get("status") == "diverged",
        }
    keys = pd.DataFrame([v.params() for v in variants], index=[v.name for v in variants])
    return training_outputs(
        cfg.study,
        cfg.report,
        {k: pd.DataFrame(series) for k, series in frames.items()},
        pd.DataFrame.from_dict(finals, orient="index"),
        keys,
    )


def paths_study(client: Any, cfg: DictConfig, children: dict[str, Any]):
    from sweeps.paths import paths_outputs

    paths = {}
    for v in expand_variants(cfg):
        run_id = children[v.name].info.run_id
        paths[v.name] = np.stack(
            [metric_history(client, run_id, "x"), metric_history(client, run_id, "y")], axis=1
        )
    return paths_outputs(cfg.study, paths)


def activations_study(client: Any, cfg: DictConfig, children: dict[str, Any]):
    from sweeps.activations import histogram_figures, layer_outputs, summary_row

    rows, collected = [], []
    probe = cfg.probe
    for v in expand_variants(cfg):
        run_id = children[v.name].info.run_id
        last = {
            k: metric_history(client, run_id, f"layer/{k}")[-1]
            for k in ("mean", "std", "saturated")
        }
        rows.append(summary_row(v.name, last))
        collected.append((v, layer_outputs(v, probe.samples, probe.width, probe.layers)))
    return pd.DataFrame(rows), histogram_figures(cfg.study, collected, probe.bins)


BUILDERS = {"train": training_study, "paths": paths_study, "activations": activations_study}


def rebuild(
    experiment: str, run_id: str | None = None, out: str | None = None, uri: str | None = None
) -> tuple[pd.DataFrame, Path]:
    """Write the study's figures and summary.csv into `out`; return the table and folder."""
    import matplotlib.pyplot as plt
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri(uri))
    parent = find_study_run(client, experiment, run_id)
    cfg = load_config(client, parent)
    children = {
        r.info.run_name: r
        for r in client.search_runs(
            [parent.info.experiment_id],
            filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
        )
    }
    if cfg.search is not None:
        from sweeps.search_report import search_outputs
        from sweeps.space import parse_space

        name = parent.data.tags["sweeps.search"]
        space = parse_space(OmegaConf.to_container(cfg.search.space, resolve=True))
        table, figures = search_outputs(client, parent.info.experiment_id, name, space)
    else:
        table, figures = BUILDERS[cfg.kind](client, cfg, children)
    folder = Path(out or Path("reports") / experiment / parent.info.run_id)
    folder.mkdir(parents=True, exist_ok=True)
    for name, fig in figures.items():
        fig.savefig(folder / name)
        plt.close(fig)
    table.to_csv(folder / "summary.csv", index=False)
    return table, folder


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m sweeps.report",
        description="Redraw a study's figures and table from the MLflow store.",
    )
    parser.add_argument("experiment", help="MLflow experiment (the study's name)")
    parser.add_argument("--run-id", help="the study's parent run (default: the latest)")
    parser.add_argument("--out", help="output folder (default: reports/EXPERIMENT/RUN_ID)")
    parser.add_argument("--tracking-uri", help="default: $MLFLOW_TRACKING_URI or ./mlflow.db")
    args = parser.parse_args(argv)
    try:
        table, folder = rebuild(args.experiment, args.run_id, args.out, args.tracking_uri)
    except UserError as err:
        sys.exit(f"error: {err}")
    print(f"{args.experiment}: figures and summary.csv in {folder}\n{format_table(table)}")
