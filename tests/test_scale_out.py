"""A search scaled out as a team deploys it: the Optuna study in PostgreSQL, the runs on an
`mlflow server` backed by PostgreSQL, four workers on 127.0.0.1 (tests/servers.py)."""

import os
import subprocess
import sys
from pathlib import Path

import optuna
from mlflow import MlflowClient

from sweeps.trial_pool import WORKER, has_result


def test_four_workers_on_postgresql_and_a_tracking_server(
    tmp_path: Path, data_cache: Path, postgres_url: str, mlflow_server: str
) -> None:
    n_trials = 8
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sweeps.run",
            "+experiment=hparam_search",
            "dataset.train_size=200",
            "train.epochs=600",  # a trial must outlast the other workers' start
            "train.progress=false",
            "device=cpu",
            "dataset.download=false",
            f"dataset.cache_dir={data_cache}",
            f"tracking.uri={mlflow_server}",
            f"search.storage={postgres_url}",
            "search.study_name=team",
            f"search.n_trials={n_trials}",
            "search.batch=1",
            "search.workers=4",
        ],
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]

    trials = optuna.load_study(study_name="team", storage=postgres_url).get_trials()
    done = [t for t in trials if has_result(t)]
    assert len(trials) == len(done) == n_trials
    assert len({t.params["optimizer.lr"] for t in done}) == n_trials
    assert len({t.user_attrs[WORKER] for t in done}) >= 2, "only one worker trained"

    client = MlflowClient(mlflow_server)
    exp = client.get_experiment_by_name("hparam_search")
    runs = client.search_runs([exp.experiment_id])
    parents = {r.info.run_id: r for r in runs if r.data.tags.get("sweeps.role") == "study"}
    children = [r for r in runs if r.data.tags.get("sweeps.role") == "trial"]
    statuses = sorted(r.info.status for r in parents.values())
    assert statuses == ["FINISHED"] * 4, proc.stderr[-5000:]  # a worker's error, if one failed
    assert sorted(int(r.data.tags["optuna.trial_number"]) for r in children) == sorted(
        t.number for t in done
    )
    assert {r.info.status for r in children} == {"FINISHED"}
    assert {r.data.tags["mlflow.parentRunId"] for r in children} <= set(parents)
    # Every worker ends with the whole table; the test set was read once for all of them.
    assert len({r.data.metrics["test/acc"] for r in parents.values()}) == 1
    assert {r.data.tags["best.run_id"] for r in parents.values()} <= {
        r.info.run_id for r in children
    }
