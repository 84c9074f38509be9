"""Study kinds: every module of this package is one kind, registered by its file name.

A kind module `sweeps/kinds/NAME.py` has
- `run(cfg: DictConfig) -> pandas.DataFrame`: validate what only it knows, train or compute,
  record through `sweeps.recording`, print and return the study's table;
- `rebuild(study: sweeps.recording.RecordedStudy) -> (table, {file name: figure})`: the same
  table and figures from what the store holds, for `python -m sweeps.report`. (`suite` has
  none: it records nothing of its own, each of its studies is rebuilt on its own.)

A kind that only runs other studies (`suite`) sets `DELEGATES = True`: the store is checked
and the threads set by each study it runs, in the process that runs it, not for the kind.

An experiment picks its kind with `kind: NAME`; `+search=...` on a `train` study picks
`search`. Adding a kind is one new module here and one experiment file in conf/experiment/:
nothing else lists the kinds. Modules are imported only when their kind runs, and pandas and
the recording (numpy, the store's helpers) only once the config has passed `validate`, so a
bad value is reported without paying for them.
"""

import importlib
import pkgutil
from types import ModuleType
from typing import TYPE_CHECKING

from omegaconf import DictConfig

from sweeps.config import check_choice, validate
from sweeps.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd


def names() -> list[str]:
    """Every registered kind: the modules of this package."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def kind_of(cfg: DictConfig) -> str:
    """The kind that runs `cfg`: its `kind`, or `search` for a training study with `+search`."""
    if cfg.search is not None:
        if cfg.kind != "train":
            raise ConfigError(f"+search applies to training studies, not kind={cfg.kind!r}")
        return "search"
    if cfg.kind == "search":
        raise ConfigError("kind=search needs a search space: add +search=NAME (e.g. lr_wd)")
    return cfg.kind


def get(name: str) -> ModuleType:
    """The kind module `name`; an unknown name is an error listing the registered ones."""
    check_choice("kind", name, names())
    return importlib.import_module(f"{__name__}.{name}")


def run_study(cfg: DictConfig) -> "pd.DataFrame":
    """Run the study `cfg` describes with its kind; returns its table (also printed)."""
    validate(cfg)
    kind = get(kind_of(cfg))
    if getattr(kind, "DELEGATES", False):
        return kind.run(cfg)
    from sweeps.recording import check_tracking, tracking_uri

    check_tracking(tracking_uri(cfg.tracking.uri))
    from sweeps.device import flush_denormals, set_threads

    set_threads(str(cfg.train.threads), cfg.search.workers if cfg.search else 1)
    flush_denormals()
    return kind.run(cfg)
