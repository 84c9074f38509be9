"""MLflow's system metrics on a study's parent run, so a GPU run is tracked as a GPU run.

MLflow samples them from a thread (`SystemMetricsMonitor`): GPU utilisation and memory
through nvidia-ml-py, CPU, memory, disk and network through psutil, logged as `system/...`
every `MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL` seconds (MLflow's default 10). We start the
monitor by hand because sweeps records through `MlflowClient`, not `mlflow.start_run`, whose
`log_system_metrics` switch would do it.

`tracking.system_metrics`: `auto` samples on a CUDA device only (a CPU study's minute is
better spent training), `true` everywhere, `false` never.
"""

import logging
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)

SYSTEM_METRICS_TAG = "sweeps.system_metrics"


def wanted(setting: str, device: str) -> bool:
    """Whether to sample, from `tracking.system_metrics` and the device the study runs on."""
    setting = str(setting).lower()
    return setting == "true" or (setting == "auto" and device.startswith("cuda"))


@contextmanager
def monitored(on: bool, uri: str, run_id: str) -> Iterator[None]:
    """Sample system metrics into `run_id` while the block runs, when `on`."""
    if not on:
        yield
        return
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

    monitor = SystemMetricsMonitor(run_id, tracking_uri=uri)
    monitor.start()
    try:
        yield
    finally:
        monitor.finish()


def driver_version() -> str | None:
    """The NVIDIA driver's version, through NVML; None where there is none."""
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            version = pynvml.nvmlSystemGetDriverVersion()
        finally:
            pynvml.nvmlShutdown()
    except Exception as err:  # pynvml raises NVMLError subclasses, or ImportError
        log.warning("NVIDIA driver version unknown: %s", err)
        return None
    return version.decode() if isinstance(version, bytes) else str(version)
