"""The activation-histogram study: the textbook's observations, per layer."""

import pytest
from mlflow import MlflowClient

from sweeps.kinds import run_study
from sweeps.kinds.activations import layer_outputs, layer_stats
from sweeps.plan import expand_variants


@pytest.fixture
def stats(make_cfg) -> dict[str, object]:
    variants = expand_variants(make_cfg("+experiment=activations"))
    return {
        v.name: layer_stats(v.model["activation"], layer_outputs(v, 1000, 100, 5)) for v in variants
    }


def test_sigmoid_std1_saturates_std001_collapses_xavier_spreads(stats) -> None:
    assert (stats["std=1 sigmoid"].saturated > 0.3).all()
    assert (stats["std=0.01 sigmoid"]["std"] < 0.03).all()
    xavier = stats["xavier sigmoid"]
    assert (xavier["std"] > 0.05).all() and (xavier.saturated < 0.05).all()


def test_relu_keeps_its_spread_with_he_not_with_xavier(stats) -> None:
    he, xavier = stats["he relu"]["std"], stats["xavier relu"]["std"]
    assert 0.3 < he.iloc[-1] / he.iloc[0] < 3
    assert xavier.iloc[-1] < 0.5 * xavier.iloc[0]


def test_activations_study_records_metrics_and_a_figure_per_activation(
    make_cfg, tracking_uri: str
) -> None:
    table = run_study(make_cfg("+experiment=activations", "probe.samples=200"))
    assert len(table) == 12
    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name("activations")
    runs = {r.info.run_name: r for r in client.search_runs([exp.experiment_id])}
    child = runs["he tanh"]
    assert child.data.params["model.init"] == "he"
    history = client.get_metric_history(child.info.run_id, "layer/saturated")
    assert sorted(m.step for m in history) == [1, 2, 3, 4, 5]
    artifacts = {a.path for a in client.list_artifacts(runs["activations"].info.run_id)}
    assert {f"activations_{a}.png" for a in ("sigmoid", "tanh", "relu")} <= artifacts
