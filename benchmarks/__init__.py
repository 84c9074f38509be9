"""Benchmarks: measurements to run by hand, not tests."""

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path


def progress(message: str) -> None:
    """Say on stderr what is being measured, so a long run visibly makes progress."""
    print(f"[benchmark] {message}", file=sys.stderr, flush=True)


def study_arguments(
    folder: Path, experiment: str, device: str, overrides: Sequence[str]
) -> list[str]:
    """The study command's Hydra arguments as every benchmark runs it: recording into a fresh
    `mlflow.db` in `folder`, without progress bars or downloads (the embedded digits)."""
    return [
        f"+experiment={experiment}",
        f"tracking.uri=sqlite:///{folder}/mlflow.db",
        "train.progress=false",
        "dataset.download=false",
        f"device={device}",
        *overrides,
    ]


def arms_parser(description: str) -> argparse.ArgumentParser:
    """The options of a benchmark that runs studies in alternating arms: which studies, how
    many runs per arm, a JSON copy, and Hydra overrides for every run."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--experiments", default="optimizers", help="comma-separated studies")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", help="also write every number to this JSON file")
    parser.add_argument("--overrides", nargs="*", default=[], help="Hydra overrides for all")
    return parser


def timed_study(folder: Path, experiment: str, device: str, overrides: list[str]) -> float:
    """Wall seconds of the real study command, run in `folder` and recording into its
    `mlflow.db` (and, for a search, the `optuna.db` beside it); exits if the study fails."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    command = [
        sys.executable,
        "-m",
        "sweeps.run",
        *study_arguments(folder, experiment, device, overrides),
    ]
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return seconds
