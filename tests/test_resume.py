"""Plain studies resume: an interrupted study's finished variants are reused, not retrained."""

import pandas as pd
import pytest
from helpers import experiment_runs

from sweeps.kinds import run_study, train

# Two populations (BatchNorm and not) of two init scales each, one epoch on 100 samples.
BATCHNORM = (
    "+experiment=batchnorm",
    "train.epochs=1",
    "dataset.train_size=100",
    "grid={model.batchnorm: [true, false], model.init_scale: [1.0, 0.01]}",
)


def interrupt_second_population(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Make the second population's training raise Ctrl-C, once; returns the names trained."""
    real, trained, calls = train.train_variants, [], []

    def cut(group, *args, **kwargs):
        trained.append([v.name for v in group])
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(group, *args, **kwargs)

    monkeypatch.setattr(train, "train_variants", cut)
    return trained


def test_an_interrupted_study_reuses_its_finished_variants(
    make_cfg, tracking_uri: str, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trained = interrupt_second_population(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        run_study(make_cfg(*BATCHNORM))
    first_population = trained[0]
    assert len(first_population) == 2

    trained.clear()
    table = run_study(make_cfg(*BATCHNORM, "train.progress=true"))  # same results, resumed
    assert len(trained) == 1 and not set(trained[0]) & set(first_population)

    runs = experiment_runs(tracking_uri, "batchnorm")
    parents = {r.info.run_id: r for r in runs if r.data.tags.get("sweeps.role") == "study"}
    assert sorted(r.info.status for r in parents.values()) == ["FINISHED", "KILLED"]
    finished = next(r for r in parents.values() if r.info.status == "FINISHED")
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == finished.info.run_id]
    assert len(children) == 4 and {r.info.status for r in children} == {"FINISHED"}
    assert not [r for r in runs if r.info.status == "RUNNING"]

    # The same table as a study that was never interrupted.
    monkeypatch.undo()
    other = f"sqlite:///{tmp_path / 'other.db'}"
    fresh = run_study(make_cfg(*BATCHNORM, f"tracking.uri={other}"))
    columns = [c for c in table.columns if "seconds" not in c]
    pd.testing.assert_frame_equal(table[columns], fresh[columns])


def test_resume_false_trains_everything_again(make_cfg, monkeypatch: pytest.MonkeyPatch) -> None:
    trained = interrupt_second_population(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        run_study(make_cfg(*BATCHNORM))
    trained.clear()
    run_study(make_cfg(*BATCHNORM, "resume=false"))
    assert sum(len(names) for names in trained) == 4
