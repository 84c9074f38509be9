"""What several test modules need: the real commands in a subprocess, and the runs a store
holds, grouped the ways the tests look them up."""

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import Run
from omegaconf import OmegaConf

from sweeps.recording import PARENT_ENV

ROOT = Path(__file__).resolve().parents[1]


def command(
    cwd: Path, *args: str, module: str = "sweeps.run", prelude: str = "", timeout: int = 300
) -> subprocess.CompletedProcess:
    """`python -m MODULE ARGS` run in `cwd`, isolated from the caller's MLflow settings and
    from any multirun parent; `prelude` runs first, in the same process, to make a run fail
    in ways no config value can."""
    if prelude:
        run = f'runpy.run_module("{module}", run_name="__main__", alter_sys=True)'
        head = ["-c", f"import runpy\n{prelude}\n{run}"]
    else:
        head = ["-m", module]
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", PARENT_ENV)}
    return subprocess.run(
        [sys.executable, *head, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start(command: list[str], cwd: Path, **popen: Any) -> subprocess.Popen:
    """`command` started in `cwd`, isolated from the caller's MLflow settings, its output
    piped; `popen` passes more to `subprocess.Popen` (`start_new_session=True`, ...)."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    return subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


def multirun(
    cwd: Path, data_cache: Path, *overrides: str, prelude: str = ""
) -> subprocess.CompletedProcess:
    """`python -m sweeps.run -m ...` offline with tiny budgets, its job folders under cwd."""
    return command(
        cwd,
        "-m",
        *overrides,
        "train.iterations=5",
        "train.progress=false",
        "device=cpu",
        "dataset.download=false",
        f"dataset.cache_dir={data_cache}",
        f"hydra.sweep.dir={cwd / 'sweep'}",
        prelude=prelude,
    )


def experiment_runs(uri: str, experiment: str, filter_string: str = "") -> list[Run]:
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"experiment {experiment!r} missing"
    return client.search_runs([exp.experiment_id], filter_string)


def runs_by_name(uri: str, experiment: str) -> dict[str, Run]:
    return {r.info.run_name: r for r in experiment_runs(uri, experiment)}


def runs_by_role(uri: str, experiment: str) -> dict[str, list[Run]]:
    """multirun / study / trial / variant (the runs without a role) -> runs."""
    roles: dict[str, list[Run]] = {"multirun": [], "study": [], "trial": [], "variant": []}
    for run in experiment_runs(uri, experiment):
        roles[run.data.tags.get("sweeps.role", "variant")].append(run)
    return roles


def model_config(name: str, **overrides: Any) -> dict[str, Any]:
    """conf/model/NAME.yaml with BatchNorm and dropout switched on where the network has them,
    so tests exercise every kind of per-member state."""
    model = OmegaConf.to_container(OmegaConf.load(ROOT / "conf" / "model" / f"{name}.yaml"))
    if "batchnorm" in model:
        model["batchnorm"] = True
    if "dropout" in model and not model["dropout"]:
        model["dropout"] = 0.2
    return {**model, **overrides}
