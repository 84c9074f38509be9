"""MLflow recording: one parent run per invocation, one nested child run per variant.

Everything goes through `MlflowClient` with explicit run ids (no fluent global state), and
a whole metric series is handed to one `log_batch` call (MLflow splits it into batches of
its size limits): one call per point costs tens of seconds per study against SQLite.
"""

import os
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sweeps.errors import UserError

if TYPE_CHECKING:
    import numpy as np

PARENT_TAG = "mlflow.parentRunId"
PARAM_VALUE_LIMIT = 6000


def tracking_uri(configured: str | None) -> str:
    """`tracking.uri`, else $MLFLOW_TRACKING_URI, else MLflow 3's default beside the cwd."""
    return (
        configured
        or os.environ.get("MLFLOW_TRACKING_URI")
        or (f"sqlite:///{Path.cwd() / 'mlflow.db'}")
    )


def artifact_root(uri: str) -> str | None:
    """For a SQLite store, `mlruns/` beside the database file (MLflow's own default layout,
    which otherwise would put artifacts under whatever directory the command ran in)."""
    if uri.startswith("sqlite:///"):
        return (Path(uri.removeprefix("sqlite:///")).resolve().parent / "mlruns").as_uri()
    return None


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config -> dotted keys (lists stay values), as MLflow params want them."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def metric_history(client: Any, run_id: str, key: str) -> "np.ndarray":
    """A run's series `key`, ordered by step: what reports redraw curves from."""
    import numpy as np

    points = sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)
    return np.array([m.value for m in points])


class Recorder:
    """Opens, fills and closes the runs of one study invocation.

    Every run it opens is tracked until closed, so `abort` can mark what is left FAILED (or
    KILLED on Ctrl-C) and no run stays RUNNING after an error.
    """

    def __init__(self, uri: str, experiment: str) -> None:
        from mlflow import MlflowClient

        self.uri = uri
        self.client = MlflowClient(tracking_uri=uri)
        found = self.client.get_experiment_by_name(experiment)
        if found is None:
            self.experiment_id = self.client.create_experiment(
                experiment, artifact_location=artifact_root(uri)
            )
        elif found.lifecycle_stage == "deleted":
            raise UserError(
                f"MLflow experiment {experiment!r} is deleted in {uri}; restore it "
                f"(mlflow experiments restore --experiment-id {found.experiment_id}) or pick "
                f"another name with tracking.experiment=NAME"
            )
        else:
            self.experiment_id = found.experiment_id
        self.open: list[str] = []

    def start(
        self,
        name: str,
        params: Mapping[str, Any],
        tags: Mapping[str, Any],
        parent: str | None = None,
    ) -> str:
        all_tags = dict(tags) | ({PARENT_TAG: parent} if parent else {})
        run = self.client.create_run(
            self.experiment_id, run_name=name, tags={k: str(v) for k, v in all_tags.items()}
        )
        run_id = run.info.run_id
        self.open.append(run_id)
        self.log_params(run_id, params)
        return run_id

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)[:PARAM_VALUE_LIMIT]) for k, v in params.items()]
        self.client.log_batch(run_id, params=items)

    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_metrics(self, run_id: str, points: Iterable[tuple[str, float, int]]) -> None:
        """(key, value, step) points, all in one `log_batch` call."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(key, float(value), now, int(step)) for key, value, step in points]
        self.client.log_batch(run_id, metrics=metrics)

    def log_text(self, run_id: str, text: str, path: str) -> None:
        self.client.log_text(run_id, text, path)

    def log_figure(self, run_id: str, figure: Any, path: str) -> None:
        self.client.log_figure(run_id, figure, path)

    def finish(self, run_id: str, status: str = "FINISHED") -> None:
        self.client.set_terminated(run_id, status=status)
        self.open.remove(run_id)

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
