"""Hydra multiruns (`-m`) recorded under one MLflow parent run, one child per job.

The callback opens the parent before the sweeper launches any job and hands its id to the
jobs in an environment variable, which reaches jobs that a launcher runs in subprocesses as
well as those it runs in this process; each job's study run then nests under it
(`Recorder.multirun_parent`, called when `sweeps.recording.study_run` opens the job's run).
Hydra instantiates callbacks on every invocation, single runs and `--help` included, so mlflow
is imported only once a multirun starts.
"""

import atexit
import logging
import os
import sys
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from sweeps.errors import UserError
from sweeps.recording import (
    PARENT_ENV,
    PARENT_TAG,
    ROLE_TAG,
    Recorder,
    check_tracking,
    tracking_uri,
)

log = logging.getLogger(__name__)
# The multirun's run holds the sweep's choices (`sweep.optimizer` = "sgd,adam") under their
# own keys: in the jobs' `optimizer.name` column they would read as one more value.
SWEEP_PREFIX = "sweep."


def swept(config: DictConfig) -> dict[str, str]:
    """What the sweep varies, KEY -> its choices as typed: `hydra.sweeper.params` and the
    command line's sweep overrides (`optimizer=sgd,adam`), which win like they do in Hydra."""
    params = OmegaConf.select(config, "hydra.sweeper.params") or {}
    sweep = {str(key): str(value) for key, value in params.items()}
    for override in OverridesParser.create().parse_overrides(list(config.hydra.overrides.task)):
        if override.is_sweep_override():
            sweep[override.get_key_element()] = override.get_value_string()
    return sweep


class MultirunParent(Callback):
    """Opens the multirun's parent run and closes it however the multirun ends.

    Hydra 1.3 calls `on_multirun_end` only after every job succeeded: the basic sweeper
    raises the first failed job's exception once its batch is done, and a job that exits
    (`sweeps.run` turns a bad input into exit 2) or is interrupted escapes Hydra's job wrapper,
    which catches only `Exception`, skipping `on_job_end` and the jobs left. An exit hook
    therefore closes a parent still open: KILLED after Ctrl-C, FAILED otherwise.
    """

    def __init__(self) -> None:
        self.recorder: Recorder | None = None
        self.run_id: str | None = None
        self.failed_jobs = 0

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweep = swept(config)
        try:
            uri = tracking_uri(config.tracking.uri)
            # An unreachable server: one line within seconds, not minutes of MLflow's retries.
            check_tracking(uri)
            self.recorder = Recorder(uri, config.tracking.experiment)
        except UserError as err:
            log.error("%s", err)
            sys.exit(2)
        tags = {
            ROLE_TAG: "multirun",
            "sweeps.overrides": " ".join(config.hydra.overrides.task),
            "sweeps.sweep_dir": os.path.abspath(config.hydra.sweep.dir),
        }
        name = " ".join(["multirun", *(f"{key}={value}" for key, value in sweep.items())])
        params = {f"{SWEEP_PREFIX}{key}": value for key, value in sweep.items()}
        self.run_id = self.recorder.start(name, params, tags)
        os.environ[PARENT_ENV] = self.run_id
        atexit.register(self.close_at_exit)
        log.info(
            "multirun recorded in %s, experiment %r, run %s",
            self.recorder.uri,
            config.tracking.experiment,
            self.run_id,
        )

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if job_return.status == JobStatus.FAILED:
            self.failed_jobs += 1

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        # Sweepers other than the basic one may carry on past failed jobs.
        self.close("FAILED" if self.failed_jobs else "FINISHED")

    def close_at_exit(self) -> None:
        """The interpreter sets `sys.last_value` to an exception it did not handle."""
        interrupted = isinstance(getattr(sys, "last_value", None), KeyboardInterrupt)
        self.close("KILLED" if interrupted else "FAILED")

    def close(self, status: str) -> None:
        atexit.unregister(self.close_at_exit)
        os.environ.pop(PARENT_ENV, None)
        if self.recorder is not None and self.run_id is not None:
            if status != "FINISHED":
                self.close_dead_jobs()
            self.recorder.finish(self.run_id, status)
            self.run_id = None

    def close_dead_jobs(self) -> None:
        """A launcher that kills its workers (joblib's on Ctrl-C or on a job's exit 2) leaves
        their runs RUNNING: close those of dead workers nested under this multirun, KILLED,
        variants first."""
        recorder = self.recorder
        dead = recorder.dead_runs()
        jobs = {r.run_id for r in dead if r.tags.get(PARENT_TAG) == self.run_id}
        for run in dead:
            if run.tags.get(PARENT_TAG) in jobs:
                recorder.kill(run.run_id)
        for job in jobs:
            recorder.kill(job)
