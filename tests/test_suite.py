"""The suite: several studies, one command, one combined table."""

from pathlib import Path

import pytest
from mlflow import MlflowClient

from sweeps.errors import ConfigError
from sweeps.kinds import run_study


def suite_cfg(make_cfg, studies: list[str], tracking_uri: str, data_cache: Path):
    cfg = make_cfg("+experiment=suite")
    cfg.suite.studies = studies
    # What a command line would pass on to every study.
    cfg.suite.overrides = [
        f"tracking.uri={tracking_uri}",
        "dataset.download=false",
        f"dataset.cache_dir={data_cache}",
        "train.progress=false",
        "device=cpu",
        "train.iterations=5",
    ]
    return cfg


def test_suite_runs_each_study_and_combines_the_tables(
    make_cfg, tracking_uri: str, data_cache: Path
) -> None:
    cfg = suite_cfg(make_cfg, ["optimizers", "optimizer_paths"], tracking_uri, data_cache)
    table = run_study(cfg)
    assert list(table.columns[:2]) == ["study", "variant"]
    assert table.study.value_counts().to_dict() == {"optimizers": 5, "optimizer_paths": 4}
    client = MlflowClient(tracking_uri)
    for name in ("optimizers", "optimizer_paths"):
        assert client.get_experiment_by_name(name) is not None
    sgd = table[(table.study == "optimizers") & (table.variant == "sgd")]
    assert sgd.final_loss.notna().all()


def test_default_suite_lists_every_chapter6_study(make_cfg) -> None:
    studies = set(make_cfg("+experiment=suite").suite.studies)
    assert studies == {
        "optimizers",
        "optimizer_paths",
        "weight_init",
        "activations",
        "batchnorm",
        "weight_decay",
        "dropout",
    }


def test_unknown_study_is_named_with_the_valid_ones(
    make_cfg, tracking_uri: str, data_cache: Path
) -> None:
    cfg = suite_cfg(make_cfg, ["optimizers", "lenet"], tracking_uri, data_cache)
    with pytest.raises(ConfigError, match="unknown study 'lenet'.*batchnorm"):
        run_study(cfg)
    assert MlflowClient(tracking_uri).get_experiment_by_name("optimizers") is None
