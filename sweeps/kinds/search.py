"""kind=search (a training study with `+search=NAME`): the textbook's hyperparameter search
(ch. 6.5) on Optuna.

Never tune on test data: trials train on the training part of a validation split and are
judged on validation accuracy; the test set is loaded but kept out of the search (it is not
in the dataset the trials see). Trials are asked in batches of `search.batch` and trained
together as populations; each epoch every live trial reports its validation accuracy, and
a pruner may stop it (its weights freeze). `search.rounds` repeats the search with every
range narrowed to the span of the previous round's best trials. At the end the best
configuration is retrained on train+validation and scored once on test.
"""

import json
import logging
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
from omegaconf import DictConfig, OmegaConf
from optuna.trial import TrialState

from sweeps import interrupts, verdicts
from sweeps.claims import Results
from sweeps.data import Dataset, load_data
from sweeps.device import resolve_device
from sweeps.errors import ConfigError
from sweeps.optuna_study import (
    best_params,
    check_resumable,
    close_storage,
    default_study_name,
    objective_of,
    open_storage,
    open_study,
    round_name,
    storage_url,
    validate_search,
)
from sweeps.plan import Variant, build_variants, check_shapes, group_by_architecture
from sweeps.recording import (
    ROLE_TAG,
    RecordedStudy,
    StudyRun,
    dataset_tags,
    provenance_tags,
    study_run,
    tracking_uri,
)
from sweeps.search_outputs import (
    PARAMS_TAG,
    SEARCH_TAG,
    TRIAL_TAG,
    dry_results,
    search_outputs,
)
from sweeps.space import Space, describe, narrow, parse_space
from sweeps.stores import lock
from sweeps.tables import format_table
from sweeps.trainer import Training, check_memory, train_variants
from sweeps.trial_pool import DIVERGED, RUNS, TrialPool
from sweeps.workers import start_local, stop_local

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


class Search:
    """One invocation of a search: its config, the run it records into, the data its trials
    train and are judged on (`data`, whose evaluation split is validation), and the data the
    best configuration is retrained and tested on (`full`)."""

    def __init__(
        self,
        cfg: DictConfig,
        name: str,
        study: StudyRun,
        data: Dataset,
        full: Dataset,
        storage_at: str,
    ) -> None:
        self.cfg = cfg
        self.name = name
        self.storage_at = storage_at
        self.study = study
        self.training = Training(data, cfg.train, cfg.seed)
        self.full = full
        self.pruning = cfg.search.pruner != "none"
        curves = cfg.search.curves
        self.curves = self.pruning if curves is None else curves

    def run_round(self, pool: TrialPool, round_: int) -> int:
        """Take, train and tell batches until the round's study has `n_trials` trials with
        results (other workers' included); returns how many this worker trained."""
        study, n_trials = pool.study, self.cfg.search.n_trials
        trained = 0
        with pool.running():
            while True:
                interrupts.check()
                trials = pool.take()
                if not trials:
                    if pool.done():
                        break
                    continue
                told: set[int] = set()
                try:
                    self.train_batch(study, trials, round_, told)
                except BaseException:
                    pool.interrupt([t for t in trials if t.number not in told])
                    raise
                pool.release(trials)
                trained += len(trials)
                done = pool.tally()[0]
                complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                if complete:
                    best = max(complete, key=lambda t: t.value)
                    log.info(
                        "%s: %d of %d trials done; best val/acc so far %.4f (trial %d)",
                        study.study_name,
                        done,
                        n_trials,
                        best.value,
                        best.number,
                    )
        return trained

    def rounds(self, storage: Any, first: optuna.Study, space: Space) -> None:
        """Every round, each on an Optuna study of its own: after the first, each narrows every
        range to the span of the previous round's best trials."""
        search, optuna_study, trained = self.cfg.search, first, 0
        for round_ in range(1, search.rounds + 1):
            if round_ > 1:
                space = narrow(space, best_params(optuna_study, search.top))
                name = round_name(self.name, round_)
                optuna_study = join(storage, self.storage_at, name, self.cfg, space)
            ranges = describe(space)
            self.study.log(params={f"round{round_}.{k}": v for k, v in ranges.items()})
            log.info("round %d/%d of %r: %s", round_, search.rounds, self.name, ranges)
            pool = TrialPool(optuna_study, self.storage_at, search, space, self.cfg.seed, self)
            trained += self.run_round(pool, round_)
            done = pool.tally()[0]
            log.info("round %d: %d trials finished (%d trained here)", round_, done, trained)

    def recorded(self, trial: optuna.trial.FrozenTrial) -> tuple[TrialState, float | None] | None:
        """A dead worker's trial whose run it finished: its state and value, from the run."""
        runs = trial.user_attrs.get(RUNS)
        if not runs:
            return None
        run = self.study.recorder.run(runs[0])
        if run.status != "FINISHED":
            return None
        state = TrialState[run.tags["optuna.state"]]
        return state, run.metrics["val/acc"] if state == TrialState.COMPLETE else None

    def abandoned(self, trial: optuna.trial.FrozenTrial) -> None:
        """A trial failed without a result: close its MLflow runs KILLED if its worker died
        with them open, and take over what its worker finished."""
        runs = trial.user_attrs.get(RUNS)
        if runs:
            self.study.take_over(*runs)

    def train_batch(
        self, optuna_study: optuna.Study, trials: list[optuna.Trial], round_: int, told: set[int]
    ) -> None:
        prefix = "" if round_ == 1 else f"r{round_}-"
        specs = {
            f"{prefix}trial-{t.number}": trial_spec(t.params, f"{prefix}trial-{t.number}")
            for t in trials
        }
        variants = build_variants(self.cfg, specs)
        by_name = dict(zip((v.name for v in variants), trials, strict=True))
        for group in group_by_architecture(variants):
            self.train_group(optuna_study, group, [by_name[v.name] for v in group], round_, told)

    def train_group(
        self,
        optuna_study: optuna.Study,
        group: list[Variant],
        trials: list[optuna.Trial],
        round_: int,
        told: set[int],
    ) -> None:
        """Train one population of trials, reporting each epoch; tell and record each."""
        tags = {
            ROLE_TAG: "trial",
            SEARCH_TAG: self.name,
            "optuna.study": optuna_study.study_name,
            "search.round": round_,
        }
        children = [
            self.study.child(
                v.name,
                v.params() | t.params,
                tags
                | {
                    TRIAL_TAG: t.number,
                    "optuna.state": "RUNNING",
                    PARAMS_TAG: json.dumps(t.params),  # exact: the params are rounded
                },
            )
            for v, t in zip(group, trials, strict=True)
        ]
        for trial, child in zip(trials, children, strict=True):
            trial.set_user_attr(RUNS, [child, self.study.parent])
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

        desc = f"{optuna_study.study_name} trials {trials[0].number}-{trials[-1].number}"
        # Curves are on with any pruner; without them nobody reads the epochs live: no hook,
        # no reports, no host sync.
        hook = on_epoch if self.curves else None
        result = train_variants(group, replace(self.training, on_epoch=hook), desc)
        split = self.training.data.eval_split
        for k, (trial, child) in enumerate(zip(trials, children, strict=True)):
            epochs = int(pruned_at[k]) or None
            value = None
            if result.diverged_at[k] >= 0:
                state, status = TrialState.FAIL, {"status": "diverged"}
                status["diverged_at"] = int(result.diverged_at[k])
                trial.set_user_attr(DIVERGED, True)
            elif epochs:
                state, status = TrialState.PRUNED, {"status": "pruned", "pruned_at": epochs}
            else:
                state, status = TrialState.COMPLETE, {"status": "ok"}
                value = float(result.eval_acc[k])
            # A trial's loss by epoch, as its accuracies: by iteration, 100 trials wrote
            # twice the points and took 1.5x as long to record (docs/DESIGN.md).
            points = result.points(k, split, epochs, loss_per_epoch=True)
            tags = status | result.tags() | {"optuna.state": state.name}
            # The run first: if this worker dies before telling Optuna, whoever takes the
            # trial over reads its result back from the run (`recorded`).
            self.study.close_child(child, points, tags)
            optuna_study.tell(trial, value, state=state)
            told.add(trial.number)

    def test_once(
        self, optuna_study: optuna.Study, best: pd.Series, space: Space
    ) -> tuple[dict[str, float], bool]:
        """The best trial's test scores, and whether they were computed now: the test set is
        read once per best trial. A later invocation with the same best trial (a finished
        study run again) reuses the scores recorded in the Optuna study."""
        key = f"round{best['round']}.trial{best['trial']}"
        # Workers ending together: the first retrains, the others wait and reuse its scores.
        with lock(self.storage_at, f"optuna:{optuna_study.study_name}:test"):
            recorded = optuna_study.user_attrs.get(TESTED, {})
            if recorded.get("best") == key:
                return recorded["scores"], False
            scores = self.retrain(best, space)
            optuna_study.set_user_attr(TESTED, {"best": key, "scores": scores})
        return scores, True

    def retrain(self, best: pd.Series, space: Space) -> dict[str, float]:
        """The best trial's configuration on train+validation, scored on test."""
        cfg = self.cfg
        params = {key: best[key] for key in space}
        variant = build_variants(cfg, {"best": trial_spec(params, "best")})
        desc = f"{cfg.study} retrain best (trial {best['trial']})"
        training = replace(self.training, data=self.full, curves=False)
        result = train_variants(variant, training, desc)
        return {
            "test/acc": float(result.eval_acc[0]),
            "retrain/train/acc": float(result.train_acc[0]),
            "retrain/seconds": result.seconds,
        }

    def finish(self, first: optuna.Study, space: Space) -> tuple[pd.DataFrame, str]:
        """Trials table and figures, best params and metrics, the retrained test score;
        closes the parent run. Returns the table and the console summary."""
        study = self.study
        table, results, figures = search_outputs(
            study.recorder, study.experiment_id, self.name, space
        )
        judged = judge(self.cfg, results)
        study.log_outputs(figures, {"trials.csv": table, **verdicts.files(judged)})
        complete = table[table["state"] == "COMPLETE"] if not table.empty else table
        shown = format_table(table.head(SHOWN).drop(columns="run_id", errors="ignore"))
        lines = [f"\n{self.cfg.study}: {len(table)} trials, best first\n{shown}"]
        if complete.empty:
            log.warning("no trial completed: nothing to retrain")
        else:
            best = complete.iloc[0]
            study.log(
                params={f"best/{k}": best[k] for k in space},
                tags={"best.trial": best["trial"], "best.run_id": best["run_id"]},
            )
            metrics = {"best/val/acc": best["val_acc"], "best/train/acc": best["train_acc"]}
            lines.append(
                f"best: round {best['round']} trial {best['trial']}, "
                f"val acc {best['val_acc']:.4f}, "
                + ", ".join(
                    f"{k}={best[k]:.4g}" if isinstance(best[k], float) else f"{k}={best[k]}"
                    for k in space
                )
            )
            if self.cfg.search.retrain:
                scores, fresh = self.test_once(first, best, space)
                metrics |= scores
                lines.append(
                    f"retrained on train+validation ({len(self.full.train_y)} samples): "
                    f"test acc {scores['test/acc']:.4f}"
                    + ("" if fresh else " (recorded earlier for this trial; test not read again)")
                )
            study.log(metrics=metrics)
        study.finish()
        if not judged.empty:
            lines.append(verdicts.console(judged))
        return table, "\n".join(lines) + "\n"


def join(storage: Any, url: str, name: str, cfg: DictConfig, space: Space) -> optuna.Study:
    """Open the Optuna study `name`, refusing one that holds trials run with other settings;
    under the store's lock, so concurrent workers agree on what the study is."""
    with lock(url, f"optuna:{name}"):
        study = open_study(storage, name, cfg.search, cfg.train.epochs)
        check_resumable(study, objective_of(cfg, space))
    return study


def run(cfg: DictConfig) -> pd.DataFrame:
    """Search, report, retrain the best; returns the trials table (best first)."""
    search = cfg.search
    validate_search(search, cfg.train.epochs)
    space = parse_space(OmegaConf.to_container(search.space, resolve=True), cfg.model.keys())
    check_space(cfg, space)
    if not cfg.dataset.val_fraction:
        raise ConfigError(
            "a search judges trials on a validation split, never on test data: "
            "set dataset.val_fraction (the textbook uses 0.2)"
        )
    ignored = list(cfg.variants) + list(cfg.grid)
    if ignored:
        # A training study's claims are about its variants, which the trials replace.
        ignored += [f"claims.{name}" for name in cfg.claims]
        cfg = cfg.copy()
        cfg.claims = {}
        log.warning(
            "the search trains its trials from the base config; ignoring variants/grid "
            "(and their claims) %s",
            ignored,
        )
    verdicts.check(cfg, dry_results(space, search.n_trials))
    storage_at = storage_url(search.storage, tracking_uri(cfg.tracking.uri))
    storage = open_storage(storage_at)
    try:
        name = search.study_name or default_study_name(cfg)
        first = join(storage, storage_at, name, cfg, space)
        with more_workers(cfg, name, storage_at):
            device = resolve_device(cfg.device)
            full = load_data(cfg.dataset, device)
            data = full.validation_split(cfg.dataset.val_fraction, cfg.dataset.split_seed)
            base = build_variants(cfg, {"base": {}})
            check_shapes(base, full)
            check_memory(base, cfg.train, data)
            tags = provenance_tags(device) | dataset_tags(full) | dataset_tags(data)
            tags["seed"] = cfg.seed
            if ignored:
                tags["search.ignored"] = ", ".join(ignored)
            with study_run(cfg, tags, identity={SEARCH_TAG: name}) as study:
                study.log(tags={"optuna.storage": storage_at})
                runner = Search(cfg, name, study, data, full, storage_at)
                runner.rounds(storage, first, space)
                table, summary = runner.finish(first, space)
    finally:
        close_storage(storage)
    print(summary, flush=True)
    return table


@contextmanager
def more_workers(cfg: DictConfig, name: str, storage_at: str) -> Iterator[None]:
    """`search.workers=N`: N - 1 more processes on the study while this one works, each
    with a parent run of its own; this one waits for them at the end (and passes Ctrl-C
    on). Workers on other machines run the same command with a shared `search.storage`
    and `tracking.uri`."""
    workers = cfg.search.workers
    if workers == 1:
        yield
        return
    config = OmegaConf.to_container(cfg, resolve=True)
    config["search"] |= {"workers": 1, "study_name": name, "storage": storage_at}
    config["tracking"]["uri"] = tracking_uri(cfg.tracking.uri)
    config["train"]["progress"] = False
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "worker.yaml"
        path.write_text(OmegaConf.to_yaml(config))
        procs = start_local(path, workers - 1, workers)
        finished = False
        try:
            yield
            finished = True
        finally:
            codes = stop_local(procs, interrupt=not finished)
        failed = [code for code in codes if code]
        if failed:
            log.warning(
                "%d of the %d workers started here exited with codes %s; the study took "
                "their trials over",
                len(failed),
                len(procs),
                failed,
            )


def judge(cfg: DictConfig, results: Results) -> pd.DataFrame:
    """The search's claims on its trials (`search_outputs`): one seed, the search's."""
    return verdicts.judge(verdicts.claims_of(cfg), {cfg.seed: results})


def rebuild(study: RecordedStudy) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    """The trials and claims tables and figures from every trial run of the recorded search."""
    config = study.config
    space = parse_space(OmegaConf.to_container(config.search.space, resolve=True), config.model)
    name = study.parent.tags[SEARCH_TAG]
    table, results, figures = search_outputs(study.store, study.experiment_id, name, space)
    return {"trials.csv": table, **verdicts.files(judge(config, results))}, figures
