"""A search's table and figures, built from its trials' recorded runs.

The live search and `python -m sweeps.report` both read the trials back from the tracking
store (every invocation that resumed the Optuna study included), so the two always agree.
Optuna's importance and parallel-coordinate plots are drawn from an in-memory Optuna study
rebuilt from those runs, which needs no access to the search's Optuna storage.
"""

import json
import logging
import warnings
from functools import partial
from typing import Any

import numpy as np
import optuna
import pandas as pd
from optuna.distributions import BaseDistribution, CategoricalDistribution, IntDistribution

from sweeps.claims import Results
from sweeps.figures import best_trials_figure
from sweeps.recording import ROLE_TAG, RunRecord, Store
from sweeps.tables import trial_names

log = logging.getLogger(__name__)

BEST_PANELS = 20
TRIAL_TAG = "optuna.trial_number"
# A trial's sampled values, exact, as JSON: its MLflow params show them rounded, and the
# best trial is retrained from its row.
PARAMS_TAG = "optuna.params"
SEARCH_TAG = "sweeps.search"  # names the search a trial run and its parent belong to


def typed(value: str, dist: BaseDistribution) -> Any:
    """An MLflow param string back as the distribution's value."""
    if isinstance(dist, CategoricalDistribution):
        return next((c for c in dist.choices if str(c) == value), value)
    return int(float(value)) if isinstance(dist, IntDistribution) else float(value)


def trials_table(runs: list[RunRecord], space: dict[str, BaseDistribution]) -> pd.DataFrame:
    """One row per trial, best validation accuracy first; failed and pruned trials last
    among equals, so the top rows are the configurations worth keeping."""
    rows = []
    for run in runs:
        tags, metrics, params = run.tags, run.metrics, run.params
        row = {
            "round": int(tags.get("search.round", 1)),
            "trial": int(tags[TRIAL_TAG]),
            "state": tags.get("optuna.state", ""),
        }
        exact = json.loads(tags.get(PARAMS_TAG, "{}"))
        row |= {
            key: exact[key] if key in exact else typed(params[key], dist)
            for key, dist in space.items()
            if key in exact or key in params
        }
        row |= {
            "val_acc": metrics.get("val/acc", np.nan),
            "train_acc": metrics.get("train/acc", np.nan),
            "run_id": run.run_id,
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


def trials_study(table: pd.DataFrame, space: dict[str, BaseDistribution]) -> optuna.Study:
    """An in-memory Optuna study of the complete trials: what Optuna's analyses read."""
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
    return study


IMPORTANCE_SEED = 0  # fANOVA's forest is random: a claim on importances must not be


def importances(table: pd.DataFrame, space: dict[str, BaseDistribution]) -> dict[str, float]:
    """Each searched parameter's share of the validation accuracy's variance, NaN where
    Optuna cannot tell (too few complete trials). fANOVA with a fixed seed: its forest is
    random, and a verdict must not change when the same trials are judged again."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            found = optuna.importance.get_param_importances(
                trials_study(table, space),
                evaluator=optuna.importance.FanovaImportanceEvaluator(seed=IMPORTANCE_SEED),
            )
    except (ValueError, RuntimeError) as err:
        log.warning("parameter importances unavailable: %s", err)
        found = {}
    return {key: float(found.get(key, np.nan)) for key in space}


def search_results(table: pd.DataFrame, space: dict[str, BaseDistribution]) -> Results:
    """A search as its claims read it: the complete trials (named `r1 #7`), their validation
    and train accuracy, their sampled values as params, ranked by validation accuracy for
    `best N`, and the parameters' importances."""
    if table.empty:  # no trial run recorded: every claim on the trials fails
        table = pd.DataFrame(columns=["round", "trial", "state", "val_acc", "train_acc", *space])
    complete = table[table["state"] == "COMPLETE"]
    names = trial_names(complete)
    return Results(
        table=complete[["val_acc", "train_acc"]].astype(float).set_axis(names),
        params=complete[list(space)].set_axis(names),
        score="val_acc",
        importances=importances(table, space),
    )


def dry_results(space: dict[str, BaseDistribution], trials: int) -> Results:
    """Results shaped like a search's (`trials` complete trials, all zeros) to check its
    claims against before any trial runs."""
    names = [f"r1 #{t}" for t in range(trials)]
    zeros = pd.DataFrame(0.0, index=names, columns=["val_acc", "train_acc", *space])
    return Results(
        table=zeros[["val_acc", "train_acc"]],
        params=zeros[list(space)],
        score="val_acc",
        importances=dict.fromkeys(space, 0.0),
    )


class KnownImportances(optuna.importance.BaseImportanceEvaluator):
    """Importances already computed, most important first, as Optuna's importance plot asks
    an evaluator for them: the figure then shows the numbers the claims judge, without
    fitting fANOVA's forest again (Optuna 5's plot would otherwise use PED-ANOVA, whose
    numbers differ)."""

    def __init__(self, importances: dict[str, float]) -> None:
        self.importances = dict(sorted(importances.items(), key=lambda kv: -kv[1]))

    def evaluate(
        self, study: optuna.Study, params: Any = None, *, target: Any = None
    ) -> dict[str, float]:
        return dict(self.importances)


def optuna_figures(
    table: pd.DataFrame, space: dict[str, BaseDistribution], importances: dict[str, float]
) -> dict[str, Any]:
    """The parameters' `importances` (`search_results`) and parallel coordinates over the
    complete trials.

    A study too small for them (importance needs two or more complete trials and varying
    values) gets a warning instead of the figure.
    """
    from optuna.visualization import matplotlib as oplt

    study = trials_study(table, space)
    import matplotlib

    figures = {}
    known = {k: v for k, v in importances.items() if np.isfinite(v)}
    plots = {"parallel_coordinate.png": oplt.plot_parallel_coordinate}
    if known:
        evaluator = KnownImportances(known)
        plots["param_importances.png"] = partial(oplt.plot_param_importances, evaluator=evaluator)
    else:
        log.warning("param_importances.png skipped: the parameters' importances are unknown")
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
    store: Store, experiment_id: str, search: str, space: dict[str, BaseDistribution]
) -> tuple[pd.DataFrame, Results, dict[str, Any]]:
    """(trials table, what its claims judge, {file name: figure}) for the search named
    `search`: every finished trial run of it (all rounds and invocations) in the experiment."""
    runs = store.runs(experiment_id, {SEARCH_TAG: search, ROLE_TAG: "trial"})
    table = trials_table(runs, space)
    results = search_results(table, space)
    if table.empty:
        return table, results, {}
    best = table[table["state"] == "COMPLETE"].head(BEST_PANELS)
    curves = {}
    for _, row in best.iterrows():
        label = f"r{row['round']} #{row['trial']}  val {row['val_acc']:.3f}"
        run_id = row["run_id"]
        curves[label] = (store.history(run_id, "val/acc"), store.history(run_id, "train/acc"))
    figures = {"best_trials.png": best_trials_figure(curves, f"{search}: best trials")}
    return table, results, figures | optuna_figures(table, space, results.importances)
