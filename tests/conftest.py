"""Shared fixtures: Hydra compose API on the real conf/, and a tmp MLflow store."""

import os
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from sweeps.config import register
from sweeps.data import Dataset
from sweeps.stores import TEMPLATES_ENV
from tests.servers import mlflow_server, postgres, postgres_url  # noqa: F401

CONF = Path(__file__).resolve().parents[1] / "conf"
DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")
register()


@pytest.fixture(scope="session")
def data_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One dataset cache for the session, so the embedded set is parsed once."""
    return tmp_path_factory.mktemp("data-cache")


@pytest.fixture(scope="session", autouse=True)
def store_templates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Empty stores are copied from templates kept for the session, not in the user's cache
    (the commands the tests start inherit the variable)."""
    folder = tmp_path_factory.mktemp("store-templates")
    os.environ[TEMPLATES_ENV] = str(folder)
    return folder


@pytest.fixture
def tracking_uri(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


@pytest.fixture
def make_cfg(data_cache: Path, tracking_uri: str):
    """Compose conf/ with overrides, offline, into a tmp tracking store, no progress bar."""

    def make(*overrides: str) -> DictConfig:
        base = [
            "dataset.download=false",
            f"dataset.cache_dir={data_cache}",
            f"tracking.uri={tracking_uri}",
            "train.progress=false",
            "device=cpu",
        ]
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            return compose("config", overrides=[*base, *overrides])

    return make


@pytest.fixture
def debian_fashion() -> Path:
    """Debian's full Fashion-MNIST; CI installs it and sets SWEEPS_REQUIRE_FASHION_MNIST=1,
    so there a missing package fails instead of skipping."""
    if not DEBIAN_FASHION.is_dir():
        if os.environ.get("SWEEPS_REQUIRE_FASHION_MNIST") == "1":
            pytest.fail(f"{DEBIAN_FASHION} is missing but SWEEPS_REQUIRE_FASHION_MNIST=1")
        pytest.skip(f"{DEBIAN_FASHION} not installed (Debian package dataset-fashion-mnist)")
    return DEBIAN_FASHION


@pytest.fixture(scope="session")
def images() -> Dataset:
    """24 random 28x28 images in 10 classes, 16 to train on and 8 to score: enough for
    comparing populations with their members."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(24, 1, 28, 28, generator=g)
    y = torch.randint(0, 10, (24,), generator=g)
    return Dataset("synthetic", "test", False, x[:16], y[:16], x[16:], y[16:])
