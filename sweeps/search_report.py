"""A search's table and figures, built from its trials' MLflow runs.

The live search and `python -m sweeps.report` both read the trials back from MLflow (every
invocation that resumed the study included), so the two always agree. Optuna's importance
and parallel-coordinate plots are drawn from an in-memory Optuna study rebuilt from those
runs, which needs no access to the search's Optuna storage.
"""

import logging
import warnings
from typing import Any

import numpy as np
import pandas as pd
from optuna.distributions import BaseDistribution, CategoricalDistribution, IntDistribution

from sweeps.tracking import metric_history

log = logging.getLogger(__name__)

BEST_PANELS = 20
TRIAL_TAG = "optuna.trial_number"


def trial_runs(client: Any, experiment_id: str, search: str) -> list[Any]:
    """Every finished trial run of the search `search` (all rounds and invocations)."""
    return client.search_runs(
        [experiment_id],
        filter_string=(
            f"tags.`sweeps.search` = '{search}' and tags.`sweeps.role` = 'trial' "
            "and attributes.status = 'FINISHED'"
        ),
        max_results=50000,
    )


def typed(value: str, dist: BaseDistribution) -> Any:
    """An MLflow param string back as the distribution's value."""
    if isinstance(dist, CategoricalDistribution):
        return next((c for c in dist.choices if str(c) == value), value)
    return int(float(value)) if isinstance(dist, IntDistribution) else float(value)


def trials_table(runs: list[Any], space: dict[str, BaseDistribution]) -> pd.DataFrame:
    """One row per trial, best validation accuracy first; failed and pruned trials last
    among equals, so the top rows are the configurations worth keeping."""
    rows = []
    for run in runs:
        tags, metrics, params = run.data.tags, run.data.metrics, run.data.params
        row = {
            "round": int(tags.get("search.round", 1)),
            "trial": int(tags[TRIAL_TAG]),
            "state": tags.get("optuna.state", ""),
        }
        row |= {key: typed(params[key], dist) for key, dist in space.items() if key in params}
        row |= {
            "val_acc": metrics.get("val/acc", np.nan),
            "train_acc": metrics.get("train/acc", np.nan),
            "run_id": run.info.run_id,
        }
        rows.append(row)
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    complete = (table["state"] == "COMPLETE").astype(int)
    table = table.assign(_complete=complete).sort_values(
        ["val_acc", "_complete", "round", "trial"], ascending=[False, False, True, True]
    )
    return table.drop(columns="_complete").reset_index(drop=True)


def best_figure(curves: dict[str, tuple[np.ndarray, np.ndarray]], title: str):
    """The textbook's "Best-1..Best-20" grid: validation accuracy solid, train dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = 5
    rows = max(int(np.ceil(len(curves) / cols)), 1)
    fig, axes = plt.subplots(rows, cols, figsize=(12, 2.2 * rows), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for i, (label, (val, train)) in enumerate(curves.items()):
        ax = axes.flat[i]
        ax.set_axis_on()
        x = np.arange(1, len(val) + 1)
        ax.plot(x, val, label="val")
        ax.plot(x, train, "--", label="train")
        ax.set_ylim(0.0, 1.0)
        ax.set_title(f"Best-{i + 1}", fontsize=9)
        ax.text(0.97, 0.9, label, transform=ax.transAxes, fontsize=7, ha="right")
        if i % cols:
            ax.set_yticks([])
        ax.set_xticks([])
    axes.flat[0].legend(fontsize=7, loc="upper left")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def optuna_figures(table: pd.DataFrame, space: dict[str, BaseDistribution]) -> dict[str, Any]:
    """Parameter importance and parallel coordinates over the complete trials.

    A study too small for them (importance needs two or more complete trials and varying
    values) gets a warning instead of the figure.
    """
    import optuna
    from optuna.visualization import matplotlib as oplt

    complete = table[table["state"] == "COMPLETE"]
    study = optuna.create_study(direction="maximize")
    study.add_trials(
        optuna.trial.create_trial(
            params={k: row[k] for k in space},
            distributions=dict(space),
            value=float(row["val_acc"]),
        )
        for _, row in complete.iterrows()
    )
    import matplotlib

    figures = {}
    plots = {
        "param_importances.png": oplt.plot_param_importances,
        "parallel_coordinate.png": oplt.plot_parallel_coordinate,
    }
    for name, plot in plots.items():
        try:
            # Optuna switches matplotlib's global style to ggplot; keep that to its figures.
            with warnings.catch_warnings(), matplotlib.rc_context():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                ax = plot(study)
        except (ValueError, RuntimeError) as err:
            log.warning("%s skipped: %s", name, err)
            continue
        ax = ax.flat[0] if isinstance(ax, np.ndarray) else ax
        ax.figure.set_size_inches(8, 5)
        ax.figure.tight_layout()
        figures[name] = ax.figure
    return figures


def search_outputs(
    client: Any, experiment_id: str, search: str, space: dict[str, BaseDistribution]
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """(trials table, {file name: figure}) for the search named `search`."""
    table = trials_table(trial_runs(client, experiment_id, search), space)
    if table.empty:
        return table, {}
    best = table[table["state"] == "COMPLETE"].head(BEST_PANELS)
    curves = {}
    for _, row in best.iterrows():
        label = f"r{row['round']} #{row['trial']}  val {row['val_acc']:.3f}"
        run_id = row["run_id"]
        curves[label] = (
            metric_history(client, run_id, "val/acc"),
            metric_history(client, run_id, "train/acc"),
        )
    figures = {"best_trials.png": best_figure(curves, f"{search}: best trials")}
    return table, figures | optuna_figures(table, space)
