"""What Python's garbage collector costs a study: its default thresholds against
`sweeps.collector`'s, side by side in one run.

Each arm runs the study command (`python -m sweeps.run +experiment=NAME`, a fresh SQLite store,
the embedded digits) in a process that counts and times every collection (`gc.callbacks`)
until the study returns, and notes when it returned, so the time the process then took to
exit is measured too. The `default` arm leaves Python's thresholds and exit as they are (it
skips `sweeps.collector.tune`); the `tuned` arm is the command as it ships. The arms
alternate, `--repeats` times each, and each row is the median:

    python -m benchmarks.collector [--experiments optimizers,hparam_search] [--repeats 3]
        [--json results.json] [--overrides train.iterations=1 ...]
"""

import json
import statistics
import time
from pathlib import Path

import pandas as pd

from benchmarks import arms_parser, progress
from benchmarks.startup import probed_study

# Runs the study as `python -m sweeps.run` does (as __main__, where Hydra finds conf/), with
# every collection counted; writes the counts, their seconds and the moment the study returned
# as JSON to argv[2].
PROBE = """
import gc, json, sys, time
arm, out, overrides = sys.argv[1], sys.argv[2], sys.argv[3:]
stats = {generation: [0, 0.0] for generation in range(3)}
started = {}
def count(phase, info):
    if phase == "start":
        started["at"] = time.perf_counter()
    else:
        entry = stats[info["generation"]]
        entry[0] += 1
        entry[1] += time.perf_counter() - started["at"]
gc.callbacks.append(count)
import runpy
import sweeps.collector
if arm == "default":
    sweeps.collector.tune = lambda: None
sys.argv = ["sweeps.run", *overrides]
try:
    runpy.run_module("sweeps.run", run_name="__main__")
finally:
    gc.callbacks.remove(count)
    with open(out, "w") as fh:
        json.dump({"stats": stats, "returned": time.time()}, fh)
"""
ARMS = ("default", "tuned")


def run_arm(arm: str, experiment: str, overrides: list[str]) -> dict[str, float]:
    """One run of the study in one arm: wall, collections by kind, and the exit's seconds."""
    with probed_study(PROBE, [arm, "gc.json"], experiment, overrides) as (wall, folder):
        ended = time.time()
        found = json.loads((folder / "gc.json").read_text())
    stats = {int(g): v for g, v in found["stats"].items()}
    return {
        "wall_s": wall,
        "full_collections": stats[2][0],
        "full_s": stats[2][1],
        "young_collections": stats[0][0] + stats[1][0],
        "young_s": stats[0][1] + stats[1][1],
        "exit_s": ended - found["returned"],
    }


def main() -> None:
    args = arms_parser(__doc__.splitlines()[0]).parse_args()
    rows = []
    for experiment in args.experiments.split(","):
        runs: dict[str, list[dict[str, float]]] = {arm: [] for arm in ARMS}
        for i in range(args.repeats):
            for arm in ARMS:
                progress(f"{experiment}, {arm} collector, {i + 1}/{args.repeats}")
                runs[arm].append(run_arm(arm, experiment, args.overrides))
        for arm in ARMS:
            medians = {k: statistics.median(r[k] for r in runs[arm]) for k in runs[arm][0]}
            rows.append({"study": experiment, "collector": arm, **medians})
    table = pd.DataFrame(rows)
    print(f"medians of {args.repeats} runs per arm, arms interleaved:")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "overrides": args.overrides}))


if __name__ == "__main__":
    main()
