"""Studies side by side: several studies in worker processes, one study at a time in each.

Why: on a CPU the chapter-6 studies are bound by the cost of each tensor operation, not by
arithmetic, so a second intra-op thread speeds one study up little (the optimizer study: 1.22x
with two threads on two cores), while two studies side by side, one thread each, finished in
0.56 of the time they took one after another (`python -m benchmarks.threads`; docs/DESIGN.md,
"Studies side by side").

Each worker is spawned once, imports torch and MLflow once, takes the next study from the queue
and runs it exactly as `python -m sweeps.run +experiment=NAME` would: its own experiment,
parent run, claims and table. Workers share the cores (`SWEEPS_LOCAL_WORKERS`, read by
`sweeps.device.set_threads`), and each draws its progress bar on its own line.

Ctrl-C: the parent passes it on to every worker; a worker stops the study it runs as one run
alone would (its runs closed KILLED) and ignores a second one meanwhile, or any between
studies. A study that fails stops the queue: the studies already running finish, the rest do
not start, and the first failure is raised.
"""

import logging
import logging.config
import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

from sweeps import collector, interrupts
from sweeps.errors import ConfigError
from sweeps.workers import LOCAL_WORKERS_ENV, cpu_cores

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

LANE_ENV = "SWEEPS_LANE"  # this worker's lane: the line its progress bar is drawn on
NVIDIA_DRIVER = Path("/proc/driver/nvidia/version")


def lane_count(setting: str, devices: Collection[str], studies: int) -> int:
    """How many studies run at once: `setting` (N or `auto`). `auto` is one per core on a
    CPU, and one where a study computes on a GPU, where studies side by side have not been
    measured yet; `device=auto` finds the GPU by its driver rather than by importing torch,
    which this process does not otherwise need."""
    if setting != "auto":
        if not (setting.isdigit() and int(setting) > 0):
            raise ConfigError(
                f"suite.workers={setting!r} is not valid; give a positive number or auto"
            )
        return min(int(setting), studies)
    on_gpu = any(d == "cuda" or (d == "auto" and NVIDIA_DRIVER.exists()) for d in devices)
    return 1 if on_gpu else max(1, min(studies, cpu_cores()))


def position() -> int | None:
    """The line of this process's progress bar: its lane in a worker, else tqdm's choice."""
    lane = os.environ.get(LANE_ENV)
    return int(lane) if lane else None


_stop: Any = None  # set by a worker whose study failed: the others start no new study


def _start_worker(lanes: int, counter: Any, stop: Any, hydra: DictConfig | None) -> None:
    """A worker's set-up: its share of the cores, its lane, the queue's stop flag, the
    parent's Hydra settings (the logging, and the command line a search names its Optuna
    study after)."""
    global _stop
    collector.tune()
    with counter.get_lock():
        lane = counter.value
        counter.value += 1
    _stop = stop
    os.environ[LOCAL_WORKERS_ENV] = str(lanes)
    os.environ[LANE_ENV] = str(lane)
    interrupts.install(worker=True)
    if hydra is not None:
        from hydra.core.hydra_config import HydraConfig

        HydraConfig.instance().set_config(hydra)
        logging.config.dictConfig(OmegaConf.to_container(hydra.hydra.job_logging, resolve=True))


def _run(
    run_study: Callable[[DictConfig], "pd.DataFrame"], cfg: DictConfig
) -> tuple["pd.DataFrame", float] | None:
    """One study in a worker: its table and wall seconds; None if an earlier study failed
    (the pool hands each worker its next study before the parent hears of a failure)."""
    if _stop.is_set():
        return None
    start = time.perf_counter()
    try:
        with interrupts.task():
            table = run_study(cfg)
    except BaseException:
        _stop.set()
        raise
    return table, time.perf_counter() - start


def _hydra_settings() -> DictConfig | None:
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.instance().cfg if HydraConfig.initialized() else None


def run_side_by_side(
    run_study: Callable[[DictConfig], "pd.DataFrame"], configs: Sequence[DictConfig], lanes: int
) -> list["pd.DataFrame"]:
    """`run_study` (a module-level function: workers import it by name) on every study of
    `configs`, in `lanes` workers; their tables in the order given."""
    context = multiprocessing.get_context("spawn")
    counter, stop = context.Value("i", 0), context.Event()
    log.info("running %d studies, %d at a time", len(configs), lanes)
    pool = ProcessPoolExecutor(
        lanes,
        mp_context=context,
        initializer=_start_worker,
        initargs=(lanes, counter, stop, _hydra_settings()),
    )
    futures: dict[Future, str] = {}
    try:
        futures = {pool.submit(_run, run_study, cfg): cfg.study for cfg in configs}
        pending = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                error = future.exception()
                if error is not None:
                    if not isinstance(error, KeyboardInterrupt):
                        log.warning(
                            "%s failed; studies already started finish, the others do not start",
                            futures[future],
                        )
                    raise error
                if future.result() is None:  # skipped: the failure that stopped it follows
                    continue
                log.info(
                    "%s done in %.1f s (%d of %d studies)",
                    futures[future],
                    future.result()[1],
                    len(futures) - len(pending),
                    len(futures),
                )
    except KeyboardInterrupt:
        for child in multiprocessing.active_children():
            os.kill(child.pid, signal.SIGINT)
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return [future.result()[0] for future in futures]
