"""Recording against a real (tmp) SQLite MLflow store: runs, batches, the guard, reading back."""

from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient

from sweeps.errors import UserError
from sweeps.recording import Recorder, artifact_root, recorded_study, study_run, tracking_uri


def test_tracking_uri_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking_uri(None) == f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking_uri(None) == "http://127.0.0.1:5000"
    assert tracking_uri("sqlite:///x.db") == "sqlite:///x.db"


def test_artifacts_go_beside_a_sqlite_store(tmp_path: Path) -> None:
    assert artifact_root(f"sqlite:///{tmp_path}/m.db") == (tmp_path / "mlruns").as_uri()
    assert artifact_root("http://127.0.0.1:5000") is None


def test_metrics_written_in_batches_and_runs_nested(tracking_uri: str) -> None:
    rec = Recorder(tracking_uri, "exp")
    parent = rec.start("study", {"p": 1}, {"t": "x"})
    child = rec.start("a", {"q": 2}, {}, parent=parent)
    rec.log_metrics(child, [("train/loss", 1.0 / (i + 1), i) for i in range(2500)])
    rec.finish(child)
    rec.finish(parent)
    client = MlflowClient(tracking_uri)
    history = client.get_metric_history(child, "train/loss")
    assert len(history) == 2500
    assert sorted(m.step for m in history) == list(range(2500))
    run = client.get_run(child)
    assert run.data.tags["mlflow.parentRunId"] == parent
    assert run.data.params == {"q": "2"}
    assert run.info.status == "FINISHED"


def test_abort_closes_every_open_run(tracking_uri: str) -> None:
    rec = Recorder(tracking_uri, "exp")
    parent = rec.start("study", {}, {})
    child = rec.start("a", {}, {}, parent=parent)
    rec.abort("KILLED")
    client = MlflowClient(tracking_uri)
    assert {client.get_run(r).info.status for r in (parent, child)} == {"KILLED"}
    assert rec.open == []


def test_deleted_experiment_is_a_clear_error(tracking_uri: str) -> None:
    client = MlflowClient(tracking_uri)
    client.delete_experiment(client.create_experiment("gone"))
    with pytest.raises(UserError, match="deleted.*tracking.experiment"):
        Recorder(tracking_uri, "gone")


def test_a_study_run_error_closes_parent_and_children_failed(make_cfg, tracking_uri: str) -> None:
    with pytest.raises(RuntimeError, match="boom"), study_run(make_cfg(), {"seed": 0}) as study:
        child = study.child("a", {"x": 1}, {"t": "y"})
        raise RuntimeError("boom")
    client = MlflowClient(tracking_uri)
    parent, run = client.get_run(study.parent), client.get_run(child)
    assert {parent.info.status, run.info.status} == {"FAILED"}
    assert parent.data.tags["sweeps.role"] == "study"
    assert parent.data.params["config.train.batch_size"] == "128"
    assert run.data.tags | {"seed": "0", "t": "y"} == run.data.tags
    assert run.data.tags["mlflow.parentRunId"] == study.parent
    assert [a.path for a in client.list_artifacts(study.parent)] == ["config.yaml"]


def test_a_finished_study_reads_back_as_recorded(make_cfg, tracking_uri: str) -> None:
    with study_run(make_cfg("seed=3"), {}) as study:
        child = study.child("a", {"lr": 0.1})
        study.close_child(child, [("m", 1.0, 0), ("m", 2.0, 1)], {"status": "ok"})
        study.log(params={"best/lr": 0.1}, tags={"best.trial": 4}, metrics={"best/acc": 0.5})
        study.log_outputs({}, {"summary.csv": pd.DataFrame({"variant": ["a"]})})
        study.finish()
    recorded = recorded_study("default", None, tracking_uri)
    assert recorded.parent.run_id == study.parent
    assert recorded.config.seed == 3
    assert recorded.parent.metrics == {"best/acc": 0.5}
    assert recorded.parent.tags["best.trial"] == "4"
    assert recorded.children["a"].params == {"lr": "0.1"}
    assert recorded.children["a"].tags["status"] == "ok"
    assert recorded.history("a", "m").tolist() == [1.0, 2.0]
    assert recorded_study("default", study.parent, tracking_uri).parent.run_id == study.parent
    other = Recorder(tracking_uri, "other").start("x", {}, {})
    with pytest.raises(UserError, match=f"run {other} is not in experiment 'default'"):
        recorded_study("default", other, tracking_uri)


def test_an_experiment_another_worker_made_meanwhile_is_joined(
    tracking_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = MlflowClient(tracking_uri).create_experiment("raced")
    # As a worker sees it: missing when it looks, made by another before it creates it.
    monkeypatch.setattr(MlflowClient, "get_experiment_by_name", missing_once())
    assert Recorder(tracking_uri, "raced").experiment_id == made


def missing_once():
    """`MlflowClient.get_experiment_by_name` that finds nothing the first time only."""
    real, calls = MlflowClient.get_experiment_by_name, []

    def lookup(client: MlflowClient, name: str):
        calls.append(name)
        return None if len(calls) == 1 else real(client, name)

    return lookup
