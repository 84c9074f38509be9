"""The server fixtures work as a team's servers would: Optuna keeps a study in PostgreSQL
across storages, and MLflow's tracking server records runs in PostgreSQL and artifacts over
HTTP."""

import optuna
from mlflow import MlflowClient
from mlflow.entities import RunStatus


def test_optuna_study_in_postgres(postgres_url: str) -> None:
    """Trials told through one RDBStorage are there for a second one, as for another worker."""
    study = optuna.create_study(study_name="s", storage=optuna.storages.RDBStorage(postgres_url))
    for _ in range(3):
        trial = study.ask()
        study.tell(trial, trial.suggest_float("x", -1.0, 1.0) ** 2)
    reloaded = optuna.load_study(study_name="s", storage=optuna.storages.RDBStorage(postgres_url))
    assert [t.state for t in reloaded.trials] == [optuna.trial.TrialState.COMPLETE] * 3
    assert reloaded.best_value == min(t.value for t in study.trials)


def test_mlflow_server_records_a_run(mlflow_server: str) -> None:
    client = MlflowClient(tracking_uri=mlflow_server)
    experiment_id = client.create_experiment("servers")
    run = client.create_run(experiment_id)
    client.log_metric(run.info.run_id, "loss", 0.25, step=1)
    client.log_text(run.info.run_id, "hello", "notes/hello.txt")
    client.set_terminated(run.info.run_id)

    again = client.get_run(run.info.run_id)
    assert again.info.status == RunStatus.to_string(RunStatus.FINISHED)
    assert again.data.metrics == {"loss": 0.25}
    assert again.info.artifact_uri.startswith("mlflow-artifacts:")  # proxied by the server
    assert [a.path for a in client.list_artifacts(run.info.run_id, "notes")] == ["notes/hello.txt"]
    local = client.download_artifacts(run.info.run_id, "notes/hello.txt")
    with open(local) as fh:
        assert fh.read() == "hello"
