"""The device a study computes on, and the CPU threads torch uses on it."""

import os

import torch

from sweeps.config import DEVICES
from sweeps.errors import ConfigError
from sweeps.workers import LOCAL_WORKERS_ENV, cpu_cores


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


def local_workers(search_workers: int) -> int:
    """Workers of this study running on this machine: `search.workers` (set in the processes
    it starts too), or the jobs Hydra's joblib launcher runs at once."""
    from hydra.core.hydra_config import HydraConfig

    workers = max(search_workers, int(os.environ.get(LOCAL_WORKERS_ENV, "1")))
    if HydraConfig.initialized():
        launcher = HydraConfig.get().launcher
        if "joblib" in str(launcher.get("_target_", "")):
            jobs = launcher.get("n_jobs") or 1
            workers = max(workers, os.cpu_count() if jobs < 0 else jobs)
    return workers


def set_threads(setting: str, search_workers: int = 1) -> int:
    """torch's intra-op threads for this process; returns the number.

    torch starts one thread per core in every process, and its threads spin-wait: two
    processes on two cores each spinning two threads ran 5x slower than with one thread each
    (docs/DESIGN.md, "Threads"). `auto` gives each local worker an equal share of the cores
    this process may use, at least one; an OMP_NUM_THREADS set by the user wins over `auto`.
    """
    if setting == "auto":
        if os.environ.get("OMP_NUM_THREADS"):
            return torch.get_num_threads()
        threads = max(1, cpu_cores() // local_workers(search_workers))
    else:
        threads = int(setting)
    torch.set_num_threads(threads)
    return threads


def flush_denormals() -> bool:
    """Flush denormal floats to zero in this process's CPU arithmetic; returns whether the
    CPU can (x86 with SSE3 can).

    An x86 core takes many times longer over a float below 2^-126 than over any other. Adam's
    and Momentum's running averages decay by a constant factor every step wherever a weight's
    gradient is exactly zero, as it is for the weights of image pixels that are blank in a
    batch, and pass through that range on their way to zero, slowing the optimizer study's
    training by 5% (`python -m benchmarks.denormals`). A flushed value only moves a weight by
    far less than its last bit: every number the optimizer and weight-init studies recorded
    stayed the same (docs/DESIGN.md, "Denormal floats flushed to zero").

    `torch.set_flush_denormal` sets the calling thread only, and torch's intra-op threads
    take their floating-point mode from the thread that starts them, so this is called before
    the first tensor operation, as the threads are set.
    """
    return torch.set_flush_denormal(True)


def flushes_denormals() -> bool:
    """Whether this thread's arithmetic flushes denormals (what a run's tag records)."""
    return torch.tensor([1e-39]).mul(0.5).item() == 0.0
