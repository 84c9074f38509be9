"""The device a study computes on."""

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
