"""kind=suite: several studies from one command, one combined table at the end.

Each study is composed from its own experiment file plus the suite's `overrides` and the
overrides given on the command line (so `tracking.uri=...`, `device=...`, `seed=...` reach
every study), and runs through the kind registry, recording exactly as it would alone. Studies
run side by side in `suite.workers` processes (`sweeps.lanes`), or here one after another with
`suite.workers=1`. A search, the longest study by far, starts first, so the other lanes work
through the rest meanwhile and all finish close together. The suite records no run of its
own, so it has no `rebuild`: each study is rebuilt by its name; and it neither checks the
store nor sets threads (`DELEGATES`): each study does, in the process that runs it.
"""

import pandas as pd
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from sweeps.config import compose_study, validate
from sweeps.kinds import run_study
from sweeps.lanes import lane_count, run_side_by_side
from sweeps.tables import show, trial_names

DELEGATES = True
SEARCH_ROWS = 5  # a search's best trials in the combined table; its trials.csv has them all


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
        first = sorted(range(len(configs)), key=lambda i: configs[i].search is None)
        done = run_side_by_side(run_study, [configs[i] for i in first], lanes)
        results = [done[first.index(i)] for i in range(len(configs))]
    else:
        results = [run_study(study) for study in configs]
    tables = [
        rows(t, study).assign(study=study.study) for t, study in zip(results, configs, strict=True)
    ]
    combined = pd.concat(tables, ignore_index=True)
    combined = combined[["study", *[c for c in combined.columns if c != "study"]]]
    show(f"suite ({len(configs)} studies)", combined)
    return combined


def rows(table: pd.DataFrame, study: DictConfig) -> pd.DataFrame:
    """A study's rows in the combined table: a search's best trials, each named as a variant,
    rather than all of them."""
    if study.search is None or table.empty:
        return table
    best = table.head(SEARCH_ROWS)
    named = best.drop(columns=["round", "trial", "state", "run_id"], errors="ignore")
    named.insert(0, "variant", trial_names(best))
    return named
