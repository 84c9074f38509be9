"""Recorder behaviour against a real (tmp) SQLite MLflow store."""

from pathlib import Path

import pytest
from mlflow import MlflowClient

from sweeps.config import flatten
from sweeps.errors import UserError
from sweeps.recording import Recorder, artifact_root, tracking_uri


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


def test_flatten_dotted_keys_keep_lists() -> None:
    tree = {"a": {"b": 1, "c": {"d": [1, 2]}}, "e": {}, "f": None}
    assert flatten(tree) == {"a.b": 1, "a.c.d": [1, 2], "e": {}, "f": None}


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
