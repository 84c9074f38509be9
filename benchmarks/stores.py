"""What writing curves to the SQLite stores costs, one call per point against batched or tuned.

Measured in one run, each alternative in a fresh database in its own temp dir, with the
store created (schema, experiment, run or study, trials) before the clock starts:

1. MLflow: S series x N points logged into `sqlite:///.../mlflow.db` with one
   `MlflowClient.log_metric` call per point, then with one `MlflowClient.log_batch` call for
   all of them (MLflow splits it into chunks of its own batch limit); seconds, ms per point,
   the ratio, and what each costs for the optimizer study's 5 series x 2000 points;
2. Optuna: `trial.report(value, epoch)` for E epochs x R trials (all asked up front, reported
   epoch by epoch as a population does) on a plain `RDBStorage(url)`, then on the project's
   `sweeps.optuna_study.open_storage(url)` (SQLite WAL, synchronous=NORMAL); ms per report
   and the ratio;
3. MLflow: a search's R trial runs (R = `--reports`) closed as `sweeps` closes them, one
   `log_batch` each of the accuracies per epoch and the loss per iteration
   (`--steps-per-epoch`, 4 in the textbook's search), then per epoch.

Run from the repository root:

    python -m benchmarks.stores [--series 4] [--points 2000] [--reports 100] [--epochs 50]
        [--steps-per-epoch 4] [--json results.json]
"""

import argparse
import json
import logging
import math
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlflow
import optuna
import pandas as pd
from mlflow.entities import Metric

from benchmarks import progress
from sweeps.optuna_study import open_storage

STUDY_SERIES, STUDY_POINTS = 5, 2000  # the optimizer study: five curves of 2000 iterations


def value(series: int, step: int) -> float:
    """A loss-like curve; any float would do, but not a constant one."""
    return math.exp(-step / 500) + 0.01 * series


def mlflow_run(tmp: str) -> tuple[mlflow.MlflowClient, str]:
    """A new SQLite store with one experiment and one run: the schema creation (about a
    second) is the same for both paths, so it stays out of the timing."""
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp}/mlflow.db")
    location = (Path(tmp) / "artifacts").as_uri()
    experiment_id = client.create_experiment("benchmark", artifact_location=location)
    return client, client.create_run(experiment_id).info.run_id


def log_per_point(client: mlflow.MlflowClient, run_id: str, series: int, points: int) -> None:
    """What a logger that writes each value as it comes does: one transaction per point."""
    for step in range(points):
        for s in range(series):
            client.log_metric(run_id, f"loss_{s}", value(s, step), step=step)


def log_batched(client: mlflow.MlflowClient, run_id: str, series: int, points: int) -> None:
    """Every point in one call, as recorded curves can be written after training."""
    now = int(time.time() * 1000)
    metrics = [
        Metric(f"loss_{s}", value(s, step), now, step)
        for step in range(points)
        for s in range(series)
    ]
    client.log_batch(run_id, metrics=metrics)


def time_mlflow(log: Callable[..., None], series: int, points: int) -> float:
    """Seconds `log` takes to write the points into a fresh store."""
    with tempfile.TemporaryDirectory() as tmp:
        client, run_id = mlflow_run(tmp)
        start = time.perf_counter()
        log(client, run_id, series, points)
        return time.perf_counter() - start


def time_reports(open_: Callable[[str], Any], trials: int, epochs: int) -> float:
    """Seconds for `epochs` x `trials` reports on a fresh study in the storage `open_` makes."""
    with tempfile.TemporaryDirectory() as tmp:
        storage = open_(f"sqlite:///{tmp}/optuna.db")
        study = optuna.create_study(storage=storage, study_name="benchmark", direction="maximize")
        asked = [study.ask() for _ in range(trials)]
        start = time.perf_counter()
        for epoch in range(epochs):
            for i, trial in enumerate(asked):
                trial.report(value(i, epoch), epoch)
        seconds = time.perf_counter() - start
        storage.engine.dispose()  # close the file before the temp dir goes
        return seconds


def time_trial_runs(trials: int, epochs: int, loss_per_epoch: int) -> tuple[float, int]:
    """(seconds, points) to record a search's trial runs as `sweeps` closes them: one run per
    trial, one `log_batch` each of `loss_per_epoch` loss points and a train and a validation
    accuracy per epoch."""
    with tempfile.TemporaryDirectory() as tmp:
        client, _ = mlflow_run(tmp)
        experiment_id = client.get_experiment_by_name("benchmark").experiment_id
        runs = [client.create_run(experiment_id).info.run_id for _ in range(trials)]
        now = int(time.time() * 1000)
        steps = epochs * loss_per_epoch
        start = time.perf_counter()
        for i, run_id in enumerate(runs):
            metrics = [Metric("train/loss", value(i, t), now, t) for t in range(steps)]
            for key in ("train/acc", "val/acc"):
                metrics += [Metric(key, value(i, e), now, e + 1) for e in range(epochs)]
            client.log_batch(run_id, metrics=metrics)
        return time.perf_counter() - start, trials * (steps + 2 * epochs)


def row(store: str, way: str, values: int, seconds: float) -> dict[str, Any]:
    """One line of the table: `values` points or reports written in `seconds`."""
    return {
        "store": store,
        "way": way,
        "values": values,
        "seconds": seconds,
        "ms_per_value": seconds / values * 1e3,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=4, help="MLflow metric series (curves)")
    parser.add_argument("--points", type=int, default=2000, help="MLflow points per series")
    parser.add_argument("--reports", type=int, default=100, help="Optuna trials reporting")
    parser.add_argument("--epochs", type=int, default=50, help="Optuna reports per trial")
    parser.add_argument(
        "--steps-per-epoch", type=int, default=4, help="a search trial's iterations per epoch"
    )
    parser.add_argument("--json", help="also write every number to this JSON file")
    args = parser.parse_args()
    logging.getLogger("mlflow").setLevel(logging.WARNING)  # "Creating initial tables" each time
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    rows: list[dict[str, Any]] = []
    n = args.series * args.points
    for label, log in (("log_metric per point", log_per_point), ("log_batch", log_batched)):
        progress(f"MLflow {label}: {args.series} series x {args.points} points")
        rows.append(row("MLflow", label, n, time_mlflow(log, args.series, args.points)))
        rows[-1]["study_5x2000_s"] = rows[-1]["seconds"] / n * STUDY_SERIES * STUDY_POINTS
    m = args.reports * args.epochs
    for label, open_ in (
        ("RDBStorage (SQLite defaults)", optuna.storages.RDBStorage),
        ("open_storage (WAL, NORMAL)", open_storage),
    ):
        progress(f"Optuna trial.report, {label}: {args.epochs} epochs x {args.reports} trials")
        rows.append(row("Optuna", label, m, time_reports(open_, args.reports, args.epochs)))

    for label, per_epoch in (
        (f"trial runs, loss per iteration ({args.steps_per_epoch}/epoch)", args.steps_per_epoch),
        ("trial runs, loss per epoch", 1),
    ):
        progress(f"MLflow {label}: {args.reports} runs x {args.epochs} epochs")
        seconds, n_points = time_trial_runs(args.reports, args.epochs, per_epoch)
        rows.append(row("MLflow", label, n_points, seconds))

    mlflow_ratio = rows[0]["seconds"] / rows[1]["seconds"]
    optuna_ratio = rows[2]["seconds"] / rows[3]["seconds"]
    header = f"mlflow {mlflow.__version__}, optuna {optuna.__version__}, SQLite, fresh store each"
    print(header)
    print(pd.DataFrame(rows).to_string(index=False, na_rep="", float_format=lambda v: f"{v:.3f}"))
    print(f"MLflow: one log_batch is {mlflow_ratio:.0f}x faster than log_metric per point;")
    print(
        f"  the optimizer study's {STUDY_SERIES} x {STUDY_POINTS} points would take "
        f"{rows[0]['study_5x2000_s']:.1f} s per point vs {rows[1]['study_5x2000_s']:.2f} s batched"
    )
    print(
        f"Optuna: trial.report is {optuna_ratio:.1f}x faster with open_storage; a "
        f"{args.reports}-trial, {args.epochs}-epoch search saves "
        f"{rows[2]['seconds'] - rows[3]['seconds']:.1f} s"
    )
    print(
        f"A search's {args.reports} trial runs: {rows[4]['seconds']:.1f} s with the loss per "
        f"iteration, {rows[5]['seconds']:.1f} s per epoch"
    )
    if args.json:
        results = {"header": header, "args": vars(args), "rows": rows}
        results |= {"mlflow_ratio": mlflow_ratio, "optuna_ratio": optuna_ratio}
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)


if __name__ == "__main__":
    main()
