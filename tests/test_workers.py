"""Many workers on one search, and workers that die: exact trial counts, no point trained
twice, nothing left RUNNING, results nested under finished parents."""

import contextlib
import json
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from helpers import experiment_runs, start
from mlflow import MlflowClient
from optuna.trial import TrialState

from sweeps.config import SearchConfig
from sweeps.optuna_study import open_storage, open_study
from sweeps.space import parse_space
from sweeps.trial_pool import HEARTBEAT, RETRY_OF, RUNS, WORKER, TrialPool, has_result
from sweeps.workers import HOST, is_dead, worker_id

SPACE = {"optimizer": {"lr": {"type": "float", "low": 1e-4, "high": 0.1, "log": True}}}


def search_command(tmp_path: Path, data_cache: Path, *overrides: str) -> list[str]:
    """The hparam_search command at a tiny budget, recording into tmp_path."""
    return [
        sys.executable,
        "-m",
        "sweeps.run",
        "+experiment=hparam_search",
        "dataset.train_size=200",
        "train.progress=false",
        "device=cpu",
        "dataset.download=false",
        f"dataset.cache_dir={data_cache}",
        f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}",
        f"search.storage=sqlite:///{tmp_path / 'optuna.db'}",
        "search.study_name=shared",
        *overrides,
    ]


def check_totals(tmp_path: Path, n_trials: int) -> list[optuna.trial.FrozenTrial]:
    """What any sequence of workers, kills and resumes must leave: exactly `n_trials` trials
    with results and distinct points, one FINISHED trial run each, no run RUNNING, and the
    best run inside a FINISHED parent."""
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    trials = optuna.load_study(study_name="shared", storage=storage).get_trials()
    done = [t for t in trials if has_result(t)]
    assert len(done) == n_trials
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    points = [t.params["optimizer.lr"] for t in done]
    assert len(set(points)) == n_trials, "a point was trained twice"
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    runs = experiment_runs(uri, "hparam_search")
    assert not [r for r in runs if r.info.status == "RUNNING"]
    finished = [
        r for r in runs if r.data.tags.get("sweeps.role") == "trial" and r.info.status == "FINISHED"
    ]
    assert sorted(int(r.data.tags["optuna.trial_number"]) for r in finished) == sorted(
        t.number for t in done
    )
    by_id = {r.info.run_id: r for r in runs}
    last = max(
        (
            r
            for r in runs
            if r.data.tags.get("sweeps.role") == "study" and "best.run_id" in r.data.tags
        ),
        key=lambda r: r.info.start_time,
    )
    best = by_id[last.data.tags["best.run_id"]]
    assert by_id[best.data.tags["mlflow.parentRunId"]].info.status == "FINISHED"
    for run in finished:
        assert by_id[run.data.tags["mlflow.parentRunId"]].info.status == "FINISHED"
    return done


@pytest.mark.parametrize("sampler", ["random", "tpe"])
def test_concurrent_workers_share_the_trials_exactly(
    tmp_path: Path, data_cache: Path, sampler: str
) -> None:
    """Two commands started together on one store: 10 trials in all, none trained twice.
    Each gets one thread: `auto` knows only of the workers it starts itself."""
    command = search_command(
        tmp_path,
        data_cache,
        "train.threads=1",
        f"search.sampler={sampler}",
        "search.n_trials=10",
        "search.batch=1",
        "train.epochs=40",
    )
    procs = [start(command, tmp_path) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    for proc, (_, err) in zip(procs, outs, strict=True):
        assert proc.returncode == 0, err[-3000:]
    done = check_totals(tmp_path, 10)
    workers = {t.user_attrs[WORKER] for t in done}
    assert len(workers) == 2, "one worker did all the trials: the test shows no sharing"
    parents = [
        r
        for r in experiment_runs(f"sqlite:///{tmp_path / 'mlflow.db'}", "hparam_search")
        if r.data.tags.get("sweeps.role") == "study"
    ]
    assert len(parents) == 2 and {r.info.status for r in parents} == {"FINISHED"}
    # The test set was read once: both parents report the same retrained score.
    assert len({r.data.metrics["test/acc"] for r in parents}) == 1


def test_search_workers_starts_local_processes(tmp_path: Path, data_cache: Path) -> None:
    command = search_command(
        tmp_path,
        data_cache,
        "search.workers=2",
        "search.n_trials=8",
        "search.batch=1",
        "train.epochs=100",
    )
    proc = start(command, tmp_path)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    done = check_totals(tmp_path, 8)
    pids = {t.user_attrs[WORKER].split(":")[1] for t in done}
    assert str(proc.pid) in pids
    assert len(pids) == 2, "the second worker trained nothing"


def test_a_killed_search_resumes_without_losing_or_repeating_a_trial(
    tmp_path: Path, data_cache: Path
) -> None:
    # Batches that train for a second or more, so a kill can land in one after the first
    # batch is recorded however fast the machine is.
    command = search_command(
        tmp_path, data_cache, "search.n_trials=6", "search.batch=2", "train.epochs=100"
    )
    proc = start(command, tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    deadline = time.time() + 240
    while time.time() < deadline:  # kill it once it has finished trials and runs others
        time.sleep(0.5)
        if (tmp_path / "mlflow.db").exists() and proc.poll() is None:
            client = MlflowClient(uri)
            exp = client.get_experiment_by_name("hparam_search")
            if exp and client.search_runs(
                [exp.experiment_id],
                "tags.`sweeps.role` = 'trial' and attributes.status = 'FINISHED'",
            ):
                break
    # then while a trial it took has no result yet: a kill between two batches cuts nothing
    assert kill_mid_trial(tmp_path, proc), "the search ended before a kill could cut a trial"
    proc.communicate()
    again = start(command, tmp_path)
    _, err = again.communicate(timeout=300)
    assert again.returncode == 0, err[-3000:]
    assert "stopped; failing it and queueing it again" in err
    done = check_totals(tmp_path, 6)
    assert any(RETRY_OF in t.user_attrs for t in done)
    killed = [r for r in experiment_runs(uri, "hparam_search") if r.info.status == "KILLED"]
    assert killed, "the killed worker's runs were not closed KILLED"


def test_ctrl_c_exits_130_in_one_line(tmp_path: Path, data_cache: Path) -> None:
    command = search_command(tmp_path, data_cache, "search.n_trials=4", "train.epochs=2000")
    proc = start(command, tmp_path)
    deadline = time.time() + 120
    while time.time() < deadline:  # interrupt it while it trains
        time.sleep(0.5)
        if (tmp_path / "optuna.db").exists() and optuna.load_study(
            study_name="shared", storage=f"sqlite:///{tmp_path / 'optuna.db'}"
        ).get_trials(states=(TrialState.RUNNING,)):
            break
    time.sleep(1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-3000:]
    assert "Traceback" not in err
    assert "interrupted" in err.strip().splitlines()[-1]
    runs = experiment_runs(f"sqlite:///{tmp_path / 'mlflow.db'}", "hparam_search")
    assert {r.info.status for r in runs} == {"KILLED"}


class NoRuns:
    """Trial runs as a worker that recorded nothing: notes which trials it was told about."""

    def __init__(self) -> None:
        self.abandoned_trials: list[int] = []

    def recorded(self, trial: optuna.trial.FrozenTrial) -> None:
        return None

    def abandoned(self, trial: optuna.trial.FrozenTrial) -> None:
        self.abandoned_trials.append(trial.number)


def pool(tmp_path: Path) -> TrialPool:
    settings = SearchConfig(space=SPACE, n_trials=3, batch=3)
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = open_study(open_storage(url), "unit", settings, None)
    return TrialPool(study, url, settings, parse_space(SPACE, []), 0, NoRuns())


def test_a_dead_workers_trials_are_failed_and_queued_again_once(tmp_path: Path) -> None:
    first = pool(tmp_path)
    with first.running():
        taken = first.take()
        assert len(taken) == 3 and first.take() == []  # the study is full
        dead = subprocess.run(
            [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
        )
        taken[0].set_user_attr(WORKER, f"{HOST}:{dead.stdout.strip()}:1")  # a pid now gone
        taken[1].set_user_attr(WORKER, "elsewhere:1:1")  # another host, silent too long
        taken[1].set_user_attr(HEARTBEAT, time.time() - 3600)
        taken[2].set_user_attr(WORKER, "elsewhere:2:2")  # another host, beating
    second = pool(tmp_path)
    with second.running():
        again = second.take()
        assert second.runs.abandoned_trials == [0, 1]
        assert [t.number for t in again] == [3, 4]
        trials = second.study.get_trials()
        assert [t.state for t in trials[:3]] == [
            TrialState.FAIL,
            TrialState.FAIL,
            TrialState.RUNNING,
        ]
        assert [trials[n].user_attrs[RETRY_OF] for n in (3, 4)] == [0, 1]
        assert [trials[n].params for n in (3, 4)] == [trials[0].params, trials[1].params]
        second.recover()
        assert second.runs.abandoned_trials == [0, 1] and len(second.study.get_trials()) == 5


def test_worker_names_tell_dead_from_alive() -> None:
    assert not is_dead(worker_id())
    host, pid, start = worker_id().rsplit(":", 2)
    assert is_dead(f"{host}:{pid}:{int(start) + 1}")  # the pid reused by another process
    assert not is_dead(f"elsewhere:{pid}:1")  # another host: only its heartbeat tells


def query(database: Path, sql: str) -> list[tuple] | None:
    """Rows from a SQLite store read-only; None while a writer holds it locked or its tables
    are not made yet."""
    if not database.exists():
        return None
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        try:
            return db.execute(sql).fetchall()
        except sqlite3.OperationalError:
            return None


def cut_short(tmp_path: Path, pid: int) -> bool | None:
    """Whether process `pid` holds a RUNNING trial whose result is in neither store (one a
    kill now leaves to be retried); None when the stores cannot tell yet."""
    running = query(
        tmp_path / "optuna.db",
        "SELECT w.value_json, r.value_json FROM trials t "
        f"JOIN trial_user_attributes w ON w.trial_id = t.trial_id AND w.key = '{WORKER}' "
        f"LEFT JOIN trial_user_attributes r ON r.trial_id = t.trial_id AND r.key = '{RUNS}' "
        "WHERE t.state = 'RUNNING'",
    )
    mine = [
        runs for worker, runs in running or [] if json.loads(worker).rsplit(":", 2)[1] == str(pid)
    ]
    if not mine:
        return None
    finished = query(tmp_path / "mlflow.db", "SELECT run_uuid FROM runs WHERE status = 'FINISHED'")
    if finished is None:
        return None
    done = {run_id for (run_id,) in finished}
    return any(runs is None or json.loads(runs)[0] not in done for runs in mine)


def kill_mid_trial(tmp_path: Path, proc: subprocess.Popen, timeout: float = 300) -> bool:
    """SIGKILL `proc` while a trial it took has no recorded result; whether that happened
    before `proc` ended. The process is frozen (SIGSTOP) while the stores are read, so what
    they show is what the kill cuts short, however fast or slow the machine."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        proc.send_signal(signal.SIGSTOP)
        if cut_short(tmp_path, proc.pid):
            proc.kill()
            return True
        proc.send_signal(signal.SIGCONT)
        time.sleep(0.05)
    return False


@pytest.mark.slow
def test_twenty_kills_at_random_points_lose_and_repeat_nothing(
    tmp_path: Path, data_cache: Path
) -> None:
    """SIGKILL at 20 random moments (start-up, store creation, training, logging, retraining),
    each time resumed by the same command; then one run to the end."""
    rng = random.Random(12)
    # Enough epochs that the trials outlast a random kill's wait on a fast machine: a search
    # finished before its first kill would leave the later ones nothing to cut short.
    command = search_command(
        tmp_path,
        data_cache,
        "search.n_trials=12",
        "search.batch=3",
        "train.epochs=100",
        "search.heartbeat=0.5",
        "search.grace=2",
    )
    cut = 0
    ended = []
    for kill in range(20):
        proc = start(command, tmp_path)
        if kill % 2 == 0:
            # A clock says nothing of what a process on a slow machine has reached, so half
            # the kills, the first among them, are aimed at a trial being trained.
            cut += kill_mid_trial(tmp_path, proc)
        else:
            time.sleep(rng.uniform(0.2, 12.0))
        proc.kill()
        _, err = proc.communicate()
        if proc.returncode != -signal.SIGKILL:
            ended.append(f"run {kill} ended on its own, exit {proc.returncode}:\n{err[-1500:]}")
    assert cut, "no kill landed while a trial was being trained\n" + "\n".join(ended)
    final = start(command, tmp_path)
    _, err = final.communicate(timeout=600)
    assert final.returncode == 0, err[-3000:]
    done = check_totals(tmp_path, 12)
    # The kills did cut work short: retried trials, and runs closed KILLED by later runs.
    assert any(RETRY_OF in t.user_attrs for t in done)
    runs = experiment_runs(f"sqlite:///{tmp_path / 'mlflow.db'}", "hparam_search")
    assert any(r.info.status == "KILLED" for r in runs)
