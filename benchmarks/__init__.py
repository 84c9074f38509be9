"""Benchmarks: measurements to run by hand, not tests."""

import os
import subprocess
import sys
import time
from pathlib import Path


def progress(message: str) -> None:
    """Say on stderr what is being measured, so a long run visibly makes progress."""
    print(f"[benchmark] {message}", file=sys.stderr, flush=True)


def timed_study(folder: Path, experiment: str, device: str, overrides: list[str]) -> float:
    """Wall seconds of the real study command, run in `folder` and recording into its
    `mlflow.db` (and, for a search, the `optuna.db` beside it); exits if the study fails."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    command = [
        sys.executable,
        "-m",
        "sweeps.run",
        f"+experiment={experiment}",
        f"tracking.uri=sqlite:///{folder}/mlflow.db",
        "train.progress=false",
        "dataset.download=false",
        f"device={device}",
        *overrides,
    ]
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return seconds
