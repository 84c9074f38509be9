"""The machine a study runs on: device choice and the provenance tags every run carries."""

import subprocess
import sys
from pathlib import Path

import torch

from sweeps.config import DEVICES
from sweeps.errors import ConfigError


def resolve_device(requested: str) -> torch.device:
    """`auto` picks CUDA when present; asking for CUDA without it is an error, not a fallback."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"device=cuda requested but CUDA is not available here; choose one of: "
            f"{', '.join(d for d in DEVICES if d != 'cuda')}"
        )
    return torch.device(requested)


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


def provenance_tags(device: torch.device) -> dict[str, str]:
    tags = {
        "device": str(device),
        "device.name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch.version": torch.__version__,
        "cuda.version": str(torch.version.cuda),
        "mlflow.source.name": "sweeps.run",
        "mlflow.source.type": "LOCAL",
        "sweeps.command": " ".join(["python -m sweeps.run", *sys.argv[1:]]),
    }
    commit = git_commit()
    if commit:
        tags["mlflow.source.git.commit"] = commit
    return tags
