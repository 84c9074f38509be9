"""What the dashboards read: MLflow's system metrics on a study's parent run, and the
Optuna dashboard `make optuna-ui` starts on a search's storage."""

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import optuna
import pytest
from helpers import runs_by_name

from benchmarks.ui_start import free_port, launch, stop
from sweeps.kinds import run_study
from sweeps.system_metrics import wanted

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("setting", "device", "on"),
    [
        ("auto", "cuda:0", True),
        ("auto", "cpu", False),
        ("True", "cpu", True),  # as Hydra hands `tracking.system_metrics=true` to a str field
        ("false", "cuda:0", False),
    ],
)
def test_system_metrics_are_on_for_gpus_by_default(setting: str, device: str, on: bool) -> None:
    assert wanted(setting, device) is on


def test_system_metrics_sample_cpu_and_memory_when_asked(
    make_cfg, tracking_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.2")
    run_study(
        make_cfg("+experiment=optimizers", "train.iterations=150", "tracking.system_metrics=true")
    )
    parent = runs_by_name(tracking_uri, "optimizers")["optimizers"]
    assert parent.data.tags["sweeps.system_metrics"] == "true"
    assert parent.data.metrics["system/cpu_utilization_percentage"] >= 0
    assert parent.data.metrics["system/system_memory_usage_megabytes"] > 0


def test_cpu_studies_sample_nothing_by_default(make_cfg, tracking_uri: str) -> None:
    run_study(make_cfg("+experiment=optimizers", "train.iterations=5"))
    parent = runs_by_name(tracking_uri, "optimizers")["optimizers"]
    assert parent.data.tags["sweeps.system_metrics"] == "false"
    assert not [key for key in parent.data.metrics if key.startswith("system/")]


def get_json(url: str) -> dict | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return json.load(response)
    except OSError:
        return None


def test_make_optuna_ui_serves_the_search_storage(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(study_name="watched", storage=storage, direction="maximize")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    port = free_port()
    venv = Path(sys.prefix)
    # this interpreter's environment, taken as installed (-o: never rebuild the stamp)
    command = ["make", "-s", "-C", str(REPO), "-o", f"{venv}/.installed", f"VENV={venv}"]
    proc = launch(
        [*command, "optuna-ui", f"STORAGE={storage}", f"OPTUNA_PORT={port}"],
        tmp_path,
        None,
        tmp_path / "dashboard.log",
    )
    try:
        deadline = time.monotonic() + 60
        while (found := get_json(f"http://127.0.0.1:{port}/api/studies")) is None:
            assert proc.poll() is None, (tmp_path / "dashboard.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "optuna-dashboard did not answer in 60 s"
            time.sleep(0.3)
    finally:
        stop(proc)
    assert [s["study_name"] for s in found["study_summaries"]] == ["watched"]
    missing = subprocess.run(
        [*command, "optuna-ui", f"STORAGE=sqlite:///{tmp_path / 'none.db'}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode != 0 and "run a search first" in missing.stdout
