"""Networks as a plug-in: the architectures study, checkpoints scored again by
`sweeps.evaluate`, a user's own module, and sweeps over architecture keys."""

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient

from sweeps.errors import ConfigError, UserError
from sweeps.evaluate import evaluate
from sweeps.kinds import run_study
from sweeps.report import rebuild
from sweeps.tables import format_number
from tests.helpers import command, runs_by_name

TINY = ["train.epochs=1", "dataset.train_size=300", "train.eval_batch_size=500"]


def test_architectures_study_records_each_network(
    make_cfg, tracking_uri: str, tmp_path: Path
) -> None:
    cfg = make_cfg(
        "+experiment=architectures",
        "architectures.models=[two_layer,lenet5]",
        "claims.convnets_beat_fully_connected.check='test_acc[lenet5] >= 0 * test_acc[two_layer]'",
        *TINY,
    )
    table = run_study(cfg)
    assert list(table.architecture) == ["two_layer", "lenet5"]
    assert list(table.parameters) == [784 * 50 + 50 + 50 * 10 + 10, 61706]
    assert (table.mflops_per_sample > 0).all() and (table.seconds_per_epoch > 0).all()
    runs = runs_by_name(tracking_uri, "architectures")
    lenet = runs["lenet5"].data
    # The study's claim, judged on its table, on the parent run.
    parent = runs["architectures"].data
    assert parent.metrics["claim/convnets_beat_fully_connected"] == 1.0
    held = parent.tags["claim.convnets_beat_fully_connected"]
    lenet_acc = format_number(table.test_acc[1])
    assert held == f"held: test_acc[lenet5] = {lenet_acc}; 0 * test_acc[two_layer] = 0.0000"
    assert lenet.tags["model.name"] == "lenet5"
    assert lenet.tags["population.strategy"] == "loop"
    assert runs["two_layer"].data.tags["population.strategy"] == "stacked"
    assert lenet.metrics["model.params"] == 61706
    assert lenet.metrics["test/acc"] == pytest.approx(table.test_acc[1])
    assert "val/acc" in lenet.metrics and "test/acc" in lenet.metrics
    # Each network keeps its document's recipe.
    assert runs["two_layer"].data.params["optimizer.name"] == "sgd"
    assert runs["two_layer"].data.params["optimizer.lr"] == "0.1"
    assert lenet.params["optimizer.name"] == "adam"
    artifacts = {
        a.path
        for a in MlflowClient(tracking_uri).list_artifacts(runs["lenet5"].info.run_id, "checkpoint")
    }
    assert artifacts == {"checkpoint/model.yaml", "checkpoint/state_dict.pt"}
    rebuilt, folder = rebuild("architectures", out=str(tmp_path / "out"), uri=tracking_uri)
    pd.testing.assert_frame_equal(rebuilt, table, check_dtype=False)
    assert {p.name for p in folder.glob("*.png")} == {
        "architectures_params.png",
        "architectures_time.png",
    }
    # The checkpoint, rebuilt from the store alone, scores what the study recorded.
    accuracy, matrix, figure = evaluate(
        runs["lenet5"].info.run_id, [], "test", tracking_uri, str(tmp_path / "eval")
    )
    assert accuracy == pytest.approx(table.test_acc[1])
    assert int(matrix.to_numpy().sum()) == 1000 and figure.is_file()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["architectures.models=[lenet6]"], "unknown model 'lenet6'; valid: alexnet"),
        (["+architectures.recipes.lenet5.optimiser={lr: 1}"], "unknown keys \\['optimiser'\\]"),
        (["+architectures.recipes.lenet5.optimizer.lrr=1"], "architectures.recipes.lenet5"),
        (["train.epochs=null"], "set train.epochs"),
        (["dataset.val_fraction=0"], "dataset.val_fraction=0.0 must be a positive number"),
    ],
)
def test_bad_architecture_studies_fail_before_any_run(
    make_cfg, tracking_uri: str, overrides: list[str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        run_study(make_cfg("+experiment=architectures", *overrides))
    assert MlflowClient(tracking_uri).get_experiment_by_name("architectures") is None


def test_evaluate_names_a_missing_run(tracking_uri: str) -> None:
    with pytest.raises(UserError, match="no run 'nope'"):
        evaluate("nope", [], "test", tracking_uri, None)
    proc = subprocess.run(
        [sys.executable, "-m", "sweeps.evaluate", "nope", "--tracking-uri", tracking_uri],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1 and "error: no run 'nope'" in proc.stderr


def test_a_users_own_module_is_a_model_option(make_cfg, tracking_uri: str) -> None:
    cfg = make_cfg(
        "+experiment=optimizers",
        "model=custom",
        "model._target_=tests.custom_nets.TinyNet",
        "+model.width=8",
        "train.iterations=5",
    )
    table = run_study(cfg)
    assert len(table) == 5
    runs = runs_by_name(tracking_uri, "optimizers")
    assert runs["adam"].data.params["model.width"] == "8"
    assert runs["adam"].data.tags["population.strategy"] == "vmap"
    assert runs["adam"].data.tags["population.size"] == "5"


def test_a_users_module_from_the_command_line(tmp_path: Path, data_cache: Path) -> None:
    (tmp_path / "my_nets.py").write_text(Path(__file__).with_name("custom_nets.py").read_text())
    proc = command(
        tmp_path,
        "model=custom",
        "model._target_=my_nets.TinyNet",
        "+model.width=4",
        "train.iterations=3",
        "train.progress=false",
        "dataset.download=false",
        f"dataset.cache_dir={data_cache}",
        f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    missing = command(tmp_path, "model=custom", f"tracking.uri=sqlite:///{tmp_path / 'x.db'}")
    assert missing.returncode != 0 and "model._target_" in missing.stderr


def test_a_grid_over_an_architecture_key_trains_one_population_each(
    make_cfg, tracking_uri: str
) -> None:
    cfg = make_cfg(
        "+experiment=optimizers",
        "model=network3_conv",
        "+grid={model.channels: [[2], [4]]}",
        "~variants.momentum",
        "~variants.adagrad",
        "~variants.rmsprop",
        "~claims.adaptive_rules_learn_faster",
        "train.iterations=3",
    )
    run_study(cfg)
    runs = runs_by_name(tracking_uri, "optimizers")
    children = {n: r for n, r in runs.items() if n.endswith(("[2]", "[4]"))}
    assert len(children) == 4
    assert {r.data.params["model.channels"] for r in children.values()} == {"[2]", "[4]"}
    assert {r.data.tags["population.size"] for r in children.values()} == {"2"}


def test_a_search_over_an_architecture_key_groups_trials_by_architecture(
    make_cfg, tracking_uri: str, tmp_path: Path
) -> None:
    cfg = make_cfg(
        "+experiment=hparam_search",
        "model=simple_convnet",
        "+search.space.model.filters={choices: [2, 3]}",
        "search.n_trials=6",
        "search.retrain=false",
        f"search.storage={tmp_path / 'optuna.db'}",
        "train.epochs=1",
        "dataset.train_size=100",
    )
    run_study(cfg)
    trials = [
        r
        for r in runs_by_name(tracking_uri, "hparam_search").values()
        if r.data.tags.get("sweeps.role") == "trial"
    ]
    assert len(trials) == 6
    by_filters: dict[str, set[str]] = {}
    for r in trials:
        by_filters.setdefault(r.data.params["model.filters"], set()).add(
            r.data.tags["population.size"]
        )
    assert set(by_filters) <= {"2", "3"}
    # Each architecture's trials trained as one population.
    counts = {f: sum(r.data.params["model.filters"] == f for r in trials) for f in by_filters}
    assert all(by_filters[f] == {str(n)} for f, n in counts.items())
