"""MLflow, and only here: the runs of a study invocation, what they hold, reading them back.

Every other module records through this one, so the tracking conventions live in one place:
- a parent run per invocation (`sweeps.role=study`) with the resolved config as `config.yaml`
  and as params under `config.` (apart from the children's keys: grouped by `model.batchnorm`,
  a parent would count as one more run), its summary table's numbers as `COLUMN/VARIANT`
  metrics, provenance and dataset tags, nested under a Hydra multirun's run when there is
  one in the same experiment;
- a child run per variant or trial, with its own params and tags;
- params shown to meaningful digits (`sweeps.numbers`);
- metric series as (key, value, step) points, a whole series in one `log_batch` call: one call
  per point costs tens of seconds per study against SQLite (docs/DESIGN.md, "Batched logging");
- a guard that closes every run still open as FAILED (KILLED on Ctrl-C), so an error never
  leaves a phantom RUNNING run.

Everything goes through `MlflowClient` with explicit run ids (no fluent global state). mlflow
is imported when a store is opened, not with this module: the Hydra callback imports it on
every invocation, `--help` included.
"""

import importlib.metadata
import logging
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from sweeps.config import Config, flatten, register
from sweeps.errors import UserError
from sweeps.numbers import param
from sweeps.stores import (
    check_server,
    check_writable,
    create_sqlite,
    is_server,
    lock,
    sqlite_path,
)
from sweeps.system_metrics import SYSTEM_METRICS_TAG, driver_version, wanted
from sweeps.workers import is_dead, worker_id

if TYPE_CHECKING:
    import pandas as pd
    import torch
    from mlflow.entities import Experiment

    from sweeps.data import Dataset
    from sweeps.html_report import ReportPage

log = logging.getLogger(__name__)

PARENT_TAG = "mlflow.parentRunId"
# A Hydra multirun's callback hands its run id to the jobs through this variable.
PARENT_ENV = "SWEEPS_PARENT_RUN_ID"
ROLE_TAG = "sweeps.role"
WORKER_TAG = "sweeps.worker"  # the process that opened the run (`sweeps.workers.worker_id`)
RUN_COLOUR = "mlflow.runColor"  # a run's colour in the UI's charts
NOTE_TAG = "mlflow.note.content"  # markdown the UI shows as a run's description
NOTE_ROWS = 30
CONFIG_PREFIX = "config."  # the parent's params: the resolved config
CONFIG_TAG = "sweeps.config_hash"  # what a study computes (`config.config_hash`)
ADOPTED_TAG = "sweeps.adopted_from"  # the killed run a finished child was first nested under
PARAM_VALUE_LIMIT = 6000


def tracking_uri(configured: str | None) -> str:
    """`tracking.uri`, else $MLFLOW_TRACKING_URI, else MLflow 3's default beside the cwd."""
    return (
        configured
        or os.environ.get("MLFLOW_TRACKING_URI")
        or (f"sqlite:///{Path.cwd() / 'mlflow.db'}")
    )


def create_mlflow_store(side_url: str) -> None:
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    SqlAlchemyStore(side_url, tempfile.gettempdir()).engine.dispose()


def check_tracking(uri: str) -> None:
    """Before a study loads data: the tracking store must be reachable and writable, or
    fail within seconds in one line naming it. Creates no file (see `open_tracking`)."""
    if uri.startswith(("http://", "https://")):
        check_server(uri)
        return
    path = sqlite_path(uri)
    if path is not None:
        check_writable(path.parent, f"tracking.uri={uri}")
        if not path.exists():
            return
    open_tracking(uri)


@cache
def open_tracking(uri: str) -> None:
    """Create the store's tables if it has none, safely among workers (`sweeps.stores`),
    and explain a store a killed migration left behind. Once per store and process: the
    start-up check and every `Recorder` ask for it."""
    if sqlite_path(uri) is not None:
        template = f"mlflow-{importlib.metadata.version('mlflow')}.db"
        create_sqlite(uri, create_mlflow_store, "tracking.uri", template)
    elif not is_server(uri):
        return  # a tracking server, or another store MLflow knows (databricks, ...)
    with lock(uri, "mlflow-schema"):
        try:
            from mlflow import MlflowClient

            MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
        except Exception as err:  # SQLAlchemy and MLflow raise many types; name the store
            if "_alembic_tmp" in str(err):
                raise UserError(
                    f"{uri} was left half-migrated by a process killed while MLflow created or "
                    "upgraded its tables: if it holds nothing you need, delete it; otherwise "
                    "drop its _alembic_tmp_* tables and run `mlflow db upgrade URI`"
                ) from err
            raise UserError(f"tracking.uri={uri} cannot be opened: {err}") from err


def artifact_root(uri: str) -> str | None:
    """For a SQLite store, `mlruns/` beside the database file (MLflow's own default layout,
    which otherwise would put artifacts under whatever directory the command ran in)."""
    if uri.startswith("sqlite:///"):
        return (Path(uri.removeprefix("sqlite:///")).resolve().parent / "mlruns").as_uri()
    return None


def git_commit() -> str | None:
    """The commit of the checkout this code runs from, if it is a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def provenance_tags(device: "torch.device") -> dict[str, str]:
    """Where and with what a run computed: device, torch/CUDA versions, command, commit."""
    import torch

    from sweeps.device import flushes_denormals

    tags = {
        "device": str(device),
        "device.name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch.version": torch.__version__,
        "torch.threads": torch.get_num_threads(),
        "cpu.flush_denormal": str(flushes_denormals()).lower(),
        "cuda.version": str(torch.version.cuda),
        "mlflow.source.name": "sweeps.run",
        "mlflow.source.type": "LOCAL",
        "sweeps.command": " ".join(["python -m sweeps.run", *sys.argv[1:]]),
    }
    commit = git_commit()
    if commit:
        tags["mlflow.source.git.commit"] = commit
    if device.type == "cuda" and (driver := driver_version()):
        tags["cuda.driver"] = driver
    return tags


def dataset_tags(data: "Dataset") -> dict[str, Any]:
    """Which data a run saw: name, source, whether it was the embedded fallback, split sizes."""
    return {
        "dataset.name": data.name,
        "dataset.source": data.source,
        "dataset.fallback": str(data.fallback).lower(),
    } | {f"dataset.{split}_size": n for split, n in data.sizes().items()}


@dataclass(frozen=True)
class RunRecord:
    """A run as reports read it back: MLflow's entity reduced to plain values."""

    run_id: str
    name: str
    params: dict[str, str]
    metrics: dict[str, float]  # the latest value of each key
    tags: dict[str, str]
    status: str  # RUNNING, FINISHED, FAILED or KILLED


def record(run: Any) -> RunRecord:
    """MLflow's `Run` entity as a RunRecord."""
    info, data = run.info, run.data
    return RunRecord(
        info.run_id,
        info.run_name,
        dict(data.params),
        dict(data.metrics),
        dict(data.tags),
        info.status,
    )


class Store:
    """Reads a tracking store: finished runs and their metric series."""

    def __init__(self, uri: str) -> None:
        from mlflow import MlflowClient

        # a progress bar per downloaded file: noise on a report's console
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        self.uri = uri
        self.client = MlflowClient(tracking_uri=uri)

    def runs(
        self,
        experiment_id: str,
        tags: Mapping[str, str],
        finished: bool = True,
        latest: bool = False,
        status: str | None = None,
    ) -> list[RunRecord]:
        """The runs carrying all of `tags` (only FINISHED ones by default, else those with
        `status` if given); `latest`: the most recently started one only."""
        terms = [f"tags.`{key}` = '{value}'" for key, value in tags.items()]
        status = "FINISHED" if finished else status
        if status:
            terms.append(f"attributes.status = '{status}'")
        runs = self.client.search_runs(
            [experiment_id],
            filter_string=" and ".join(terms),
            order_by=["attributes.start_time DESC"] if latest else None,
            max_results=1 if latest else 50000,
        )
        return [record(run) for run in runs]

    def history(self, run_id: str, key: str) -> np.ndarray:
        """A run's series `key`, ordered by step: what reports redraw curves from."""
        points = sorted(self.client.get_metric_history(run_id, key), key=lambda m: m.step)
        return np.array([m.value for m in points])

    def run(self, run_id: str) -> RunRecord:
        """One run by id; a UserError naming the store when there is none."""
        from mlflow.exceptions import MlflowException

        try:
            return record(self.client.get_run(run_id))
        except MlflowException as err:
            raise UserError(f"no run {run_id!r} in {self.uri}") from err

    def artifact(self, run_id: str, path: str) -> bytes:
        """The bytes of one artifact of a run; a UserError when the run has none at `path`."""
        from mlflow.exceptions import MlflowException

        with tempfile.TemporaryDirectory() as tmp:
            try:
                local = self.client.download_artifacts(run_id, path, tmp)
            except (MlflowException, OSError) as err:
                raise UserError(f"run {run_id} has no artifact {path!r} in {self.uri}") from err
            return Path(local).read_bytes()


class Recorder(Store):
    """Opens, fills and closes the runs of one study invocation in one MLflow experiment.

    Every run it opens is tracked until closed, so `abort` can mark what is left FAILED (or
    KILLED on Ctrl-C) and no run stays RUNNING after an error.
    """

    def __init__(self, uri: str, experiment: str) -> None:
        open_tracking(uri)
        super().__init__(uri)
        found = self.client.get_experiment_by_name(experiment) or self._create(uri, experiment)
        if found.lifecycle_stage == "deleted":
            raise UserError(
                f"MLflow experiment {experiment!r} is deleted in {uri}; restore it "
                f"(mlflow experiments restore --experiment-id {found.experiment_id}) or pick "
                f"another name with tracking.experiment=NAME"
            )
        self.experiment_id = found.experiment_id
        self.open: list[str] = []

    def _create(self, uri: str, experiment: str) -> "Experiment":
        """The experiment, made here unless another worker made it since this one looked:
        a search's workers start together and all find it missing in a new store."""
        from mlflow.exceptions import MlflowException

        try:
            made = self.client.create_experiment(experiment, artifact_location=artifact_root(uri))
        except MlflowException as err:
            if err.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            return self.client.get_experiment_by_name(experiment)
        return self.client.get_experiment(made)

    def start(
        self,
        name: str,
        params: Mapping[str, Any],
        tags: Mapping[str, Any],
        parent: str | None = None,
    ) -> str:
        all_tags = dict(tags) | {WORKER_TAG: worker_id()} | ({PARENT_TAG: parent} if parent else {})
        run = self.client.create_run(
            self.experiment_id, run_name=name, tags={k: str(v) for k, v in all_tags.items()}
        )
        run_id = run.info.run_id
        self.open.append(run_id)
        self.log_params(run_id, params)
        return run_id

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(param(v))[:PARAM_VALUE_LIMIT]) for k, v in params.items()]
        self.client.log_batch(run_id, params=items)

    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_metrics(
        self,
        run_id: str,
        points: Iterable[tuple[str, float, int]],
        tags: Mapping[str, Any] | None = None,
    ) -> None:
        """(key, value, step) points, and `tags`, all in one `log_batch` call."""
        from mlflow.entities import Metric, RunTag

        now = int(time.time() * 1000)
        metrics = [Metric(key, float(value), now, int(step)) for key, value, step in points]
        run_tags = [RunTag(k, str(v)) for k, v in (tags or {}).items()]
        self.client.log_batch(run_id, metrics=metrics, tags=run_tags)

    def log_text(self, run_id: str, text: str, path: str) -> None:
        self.client.log_text(run_id, text, path)

    def log_bytes(self, run_id: str, data: bytes, path: str) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / Path(path).name
            local.write_bytes(data)
            folder = str(Path(path).parent)
            self.client.log_artifact(run_id, str(local), None if folder == "." else folder)

    def log_figure(self, run_id: str, figure: Any, path: str) -> None:
        self.client.log_figure(run_id, figure, path)

    def finish(self, run_id: str, status: str = "FINISHED") -> None:
        self.client.set_terminated(run_id, status=status)
        self.open.remove(run_id)

    def kill(self, run_id: str) -> bool:
        """Close another process's run KILLED if it is still RUNNING; whether it was."""
        if self.client.get_run(run_id).info.status != "RUNNING":
            return False
        self.client.set_terminated(run_id, status="KILLED")
        return True

    def adopt(self, old_parent: str, new_parent: str) -> int:
        """Nest the FINISHED children of a killed run under `new_parent`, so every finished
        result sits inside a finished run; returns how many moved."""
        children = self.runs(self.experiment_id, {PARENT_TAG: old_parent})
        for child in children:
            self.set_tags(child.run_id, {PARENT_TAG: new_parent, ADOPTED_TAG: old_parent})
        return len(children)

    def dead_runs(self) -> list[RunRecord]:
        """RUNNING runs of this experiment whose worker process is known dead (this host)."""
        running = self.runs(self.experiment_id, {}, finished=False, status="RUNNING")
        return [r for r in running if WORKER_TAG in r.tags and is_dead(r.tags[WORKER_TAG])]

    @contextmanager
    def guarded(self) -> Iterator[None]:
        """Close every run still open as KILLED on Ctrl-C, FAILED on any other error."""
        try:
            yield
        except KeyboardInterrupt:
            self.abort("KILLED")
            raise
        except BaseException:
            self.abort("FAILED")
            raise

    def abort(self, status: str = "FAILED") -> None:
        """Close every run still open, children first."""
        for run_id in reversed(list(self.open)):
            self.finish(run_id, status)

    def multirun_parent(self) -> str | None:
        """The Hydra multirun's run this invocation nests under, or None outside a multirun.

        MLflow shows nesting only within one experiment, and a job can record elsewhere than
        the multirun's callback did (a swept `study` or `tracking.uri`, or
        `hydra.job.chdir=true` with the default store beside the cwd); such a job stays a
        top-level run rather than point at a parent its experiment cannot show.
        """
        run_id = os.environ.get(PARENT_ENV)
        if not run_id:
            return None
        from mlflow.exceptions import MlflowException

        try:
            experiment_id = self.client.get_run(run_id).info.experiment_id
        except MlflowException:
            log.warning(
                "multirun parent run %s is not in this job's store %s; recording the job unnested",
                run_id,
                self.uri,
            )
            return None
        if experiment_id != self.experiment_id:
            log.warning(
                "multirun parent run %s is in MLflow experiment %r, this job records in %r; "
                "recording the job unnested (nested runs must share an experiment)",
                run_id,
                self.client.get_experiment(experiment_id).name,
                self.client.get_experiment(self.experiment_id).name,
            )
            return None
        return run_id


class StudyRun:
    """The run context of one study invocation: its open parent run and the tags every
    run of the invocation carries. Study kinds record through it."""

    def __init__(
        self,
        recorder: Recorder,
        parent: str,
        tags: Mapping[str, Any],
        identity: Mapping[str, Any] | None = None,
        config_yaml: str = "",
        claim: str = "",
    ) -> None:
        self.recorder = recorder
        self.parent = parent
        self.tags = dict(tags)
        self.identity = dict(identity or {})
        self.config_yaml = config_yaml  # the resolved config, as logged in `config.yaml`
        self.claim = claim  # what the study reproduces, for its descriptions

    @property
    def experiment_id(self) -> str:
        return self.recorder.experiment_id

    def child(
        self, name: str, params: Mapping[str, Any], tags: Mapping[str, Any] | None = None
    ) -> str:
        """Open a run nested under the parent, with the invocation's tags and `tags`."""
        return self.recorder.start(name, params, self.tags | dict(tags or {}), parent=self.parent)

    def close_child(
        self,
        child: str,
        points: Iterable[tuple[str, float, int]],
        tags: Mapping[str, Any] | None = None,
    ) -> None:
        """Log a child's metric points and tags (one batch), and close it FINISHED."""
        self.recorder.log_metrics(child, points, tags)
        self.recorder.finish(child)

    def log_checkpoint(self, child: str, files: Mapping[str, bytes]) -> None:
        """A child's checkpoint files (path -> bytes; see `sweeps.checkpoints`)."""
        for path, data in files.items():
            self.recorder.log_bytes(child, data, path)

    def log(
        self,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
        metrics: Mapping[str, float] | None = None,
    ) -> None:
        """Params, tags and final metrics (logged at step 0) on the parent run."""
        if params:
            self.recorder.log_params(self.parent, params)
        if tags:
            self.recorder.set_tags(self.parent, tags)
        if metrics:
            self.recorder.log_metrics(self.parent, [(k, v, 0) for k, v in metrics.items()])

    def log_outputs(self, figures: Mapping[str, Any], tables: Mapping[str, "pd.DataFrame"]) -> None:
        """The study's figures (file name -> matplotlib figure, closed once logged) and tables
        (file name -> CSV) as artifacts of the parent run; from the first table, the parent's
        summary metrics, its description and `report.html`."""
        import matplotlib.pyplot as plt

        from sweeps.html_report import png, render

        images = {}
        for name, figure in figures.items():
            images[name] = png(figure)
            plt.close(figure)
            self.recorder.log_bytes(self.parent, images[name], name)
        for name, table in tables.items():
            self.recorder.log_text(self.parent, table.to_csv(index=False), name)
        if not tables:
            return
        table = next(iter(tables.values()))
        self.recorder.log_metrics(self.parent, [(k, v, 0) for k, v in summary_metrics(table)])
        from sweeps import verdicts

        claims = tables.get(verdicts.CLAIMS_FILE)
        if claims is not None:
            metrics, tags = verdicts.parent_record(claims)
            self.log(tags=tags, metrics=metrics)
        self.describe(table, list(figures))
        parent = self.recorder.run(self.parent)
        children = self.recorder.runs(self.experiment_id, {PARENT_TAG: self.parent}, False)
        page = report_page(
            self.recorder.uri,
            self.experiment_id,
            parent,
            children,
            table,
            images,
            self.config_yaml,
            self.claim,
            claims,
        )
        self.recorder.log_text(self.parent, render(page), REPORT)

    def describe(self, table: "pd.DataFrame", figures: list[str]) -> None:
        """The parent's and the experiment's descriptions in the UI (markdown): what the study
        reproduces, the command that made it, its table, where the figures are."""
        text = description(
            self.claim,
            self.tags.get("sweeps.command", "python -m sweeps.run"),
            table,
            figures,
        )
        self.recorder.set_tags(self.parent, {NOTE_TAG: text})
        latest = (
            f"Latest run: [{self.parent}](#/experiments/{self.experiment_id}/runs/{self.parent})"
        )
        self.recorder.client.set_experiment_tag(self.experiment_id, NOTE_TAG, f"{text}\n\n{latest}")

    def finish(self) -> None:
        """Close the parent run FINISHED."""
        self.recorder.finish(self.parent)

    def take_over(self, *run_ids: str) -> None:
        """Close a dead worker's runs KILLED; a killed parent of this same study (the same
        `identity` tags) hands its finished children to this invocation's parent."""
        for run_id in run_ids:
            if run_id == self.parent or not self.recorder.kill(run_id):
                continue
            tags = self.recorder.run(run_id).tags
            same = self.identity and all(tags.get(k) == str(v) for k, v in self.identity.items())
            moved = self.recorder.adopt(run_id, self.parent) if same else 0
            log.warning(
                "closed run %s of a dead worker as KILLED%s",
                run_id,
                f"; its {moved} finished runs now nest under {self.parent}" if moved else "",
            )

    def resume(self) -> dict[str, RunRecord]:
        """Nest the finished children of this study's interrupted runs (KILLED or FAILED
        parents with the same `identity`) under this invocation's parent, and return every
        finished child it holds now (dead workers' included, see `close_dead`), by name."""
        for status in ("KILLED", "FAILED"):
            for old in self.recorder.runs(
                self.experiment_id, self.identity | {ROLE_TAG: "study"}, False, status=status
            ):
                if moved := self.recorder.adopt(old.run_id, self.parent):
                    log.info("reusing %d finished runs of interrupted run %s", moved, old.run_id)
        children = self.recorder.runs(self.experiment_id, {PARENT_TAG: self.parent})
        return {child.name: child for child in children}

    def close_dead(self) -> None:
        """Close the runs of workers known dead on this host, children first."""
        dead = self.recorder.dead_runs()
        self.take_over(*(r.run_id for r in dead if r.tags.get(ROLE_TAG) != "study"))
        self.take_over(*(r.run_id for r in dead if r.tags.get(ROLE_TAG) == "study"))


SUMMARY_LABELS = ("variant", "architecture")  # the table column naming each row's run
SHARED_COLUMNS = ("seconds",)  # a population's time, the same for its members: a tag
REPORT = "report.html"
# Tags that say where and with what a study computed: the report's "Environment".
ENVIRONMENT = ("device", "torch.", "cuda.", "dataset.", "seed", "mlflow.source.git", "system.")


def claim_of(cfg: DictConfig) -> str:
    """What the study reproduces, in one line of its experiment config (`description`)."""
    return str(OmegaConf.select(cfg, "description", default="") or "")


def metric_key(text: str) -> str:
    """`text` with the characters MLflow refuses in a metric key (`=`, `,`...) as `_`."""
    return re.sub(r"[^/\w.\- ]", "_", text)


def summary_metrics(table: "pd.DataFrame") -> list[tuple[str, float]]:
    """A study table's numbers as `COLUMN/ROW` metrics (`test_acc/adam`), so studies run on
    different days line up in the UI; none for tables without a run-naming column."""
    label = next((c for c in SUMMARY_LABELS if c in table.columns), None)
    if label is None:
        return []
    numeric = [
        c
        for c in table.select_dtypes("number").columns
        if table[c].dtype != bool and c not in (label, *SHARED_COLUMNS)
    ]
    return [
        (metric_key(f"{column}/{row[label]}"), float(row[column]))
        for _, row in table.iterrows()
        for column in numeric
        if np.isfinite(row[column])
    ]


def description(claim: str, command: str, table: "pd.DataFrame", figures: list[str]) -> str:
    """A study's markdown description: the claim, the command, the table, the figures."""
    from sweeps.tables import format_table

    shown = table.drop(columns="run_id", errors="ignore")
    lines = [claim, ""] if claim else []
    lines += [f"`{command}`", "", "```", format_table(shown.head(NOTE_ROWS)), "```"]
    if len(shown) > NOTE_ROWS:
        lines.append(f"({len(shown) - NOTE_ROWS} more rows in the CSV artifact)")
    if figures:
        names = ", ".join(f"`{name}`" for name in [REPORT, *figures])
        lines += ["", f"Artifacts: {names}"]
    return "\n".join(lines)


def report_page(
    uri: str,
    experiment_id: str,
    parent: RunRecord,
    children: list[RunRecord],
    table: "pd.DataFrame",
    figures: Mapping[str, bytes],
    config_yaml: str,
    claim: str,
    claims: "pd.DataFrame | None" = None,
) -> "ReportPage":
    """What `report.html` shows, from the parent's and children's records and the study's
    config (and its claims table, `sweeps.verdicts`): the same for the live study and its
    rebuild from the store."""
    from sweeps import verdicts
    from sweeps.html_report import ReportPage, RunLink

    order = {name: i for i, name in enumerate(table.get("variant", []))}
    children = sorted(children, key=lambda r: (order.get(r.name, len(order)), r.name))
    return ReportPage(
        title=parent.name,
        claim=claim,
        command=parent.tags.get("sweeps.command", "python -m sweeps.run"),
        table=table,
        figures=figures,
        config_yaml=config_yaml,
        claims=verdicts.report_rows(claims) if claims is not None else None,
        environment={k: v for k, v in parent.tags.items() if k.startswith(ENVIRONMENT)},
        runs_url=ui_url(uri, f"experiments/{experiment_id}/runs?workflowType=machine_learning"),
        runs=[
            RunLink(c.name, c.status, c.tags.get(RUN_COLOUR), run_url(uri, experiment_id, c.run_id))
            for c in children
        ],
    )


@contextmanager
def monitored(on: bool, uri: str, run_id: str) -> Iterator[None]:
    """Sample MLflow's system metrics into `run_id` while the block runs, when `on`
    (`sweeps.system_metrics`)."""
    if not on:
        yield
        return
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

    monitor = SystemMetricsMonitor(run_id, tracking_uri=uri)
    monitor.start()
    try:
        yield
    finally:
        monitor.finish()


@contextmanager
def study_run(
    cfg: DictConfig, tags: Mapping[str, Any], identity: Mapping[str, Any] | None = None
) -> Iterator[StudyRun]:
    """Open the invocation's parent run in `tracking.experiment`, with the resolved config as
    params and `config.yaml`, and close what dead workers left open; any error inside closes
    every run still open (see `guarded`). `identity`: tags naming the study across
    invocations, on the parent (see `StudyRun.take_over`). Everything that can fail on bad
    input should run before this opens."""
    recorder = Recorder(tracking_uri(cfg.tracking.uri), cfg.tracking.experiment)
    with recorder.guarded():
        resolved = OmegaConf.to_container(cfg, resolve=True)
        parent = recorder.start(
            cfg.study,
            flatten(resolved, CONFIG_PREFIX),
            dict(tags) | dict(identity or {}) | {ROLE_TAG: "study"},
            parent=recorder.multirun_parent(),
        )
        config_yaml = OmegaConf.to_yaml(resolved)
        recorder.log_text(parent, config_yaml, "config.yaml")
        study = StudyRun(recorder, parent, tags, identity, config_yaml, claim_of(cfg))
        study.close_dead()
        sampled = wanted(cfg.tracking.system_metrics, str(tags.get("device", "cpu")))
        recorder.set_tags(parent, {SYSTEM_METRICS_TAG: str(sampled).lower()})
        with monitored(sampled, recorder.uri, parent):
            yield study
    log.info("recorded in %s, experiment %r, run %s", recorder.uri, cfg.tracking.experiment, parent)
    log.info("runs table: %s", runs_table_url(recorder.uri, recorder.experiment_id))


UI_URL = "http://127.0.0.1:5000"  # where `make ui` serves a local store


def ui_url(uri: str, path: str) -> str:
    """A page of the MLflow UI for the store `uri`: on the tracking server itself, or on
    `make ui` for a local store."""
    base = uri.rstrip("/") if uri.startswith(("http://", "https://")) else UI_URL
    return f"{base}/#/{path}"


def runs_table_url(uri: str, experiment_id: str) -> str:
    """The UI's runs table of an experiment, in the machine-learning view (MLflow 3 opens an
    experiment on its GenAI overview, which shows no runs)."""
    url = ui_url(uri, f"experiments/{experiment_id}/runs?workflowType=machine_learning")
    return url if uri.startswith(("http://", "https://")) else f"{url} (after `make ui`)"


def run_url(uri: str, experiment_id: str, run_id: str) -> str:
    return ui_url(uri, f"experiments/{experiment_id}/runs/{run_id}")


@dataclass(frozen=True)
class RecordedStudy:
    """A finished study invocation as the store holds it: what `rebuild` redraws from."""

    store: Store
    experiment_id: str
    parent: RunRecord
    config: DictConfig  # the parent's config.yaml, checked against the schema
    children: dict[str, RunRecord]  # by run name
    config_yaml: str  # config.yaml as logged

    def history(self, child: str, key: str) -> np.ndarray:
        """The series `key` of the child run named `child`."""
        return self.store.history(self.children[child].run_id, key)


def recorded_study(experiment: str, run_id: str | None, uri: str | None) -> RecordedStudy:
    """The study run `run_id` of `experiment`, or its latest finished one."""
    store = Store(tracking_uri(uri))
    client = store.client
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        names = sorted(e.name for e in client.search_experiments())
        raise UserError(f"no MLflow experiment {experiment!r}; there are: {', '.join(names)}")
    if run_id:
        run = client.get_run(run_id)
        if run.info.experiment_id != exp.experiment_id:
            raise UserError(f"run {run_id} is not in experiment {experiment!r}")
        parent = record(run)
    else:
        found = store.runs(exp.experiment_id, {ROLE_TAG: "study"}, latest=True)
        if not found:
            raise UserError(f"experiment {experiment!r} has no finished study run")
        parent = found[0]
    register()
    with tempfile.TemporaryDirectory() as tmp:
        text = Path(client.download_artifacts(parent.run_id, "config.yaml", tmp)).read_text()
    config = OmegaConf.merge(OmegaConf.structured(Config), OmegaConf.create(text))
    children = store.runs(exp.experiment_id, {PARENT_TAG: parent.run_id}, finished=False)
    return RecordedStudy(
        store, exp.experiment_id, parent, config, {run.name: run for run in children}, text
    )
