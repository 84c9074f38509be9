"""Optuna searches at tiny budgets: what Optuna and MLflow record, resume, test-set isolation."""

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
import torch
from helpers import experiment_runs, multirun
from mlflow import MlflowClient
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from sweeps.data import load_data
from sweeps.errors import ConfigError
from sweeps.kinds import run_study, search
from sweeps.population import Population
from sweeps.report import rebuild
from sweeps.search_outputs import importances, optuna_figures
from sweeps.trial_pool import INTERRUPTED, RETRY_OF

TINY = ("+experiment=hparam_search", "train.epochs=2", "dataset.train_size=200")
# Learning rates that mostly learn within 4 epochs, so the median pruner has trials to stop.
PRUNING = (
    "train.epochs=4",
    "search.space.optimizer.lr.low=1e-3",
    "search.space.optimizer.lr.high=0.1",
    "search.n_trials=12",
    "search.batch=6",
    "search.pruner=median",
)


@pytest.fixture
def storage(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'optuna.db'}"


def search_cfg(make_cfg, storage: str, *overrides: str):
    return make_cfg(*TINY, f"search.storage={storage}", *overrides)


def trial_runs(uri: str, experiment: str = "hparam_search") -> list:
    return experiment_runs(uri, experiment, "tags.`sweeps.role` = 'trial'")


def study_trials(storage: str, name: str = "hparam_search") -> list:
    return optuna.load_study(study_name=name, storage=storage).get_trials()


def test_tiny_search_agrees_with_optuna_and_records_everything(
    make_cfg, tracking_uri: str, storage: str, tmp_path: Path
) -> None:
    table = run_study(search_cfg(make_cfg, storage, "search.n_trials=5", "search.batch=3"))
    # The search closed its storage: SQLite folded the write-ahead log into optuna.db, so the
    # file alone holds every trial.
    wal = tmp_path / "optuna.db-wal"
    assert not wal.exists() or wal.stat().st_size == 0

    trials = study_trials(storage)
    runs = trial_runs(tracking_uri)
    assert len(trials) == len(runs) == len(table) == 5
    by_number = {int(r.data.tags["optuna.trial_number"]): r for r in runs}
    assert set(by_number) == {t.number for t in trials}
    for t in trials:
        run = by_number[t.number]
        assert run.info.status == "FINISHED"
        assert run.data.tags["optuna.state"] == t.state.name == "COMPLETE"
        # The value Optuna got is the last epoch's validation accuracy MLflow holds.
        assert run.data.metrics["val/acc"] == pytest.approx(t.value)
        assert float(run.data.params["optimizer.lr"]) == pytest.approx(
            t.params["optimizer.lr"], 1e-3
        )
        history = MlflowClient(tracking_uri).get_metric_history(run.info.run_id, "val/acc")
        assert [m.step for m in sorted(history, key=lambda m: m.step)] == [1, 2]
        # A trial's loss is logged per epoch, as its accuracies are.
        losses = MlflowClient(tracking_uri).get_metric_history(run.info.run_id, "train/loss")
        assert [m.step for m in sorted(losses, key=lambda m: m.step)] == [1, 2]
        assert "test/acc" not in run.data.metrics
        assert 1e-6 <= t.params["optimizer.lr"] <= 1e-2
        assert 1e-8 <= t.params["optimizer.weight_decay"] <= 1e-4

    assert list(table["val_acc"]) == sorted(table["val_acc"], reverse=True)
    client = MlflowClient(tracking_uri)
    parent = client.get_run(runs[0].data.tags["mlflow.parentRunId"])
    assert parent.info.status == "FINISHED"
    best = max(trials, key=lambda t: t.value)
    assert parent.data.metrics["best/val/acc"] == pytest.approx(best.value)
    assert parent.data.tags["best.trial"] == str(best.number)
    # shown to 4 significant digits; the trial run's `optuna.params` tag holds the exact value
    assert float(parent.data.params["best/optimizer.lr"]) == pytest.approx(
        best.params["optimizer.lr"], 1e-3
    )
    best_run = by_number[best.number]
    assert json.loads(best_run.data.tags["optuna.params"]) == best.params
    assert 0 <= parent.data.metrics["test/acc"] <= 1
    assert parent.data.tags["dataset.train_size"] == "160"
    assert parent.data.tags["dataset.val_size"] == "40"
    assert parent.data.params["round1.optimizer.lr"] == "[1e-06, 0.01] log"
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"best_trials.png", "trials.csv", "parallel_coordinate.png", "config.yaml"} <= artifacts
    # The importance figure draws the claims' fANOVA, which needs accuracies that vary (after
    # two epochs these trials may all score alike).
    assert ("param_importances.png" in artifacts) == (table["val_acc"].nunique() > 1)

    rebuilt, folder = rebuild("hparam_search", uri=tracking_uri, out=str(tmp_path / "report"))
    pd.testing.assert_frame_equal(rebuilt, table)
    assert (folder / "best_trials.png").is_file()


def test_the_importance_figure_shows_the_importances_the_claims_judge() -> None:
    """Both from one seeded fANOVA: on these trials Optuna's default evaluator (PED-ANOVA)
    would draw other numbers (the learning rate's 0.75 against fANOVA's 0.94)."""
    rng = np.random.default_rng(0)
    lr, decay = 10 ** rng.uniform(-6, -2, 30), 10 ** rng.uniform(-8, -4, 30)
    accuracy = np.log10(lr) / 10 + np.log10(decay) / 20 + rng.normal(0, 0.02, 30)
    table = pd.DataFrame(
        {
            "round": 1,
            "trial": range(30),
            "state": "COMPLETE",
            "optimizer.lr": lr,
            "optimizer.weight_decay": decay,
            "val_acc": accuracy,
        }
    )
    space = {
        "optimizer.lr": FloatDistribution(1e-6, 1e-2, log=True),
        "optimizer.weight_decay": FloatDistribution(1e-8, 1e-4, log=True),
    }
    judged = importances(table, space)
    assert judged["optimizer.lr"] == pytest.approx(0.94, abs=0.01)
    ax = optuna_figures(table, space, judged)["param_importances.png"].axes[0]
    shown = {
        tick.get_text(): bar.get_width()
        for tick, bar in zip(ax.get_yticklabels(), ax.patches, strict=True)
    }
    assert shown == pytest.approx(judged, abs=1e-12)
    assert list(shown)[-1] == "optimizer.lr"  # the most important on top
    unknown = dict.fromkeys(space, np.nan)
    assert set(optuna_figures(table, space, unknown)) == {"parallel_coordinate.png"}


@pytest.mark.parametrize("curves", [False, True])
def test_epoch_curves_reach_optuna_only_when_asked(make_cfg, storage: str, curves: bool) -> None:
    """Without a pruner the epochs' values are not written to Optuna, a transaction each,
    unless `search.curves=true`; MLflow has them either way (the test above)."""
    overrides = ("search.curves=true",) if curves else ()
    run_study(search_cfg(make_cfg, storage, "search.n_trials=2", *overrides))
    trials = study_trials(storage)
    assert len(trials) == 2
    for t in trials:
        assert sorted(t.intermediate_values) == ([1, 2] if curves else [])
        if curves:
            assert t.intermediate_values[2] == pytest.approx(t.value)


def test_same_seed_same_trials(make_cfg, storage: str, tmp_path: Path) -> None:
    first = run_study(search_cfg(make_cfg, storage, "search.n_trials=3"))
    other = f"sqlite:///{tmp_path / 'other.db'}"
    again = run_study(
        search_cfg(make_cfg, other, "search.n_trials=3", f"tracking.uri=sqlite:///{tmp_path}/b.db")
    )
    cols = ["trial", "optimizer.lr", "optimizer.weight_decay", "val_acc"]
    pd.testing.assert_frame_equal(first[cols], again[cols])


def test_rerun_resumes_and_n_trials_counts_the_total(
    make_cfg, tracking_uri: str, storage: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_study(search_cfg(make_cfg, storage, "search.n_trials=3"))
    run_study(search_cfg(make_cfg, storage, "search.n_trials=5"))
    # Nothing left to do; the best trial is the same, so its test score is not computed again.
    monkeypatch.setattr(search.Search, "retrain", lambda *a: pytest.fail("test set read twice"))
    run_study(search_cfg(make_cfg, storage, "search.n_trials=5"))
    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name("hparam_search")
    parents = client.search_runs(
        [exp.experiment_id], "tags.`sweeps.role` = 'study'", order_by=["attributes.start_time"]
    )
    assert parents[2].data.metrics["test/acc"] == parents[1].data.metrics["test/acc"]
    trials = study_trials(storage)
    assert [t.number for t in trials] == [0, 1, 2, 3, 4]
    # The resumed sampler draws new points instead of repeating the first invocation's.
    lrs = [t.params["optimizer.lr"] for t in trials]
    assert len(set(lrs)) == 5
    assert len(trial_runs(tracking_uri)) == 5


def test_interrupted_search_resumes_without_lost_or_duplicated_trials(
    make_cfg, tracking_uri: str, storage: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = search.train_variants
    calls = []

    def interrupted_second_batch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(search, "train_variants", interrupted_second_batch)
    cfg = search_cfg(make_cfg, storage, "search.n_trials=6", "search.batch=2")
    with pytest.raises(KeyboardInterrupt):
        run_study(cfg)
    cut = study_trials(storage)
    # Six points queued; two trained, two cut short and queued again at once, as new trials.
    assert [t.state for t in cut] == [TrialState.COMPLETE] * 2 + [TrialState.FAIL] * 2 + [
        TrialState.WAITING
    ] * 4
    assert all(t.user_attrs[INTERRUPTED] for t in cut[2:4])
    assert [t.user_attrs.get(RETRY_OF) for t in cut[6:]] == [2, 3]
    assert {r.info.status for r in trial_runs(tracking_uri)} == {"FINISHED", "KILLED"}

    monkeypatch.setattr(search, "train_variants", real)
    run_study(cfg)
    trials = study_trials(storage)
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(done) == 6
    # The two interrupted configurations ran again, as new trials, exactly once each.
    retries = {t.user_attrs[RETRY_OF]: t for t in done if RETRY_OF in t.user_attrs}
    assert sorted(retries) == [2, 3]
    for number, retry in retries.items():
        assert retry.params == trials[number].params
    finished = [r for r in trial_runs(tracking_uri) if r.info.status == "FINISHED"]
    assert sorted(int(r.data.tags["optuna.trial_number"]) for r in finished) == sorted(
        t.number for t in done
    )


def test_search_never_reads_the_test_set(
    make_cfg, storage: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Test tensors on PyTorch's meta device hold no data: any read of them during the
    search would raise. Retraining, which must read test once, shows the trap works."""

    def meta_test_set(dataset, device):
        data = load_data(dataset, device)
        return replace(
            data,
            eval_x=torch.empty(data.eval_x.shape, device="meta"),
            eval_y=torch.empty(data.eval_y.shape, dtype=torch.long, device="meta"),
        )

    monkeypatch.setattr(search, "load_data", meta_test_set)
    table = run_study(search_cfg(make_cfg, storage, "search.n_trials=2", "search.retrain=false"))
    assert len(table) == 2
    with pytest.raises((RuntimeError, NotImplementedError)):
        run_study(search_cfg(make_cfg, storage, "search.n_trials=2", "search.retrain=true"))


def test_validation_split_is_disjoint_shuffled_and_fixed(make_cfg) -> None:
    data = load_data(make_cfg(*TINY).dataset, torch.device("cpu"))
    split = data.validation_split(0.2, seed=0)
    assert (len(split.train_y), len(split.eval_y)) == (160, 40)
    assert split.eval_split == "val"
    rows = {tuple(r.flatten().tolist()) for r in data.train_x}
    train_rows = {tuple(r.flatten().tolist()) for r in split.train_x}
    val_rows = {tuple(r.flatten().tolist()) for r in split.eval_x}
    assert train_rows | val_rows <= rows
    assert not train_rows & val_rows
    again = data.validation_split(0.2, seed=0)
    assert torch.equal(again.eval_x, split.eval_x)
    # Shuffled: the validation samples are not simply the first 40.
    assert not torch.equal(split.eval_x, data.train_x[:40])


def test_rounds_narrow_each_range_to_the_best_trials(
    make_cfg, tracking_uri: str, storage: str
) -> None:
    run_study(
        search_cfg(make_cfg, storage, "search.n_trials=5", "search.rounds=2", "search.top=0.4")
    )
    first = optuna.load_study(study_name="hparam_search", storage=storage)
    second = optuna.load_study(study_name="hparam_search.round2", storage=storage)
    top = sorted(first.trials, key=lambda t: t.value, reverse=True)[:2]
    for key in ("optimizer.lr", "optimizer.weight_decay"):
        values = [t.params[key] for t in top]
        for t in second.trials:
            assert min(values) <= t.params[key] <= max(values)
    assert len(second.trials) == 5
    runs = trial_runs(tracking_uri)
    assert sorted(r.data.tags["search.round"] for r in runs) == ["1"] * 5 + ["2"] * 5
    parent = MlflowClient(tracking_uri).get_run(runs[0].data.tags["mlflow.parentRunId"])
    lo, hi = (
        f"{min(t.params['optimizer.lr'] for t in top):.4g}",
        f"{max(t.params['optimizer.lr'] for t in top):.4g}",
    )
    assert parent.data.params["round2.optimizer.lr"] == f"[{lo}, {hi}] log"


def test_a_pruner_stops_weak_trials_and_marks_them(
    make_cfg, tracking_uri: str, storage: str
) -> None:
    run_study(search_cfg(make_cfg, storage, *PRUNING))
    trials = study_trials(storage)
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    assert pruned, "the median pruner stopped no trial"
    runs = {int(r.data.tags["optuna.trial_number"]): r for r in trial_runs(tracking_uri)}
    client = MlflowClient(tracking_uri)
    for t in pruned:
        run = runs[t.number]
        assert run.data.tags["status"] == "pruned"
        last = int(run.data.tags["pruned_at"])
        assert last < 4
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "val/acc")]
        assert max(steps) == last
        losses = client.get_metric_history(run.info.run_id, "train/loss")
        assert sorted(m.step for m in losses) == list(range(1, last + 1))
        assert t.last_step == last


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("search.sampler=grid", "search.sampler='grid' is not valid; choose one of: random"),
        ("search.pruner=early", "search.pruner='early' is not valid"),
        ("search.n_trials=0", "search.n_trials=0 must be a positive number"),
        ("dataset.val_fraction=0", "set dataset.val_fraction"),
        ("search.space.optimizer.lr.low=-1", "log=true needs low > 0"),
        ("+search.space.optimizer.name={choices: [sgd, lion]}", "lion"),
        ("search.storage=nosuchdb://x", "search.storage='nosuchdb://x' cannot be opened"),
    ],
)
def test_bad_search_settings_fail_before_any_run(
    make_cfg, tracking_uri: str, storage: str, override: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        run_study(search_cfg(make_cfg, storage, override))
    assert MlflowClient(tracking_uri).get_experiment_by_name("hparam_search") is None


def test_pruning_needs_epochs(make_cfg, storage: str) -> None:
    cfg = search_cfg(make_cfg, storage, "search.pruner=median", "train.epochs=null")
    with pytest.raises(ConfigError, match="set train.epochs"):
        run_study(cfg)


@pytest.mark.parametrize("sampler", ["tpe", "qmc", "gp"])
def test_every_sampler_runs_seeded(make_cfg, storage: str, sampler: str) -> None:
    table = run_study(
        search_cfg(make_cfg, storage, f"search.sampler={sampler}", "search.n_trials=3")
    )
    assert len(table) == 3
    assert np.isfinite(table["val_acc"]).all()


def test_resuming_with_other_settings_is_refused_before_any_run(
    make_cfg, tracking_uri: str, storage: str
) -> None:
    run_study(search_cfg(make_cfg, storage, "search.n_trials=2"))
    with pytest.raises(ConfigError, match=r"train.epochs: 2 -> 3.*search.study_name=NAME"):
        run_study(search_cfg(make_cfg, storage, "search.n_trials=4", "train.epochs=3"))
    with pytest.raises(ConfigError, match=r"space.optimizer.lr"):
        run_study(
            search_cfg(make_cfg, storage, "search.n_trials=4", "search.space.optimizer.lr.low=1e-5")
        )
    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name("hparam_search")
    assert len(client.search_runs([exp.experiment_id], "tags.`sweeps.role` = 'study'")) == 1
    # Settings that do not change what a trial computes may change.
    run_study(search_cfg(make_cfg, storage, "search.n_trials=3", "search.batch=1"))
    assert len(study_trials(storage)) == 3


def test_a_journal_file_storage_resumes_too(make_cfg, tracking_uri: str, tmp_path: Path) -> None:
    journal = tmp_path / "optuna.log"
    run_study(make_cfg(*TINY, f"search.storage={journal}", "search.n_trials=2"))
    run_study(make_cfg(*TINY, f"search.storage={journal}", "search.n_trials=3"))
    assert journal.is_file()
    assert not (tmp_path / "optuna.db").exists()
    assert len(trial_runs(tracking_uri)) == 3


def test_multirun_over_search_settings_gives_each_job_its_own_study(
    tmp_path: Path, data_cache: Path, tracking_uri: str
) -> None:
    proc = multirun(
        tmp_path,
        data_cache,
        "+experiment=hparam_search",
        "search.sampler=random,qmc",
        "search.n_trials=2",
        "train.epochs=1",
        f"tracking.uri={tracking_uri}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    names = sorted(s.study_name for s in optuna.get_all_study_summaries(storage))
    assert names == [
        "hparam_search[search.sampler=qmc,train.epochs=1,train.iterations=5]",
        "hparam_search[search.sampler=random,train.epochs=1,train.iterations=5]",
    ]
    for name in names:
        assert len(study_trials(storage, name)) == 2
    assert len(trial_runs(tracking_uri)) == 4


def test_default_storage_lies_beside_the_mlflow_database(
    make_cfg, tracking_uri: str, tmp_path: Path
) -> None:
    run_study(make_cfg(*TINY, "search.n_trials=1"))
    assert len(study_trials(f"sqlite:///{tmp_path / 'optuna.db'}")) == 1


def test_any_training_study_can_be_searched(make_cfg, tracking_uri: str, storage: str) -> None:
    """The dropout study's variants, and the claims about them, give way to the trials, with a
    warning and a tag."""
    table = run_study(
        make_cfg(
            "+experiment=dropout",
            "+search=lr_wd",
            "dataset.val_fraction=0.2",
            "train.epochs=2",
            "search.n_trials=2",
            f"search.storage={storage}",
        )
    )
    assert len(table) == 2
    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name("dropout")
    (parent,) = client.search_runs([exp.experiment_id], "tags.`sweeps.role` = 'study'")
    assert parent.data.tags["search.ignored"] == "none, d2, claims.dropout_shrinks_gap"
    assert not any(key.startswith("claim/") for key in parent.data.metrics)
    assert len(trial_runs(tracking_uri, "dropout")) == 2


@pytest.mark.parametrize("pruner", ["successive_halving", "hyperband"])
def test_other_pruners_run(make_cfg, storage: str, pruner: str) -> None:
    table = run_study(
        search_cfg(
            make_cfg, storage, "train.epochs=3", "search.n_trials=6", f"search.pruner={pruner}"
        )
    )
    assert set(table["state"]) <= {"COMPLETE", "PRUNED"}
    assert len(table) == 6


def test_running_out_of_memory_mid_search_changes_nothing(
    make_cfg, storage: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, recwarn
) -> None:
    """The trainer halves its chunks and starts the batch over; pruning decisions and
    reports already made replay consistently, so the search ends as without the retry."""
    settings = (*PRUNING, "train.max_members=6")
    plain = run_study(search_cfg(make_cfg, storage, *settings))
    step, calls = Population.step, []

    def out_of_memory_once(self, x, y):
        calls.append(1)
        if len(calls) == 16:  # the second batch's last step (8 steps each): after pruning
            raise torch.OutOfMemoryError("simulated")
        return step(self, x, y)

    monkeypatch.setattr(Population, "step", out_of_memory_once)
    other = f"sqlite:///{tmp_path / 'other.db'}"
    uri = f"tracking.uri=sqlite:///{tmp_path / 'b.db'}"
    retried = run_study(search_cfg(make_cfg, other, *settings, uri))
    assert len(calls) > 16
    cols = ["trial", "state", "optimizer.lr", "val_acc", "train_acc"]
    pd.testing.assert_frame_equal(plain[cols], retried[cols])
    assert "PRUNED" in set(plain["state"])
    # Replayed epochs are not reported to Optuna twice.
    assert not [w for w in recwarn if "already reported" in str(w.message)]
