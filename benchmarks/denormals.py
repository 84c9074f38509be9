"""What flushing denormal floats to zero (`sweeps.device.flush_denormals`) saves a study, and
whether it changes any number the study records, side by side in one run.

Each arm runs the study command (`python -m sweeps.run +experiment=NAME`, a fresh SQLite
store, the embedded digits) as `python -m sweeps.run` does; the `kept` arm skips the flush,
the `flushed` arm is the command as it ships. The arms alternate, `--repeats` times each. Per
study and arm it prints the medians of the process's wall time and of the training time (each
population's `population.seconds`, summed), the speed-up, and whether every metric point of
every child run (every `train/loss` step included) and the final table were the same in both
arms:

    python -m benchmarks.denormals [--experiments optimizers,weight_init] [--repeats 3]
        [--json results.json] [--overrides train.iterations=1 ...]
"""

import json
import statistics
from pathlib import Path

import pandas as pd
from mlflow import MlflowClient

from benchmarks import arms_parser, progress
from benchmarks.startup import probed_study

# Runs the study as `python -m sweeps.run` does (as __main__, where Hydra finds conf/).
PROBE = """
import runpy, sys
import sweeps.device
if sys.argv[1] == "kept":
    sweeps.device.flush_denormals = lambda: False
sys.argv = ["sweeps.run", *sys.argv[2:]]
runpy.run_module("sweeps.run", run_name="__main__")
"""
ARMS = ("kept", "flushed")

Recorded = dict[str, dict[str, list[tuple[int, float]]]]  # child run -> metric -> (step, value)


def recorded(store: Path) -> tuple[float, Recorded]:
    """The study's training seconds and every child run's metric histories."""
    client = MlflowClient(f"sqlite:///{store}")
    experiments = [e.experiment_id for e in client.search_experiments()]
    children = client.search_runs(experiments, "tags.`mlflow.parentRunId` != ''")
    populations = {
        (c.data.tags["population.seconds"], c.data.tags.get("population.size"))
        for c in children
        if "population.seconds" in c.data.tags
    }
    histories = {
        c.info.run_name: {
            key: [(m.step, m.value) for m in client.get_metric_history(c.info.run_id, key)]
            for key in sorted(c.data.metrics)
        }
        for c in children
    }
    return sum(float(seconds) for seconds, _ in populations), histories


def run_arm(arm: str, experiment: str, overrides: list[str]) -> tuple[float, float, Recorded]:
    """One run of the study in one arm: wall seconds, training seconds, what it recorded."""
    with probed_study(PROBE, [arm], experiment, overrides) as (wall, folder):
        training, histories = recorded(folder / "mlflow.db")
    return wall, training, histories


def main() -> None:
    args = arms_parser(__doc__.splitlines()[0]).parse_args()
    rows = []
    for experiment in args.experiments.split(","):
        walls: dict[str, list[float]] = {arm: [] for arm in ARMS}
        trainings: dict[str, list[float]] = {arm: [] for arm in ARMS}
        seen: list[Recorded] = []
        for i in range(args.repeats):
            for arm in ARMS:
                progress(f"{experiment}, denormals {arm}, {i + 1}/{args.repeats}")
                wall, training, histories = run_arm(arm, experiment, args.overrides)
                walls[arm].append(wall)
                trainings[arm].append(training)
                seen.append(histories)
        points = sum(len(h) for run in seen[0].values() for h in run.values())
        same = all(histories == seen[0] for histories in seen[1:])
        for arm in ARMS:
            rows.append(
                {
                    "study": experiment,
                    "denormals": arm,
                    "wall_s": statistics.median(walls[arm]),
                    "training_s": statistics.median(trainings[arm]),
                    "metric_points": points,
                    "same_numbers": same,
                }
            )
    table = pd.DataFrame(rows)
    kept = table[table.denormals == "kept"].set_index("study")
    table["training_speedup"] = table.study.map(kept.training_s) / table.training_s
    print(f"medians of {args.repeats} runs per arm, arms interleaved:")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "overrides": args.overrides}))


if __name__ == "__main__":
    main()
