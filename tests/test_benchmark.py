"""The benchmark's command runs and reports every measurement (its numbers are not judged:
timings belong to the benchmark, not to the test suite). The step rows and the end-to-end
arithmetic are checked fast; the whole command, three real studies included, is `slow`."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import ROOT, command
from omegaconf import OmegaConf
from torch import nn

from benchmarks import numpy_optimizers, population, suite
from benchmarks.numpy_convnet import SimpleConvNet
from sweeps.networks import build

STEP_MODES = [
    "sequential",
    "population",
    "population, weight decay per member",
    "optimizer study (mixed rules)",
    "optimizer study (mixed rules), train.population=vmap",
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


def test_the_search_floor_is_the_textbook_arithmetic() -> None:
    """100 trials of MLP 784-100x6-10, 200 steps of batch 100 (3x the forward pass) and an
    evaluation of 400 + 100 samples after each of 50 epochs: about 2.2 TFLOP (issue 14)."""
    cfg = population.study_config("hparam_search", [])
    members = suite.build_variants(cfg, {"base": {}}) * 100
    per_sample = 2 * (784 * 100 + 5 * 100 * 100 + 100 * 10)  # multiply-adds, 2 flops each
    flops = suite.training_flops(members, cfg, n_train=400, n_eval=100)
    assert flops == 100 * per_sample * (3 * 100 * 200 + 500 * 50)
    assert 2.1e12 < flops < 2.3e12


def test_the_numpy_optimizer_study_backpropagates_like_autograd() -> None:
    """The timed NumPy reference computes what the textbook's network does: its gradients
    are autograd's, and each of its four rules lowers the loss."""
    rng = np.random.default_rng(0)
    net = numpy_optimizers.MultiLayerNet(rng)
    x, t = rng.random((16, 784)), rng.integers(0, 10, 16)
    grads = net.gradient(x, t)
    params = {k: torch.tensor(v, requires_grad=True) for k, v in net.params.items()}
    h = torch.tensor(x)
    for i in range(1, net.layers + 1):
        h = h @ params[f"W{i}"] + params[f"b{i}"]
        h = torch.relu(h) if i < net.layers else h
    F.cross_entropy(h, torch.tensor(t)).backward()
    for key, value in params.items():
        np.testing.assert_allclose(grads[key], value.grad.numpy(), rtol=1e-7, atol=1e-10)
    seconds, losses = numpy_optimizers.optimizer_study(rng.random((256, 784)), t.repeat(16), 60)
    assert seconds > 0
    for curve in losses.values():
        assert np.mean(curve[-10:]) < np.mean(curve[:10])


@pytest.mark.slow
def test_suite_benchmark_reads_every_study_back(tmp_path: Path) -> None:
    out = tmp_path / "suite.json"
    proc = command(
        ROOT,
        "--device=cpu",
        "--repeats=1",
        f"--json={out}",
        "--overrides",
        "dataset.train_size=200",
        "train.epochs=1",
        module="benchmarks.suite",
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(out.read_text())
    studies = {row["study"]: row for row in results["studies"]}
    # Every study of the suite, in its order, the search included.
    suite_studies = population.study_config("suite", []).suite.studies
    assert "hparam_search" in suite_studies and list(studies) == list(suite_studies)
    for name, row in studies.items():
        assert 0 < row["training_s"] < row["wall_s"] or row["floor_s"] is None
        assert (row["textbook_s"] is None) == (name in ("optimizer_paths", "activations"))
    totals = results["totals"]
    assert totals["two commands"] == totals["suite"] + totals["hparam_search"]
    assert results["ratio"] == pytest.approx(245 / totals["suite + search"])
    speed = totals["numpy optimizers"] / 31
    assert results["ratio_today"] == pytest.approx(results["ratio"] * speed)
    floor = sum(row["floor_s"] or 0 for row in studies.values()) + totals["imports"]
    assert results["floor_s"] == pytest.approx(floor)
    assert results["tenfold_today_s"] == pytest.approx(245 * speed / 10)
    # The search's floor counts writing again every trial run it recorded.
    assert results["trial_runs_rewritten"] == 100 and totals["trial runs"] > 0
    search = studies["hparam_search"]["floor_s"] + totals["imports"] + totals["trial runs"]
    assert results["search_floor_s"] == pytest.approx(search)


MODEL_MODES = [
    "plain loop",
    "plain loop, channels-last",
    "population, vmap",
    "population, loop (auto)",
    "textbook NumPy (im2col)",
    "compute floor (FLOPs at the matmul rate)",
]


def test_model_rows_are_measured(tmp_path: Path) -> None:
    results = run_benchmark(tmp_path, "--model=simple_convnet")
    assert [row["mode"] for row in results["step_times"]] == MODEL_MODES
    assert all(row["step_ms"] > 0 and row["GFLOP/s"] > 0 for row in results["step_times"])
    assert {row["K"] for row in results["step_times"][2:4]} == {2}


def test_the_numpy_reference_is_the_textbook_simple_convnet() -> None:
    """One SGD step of the NumPy im2col network and of models.convnets.SimpleConvNet, from the
    same weights on the same batch: the same loss and the same new weights."""
    rng = np.random.default_rng(0)
    x = rng.random((8, 1, 28, 28), dtype=np.float32)
    t = rng.integers(0, 10, 8)
    reference = SimpleConvNet(seed=1)
    p = {k: v.copy() for k, v in reference.params.items()}
    net = build(OmegaConf.to_container(OmegaConf.load(ROOT / "conf/model/simple_convnet.yaml")))
    conv, fc1, fc2 = (m for m in net.modules() if isinstance(m, nn.Conv2d | nn.Linear))
    with torch.no_grad():
        for layer, w, b in (
            (conv, p["W1"], p["b1"]),
            (fc1, p["W2"].T, p["b2"]),
            (fc2, p["W3"].T, p["b3"]),
        ):
            layer.weight.copy_(torch.from_numpy(np.ascontiguousarray(w)))
            layer.bias.copy_(torch.from_numpy(b))
    loss = F.cross_entropy(net(torch.from_numpy(x)), torch.from_numpy(t))
    loss.backward()
    assert reference.step(x, t, lr=0.1) == pytest.approx(float(loss.detach()), rel=1e-4)
    updated = (conv.weight - 0.1 * conv.weight.grad).detach().numpy()
    np.testing.assert_allclose(reference.params["W1"], updated, rtol=1e-4, atol=1e-6)
    updated = (fc1.weight - 0.1 * fc1.weight.grad).detach().numpy().T
    np.testing.assert_allclose(reference.params["W2"], updated, rtol=1e-4, atol=1e-6)


def benchmark_json(tmp_path: Path, module: str, first: str, iterations: int) -> dict:
    """What `python -m MODULE FIRST --json=... --overrides train.iterations=N` wrote."""
    out = tmp_path / "results.json"
    proc = command(
        ROOT,
        first,
        f"--json={out}",
        "--overrides",
        f"train.iterations={iterations}",
        module=module,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


def test_collector_benchmark_counts_each_arms_collections(tmp_path: Path) -> None:
    found = benchmark_json(tmp_path, "benchmarks.collector", "--repeats=1", 1)
    rows = {row["collector"]: row for row in found["rows"]}
    assert set(rows) == {"default", "tuned"}
    assert all(row["wall_s"] > row["exit_s"] > 0 for row in rows.values())
    # Python's thresholds walk everything several times while a study imports; the tuned ones
    # do not.
    assert rows["tuned"]["full_collections"] < rows["default"]["full_collections"]


def test_denormals_benchmark_compares_both_arms_numbers(tmp_path: Path) -> None:
    found = benchmark_json(tmp_path, "benchmarks.denormals", "--repeats=1", 3)
    rows = {row["denormals"]: row for row in found["rows"]}
    assert set(rows) == {"kept", "flushed"}
    for row in rows.values():
        assert row["wall_s"] > row["training_s"] > 0
        assert row["metric_points"] == 5 * 3 + 5 * 2  # train/loss per step; accuracies once
        assert row["same_numbers"]


def test_phases_benchmark_times_the_real_command(tmp_path: Path) -> None:
    result = benchmark_json(tmp_path, "benchmarks.phases", "--experiment=optimizers", 3)
    rows = {row["phase"]: row for row in result["phases"]}
    assert rows["steps"]["calls"] == 3  # one population, three iterations
    parts = ["- forward pass", "- backward pass", "- gradients moved, decay added"]
    assert [rows[part]["calls"] for part in parts] == [3, 3, 3]
    assert sum(rows[part]["seconds"] for part in parts) < rows["steps"]["seconds"]
    assert rows["train and record a population"]["calls"] == 1
    assert 0 < rows["steps"]["seconds"] < rows["train"]["seconds"] < rows["the study"]["seconds"]
    assert rows["the study"]["seconds"] < result["wall_s"]
