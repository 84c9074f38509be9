"""MLflow's system metrics on a study's parent run, so a GPU run is tracked as a GPU run.

MLflow samples them from a thread (`SystemMetricsMonitor`): GPU utilisation and memory
through nvidia-ml-py, CPU, memory, disk and network through psutil, logged as `system/...`
every `MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL` seconds (MLflow's default 10). We start the
monitor by hand because sweeps records through `MlflowClient`, not `mlflow.start_run`, whose
`log_system_metrics` switch would do it.

`sweeps.recording.monitored` runs the monitor (only that module imports mlflow).
`tracking.system_metrics`: `auto` samples on a CUDA device only (a CPU study's minute is
better spent training), `true` everywhere, `false` never.
"""

import logging

log = logging.getLogger(__name__)

SYSTEM_METRICS_TAG = "sweeps.system_metrics"


def wanted(setting: str, device: str) -> bool:
    """Whether to sample, from `tracking.system_metrics` and the device the study runs on."""
    setting = str(setting).lower()
    return setting == "true" or (setting == "auto" and device.startswith("cuda"))


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
