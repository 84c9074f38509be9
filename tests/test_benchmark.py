"""The benchmark's command runs and reports every measurement (its numbers are not judged:
timings belong to the benchmark, not to the test suite). The step rows and the end-to-end
arithmetic are checked fast; the whole command, three real studies included, is `slow`."""

import json
from pathlib import Path

import pytest
from helpers import ROOT, command

from benchmarks import population

STEP_MODES = [
    "sequential",
    "population",
    "optimizer study (mixed rules)",
    "its GEMMs only (floor)",
]


def run_benchmark(tmp_path: Path, *args: str) -> dict:
    out = tmp_path / "results.json"
    proc = command(
        ROOT,
        "--device=cpu",
        "--steps=2",
        "--ks=2",
        f"--json={out}",
        *args,
        module="benchmarks.population",
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


def test_step_rows_are_measured(tmp_path: Path) -> None:
    results = run_benchmark(tmp_path, "--skip-e2e")
    assert [row["mode"] for row in results["step_times"]] == STEP_MODES
    assert all(row["step_ms"] > 0 for row in results["step_times"])
    assert results["e2e"] == {}


def test_end_to_end_decomposition(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fixed cost from the one-step run, training time as the difference, the floor as the
    fixed cost plus the study's steps at the GEMM-only step time."""
    seconds = {"": 12.0, "train.max_members=1": 20.0, "train.iterations=1": 5.0}
    seconds["train.epochs=1"] = 5.0

    def fake_study_seconds(experiment: str, device: str, overrides: list[str]) -> float:
        assert overrides[0] == "train.iterations=3"  # the user's come first, ours win
        return seconds[" ".join(overrides[1:])]

    monkeypatch.setattr(population, "study_seconds", fake_study_seconds)
    rows = [{"mode": "its GEMMs only (floor)", "step_ms": 2.0}]
    e2e, runs = population.end_to_end("optimizers", "cpu", ["train.iterations=3"], rows)
    assert [label for label, _ in runs] == ["population", "sequential", "fixed"]
    assert e2e == {
        "population_s": 12.0,
        "sequential_s": 20.0,
        "fixed_s": 5.0,
        "speedup": 20.0 / 12.0,
        "training_s": 7.0,
        "floor_s": 5.0 + 3 * 2.0 / 1e3,
    }
    epochs, _ = population.end_to_end("weight_decay", "cpu", ["train.iterations=3"], rows)
    assert "floor_s" not in epochs


@pytest.mark.slow
def test_whole_command_with_real_studies(tmp_path: Path) -> None:
    results = run_benchmark(tmp_path, "--e2e-overrides", "train.iterations=3")
    assert [row["mode"] for row in results["step_times"]] == STEP_MODES
    e2e = results["e2e"]
    assert set(e2e) == {"population_s", "sequential_s", "fixed_s", "training_s", "speedup"} | {
        "floor_s"
    }
    assert e2e["floor_s"] == e2e["fixed_s"] + 3 * results["step_times"][-1]["step_ms"] / 1e3
