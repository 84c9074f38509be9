"""The optimizer-path study on f(x, y) = x^2/20 + y^2."""

import numpy as np
import pytest
from mlflow import MlflowClient

from sweeps.kinds import run_study
from sweeps.kinds.optimizer_paths import optimizer_path
from sweeps.plan import expand_variants


def paths(make_cfg) -> dict[str, np.ndarray]:
    return {
        v.name: optimizer_path(v, [-7.0, 2.0], 30)
        for v in expand_variants(make_cfg("+experiment=optimizer_paths"))
    }


def test_first_sgd_step_by_hand(make_cfg) -> None:
    sgd = paths(make_cfg)["SGD"]
    assert sgd[1] == pytest.approx([-7 + 0.95 * 0.7, 2 - 0.95 * 4])


def test_textbook_shapes_of_the_paths(make_cfg) -> None:
    p = paths(make_cfg)
    assert set(p) == {"SGD", "Momentum", "AdaGrad", "Adam"}
    # SGD zig-zags across the valley: y changes sign at every step.
    assert np.all(np.sign(p["SGD"][1:10, 1]) != np.sign(p["SGD"][:9, 1]))
    # AdaGrad damps y at once and ends nearest the minimum.
    assert abs(p["AdaGrad"][-1, 1]) < 1e-3
    ends = {name: np.hypot(*path[-1]) for name, path in p.items()}
    assert min(ends, key=ends.get) == "AdaGrad"
    assert all(e < 1.0 for e in ends.values())


def test_paths_study_records_runs(make_cfg, tracking_uri: str) -> None:
    table = run_study(make_cfg("+experiment=optimizer_paths"))
    assert list(table.variant) == ["SGD", "Momentum", "AdaGrad", "Adam"]
    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name("optimizer_paths")
    runs = {r.info.run_name: r for r in client.search_runs([exp.experiment_id])}
    assert len(client.get_metric_history(runs["Adam"].info.run_id, "x")) == 31
    artifacts = {a.path for a in client.list_artifacts(runs["optimizer_paths"].info.run_id)}
    assert {"optimizer_paths.png", "summary.csv", "config.yaml"} <= artifacts
