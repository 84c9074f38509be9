"""The benchmark's command runs and reports every measurement (its numbers are not judged:
timings belong to the benchmark, not to the test suite)."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_benchmark_reports_steps_floor_and_end_to_end_decomposition(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    command = [
        sys.executable,
        "-m",
        "benchmarks.population",
        "--device=cpu",
        "--steps=2",
        "--ks=2",
        "--e2e-overrides",
        "train.iterations=3",
        f"--json={out}",
    ]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(out.read_text())
    modes = [row["mode"] for row in results["step_times"]]
    assert modes == [
        "sequential",
        "population",
        "optimizer study (mixed rules)",
        "its GEMMs only (floor)",
    ]
    assert all(row["step_ms"] > 0 for row in results["step_times"])
    e2e = results["e2e"]
    assert set(e2e) == {
        "population_s",
        "sequential_s",
        "fixed_s",
        "training_s",
        "speedup",
        "floor_s",
    }
    floor_ms = results["step_times"][-1]["step_ms"]
    assert e2e["floor_s"] == e2e["fixed_s"] + 3 * floor_ms / 1e3
    assert e2e["training_s"] == e2e["population_s"] - e2e["fixed_s"]
    assert "floor (fixed + steps at GEMM-only)" in proc.stdout
