"""The textbook's qualitative findings, at reduced budgets, for several seeds."""

import pytest

from sweeps.kinds import run_study
from sweeps.numbers import short
from sweeps.plan import expand_variants


def test_weight_init_study_config(make_cfg) -> None:
    variants = expand_variants(make_cfg("+experiment=weight_init"))
    assert [v.name for v in variants] == ["std=0.01", "xavier", "he"]
    assert [(v.model["init"], v.model["init_scale"]) for v in variants][0] == ("std", 0.01)
    assert {v.optimizer.name for v in variants} == {"sgd"}
    sigmoid = expand_variants(make_cfg("+experiment=weight_init", "model.activation=sigmoid"))
    assert {v.model["activation"] for v in sigmoid} == {"sigmoid"}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_weight_init_findings(make_cfg, seed: int) -> None:
    """std=0.01 does not learn (loss stays at ln 10); He ends below Xavier."""
    table = run_study(
        make_cfg("+experiment=weight_init", "train.iterations=400", f"seed={seed}")
    ).set_index("variant")
    assert table.loc["std=0.01", "final_loss"] == pytest.approx(2.3026, abs=0.01)
    assert table.loc["std=0.01", "test_acc"] < 0.2
    assert table.loc["he", "final_loss"] < table.loc["xavier", "final_loss"] < 2.0
    assert table.loc["he", "test_acc"] > 0.8


# The regularization claims hold over three seeds; seed 0 in `make test`, all three with
# `make test-slow` (CI runs both), keeping the default run near its 10 minutes.
SEEDS = [0, *(pytest.param(seed, marks=pytest.mark.slow) for seed in (1, 2))]


@pytest.mark.parametrize("seed", SEEDS)
def test_dropout_shrinks_the_train_test_gap(make_cfg, seed: int) -> None:
    table = run_study(make_cfg("+experiment=dropout", f"seed={seed}")).set_index("variant")
    assert table.loc["none", "train_acc"] > 0.99  # overfits the 300 samples
    assert table.loc["dropout=0.2", "train_acc"] < 0.95
    assert table.loc["dropout=0.2", "gap"] < table.loc["none", "gap"] - 0.03


@pytest.mark.parametrize("seed", SEEDS)
def test_weight_decay_shrinks_the_train_test_gap(make_cfg, debian_fashion, seed: int) -> None:
    """On a full-size test set (Debian's Fashion-MNIST, 10,000 images) the textbook's finding
    holds clearly: lambda=0.1 stops the net from fitting the 300 samples and closes the gap."""
    table = run_study(
        make_cfg("+experiment=weight_decay", "dataset=fashion_mnist", f"seed={seed}")
    ).set_index("variant")
    assert table.loc["lambda=0", "train_acc"] > 0.99
    assert table.loc["lambda=0.1", "gap"] < table.loc["lambda=0", "gap"] - 0.08


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_weight_decay_shrinks_the_gap_on_the_embedded_data(make_cfg, seed: int) -> None:
    """The textbook's numbers, on the embedded MNIST subset: lambda=0 fits the 300 samples
    (test about .8), lambda=0.1 does not (train about .9) and the train-test gap shrinks."""
    table = run_study(make_cfg("+experiment=weight_decay", f"seed={seed}")).set_index("variant")
    assert table.loc["lambda=0", "train_acc"] == 1.0
    assert table.loc["lambda=0.1", "train_acc"] < 0.95
    assert table.loc["lambda=0.1", "gap"] < table.loc["lambda=0", "gap"] - 0.03


def test_the_first_n_embedded_samples_are_class_balanced(make_cfg) -> None:
    """As the textbook's "first N training samples" of MNIST roughly are: a plain shuffle
    once left 5 fives among the first 300, which alone cost the weight-decay study its
    finding."""
    import torch

    from sweeps.data import load_data

    data = load_data(make_cfg().dataset, torch.device("cpu"))
    for n in (100, 300, 1000):
        assert torch.bincount(data.train_y[:n], minlength=10).tolist() == [n // 10] * 10


def test_epoch_studies_log_accuracy_curves_and_the_first_n_samples(
    make_cfg, tracking_uri: str
) -> None:
    from mlflow import MlflowClient

    run_study(make_cfg("+experiment=weight_decay", "train.epochs=4"))
    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name("weight_decay")
    runs = {r.info.run_name: r for r in client.search_runs([exp.experiment_id])}
    parent = runs["weight_decay"]
    assert parent.data.tags["dataset.train_size"] == "300"
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"weight_decay.png", "weight_decay_loss.png", "summary.csv"} <= artifacts
    child = runs["lambda=0.1"].info.run_id
    assert len(client.get_metric_history(child, "train/acc")) == 4
    assert len(client.get_metric_history(child, "train/loss")) == 12
    assert runs["lambda=0.1"].data.params["optimizer.weight_decay"] == "0.1"


def test_batchnorm_study_grid(make_cfg) -> None:
    variants = expand_variants(make_cfg("+experiment=batchnorm"))
    assert len(variants) == 32
    assert variants[0].name == "BN 1"
    assert variants[-1].name == "noBN 1e-4"
    assert variants[14].name == "BN 1.85e-4" and variants[30].name == "noBN 1.85e-4"
    scales = [v.model["init_scale"] for v in variants[:16]]
    assert scales[0] == 1.0 and scales[-1] == pytest.approx(1e-4)
    assert all(a > b for a, b in zip(scales, scales[1:], strict=False))
    assert {v.model["init"] for v in variants} == {"std"}
    params = variants[17].params()
    assert (params["model.batchnorm"], params["model.init_scale"]) == (False, scales[1])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_batchnorm_beats_no_batchnorm_at_most_small_scales(make_cfg, seed: int) -> None:
    table = run_study(
        make_cfg("+experiment=batchnorm", "train.epochs=10", f"seed={seed}")
    ).set_index("variant")
    small = [v.model["init_scale"] for v in expand_variants(make_cfg("+experiment=batchnorm"))]
    small = [s for s in small[:16] if s < 0.1]
    wins = sum(
        table.loc[f"BN {short(s)}", "train_acc"] > table.loc[f"noBN {short(s)}", "train_acc"] + 0.1
        for s in small
    )
    assert wins >= 0.75 * len(small)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_hparam_search_finds_the_textbook_learning_rate_range(make_cfg, seed: int) -> None:
    """The textbook's 100-trial random search: good learning rates lie around 3e-3..9e-3 and
    weight decay hardly matters (it spans decades among the best trials)."""
    import numpy as np

    table = run_study(make_cfg("+experiment=hparam_search", f"seed={seed}"))
    assert len(table) == 100
    top = table.head(10)
    assert table["val_acc"].iloc[0] > 0.55
    assert top["optimizer.lr"].between(2e-3, 1e-2).all()
    lr, wd = np.log10(table["optimizer.lr"]), np.log10(table["optimizer.weight_decay"])
    assert np.corrcoef(lr, table["val_acc"])[0, 1] > 0.6
    assert abs(np.corrcoef(wd, table["val_acc"])[0, 1]) < 0.3
    assert np.log10(top["optimizer.weight_decay"].max() / top["optimizer.weight_decay"].min()) > 1
