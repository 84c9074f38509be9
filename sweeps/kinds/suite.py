"""kind=suite: several studies from one command, one combined table at the end.

Each study is composed from its own experiment file plus the suite's `overrides` and the
overrides given on the command line (so `tracking.uri=...`, `device=...`, `seed=...` reach
every study), and runs through the kind registry, recording exactly as it would alone. The
suite records no run of its own, so it has no `rebuild`: each study is rebuilt by its name.
"""

import pandas as pd
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from sweeps.config import compose_study
from sweeps.kinds import run_study
from sweeps.tables import show


def command_line_overrides() -> list[str]:
    """The invocation's overrides, less the one that chose the suite itself."""
    if not HydraConfig.initialized():
        return []
    return [o for o in HydraConfig.get().overrides.task if not o.startswith("+experiment=")]


def run(cfg: DictConfig) -> pd.DataFrame:
    """Every study of `suite.studies` in turn; returns their tables stacked, a `study` column
    first."""
    overrides = [*cfg.suite.overrides, *command_line_overrides()]
    configs = [compose_study(name, overrides, "suite.studies") for name in cfg.suite.studies]
    tables = [run_study(study).assign(study=study.study) for study in configs]
    combined = pd.concat(tables, ignore_index=True)
    combined = combined[["study", *[c for c in combined.columns if c != "study"]]]
    show(f"suite ({len(configs)} studies)", combined)
    return combined
