"""kind=suite: several studies from one command, one combined table at the end.

Each study is composed from its own experiment file plus the suite's `overrides` and the
overrides given on the command line (so `tracking.uri=...`, `device=...`, `seed=...` reach
every study), and runs through the kind registry, recording exactly as it would alone. The
suite records no run of its own, so it has no `rebuild`: each study is rebuilt by its name.
"""

import pandas as pd
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from sweeps.config import CONF_DIR, config_names
from sweeps.errors import ConfigError
from sweeps.kinds import run_study
from sweeps.tables import show


def command_line_overrides() -> list[str]:
    """The invocation's overrides, less the one that chose the suite itself."""
    if not HydraConfig.initialized():
        return []
    return [o for o in HydraConfig.get().overrides.task if not o.startswith("+experiment=")]


def compose_study(name: str, overrides: list[str]) -> DictConfig:
    experiments = config_names("experiment", exclude=("suite",))
    if name not in experiments:
        valid = ", ".join(experiments)
        raise ConfigError(f"suite.studies: unknown study {name!r}; valid: {valid}")
    overrides = [f"+experiment={name}", *overrides]
    if GlobalHydra.instance().is_initialized():
        return compose("config", overrides=overrides)
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("config", overrides=overrides)


def run(cfg: DictConfig) -> pd.DataFrame:
    """Every study of `suite.studies` in turn; returns their tables stacked, a `study` column
    first."""
    overrides = [*cfg.suite.overrides, *command_line_overrides()]
    configs = [compose_study(name, overrides) for name in cfg.suite.studies]
    tables = [run_study(study).assign(study=study.study) for study in configs]
    combined = pd.concat(tables, ignore_index=True)
    combined = combined[["study", *[c for c in combined.columns if c != "study"]]]
    show(f"suite ({len(configs)} studies)", combined)
    return combined
