"""Hydra launchers other than the basic one: multirun jobs in separate local processes
(hydra-joblib-launcher) and through submitit's local executor (hydra-submitit-launcher, the
SLURM launcher's local twin), each job's study run nested under the multirun's parent run.

The multirun callback opens its parent run in the launcher process, which creates the SQLite
store before any job starts: the concurrent jobs only write to an existing store, so no store
is made up front here.
"""

import re
from pathlib import Path

import pytest
from helpers import multirun, runs_by_role
from mlflow.entities import Run

from sweeps.recording import PARENT_TAG, WORKER_TAG

# Printed by the launcher process itself, before Hydra starts: what the jobs' pids are told from.
PID_PRELUDE = "import os, sys\nprint(f'launcher pid {os.getpid()}', file=sys.stderr, flush=True)\n"


@pytest.fixture(autouse=True)
def one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two jobs at once on a 2-core machine: one torch thread each (the launcher's environment
    reaches the jobs, `helpers.command` passes it on)."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("MKL_NUM_THREADS", "1")


def launcher_pid(stderr: str) -> int:
    found = re.search(r"^launcher pid (\d+)$", stderr, re.MULTILINE)
    assert found, stderr[-3000:]
    return int(found.group(1))


def worker_pid(run: Run) -> int:
    """The process that opened the run, from its `sweeps.worker` tag (`host:pid:start`)."""
    return int(run.data.tags[WORKER_TAG].rsplit(":", 2)[1])


def check_nested_grid(tracking_uri: str, launcher: int) -> list[Run]:
    """One FINISHED multirun parent opened by the launcher process and two FINISHED study runs
    nested under it, one per optimizer, each opened by a process other than the launcher's;
    returns the study runs."""
    roles = runs_by_role(tracking_uri, "default")
    [parent] = roles["multirun"]
    assert parent.info.status == "FINISHED"
    assert parent.info.run_name == "multirun optimizer=sgd,adam"
    assert worker_pid(parent) == launcher

    jobs = roles["study"]
    assert sorted(job.data.params["config.optimizer.name"] for job in jobs) == ["adam", "sgd"]
    for job in jobs:
        assert job.info.status == "FINISHED"
        assert job.data.tags[PARENT_TAG] == parent.info.run_id
        assert worker_pid(job) != launcher
    variants = roles["variant"]
    assert {v.data.tags[PARENT_TAG] for v in variants} == {job.info.run_id for job in jobs}
    assert {v.info.status for v in variants} == {"FINISHED"}
    return jobs


def test_joblib_runs_the_jobs_in_local_worker_processes(
    tmp_path: Path, data_cache: Path, tracking_uri: str
) -> None:
    proc = multirun(
        tmp_path,
        data_cache,
        "optimizer=sgd,adam",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        f"tracking.uri={tracking_uri}",
        prelude=PID_PRELUDE,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Joblib.Parallel(n_jobs=2" in proc.stderr
    # loky's workers share the launcher's stdout: one result table per job.
    assert proc.stdout.count("default (1 variants)") == 2

    check_nested_grid(tracking_uri, launcher_pid(proc.stderr))
    for job in ("0", "1"):
        assert (tmp_path / "sweep" / job / ".hydra" / "overrides.yaml").is_file()


def test_submitit_local_runs_each_job_as_a_submitit_job(
    tmp_path: Path, data_cache: Path, tracking_uri: str
) -> None:
    folder = tmp_path / "submitit"
    proc = multirun(
        tmp_path,
        data_cache,
        "optimizer=sgd,adam",
        "hydra/launcher=submitit_local",
        "hydra.launcher.timeout_min=5",
        f"hydra.launcher.submitit_folder={folder}/%j",
        f"tracking.uri={tracking_uri}",
        prelude=PID_PRELUDE,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Submitit 'local' sweep output dir" in proc.stderr

    jobs = check_nested_grid(tracking_uri, launcher_pid(proc.stderr))
    assert len({worker_pid(job) for job in jobs}) == 2  # a process of its own for each job
    for job in ("0", "1"):
        assert (tmp_path / "sweep" / job / ".hydra" / "overrides.yaml").is_file()
    # Each submitit job has its folder (named after its job id, here the local process's id)
    # with its result and its own stdout, where the job's result table went.
    logs = sorted(folder.glob("*/*_0_log.out"))
    assert len(logs) == 2
    for log in logs:
        assert log.with_name(log.name.replace("log.out", "result.pkl")).is_file()
        assert "default (1 variants)" in log.read_text()
        assert "Job completed successfully" in log.read_text()
    assert "default (1 variants)" not in proc.stdout
