"""Claims judged after a study, over seeds: on the parent run, in claims.csv and report.html;
seeds as one population, each replicate the study run with that seed alone."""

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import runs_by_role
from matplotlib.collections import PolyCollection

from sweeps import verdicts
from sweeps.claims import Results, parse
from sweeps.kinds import run_study
from sweeps.recording import recorded_study
from sweeps.report import rebuild

CLAIM = "adaptive_rules_learn_faster"
TINY = ("+experiment=optimizers", "train.iterations=20")


def results(sgd: float, adam: float) -> Results:
    table = pd.DataFrame({"final_loss": [sgd, adam]}, index=["sgd", "adam"])
    return Results(table=table, params=pd.DataFrame(index=table.index))


def test_claims_are_judged_per_seed_and_summed_up_over_seeds() -> None:
    claims = [parse("slow", "final_loss[sgd] >= 3 * final_loss[adam]", says="SGD is slow")]
    judged = verdicts.judge(claims, {1: results(0.9, 0.1), 2: results(0.6, 0.3)})
    assert list(judged.held) == [True, False] and list(judged.seed) == [1, 2]
    assert json.loads(judged["values"][0]) == {
        "final_loss[sgd]": [0.9],
        "3 * final_loss[adam]": [pytest.approx(0.3)],
    }
    (row,) = verdicts.summary(judged).to_dict("records")
    assert (row["held"], row["seeds"]) == (1, 2)
    # over seeds: mean ± sample std (min..max) of each number behind the verdict
    assert row["numbers"] == (
        "final_loss[sgd] = 0.7500 ± 0.21 (0.6000..0.9000); "
        "3 * final_loss[adam] = 0.6000 ± 0.42 (0.3000..0.9000)"
    )
    metrics, tags = verdicts.parent_record(judged)
    assert metrics == {"claim/slow": 0.0}
    assert tags["claim.slow"].startswith("held in 1 of 2 seeds: final_loss[sgd] = 0.7500")
    text = verdicts.console(judged)
    assert text.splitlines()[:2] == [
        "claims: 0 of 1 held in every seed",
        "  FAIL slow: SGD is slow",
    ]
    assert verdicts.files(judged) == {"claims.csv": judged}
    assert verdicts.files(verdicts.judge([], {1: results(1, 1)})) == {}


def test_a_number_equal_in_every_seed_is_shown_once() -> None:
    claims = [parse("slow", "final_loss[sgd] >= 3 * final_loss[adam]")]
    judged = verdicts.judge(claims, {1: results(0.9, 0.1), 2: results(0.9, 0.1)})
    (row,) = verdicts.summary(judged).to_dict("records")
    assert row["numbers"] == (
        "final_loss[sgd] = 0.9000 in every seed; 3 * final_loss[adam] = 0.3000 in every seed"
    )


def test_seeds_train_as_one_population_and_replicate_a_single_seed(
    make_cfg, tracking_uri: str, tmp_path: Path
) -> None:
    table = run_study(make_cfg(*TINY, "seeds=[0,1]"))
    names = [f"{v} seed={s}" for s in (0, 1) for v in ("sgd", "momentum", "adagrad", "rmsprop")]
    assert set(names) < set(table.variant) and len(table) == 10
    roles = runs_by_role(tracking_uri, "optimizers")
    (parent,) = roles["study"]
    children = {r.info.run_name: r for r in roles["variant"]}
    assert {r.data.tags["population.size"] for r in children.values()} == {"10"}
    assert children["adam seed=1"].data.params["seed"] == "1"
    # the claim, judged on each seed, on the parent run and in claims.csv
    assert parent.data.metrics[f"claim/{CLAIM}"] in (0.0, 1.0)
    assert " of 2 seeds: final_loss[sgd] = " in parent.data.tags[f"claim.{CLAIM}"]
    study = recorded_study("optimizers", None, tracking_uri)
    claims = pd.read_csv(io.BytesIO(study.store.artifact(study.parent.run_id, "claims.csv")))
    assert list(claims.seed) == [0, 1] and set(claims.claim) == {CLAIM}

    # Replicate 0 is the study run with seed=0 alone: its own init and batch stream.
    alone = run_study(make_cfg(*TINY, "seed=0", "tracking.experiment=alone"))
    replicate = table.iloc[:5].assign(variant=lambda t: t.variant.str.removesuffix(" seed=0"))
    pd.testing.assert_frame_equal(
        replicate[["variant", "final_loss", "train_acc", "test_acc"]],
        alone[["variant", "final_loss", "train_acc", "test_acc"]],
        rtol=1e-3,
    )
    assert not table.iloc[5:].final_loss.equals(table.iloc[:5].final_loss)

    # The store redraws the same tables; the figure draws each variant's mean and a band.
    redrawn, folder = rebuild("optimizers", out=str(tmp_path / "out"), uri=tracking_uri)
    pd.testing.assert_frame_equal(redrawn, table, check_dtype=False)
    rebuilt = pd.read_csv(folder / "claims.csv")
    assert list(rebuilt.numbers) == list(claims.numbers)


def test_the_loss_figure_shades_a_band_over_seeds() -> None:
    from sweeps.figures import loss_figure

    mean = pd.DataFrame({"sgd": np.linspace(2, 1, 30)})
    band = (mean - 0.1, mean + 0.1)

    def bands(figure) -> list:
        return [c for c in figure.axes[0].collections if isinstance(c, PolyCollection)]

    assert len(bands(loss_figure(mean, "t", smooth=True, band=band))) == 1
    assert not bands(loss_figure(mean, "t"))
