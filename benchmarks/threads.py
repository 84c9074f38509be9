"""Two workers on one machine: how long each study takes beside another, against alone.

Three commands, timed side by side in one run, each recording into its own temp dir:

1. one optimizer study alone (`train.threads=auto`: all the cores this process may use),
   and alone on one thread: the share of the machine each of two workers gets, so its time
   over (1) is the floor for (2) / (1) on this machine;
2. two optimizer studies at once as a Hydra multirun on the joblib launcher
   (`hydra.launcher.n_jobs=2`), `train.threads=auto`: each takes half the cores;
3. the same pair with `train.threads=CORES` each, torch's own default: each process starts
   a thread per core and the threads spin-wait on each other;
4. two plain commands started together with `train.threads=1` each (two SQLite stores):
   the pair without the multirun's own costs (its parent run, the launcher's processes).

The ratio that matters is (2) / (1): a study's wall time beside another worker against
alone (issue 12's target: within 1.3x). Two jobs at once do twice the work, so on a machine
that is saturated by one study, (2) / (1) near 2 would mean no loss at all per study; on 2
cores a lone study does not use both cores fully, which is what the pair gains back.

Run from the repository root:

    python -m benchmarks.threads [--iterations 2000] [--json results.json]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import study_arguments


def timed(args: list[str], folder: Path, copies: int = 1) -> float:
    """Seconds for `copies` of `python -m sweeps.run ARGS` started together in `folder`,
    offline, no progress bars, until the last ends."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "OMP_NUM_THREADS")
    }
    flags = [a for a in args if a.startswith("--")]  # Hydra's flags go before the overrides
    command = [
        sys.executable,
        "-m",
        "sweeps.run",
        *flags,
        *study_arguments(folder, "optimizers", "cpu", [a for a in args if a not in flags]),
    ]
    started = time.perf_counter()
    procs = [
        subprocess.Popen(
            command,
            cwd=folder,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(copies)
    ]
    for proc in procs:
        _, err = proc.communicate()
        if proc.returncode:
            sys.exit(f"{' '.join(command)} failed:\n{err[-3000:]}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--json", help="also write the results here")
    options = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    budget = f"train.iterations={options.iterations}"
    pair = ["--multirun", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "seed=0,1"]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        # The first command pays for creating the dataset cache; a warm-up keeps it out.
        cases = {
            "warm-up": ["train.iterations=10"],
            "alone": [budget],
            "alone, threads=1": [budget, "train.threads=1"],
            "pair, threads=auto": [*pair, budget],
            f"pair, threads={cores} (torch's default)": [*pair, budget, f"train.threads={cores}"],
            "two commands at once, threads=1": [budget, "train.threads=1"],
        }
        for name, args in cases.items():
            folder = Path(tmp) / str(len(results))
            folder.mkdir()
            results[name] = timed(args, folder, copies=2 if name.startswith("two") else 1)
            print(f"{name:40s} {results[name]:7.1f} s", flush=True)
    del results["warm-up"]
    alone = results["alone"]
    print(f"\n{cores} cores; optimizer study, {options.iterations} iterations")
    print(f"floor for a pair, each on {cores // 2} of {cores} cores: alone, threads=1")
    for name, seconds in results.items():
        print(f"{name:40s} {seconds:7.1f} s   {seconds / alone:5.2f}x of alone per study")
    if options.json:
        Path(options.json).write_text(json.dumps({"cores": cores, "seconds": results}, indent=2))


if __name__ == "__main__":
    main()
