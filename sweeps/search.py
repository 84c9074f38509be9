"""kind=train with `+search=NAME`: the textbook's hyperparameter search (ch. 6.5) on Optuna.

Never tune on test data: trials train on the training part of a validation split and are
judged on validation accuracy; the test set is loaded but kept out of the search (it is not
in the dataset the trials see). Trials are asked in batches of `search.batch` and trained
together as populations; each epoch every live trial reports its validation accuracy, and
a pruner may stop it (its weights freeze). `search.rounds` repeats the search with every
range narrowed to the span of the previous round's best trials. At the end the best
configuration is retrained on train+validation and scored once on test.
"""

import logging
from typing import Any

import numpy as np
import optuna
import pandas as pd
from omegaconf import DictConfig, OmegaConf
from optuna.trial import TrialState

from sweeps.data import Dataset
from sweeps.errors import ConfigError, UserError
from sweeps.optuna_study import (
    check_resumable,
    counts,
    interrupt,
    open_storage,
    open_study,
    prepare_resume,
    storage_url,
    validate_search,
)
from sweeps.plan import Variant, build_variants, group_by_architecture
from sweeps.report import format_table
from sweeps.runtime import provenance_tags, resolve_device
from sweeps.search_report import search_outputs
from sweeps.space import Space, describe, narrow, parse_space
from sweeps.study import check_shapes, child_metrics, dataset_tags, load_data, start_parent
from sweeps.tracking import Recorder, tracking_uri
from sweeps.train import train_variants

log = logging.getLogger(__name__)

SHOWN = 20  # rows of the trials table printed to the console; the CSV has all
TESTED = "sweeps.tested"


def trial_spec(params: dict[str, Any], name: str) -> DictConfig:
    """A trial's sampled values (dotted keys) as a variant spec."""
    spec = OmegaConf.create({"name": name})
    for key, value in params.items():
        OmegaConf.update(spec, key, value.item() if isinstance(value, np.generic) else value)
    return spec


def check_space(cfg: DictConfig, space: Space) -> None:
    """Every bound and choice must make a valid variant, before any run is opened."""
    specs = {}
    for key, dist in space.items():
        values = getattr(dist, "choices", None) or (dist.low, dist.high)
        for i, value in enumerate(values):
            specs[f"{key}#{i}"] = trial_spec({key: value}, f"{key}={value}")
    try:
        build_variants(cfg, specs)
    except ConfigError as err:
        raise ConfigError(f"search.space: {err}") from err


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
    resumes its own study, and the jobs of a multirun over search settings
    (`-m search.sampler=random,tpe`) each get theirs instead of sharing the first's."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return cfg.study
    overrides = sorted(
        o for o in HydraConfig.get().overrides.task if not o.lstrip("+~").startswith(SAME_STUDY)
    )
    return f"{cfg.study}[{','.join(overrides)}]" if overrides else cfg.study


def round_name(base: str, round_: int) -> str:
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


class Search:
    """One invocation: the open MLflow runs, the data the trials see, the config."""

    def __init__(
        self,
        cfg: DictConfig,
        name: str,
        recorder: Recorder,
        parent: str,
        data: Dataset,
        tags: dict[str, Any],
    ) -> None:
        self.cfg = cfg
        self.name = name
        self.recorder = recorder
        self.parent = parent
        self.data = data
        self.tags = tags
        self.pruning = cfg.search.pruner != "none"

    def run_round(self, study: optuna.Study, space: Space, round_: int) -> int:
        """Ask, train and tell until the round has `n_trials` finished trials; returns how
        many this invocation trained."""
        search = self.cfg.search
        remaining = search.n_trials - prepare_resume(study)
        trained = 0
        while remaining > 0:
            n = min(search.batch, remaining)
            trials: list[optuna.Trial] = []
            told: set[int] = set()
            try:
                trials.extend(study.ask(space) for _ in range(n))
                self.train_batch(study, trials, round_, told)
            except BaseException:
                interrupt(study, [t for t in trials if t.number not in told])
                raise
            remaining -= n
            trained += n
            complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if complete:
                best = max(complete, key=lambda t: t.value)
                log.info(
                    "%s: %d of %d trials done; best val/acc so far %.4f (trial %d)",
                    study.study_name,
                    search.n_trials - remaining,
                    search.n_trials,
                    best.value,
                    best.number,
                )
        return trained

    def train_batch(
        self, study: optuna.Study, trials: list[optuna.Trial], round_: int, told: set[int]
    ) -> None:
        prefix = "" if round_ == 1 else f"r{round_}-"
        specs = {
            f"{prefix}trial-{t.number}": trial_spec(t.params, f"{prefix}trial-{t.number}")
            for t in trials
        }
        variants = build_variants(self.cfg, specs)
        by_name = dict(zip((v.name for v in variants), trials, strict=True))
        for group in group_by_architecture(variants):
            self.train_group(study, group, [by_name[v.name] for v in group], round_, told)

    def train_group(
        self,
        study: optuna.Study,
        group: list[Variant],
        trials: list[optuna.Trial],
        round_: int,
        told: set[int],
    ) -> None:
        cfg, recorder = self.cfg, self.recorder
        tags = self.tags | {
            "sweeps.role": "trial",
            "sweeps.search": self.name,
            "optuna.study": study.study_name,
            "search.round": round_,
        }
        children = [
            recorder.start(
                v.name,
                v.params() | t.params,
                tags | {"optuna.trial_number": t.number, "optuna.state": "RUNNING"},
                parent=self.parent,
            )
            for v, t in zip(group, trials, strict=True)
        ]
        pruned_at = np.zeros(len(group), dtype=int)
        reported: list[set[int]] = [set() for _ in group]

        def on_epoch(ids: np.ndarray, epoch: int, train_acc, val_acc) -> np.ndarray:
            stop = np.zeros(len(ids), dtype=bool)
            for j, i in enumerate(ids):
                if pruned_at[i]:  # a retry after running out of memory replays epochs
                    stop[j] = epoch >= pruned_at[i]
                    continue
                if epoch in reported[i]:
                    continue
                reported[i].add(epoch)
                trials[i].report(float(val_acc[j]), epoch)
                if self.pruning and trials[i].should_prune():
                    pruned_at[i] = stop[j] = epoch
            return stop

        desc = f"{study.study_name} trials {trials[0].number}-{trials[-1].number}"
        result = train_variants(group, self.data, cfg.train, cfg.seed, desc, on_epoch)
        for k, (trial, child) in enumerate(zip(trials, children, strict=True)):
            epochs = int(pruned_at[k]) or None
            recorder.log_metrics(child, child_metrics(result, k, "val", epochs))
            if result.diverged_at[k] >= 0:
                state, status = TrialState.FAIL, {"status": "diverged"}
                status["diverged_at"] = int(result.diverged_at[k])
                study.tell(trial, state=state)
            elif epochs:
                state, status = TrialState.PRUNED, {"status": "pruned", "pruned_at": epochs}
                study.tell(trial, state=state)
            else:
                state, status = TrialState.COMPLETE, {"status": "ok"}
                study.tell(trial, float(result.test_acc[k]))
            told.add(trial.number)
            recorder.set_tags(child, status | {"optuna.state": state.name})
            recorder.finish(child)

    def test_once(
        self, study: optuna.Study, best: pd.Series, full: Dataset, space: Space
    ) -> tuple[dict[str, float], bool]:
        """The best trial's test scores, and whether they were computed now: the test set is
        read once per best trial. A later invocation with the same best trial (a finished
        study run again) reuses the scores recorded in the study."""
        key = f"round{best['round']}.trial{best['trial']}"
        recorded = study.user_attrs.get(TESTED, {})
        if recorded.get("best") == key:
            return recorded["scores"], False
        scores = self.retrain(best, full, space)
        study.set_user_attr(TESTED, {"best": key, "scores": scores})
        return scores, True

    def retrain(self, best: pd.Series, full: Dataset, space: Space) -> dict[str, float]:
        """The best trial's configuration on train+validation, scored on test."""
        cfg = self.cfg
        params = {key: best[key] for key in space}
        variant = build_variants(cfg, {"best": trial_spec(params, "best")})
        desc = f"{cfg.study} retrain best (trial {best['trial']})"
        result = train_variants(variant, full, cfg.train, cfg.seed, desc)
        return {
            "test/acc": float(result.test_acc[0]),
            "retrain/train/acc": float(result.train_acc[0]),
            "retrain/seconds": result.seconds,
        }


def run_search(cfg: DictConfig) -> pd.DataFrame:
    """Search, report, retrain the best; returns the trials table (best first)."""
    search = cfg.search
    validate_search(search, cfg.train.epochs)
    space = parse_space(OmegaConf.to_container(search.space, resolve=True))
    check_space(cfg, space)
    if not cfg.dataset.val_fraction:
        raise ConfigError(
            "a search judges trials on a validation split, never on test data: "
            "set dataset.val_fraction (the textbook uses 0.2)"
        )
    ignored = list(cfg.variants) + list(cfg.grid)
    if ignored:
        log.warning(
            "the search trains its trials from the base config; ignoring variants/grid %s",
            ignored,
        )
    device = resolve_device(cfg.device)
    full = load_data(cfg, device)
    data = full.validation_split(cfg.dataset.val_fraction, cfg.dataset.split_seed)
    check_shapes(build_variants(cfg, {"base": {}}), full)

    uri = tracking_uri(cfg.tracking.uri)
    storage_at = storage_url(search.storage, uri)
    storage = open_storage(storage_at)
    name = search.study_name or default_study_name(cfg)
    study = first = open_study(storage, name, search, cfg.seed, cfg.train.epochs)
    check_resumable(study, objective_of(cfg, space))
    tags = provenance_tags(device) | dataset_tags(full) | dataset_tags(data) | {"seed": cfg.seed}
    if ignored:
        tags["search.ignored"] = ", ".join(ignored)
    recorder = Recorder(uri, cfg.tracking.experiment)
    with recorder.guarded():
        parent = start_parent(
            recorder, cfg, tags | {"sweeps.search": name, "optuna.storage": storage_at}
        )
        runner = Search(cfg, name, recorder, parent, data, tags)
        first_space, trained = space, 0
        for round_ in range(1, search.rounds + 1):
            if round_ > 1:
                space = narrow(space, best_params(study, search.top))
                study = open_study(
                    storage, round_name(name, round_), search, cfg.seed, cfg.train.epochs
                )
                check_resumable(study, objective_of(cfg, space))
            ranges = describe(space)
            recorder.log_params(parent, {f"round{round_}.{k}": v for k, v in ranges.items()})
            log.info("round %d/%d of %r: %s", round_, search.rounds, name, ranges)
            trained += runner.run_round(study, space, round_)
            finished = sum(counts(t) for t in study.get_trials(deepcopy=False))
            log.info("round %d: %d trials finished (%d trained now)", round_, finished, trained)

        table, figures = search_outputs(recorder.client, recorder.experiment_id, name, first_space)
        summary = finish_search(runner, first, parent, table, figures, full, first_space)
    log.info("recorded in %s, experiment %r, run %s", uri, cfg.tracking.experiment, parent)
    print(summary, flush=True)
    return table


def finish_search(
    runner: Search,
    study: optuna.Study,
    parent: str,
    table: pd.DataFrame,
    figures: dict[str, Any],
    full: Dataset,
    space: Space,
) -> str:
    """Best params and metrics, the retrained test score, artifacts; returns the summary."""
    import matplotlib.pyplot as plt

    recorder, cfg = runner.recorder, runner.cfg
    for file, fig in figures.items():
        recorder.log_figure(parent, fig, file)
        plt.close(fig)
    recorder.log_text(parent, table.to_csv(index=False), "trials.csv")
    complete = table[table["state"] == "COMPLETE"] if not table.empty else table
    shown = format_table(table.head(SHOWN).drop(columns="run_id", errors="ignore"))
    lines = [f"\n{cfg.study}: {len(table)} trials, best first\n{shown}"]
    if complete.empty:
        log.warning("no trial completed: nothing to retrain")
    else:
        best = complete.iloc[0]
        recorder.log_params(parent, {f"best/{k}": best[k] for k in space})
        metrics = {"best/val/acc": best["val_acc"], "best/train/acc": best["train_acc"]}
        recorder.set_tags(parent, {"best.trial": best["trial"], "best.run_id": best["run_id"]})
        lines.append(
            f"best: round {best['round']} trial {best['trial']}, val acc {best['val_acc']:.4f}, "
            + ", ".join(
                f"{k}={best[k]:.4g}" if isinstance(best[k], float) else f"{k}={best[k]}"
                for k in space
            )
        )
        if cfg.search.retrain:
            scores, fresh = runner.test_once(study, best, full, space)
            metrics |= scores
            lines.append(
                f"retrained on train+validation ({len(full.train_y)} samples): "
                f"test acc {scores['test/acc']:.4f}"
                + ("" if fresh else " (recorded earlier for this trial; test not read again)")
            )
        recorder.log_metrics(parent, [(k, v, 0) for k, v in metrics.items()])
    recorder.finish(parent)
    return "\n".join(lines) + "\n"
