"""kind=suite: several studies from one command, one combined table at the end.

Each study is composed from its own experiment file plus the suite's `overrides` and the
overrides given on the command line (so `tracking.uri=...`, `device=...`, `seed=...` reach
every study), and runs through the kind registry, recording exactly as it would alone. Studies
run side by side in `suite.workers` processes (`sweeps.lanes`), or here one after another with
`suite.workers=1`. The suite records no run of its own, so it has no `rebuild`: each study is
rebuilt by its name; and it neither checks the store nor sets threads (`DELEGATES`): each
study does, in the process that runs it.
"""

import pandas as pd
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from sweeps.config import compose_study, validate
from sweeps.kinds import run_study
from sweeps.lanes import lane_count, run_side_by_side
from sweeps.tables import show

DELEGATES = True


def command_line_overrides() -> list[str]:
    """The invocation's overrides, less the one that chose the suite itself."""
    if not HydraConfig.initialized():
        return []
    return [o for o in HydraConfig.get().overrides.task if not o.startswith("+experiment=")]


def run(cfg: DictConfig) -> pd.DataFrame:
    """Every study of `suite.studies`, side by side or in turn; returns their tables stacked,
    a `study` column first, in the order of `suite.studies`."""
    overrides = [*cfg.suite.overrides, *command_line_overrides()]
    configs = [compose_study(name, overrides, "suite.studies") for name in cfg.suite.studies]
    for study in configs:
        validate(study)
    lanes = lane_count(str(cfg.suite.workers), {c.device for c in configs}, len(configs))
    if lanes > 1:
        results = run_side_by_side(run_study, configs, lanes)
    else:
        results = [run_study(study) for study in configs]
    tables = [t.assign(study=study.study) for t, study in zip(results, configs, strict=True)]
    combined = pd.concat(tables, ignore_index=True)
    combined = combined[["study", *[c for c in combined.columns if c != "study"]]]
    show(f"suite ({len(configs)} studies)", combined)
    return combined
