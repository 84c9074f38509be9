"""Stores created safely: a creator that dies leaves nothing half-made, a database that a
killed migration did leave behind (before this code) is explained in one line, and a new
MLflow store is a copy of an empty one kept as a template."""

import filecmp
import shutil
import sqlite3
from pathlib import Path

import pytest
from helpers import command
from mlflow import MlflowClient

from sweeps.recording import create_mlflow_store
from sweeps.stores import TEMPLATES_ENV, create_sqlite


def test_a_creator_that_dies_leaves_no_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"

    def dies_half_way(side_url: str) -> None:
        connection = sqlite3.connect(side_url.removeprefix("sqlite:///"))
        connection.execute("CREATE TABLE half (x INTEGER)")
        connection.commit()
        connection.close()
        raise KeyboardInterrupt  # as a kill would, between two migrations

    with pytest.raises(KeyboardInterrupt):
        create_sqlite(url, dies_half_way, "tracking.uri")
    assert not (tmp_path / "store.db").exists()

    def whole(side_url: str) -> None:
        connection = sqlite3.connect(side_url.removeprefix("sqlite:///"))
        connection.execute("CREATE TABLE whole (x INTEGER)")
        connection.commit()
        connection.close()

    create_sqlite(url, whole, "tracking.uri")
    tables = sqlite3.connect(tmp_path / "store.db").execute("SELECT name FROM sqlite_master")
    assert [name for (name,) in tables] == ["whole"]
    assert [p.name for p in tmp_path.iterdir() if "creating" in p.name] == []


def test_a_half_migrated_store_is_explained_in_one_line(tmp_path: Path, data_cache: Path) -> None:
    half = tmp_path / "half.db"
    connection = sqlite3.connect(half)
    connection.execute("CREATE TABLE _alembic_tmp_latest_metrics (x INTEGER)")
    connection.commit()
    connection.close()
    proc = command(
        tmp_path,
        "train.iterations=2",
        "dataset.download=false",
        f"dataset.cache_dir={data_cache}",
        f"tracking.uri=sqlite:///{half}",
    )
    assert proc.returncode == 2
    assert "was left half-migrated by a process killed while MLflow" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_new_mlflow_stores_are_copies_of_the_first_one_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TEMPLATES_ENV, str(tmp_path / "templates"))
    built = []

    def build(side_url: str) -> None:
        built.append(side_url)
        create_mlflow_store(side_url)

    first, second = (f"sqlite:///{tmp_path / name}" for name in ("first.db", "second.db"))
    for url in (first, second):
        create_sqlite(url, build, "tracking.uri", "mlflow-test.db")
    assert len(built) == 1  # the second store was copied, not migrated again
    assert filecmp.cmp(tmp_path / "second.db", tmp_path / "templates" / "mlflow-test.db")
    # The copy is a whole store: MLflow opens it at its current schema and records into it.
    client = MlflowClient(second)
    run = client.create_run(client.create_experiment("copied"))
    client.log_metric(run.info.run_id, "x", 1.0)
    assert client.get_run(run.info.run_id).data.metrics == {"x": 1.0}


def test_an_unwritable_cache_only_means_building_each_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TEMPLATES_ENV, "/proc/sweeps-nowhere")
    for name in ("a.db", "b.db"):
        create_sqlite(f"sqlite:///{tmp_path / name}", create_mlflow_store, "tracking.uri", "t.db")
    assert MlflowClient(f"sqlite:///{tmp_path / 'b.db'}").search_experiments()


def test_a_template_copy_cut_short_leaves_no_file_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    templates = tmp_path / "templates"
    monkeypatch.setenv(TEMPLATES_ENV, str(templates))
    copyfile = shutil.copyfile

    def full_disk(src: str, dst: str) -> None:
        copyfile(src, dst)
        if Path(dst).parent == templates:
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(shutil, "copyfile", full_disk)
    url = f"sqlite:///{tmp_path / 'mlflow.db'}"
    create_sqlite(url, create_mlflow_store, "tracking.uri", "t.db")
    assert list(templates.iterdir()) == []  # neither a template nor a partial copy
    assert MlflowClient(url).search_experiments()  # the store itself was made
