"""Which process runs what, and whether it still lives: how workers tell a killed worker's
trials and runs from those of a worker that is merely slow.

A worker is named `host:pid:start` (the process's start time from /proc, so a reused pid is
not mistaken for the dead worker). On the same host that name answers at once whether the
worker is gone; across hosts only its heartbeat does: every trial a worker runs carries a
timestamp it renews each `search.heartbeat` seconds from a background thread, and a trial
whose timestamp is older than `search.grace` seconds belongs to a dead worker.
"""

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

HOST = socket.gethostname()
STOP_TIMEOUT = 30  # seconds an interrupted worker gets to close its runs
# Set by `search.workers` for the worker processes it starts: how many share this machine.
LOCAL_WORKERS_ENV = "SWEEPS_LOCAL_WORKERS"


def cpu_cores() -> int:
    """The cores this process may use."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot, or None when it does not exist."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


@cache
def worker_id() -> str:
    """This process's name as other workers see it."""
    return f"{HOST}:{os.getpid()}:{_start_time(os.getpid()) or ''}"


def is_dead(worker: str) -> bool:
    """Whether `worker` (a `worker_id`) is known to be gone: on this host only, and only where
    /proc tells; elsewhere the heartbeat decides."""
    host, pid, start = worker.rsplit(":", 2)
    if host != HOST or not start or not Path("/proc/self/stat").exists():
        return False
    return _start_time(int(pid)) != start


class Heartbeat:
    """Renews `attr` = now (epoch seconds) on the trials this worker runs, every `interval`
    seconds, from a daemon thread: training holds the main thread for minutes."""

    def __init__(self, attr: str, interval: float) -> None:
        self.attr = attr
        self.interval = interval
        self.trials: dict[int, Any] = {}  # number -> optuna.Trial
        self.guard = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, name="sweeps-heartbeat", daemon=True)

    def __enter__(self) -> "Heartbeat":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()

    def watch(self, trials: Iterable[Any]) -> None:
        """Beat for these trials from now on. Trials just taken need no beat now: their start
        time counts as the first (`TrialPool.stale`), which saves a storage transaction per
        trial, 100 for the textbook's search."""
        with self.guard:
            self.trials |= {t.number: t for t in trials}

    def forget(self, trials: Iterable[Any]) -> None:
        with self.guard:
            for trial in trials:
                self.trials.pop(trial.number, None)

    def beat(self, trials: Iterable[Any]) -> None:
        now = time.time()
        for trial in trials:
            try:
                trial.set_user_attr(self.attr, now)
            except Exception as err:  # a finished trial, a busy database: the next beat retries
                log.debug("heartbeat of trial %d: %s", trial.number, err)

    def run(self) -> None:
        while not self.stop.wait(self.interval):
            with self.guard:
                trials = list(self.trials.values())
            self.beat(trials)


def start_local(config_file: Path, count: int, total: int) -> list[subprocess.Popen]:
    """`count` more worker processes on this machine, each running the study in
    `config_file` (`python -m sweeps.search_worker`), told that `total` share the cores."""
    env = os.environ | {LOCAL_WORKERS_ENV: str(total)}
    command = [sys.executable, "-m", "sweeps.search_worker", str(config_file)]
    procs = [subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL) for _ in range(count)]
    log.info("started %d more workers: pids %s", count, ", ".join(str(p.pid) for p in procs))
    return procs


def stop_local(procs: list[subprocess.Popen], interrupt: bool) -> list[int]:
    """Wait for the workers to end (after Ctrl-C in them on `interrupt`, so they close their
    runs KILLED); returns their exit codes."""
    for proc in procs:
        if interrupt and proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    codes = []
    for proc in procs:
        try:
            codes.append(proc.wait(timeout=STOP_TIMEOUT if interrupt else None))
        except subprocess.TimeoutExpired:
            proc.kill()
            codes.append(proc.wait())
    return codes
