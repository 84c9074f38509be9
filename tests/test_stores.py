"""Stores created safely: a creator that dies leaves nothing half-made, and a database that a
killed migration did leave behind (before this code) is explained in one line."""

import sqlite3
from pathlib import Path

import pytest
from helpers import command

from sweeps.stores import create_sqlite


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
