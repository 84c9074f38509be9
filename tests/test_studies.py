"""The textbook's qualitative findings, at reduced budgets, for several seeds."""

import pytest

from sweeps.plan import expand_variants
from sweeps.study import run_study


def test_weight_init_study_config(make_cfg) -> None:
    variants = expand_variants(make_cfg("+experiment=weight_init"))
    assert [v.name for v in variants] == ["std=0.01", "xavier", "he"]
    assert [(v.model.init, v.model.init_scale) for v in variants][0] == ("std", 0.01)
    assert {v.optimizer.name for v in variants} == {"sgd"}
    sigmoid = expand_variants(make_cfg("+experiment=weight_init", "model.activation=sigmoid"))
    assert {v.model.activation for v in sigmoid} == {"sigmoid"}


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
