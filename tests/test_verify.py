"""`python -m sweeps.verify`: the replication table, its exit status, bad input."""

from pathlib import Path

import optuna
import pytest
from helpers import command
from mlflow import MlflowClient

from sweeps.verify import studies_with_claims

CLAIM = "adaptive_rules_learn_faster"


def verify(tmp_path: Path, data_cache: Path, *args: str, timeout: int = 300):
    return command(
        tmp_path,
        *args,
        f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}",
        "dataset.download=false",
        f"dataset.cache_dir={data_cache}",
        "train.progress=false",
        module="sweeps.verify",
        timeout=timeout,
    )


@pytest.mark.slow  # 43 s, the longest of `make test`; CI runs it with the slow tests
def test_verify_at_the_quick_budget_runs_every_study_with_claims(
    tmp_path: Path, data_cache: Path
) -> None:
    """The quick check of every study on the embedded digits: it runs, records and reports;
    a failed claim at this budget is reported but is not an error."""
    proc = verify(tmp_path, data_cache, "--budget", "quick")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout.split("replication at the quick budget over 1 seed")[1]
    for study in studies_with_claims():
        assert f"\n{study} " in out
    assert "claims held in every seed" in out.splitlines()[-1]
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    for study in studies_with_claims():
        exp = client.get_experiment_by_name(study)
        (parent,) = client.search_runs([exp.experiment_id], "tags.`sweeps.role` = 'study'")
        assert any(key.startswith("claim/") for key in parent.data.metrics), study


def test_verify_exits_1_when_a_claim_fails_at_the_textbook_budget(
    tmp_path: Path, data_cache: Path
) -> None:
    # Five iterations: no rule has learned anything yet, so SGD is not 3x behind.
    proc = verify(tmp_path, data_cache, "optimizers", "train.iterations=5", "--seeds", "2")
    assert proc.returncode == 1, proc.stderr[-3000:]
    lines = proc.stdout.split("replication at the textbook budget over 2 seeds")[1].splitlines()
    assert lines[2].split()[:4] == ["optimizers", CLAIM, "0", "of"]
    assert "final_loss[sgd] = " in lines[3] and " ± " in lines[3]
    assert lines[-1] == f"0 of 1 claims held in every seed; failed: {CLAIM}"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("nope",), "studies: unknown study 'nope'; valid: activations, architectures"),
        (
            ("optimizers", "~claims.adaptive_rules_learn_faster"),
            "study 'optimizers' states no claims; studies with claims: activations",
        ),
        (("optimizers", "train.foo=1"), "Could not override 'train.foo'"),
    ],
)
def test_verify_bad_input_exits_2_in_one_line(
    tmp_path: Path, data_cache: Path, args: tuple[str, ...], message: str
) -> None:
    proc = verify(tmp_path, data_cache, *args)
    assert proc.returncode == 2, proc.stderr[-3000:]
    (line,) = [x for x in proc.stderr.splitlines() if "error:" in x]
    assert message in line and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_every_claim_holds_at_the_textbook_budget_on_the_embedded_digits(
    tmp_path: Path, data_cache: Path
) -> None:
    """The documents' findings replicate on the embedded digits at their budgets (about 4
    minutes here, most of it the architectures study)."""
    proc = verify(tmp_path, data_cache, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-4000:]
    claims = len(studies_with_claims())
    last = proc.stdout.strip().splitlines()[-1]
    held, total = (int(n) for n in last.split(" claims held")[0].split(" of "))
    assert held == total >= claims, last


def test_verify_repeats_a_search_once_per_seed_each_in_its_own_optuna_study(
    tmp_path: Path, data_cache: Path
) -> None:
    proc = verify(
        tmp_path, data_cache, "hparam_search", "search.n_trials=4", "train.epochs=2", "--seeds", "2"
    )
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    table = proc.stdout.split("over 2 seeds")[1]
    assert "learning_rate_matters_more_than_decay" in table and " of 2 " in table
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    studies = {s.study_name: s.n_trials for s in optuna.get_all_study_summaries(storage)}
    assert len(studies) == 2 and set(studies.values()) == {4}
    assert all(name.startswith("hparam_search[") and "seed=" in name for name in studies)
