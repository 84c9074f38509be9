"""Optuna's side of a search: which Optuna study, its storage, sampler, pruner, and which
trials count.

Optuna 5 is used directly through ask/tell (docs/DESIGN.md says why not
hydra-optuna-sweeper). A study lives in `search.storage` under `search.study_name`, so the
same command resumes it, and any number of workers share it (`sweeps.trial_pool`):
`search.n_trials` counts the trials with results over every invocation and worker.
"""

import contextlib
import json
import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from omegaconf import DictConfig, OmegaConf
from optuna.trial import TrialState

from sweeps.config import SearchConfig, check_choice, check_positive, flatten
from sweeps.errors import ConfigError, UserError
from sweeps.space import Space
from sweeps.stores import check_writable, create_sqlite, is_server, lock, sqlite_path

log = logging.getLogger(__name__)

SAMPLERS = ("random", "tpe", "qmc", "gp")
PRUNERS = ("none", "median", "successive_halving", "hyperband")
OBJECTIVE = "sweeps.objective"


def validate_search(search: SearchConfig, epochs: int | None) -> None:
    check_choice("search.sampler", search.sampler, SAMPLERS)
    check_choice("search.pruner", search.pruner, PRUNERS)
    for key in ("n_trials", "batch", "rounds", "workers", "heartbeat", "grace"):
        check_positive(f"search.{key}", getattr(search, key))
    if search.grace <= search.heartbeat:
        raise ConfigError(
            f"search.grace={search.grace} must exceed search.heartbeat={search.heartbeat}: "
            "a live worker's trials would be taken over between two beats"
        )
    if not 0 < search.top <= 1:
        raise ConfigError(f"search.top={search.top} must be in (0, 1]")
    if search.sampler in ("tpe", "gp") and search.batch >= search.n_trials:
        log.warning(
            "search.batch=%d asks every trial before any result is known, so the %s sampler "
            "can only sample at random; set search.batch smaller (e.g. 10) to let later "
            "trials learn from earlier ones",
            search.batch,
            search.sampler,
        )
    if search.pruner != "none" and search.curves is False:
        raise ConfigError(
            f"search.pruner={search.pruner} judges the curves that search.curves=false turns "
            "off: drop search.curves=false or set search.pruner=none"
        )
    if search.pruner != "none" and epochs is None:
        raise ConfigError(
            f"search.pruner={search.pruner} judges trials each epoch: set train.epochs"
        )


def objective_of(cfg: DictConfig, space: Space) -> dict[str, Any]:
    """What makes trials comparable: a study keeps these from its first trial on."""
    from optuna.distributions import distribution_to_json

    c = OmegaConf.to_container(cfg, resolve=True)
    return {
        "dataset": {
            k: c["dataset"][k] for k in ("name", "train_size", "val_fraction", "split_seed")
        },
        "model": c["model"],
        "optimizer": c["optimizer"],
        "train": {
            k: c["train"][k]
            for k in ("iterations", "epochs", "batch_size", "shared_batches", "amp")
        },
        "seed": c["seed"],
        "space": {key: distribution_to_json(dist) for key, dist in space.items()},
    }


# Command-line overrides that leave what a trial computes unchanged: changing them resumes
# the same study (more trials, another store, another device).
SAME_STUDY = (
    "experiment=",
    "search=",
    "search.n_trials=",
    "search.batch=",
    "search.storage=",
    "search.retrain=",
    "search.workers=",
    "search.heartbeat=",
    "search.grace=",
    "search.curves=",
    "train.threads=",
    "tracking.",
    "device=",
    "train.progress=",
    "train.max_members=",
    "train.eval_batch_size=",
    "dataset.download",
    "dataset.cache_dir=",
    "dataset.root=",
    "dataset.strict=",
    "hydra.",
)


def default_study_name(cfg: DictConfig) -> str:
    """The study's name, plus the command line's other overrides: rerunning a command
    resumes its own Optuna study, and the jobs of a multirun over search settings
    (`-m search.sampler=random,tpe`) each get theirs instead of sharing the first's."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return cfg.study
    return study_name(cfg.study, HydraConfig.get().overrides.task)


def study_name(study: str, overrides: Sequence[str]) -> str:
    """The Optuna study a command with `overrides` searches: `study[OVERRIDES]`, less those
    that leave what a trial computes unchanged (`SAME_STUDY`)."""
    kept = sorted(o for o in overrides if not o.lstrip("+~").startswith(SAME_STUDY))
    return f"{study}[{','.join(kept)}]" if kept else study


def round_name(base: str, round_: int) -> str:
    """The Optuna study of round `round_` of the search `base`."""
    return base if round_ == 1 else f"{base}.round{round_}"


def best_params(study: optuna.Study, top: float) -> list[dict[str, Any]]:
    """The params of the best `top` fraction of a round's complete trials (at least one)."""
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not done:
        raise UserError(
            f"round {study.study_name!r} has no complete trial (all pruned, diverged or "
            "failed), so there is nothing to narrow the next round's ranges to"
        )
    done = sorted(done, key=lambda t: t.value, reverse=True)
    return [t.params for t in done[: max(1, int(np.ceil(len(done) * top)))]]


def storage_url(configured: str | None, tracking: str) -> str:
    """`search.storage`, else `optuna.db` beside a SQLite MLflow store (or in the cwd)."""
    if configured:
        return configured
    folder = Path.cwd()
    if tracking.startswith("sqlite:///"):
        folder = Path(tracking.removeprefix("sqlite:///")).resolve().parent
    return f"sqlite:///{folder / 'optuna.db'}"


def _sqlite_wal(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _create_rdb(side_url: str) -> None:
    from optuna.storages import RDBStorage

    RDBStorage(side_url).engine.dispose()


def open_storage(url: str) -> Any:
    """An RDB URL (`sqlite:///...`, `postgresql://...`) or a journal file path, created
    safely when several workers start at once (`sweeps.stores`).

    SQLite runs in WAL mode with normal syncing: each epoch's `trial.report` is a
    transaction, and full syncing makes each cost several times more (`python -m
    benchmarks.stores`; docs/DESIGN.md, "Optuna's SQLite storage"); WAL also lets a dashboard
    read while trials are written. Commits survive a crash of the process; only a power loss
    may drop the last.
    """
    if "://" not in url:
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        check_writable(Path(url).resolve().parent, f"search.storage={url}")
        return JournalStorage(JournalFileBackend(url))
    from optuna.storages import RDBStorage

    if sqlite_path(url) is not None:
        create_sqlite(url, _create_rdb, "search.storage")
    try:
        with lock(url, "optuna-schema") if is_server(url) else contextlib.nullcontext():
            storage = RDBStorage(url)
    except UserError:
        raise
    except Exception as err:  # SQLAlchemy and drivers raise many types; say which URL failed
        raise ConfigError(f"search.storage={url!r} cannot be opened: {err}") from err
    if url.startswith("sqlite:"):
        import sqlalchemy

        sqlalchemy.event.listen(storage.engine, "connect", _sqlite_wal)
        storage.engine.dispose()  # reconnect with the pragmas
    return storage


def close_storage(storage: Any) -> None:
    """Close an RDB storage's connections now rather than at the process's exit, where Python
    does not promise to finalize them: SQLite then folds its write-ahead log back into the
    database file, so the file alone holds every trial."""
    engine = getattr(storage, "engine", None)
    if engine is not None:
        engine.dispose()


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    with warnings.catch_warnings():  # chosen by name in the config: no need to say so again
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if name == "qmc":
            return optuna.samplers.QMCSampler(seed=seed, scramble=True)
        if name == "gp":
            return optuna.samplers.GPSampler(seed=seed)
    return optuna.samplers.RandomSampler(seed=seed)


def make_pruner(name: str, epochs: int | None) -> optuna.pruners.BasePruner:
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)
    if name == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs or "auto")
    return optuna.pruners.NopPruner()


def open_study(storage: Any, name: str, search: SearchConfig, epochs: int | None) -> optuna.Study:
    """Create or resume the study; its sampler is set when this worker joins it
    (`sweeps.trial_pool.TrialPool.running`)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        return optuna.create_study(
            storage=storage,
            study_name=name,
            direction="maximize",
            load_if_exists=True,
            pruner=make_pruner(search.pruner, epochs),
        )
    except optuna.exceptions.DuplicatedStudyError:  # another worker created it just now
        return optuna.load_study(
            storage=storage, study_name=name, pruner=make_pruner(search.pruner, epochs)
        )


def check_resumable(study: optuna.Study, objective: dict[str, Any]) -> None:
    """A study keeps the settings its first trials ran with (data, model, training, space);
    resuming it with others would mix trials that are not comparable, so that is an error."""
    objective = json.loads(json.dumps(objective))
    recorded = study.user_attrs.get(OBJECTIVE)
    if recorded is None:
        study.set_user_attr(OBJECTIVE, objective)
        return
    before, now = flatten(recorded), flatten(objective)
    changed = [
        f"{key}: {before.get(key)!r} -> {now.get(key)!r}"
        for key in sorted(before.keys() | now.keys())
        if before.get(key) != now.get(key)
    ]
    if changed:
        raise ConfigError(
            f"Optuna study {study.study_name!r} already holds trials run with other settings "
            f"({'; '.join(changed)}). Resume it with its own settings, or start a new study "
            "with search.study_name=NAME"
        )
