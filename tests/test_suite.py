"""The suite: several studies, one command, one combined table."""

import contextlib
import os
import signal
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from helpers import experiment_runs, start
from mlflow import MlflowClient

from sweeps.errors import ConfigError
from sweeps.kinds import run_study
from sweeps.lanes import lane_count, run_side_by_side
from sweeps.workers import cpu_cores


def suite_cfg(make_cfg, studies: list[str], tracking_uri: str, data_cache: Path):
    cfg = make_cfg("+experiment=suite")
    cfg.suite.studies = studies
    # What a command line would pass on to every study.
    cfg.suite.overrides = [
        f"tracking.uri={tracking_uri}",
        "dataset.download=false",
        f"dataset.cache_dir={data_cache}",
        "train.progress=false",
        "device=cpu",
        "train.iterations=5",
    ]
    return cfg


def test_suite_runs_each_study_and_combines_the_tables(
    make_cfg, tracking_uri: str, data_cache: Path
) -> None:
    cfg = suite_cfg(make_cfg, ["optimizers", "optimizer_paths"], tracking_uri, data_cache)
    table = run_study(cfg)
    assert list(table.columns[:2]) == ["study", "variant"]
    assert table.study.value_counts().to_dict() == {"optimizers": 5, "optimizer_paths": 4}
    client = MlflowClient(tracking_uri)
    for name in ("optimizers", "optimizer_paths"):
        assert client.get_experiment_by_name(name) is not None
    sgd = table[(table.study == "optimizers") & (table.variant == "sgd")]
    assert sgd.final_loss.notna().all()


def test_default_suite_lists_every_chapter6_study(make_cfg) -> None:
    studies = set(make_cfg("+experiment=suite").suite.studies)
    assert studies == {
        "optimizers",
        "optimizer_paths",
        "weight_init",
        "activations",
        "batchnorm",
        "weight_decay",
        "dropout",
        "hparam_search",
    }


def test_a_search_starts_first_and_shows_its_best_trials(make_cfg, monkeypatch) -> None:
    """The longest study starts first so the lanes finish together; the combined table keeps
    the suite's order and a search's best trials, named as its claims name them."""
    cfg = make_cfg("+experiment=suite")
    cfg.suite.studies = ["optimizers", "hparam_search", "dropout"]
    started = []
    trials = pd.DataFrame(
        {
            "round": 1,
            "trial": range(100, 108),
            "state": "COMPLETE",
            "optimizer.lr": 0.01,
            "val_acc": [0.9 - i / 100 for i in range(8)],
            "run_id": "x",
        }
    )

    def side_by_side(run, configs, lanes):
        started.extend(c.study for c in configs)
        return [
            trials if c.search is not None else pd.DataFrame({"variant": [c.study]})
            for c in configs
        ]

    monkeypatch.setattr("sweeps.kinds.suite.run_side_by_side", side_by_side)
    monkeypatch.setattr("sweeps.kinds.suite.lane_count", lambda *_: 2)
    table = run_study(cfg)
    assert started == ["hparam_search", "optimizers", "dropout"]
    assert list(table.study.unique()) == ["optimizers", "hparam_search", "dropout"]
    search = table[table.study == "hparam_search"]
    assert search.variant.tolist() == [f"r1 #{t}" for t in range(100, 105)]
    assert search.val_acc.tolist() == pytest.approx([0.9, 0.89, 0.88, 0.87, 0.86])
    assert not {"round", "trial", "state", "run_id"} & set(table.columns)


def test_unknown_study_is_named_with_the_valid_ones(
    make_cfg, tracking_uri: str, data_cache: Path
) -> None:
    cfg = suite_cfg(make_cfg, ["optimizers", "lenet"], tracking_uri, data_cache)
    with pytest.raises(ConfigError, match="unknown study 'lenet'.*batchnorm"):
        run_study(cfg)
    assert MlflowClient(tracking_uri).get_experiment_by_name("optimizers") is None


def test_studies_side_by_side_record_what_they_record_one_after_another(
    make_cfg, tmp_path: Path, data_cache: Path
) -> None:
    tables = {}
    for workers in ("2", "1"):
        uri = f"sqlite:///{tmp_path / f'workers{workers}.db'}"
        cfg = suite_cfg(make_cfg, ["optimizers", "weight_decay"], uri, data_cache)
        cfg.suite.workers = workers
        tables[workers] = run_study(cfg)
        client = MlflowClient(uri)
        threads = set()
        for name in ("optimizers", "weight_decay"):
            experiment = client.get_experiment_by_name(name)
            runs = client.search_runs([experiment.experiment_id])
            assert runs and {r.info.status for r in runs} == {"FINISHED"}
            threads |= {
                r.data.tags["torch.threads"] for r in runs if "torch.threads" in r.data.tags
            }
        # Two workers share the cores; one after another, the studies ran in this process.
        assert threads == {
            str(max(1, cpu_cores() // 2)) if workers == "2" else str(torch.get_num_threads())
        }
    pd.testing.assert_frame_equal(
        tables["2"].drop(columns="seconds"), tables["1"].drop(columns="seconds"), rtol=1e-4
    )


def test_a_failing_study_stops_the_queue_and_the_others_keep_their_runs(
    make_cfg, tracking_uri: str, caplog: pytest.LogCaptureFixture
) -> None:
    ok = make_cfg("+experiment=weight_decay", "train.iterations=5")
    bad = make_cfg("+experiment=optimizers", "train.iterations=5", "optimizer.beta1=1.5")
    never = make_cfg("+experiment=dropout", "train.iterations=5")
    with pytest.raises(ConfigError, match=r"optimizer.beta1=1.5 must be in \[0, 1\)"):
        run_side_by_side(run_study, [ok, bad, never], 2)
    assert "optimizers failed; studies already started finish" in caplog.text
    client = MlflowClient(tracking_uri)
    finished = client.search_runs([client.get_experiment_by_name("weight_decay").experiment_id])
    assert finished and {r.info.status for r in finished} == {"FINISHED"}
    assert client.get_experiment_by_name("dropout") is None


@pytest.mark.parametrize(
    ("setting", "devices", "cores", "lanes"),
    [
        ("auto", {"cpu"}, 2, 2),
        ("auto", {"cpu"}, 16, 7),
        ("auto", {"cuda"}, 16, 1),
        ("auto", {"cpu", "cuda"}, 16, 1),
        ("3", {"cuda"}, 2, 3),
        ("12", {"cpu"}, 2, 7),
    ],
)
def test_lanes_are_one_per_core_on_a_cpu_and_one_on_a_gpu(
    monkeypatch: pytest.MonkeyPatch, setting: str, devices: set[str], cores: int, lanes: int
) -> None:
    monkeypatch.setattr("sweeps.lanes.cpu_cores", lambda: cores)
    assert lane_count(setting, devices, 7) == lanes


@pytest.mark.parametrize("setting", ["0", "-1", "two"])
def test_a_bad_worker_count_is_named_with_what_is_valid(setting: str) -> None:
    with pytest.raises(ConfigError, match=f"suite.workers='{setting}' is not valid"):
        lane_count(setting, {"cpu"}, 7)


def study_runs(uri: str, name: str) -> list:
    """The parent runs of study `name` so far; none before its experiment exists."""
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        return []
    return client.search_runs([experiment.experiment_id], "tags.`sweeps.role` = 'study'")


@pytest.mark.parametrize("to", ["parent", "terminal"])
def test_ctrl_c_stops_every_study_side_by_side_and_exits_130(
    tmp_path: Path, data_cache: Path, to: str
) -> None:
    """A terminal's Ctrl-C reaches every process of the group, workers included; a SIGINT to
    the parent alone is passed on by it. Either way each study stops once."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    command = [
        sys.executable,
        "-m",
        "sweeps.run",
        "+experiment=suite",
        "suite.studies=[optimizers,weight_decay,dropout]",
        "suite.workers=2",
        "train.iterations=1000000",
        f"tracking.uri={uri}",
        "dataset.download=false",
        f"dataset.cache_dir={data_cache}",
        "train.progress=false",
        "device=cpu",
    ]
    proc = start(command, tmp_path, start_new_session=True)
    try:
        deadline = time.time() + 120
        running = []
        while time.time() < deadline and len(running) < 2:  # interrupt both while they train
            time.sleep(0.5)
            if (tmp_path / "mlflow.db").exists():
                running = [
                    r for name in ("optimizers", "weight_decay") for r in study_runs(uri, name)
                ]
        assert len(running) == 2, "the two studies did not start side by side"
        time.sleep(1)
        if to == "parent":
            proc.send_signal(signal.SIGINT)
        else:
            os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err[-3000:]
        assert "Traceback" not in err
        assert "interrupted" in err.strip().splitlines()[-1]
        runs = experiment_runs(uri, "optimizers") + experiment_runs(uri, "weight_decay")
        assert {r.info.status for r in runs} == {"KILLED"}
    finally:  # a failed check leaves no worker training
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert MlflowClient(uri).get_experiment_by_name("dropout") is None
