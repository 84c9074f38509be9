"""Hydra multiruns (`-m`): one MLflow parent run, each job's study run nested under it."""

import itertools
import logging
from pathlib import Path

import pytest
from helpers import multirun, runs_by_role

from sweeps.kinds import run_study
from sweeps.recording import PARENT_ENV, PARENT_TAG, Recorder


def test_grid_is_one_parent_with_a_child_per_job(
    tmp_path: Path, data_cache: Path, tracking_uri: str
) -> None:
    proc = multirun(
        tmp_path,
        data_cache,
        "optimizer=sgd,adam",
        "model.init=he,xavier",
        f"tracking.uri={tracking_uri}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    # stdout keeps only the result tables, one per job; Hydra's launcher logs to stderr.
    assert proc.stdout.count("default (1 variants)") == 4
    assert "Launching 4 jobs" in proc.stderr and "Launching" not in proc.stdout

    roles = runs_by_role(tracking_uri, "default")
    [parent] = roles["multirun"]
    assert parent.info.status == "FINISHED"
    assert parent.info.run_name == "multirun optimizer=sgd,adam model.init=he,xavier"
    assert parent.data.params == {"sweep.optimizer": "sgd,adam", "sweep.model.init": "he,xavier"}
    assert parent.data.tags["sweeps.sweep_dir"] == str(tmp_path / "sweep")
    assert PARENT_TAG not in parent.data.tags

    jobs = {run.info.run_id: run for run in roles["study"]}
    params = [r.data.params for r in jobs.values()]
    grid = {(p["config.optimizer.name"], p["config.model.init"]) for p in params}
    assert len(jobs) == 4
    assert grid == set(itertools.product(["sgd", "adam"], ["he", "xavier"]))
    for job in jobs.values():
        assert job.info.status == "FINISHED"
        assert job.data.tags[PARENT_TAG] == parent.info.run_id

    variants = roles["variant"]
    assert {v.data.tags[PARENT_TAG] for v in variants} == set(jobs)
    assert len(variants) == 4
    for variant in variants:
        job = jobs[variant.data.tags[PARENT_TAG]]
        assert variant.info.status == "FINISHED"
        assert variant.info.run_name == job.data.params["config.optimizer.name"]
        assert variant.data.params["model.init"] == job.data.params["config.model.init"]


def test_bad_value_in_a_job_exits_2_and_fails_the_parent(tmp_path: Path, data_cache: Path) -> None:
    """run.py's exit 2 escapes Hydra's job wrapper: the jobs after it never run, and Hydra
    calls neither on_job_end nor on_multirun_end. No tracking.uri: the callback and the jobs
    must agree on the default store beside the working directory."""
    proc = multirun(tmp_path, data_cache, "optimizer.lr=0.01,-1,0.1")
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "optimizer.lr=-1.0 must be a positive number" in proc.stderr
    assert "Traceback" not in proc.stderr

    roles = runs_by_role(f"sqlite:///{tmp_path / 'mlflow.db'}", "default")
    [parent] = roles["multirun"]
    assert parent.info.status == "FAILED"
    [job] = roles["study"]
    assert job.data.params["config.optimizer.lr"] == "0.01"
    assert job.data.tags[PARENT_TAG] == parent.info.run_id
    assert {r.info.status for r in [job, *roles["variant"]]} == {"FINISHED"}


@pytest.mark.parametrize(
    ("error", "status", "jobs"), [("RuntimeError", "FAILED", 2), ("KeyboardInterrupt", "KILLED", 1)]
)
def test_crashed_job_leaves_no_run_running(
    tmp_path: Path, data_cache: Path, tracking_uri: str, error: str, status: str, jobs: int
) -> None:
    """Hydra's basic launcher records an exception and carries on with the next job, then
    raises; Ctrl-C stops the grid at once."""
    prelude = (
        "import sweeps.kinds.train\n"
        "def boom(*args, **kwargs):\n"
        f"    raise {error}('boom')\n"
        "sweeps.kinds.train.train_variants = boom\n"
    )
    proc = multirun(
        tmp_path, data_cache, "optimizer=sgd,adam", f"tracking.uri={tracking_uri}", prelude=prelude
    )
    assert proc.returncode != 0
    roles = runs_by_role(tracking_uri, "default")
    [parent] = roles["multirun"]
    assert len(roles["study"]) == jobs
    for run in [parent, *roles["study"], *roles["variant"]]:
        assert run.info.status == status


@pytest.mark.parametrize(
    ("parent_experiment", "nested"),
    [("optimizer_paths", True), ("elsewhere", False), (None, False)],
)
def test_study_run_nests_only_under_a_parent_in_its_own_experiment(
    make_cfg,
    tracking_uri: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    parent_experiment: str | None,
    nested: bool,
) -> None:
    """A parent elsewhere (None: not in this store at all) leaves the job unnested, warned."""
    if parent_experiment is None:
        parent = "0" * 32
    else:
        parent = Recorder(tracking_uri, parent_experiment).start("multirun", {}, {})
    monkeypatch.setenv(PARENT_ENV, parent)
    with caplog.at_level(logging.WARNING, logger="sweeps.recording"):
        run_study(make_cfg("+experiment=optimizer_paths"))
    [study] = runs_by_role(tracking_uri, "optimizer_paths")["study"]
    assert study.data.tags.get(PARENT_TAG) == (parent if nested else None)
    assert ("recording the job unnested" in caplog.text) != nested
