"""How any number of workers share one Optuna study's trials, through its storage alone.

The rules, each kept under the store's lock (`sweeps.stores.lock`, released by the OS or the
server if its holder dies):
- A trial counts toward `search.n_trials` when it has its result (complete, pruned, or
  failed by diverging), or is running, or waits in the queue. A worker asks for trials only
  while that total is short of `n_trials`, so however many workers run, the study ends with
  exactly `n_trials` trials with results.
- With the random and QMC samplers the points are drawn once, from the seed, and queued in
  the storage (each with its index, `sweeps.point`); workers pop them with Optuna's own
  `ask`, which takes a waiting trial atomically. So no two workers train the same point, and
  the points do not depend on how many workers ran. Adaptive samplers (TPE, GP) sample at
  ask time; each worker seeds its sampler with the seed plus its arrival count, so
  concurrent workers do not draw the same points either.
- A running trial carries its worker's name and a heartbeat (`sweeps.workers`). When the
  worker is known dead (same host) or its heartbeat is older than `search.grace` seconds,
  any worker fails the trial, unless the worker recorded its result before dying (then the
  trial is told that result); every failed trial that did not diverge gets its parameters
  queued again exactly once (`sweeps.retry_of`), and its MLflow runs are closed KILLED.
"""

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import optuna
from optuna.trial import FrozenTrial, TrialState

from sweeps.config import SearchConfig
from sweeps.optuna_study import make_sampler
from sweeps.space import Space
from sweeps.stores import lock
from sweeps.workers import Heartbeat, is_dead, worker_id

log = logging.getLogger(__name__)

QUEUED_SAMPLERS = ("random", "qmc")
POINT = "sweeps.point"
WORKER = "sweeps.worker"
HEARTBEAT = "sweeps.heartbeat"
RETRY_OF = "sweeps.retry_of"
DIVERGED = "sweeps.diverged"
INTERRUPTED = "sweeps.interrupted"
RUNS = "sweeps.mlflow_runs"  # [child run id, parent run id] of the trial's MLflow runs
ARRIVALS = "sweeps.arrivals"  # workers that joined the study so far


class TrialRuns(Protocol):
    """What the pool needs from the runs that record trials."""

    def recorded(self, trial: FrozenTrial) -> tuple[TrialState, float | None] | None:
        """The state and value a dead worker recorded for `trial` before dying, if it did."""

    def abandoned(self, trial: FrozenTrial) -> None:
        """`trial` was taken from a dead or interrupted worker: close what it left open."""


def has_result(trial: FrozenTrial) -> bool:
    """Complete, pruned, or failed on its own (diverged): a trial that needs no retry."""
    if trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
        return True
    return trial.state == TrialState.FAIL and bool(trial.user_attrs.get(DIVERGED))


def draw_points(space: Space, n: int, sampler: str, seed: int) -> list[dict[str, Any]]:
    """The first `n` points the seeded sampler draws over `space`, in order: trial i of a
    queued search trains point i whichever worker takes it."""
    study = optuna.create_study(sampler=make_sampler(sampler, seed))
    points = []
    for _ in range(n):
        trial = study.ask(space)
        points.append(trial.params)
        study.tell(trial, state=TrialState.FAIL)  # keeps the in-memory study small to scan
    return points


class TrialPool:
    """One worker's view of a study's trials: takes batches, beats for them, gives back the
    ones it could not finish, and recovers the ones dead workers left."""

    def __init__(
        self,
        study: optuna.Study,
        url: str,
        search: SearchConfig,
        space: Space,
        seed: int,
        runs: TrialRuns,
    ) -> None:
        self.study = study
        self.url = url
        self.search = search
        self.space = space
        self.seed = seed
        self.runs = runs
        self.heartbeat = Heartbeat(HEARTBEAT, search.heartbeat)
        self.waiting_since: float | None = None

    def locked(self) -> Any:
        return lock(self.url, f"optuna:{self.study.study_name}")

    @contextmanager
    def running(self) -> Iterator["TrialPool"]:
        """Join the study, and beat for this worker's trials until the block ends."""
        with self.locked():
            arrivals = self.study.user_attrs.get(ARRIVALS, 0)
            self.study.set_user_attr(ARRIVALS, arrivals + 1)
            self.study.sampler = make_sampler(self.search.sampler, self.seed + arrivals)
            if self.search.sampler in QUEUED_SAMPLERS:
                self.queue_points()
        with self.heartbeat:
            yield self

    def queue_points(self) -> None:
        """Queue the seed's points not yet in the study (a larger `n_trials` adds more)."""
        queued = {t.user_attrs.get(POINT) for t in self.study.get_trials(deepcopy=False)}
        missing = [i for i in range(self.search.n_trials) if i not in queued]
        if not missing:
            return
        points = draw_points(self.space, self.search.n_trials, self.search.sampler, self.seed)
        for i in missing:
            self.study.enqueue_trial(points[i], user_attrs={POINT: i})

    def stale(self, trial: FrozenTrial, now: float) -> bool:
        """A running trial whose worker is gone: known dead, or silent for `search.grace` s."""
        worker = trial.user_attrs.get(WORKER)
        if worker and is_dead(worker):
            return True
        start = trial.datetime_start.timestamp() if trial.datetime_start else now
        return now - trial.user_attrs.get(HEARTBEAT, start) > self.search.grace

    def recover(self) -> None:
        """Fail dead workers' trials; queue every failed, undiverged trial's parameters once.
        Call under the lock, so one worker does each."""
        now = time.time()
        for trial in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if not self.stale(trial, now):
                continue
            worker = trial.user_attrs.get(WORKER, "(unknown)")
            outcome = self.runs.recorded(trial)
            if outcome is None:
                log.warning(
                    "trial %d of %r: its worker %s stopped; failing it and queueing it again",
                    trial.number,
                    self.study.study_name,
                    worker,
                )
                self.study.tell(trial.number, state=TrialState.FAIL)
                continue
            log.warning(
                "trial %d of %r: its worker %s stopped after recording it; telling its result",
                trial.number,
                self.study.study_name,
                worker,
            )
            state, value = outcome
            self.study.tell(trial.number, value, state=state)
            self.runs.abandoned(trial)
        trials = self.study.get_trials(deepcopy=False)
        retried = {t.user_attrs.get(RETRY_OF) for t in trials}
        for trial in trials:
            if trial.state != TrialState.FAIL or has_result(trial) or trial.number in retried:
                continue
            attrs = {RETRY_OF: trial.number}
            if POINT in trial.user_attrs:
                attrs[POINT] = trial.user_attrs[POINT]
            self.study.enqueue_trial(trial.params, user_attrs=attrs)
            self.runs.abandoned(trial)

    def tally(self) -> tuple[int, int, int]:
        """(trials with results, running, waiting)."""
        trials = self.study.get_trials(deepcopy=False)
        running = sum(t.state == TrialState.RUNNING for t in trials)
        waiting = sum(t.state == TrialState.WAITING for t in trials)
        return sum(has_result(t) for t in trials), running, waiting

    def take(self) -> list[optuna.Trial]:
        """Up to `search.batch` trials for this worker; none when the study is full."""
        with self.locked():
            self.recover()
            done, running, waiting = self.tally()
            short = self.search.n_trials - done - running - waiting
            n = min(self.search.batch, waiting + max(short, 0))
            trials = [self.study.ask(self.space) for _ in range(n)]
            for trial in trials:
                trial.set_user_attr(WORKER, worker_id())
        self.heartbeat.watch(trials)
        return trials

    def done(self) -> bool:
        """Whether every trial has its result; otherwise wait a little for other workers'."""
        done, running, waiting = self.tally()
        if done >= self.search.n_trials:
            return True
        if self.waiting_since is None:
            self.waiting_since = time.time()
            log.info(
                "%r: %d trials running in other workers; waiting for them (a dead worker's "
                "trials are taken over after search.grace=%gs)",
                self.study.study_name,
                running,
                self.search.grace,
            )
        time.sleep(min(self.search.heartbeat, 2.0))
        return False

    def release(self, trials: list[optuna.Trial]) -> None:
        """Stop beating for trials this worker told."""
        self.heartbeat.forget(trials)

    def interrupt(self, trials: list[optuna.Trial]) -> None:
        """An error or Ctrl-C cut these trials short: fail them and queue them again now."""
        self.heartbeat.forget(trials)
        for trial in trials:
            trial.set_user_attr(INTERRUPTED, True)
            self.study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
        with self.locked():
            self.recover()
