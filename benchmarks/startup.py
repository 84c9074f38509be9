"""A study's fixed cost: the interpreter, the imports and the store, before any training.

Timed side by side in one run, each a fresh process (medians over `--repeats` rounds, the
commands interleaved so that a busy moment of a shared host hits all of them alike):

1. `python -c pass`: the interpreter alone;
2. `python -m sweeps.run --help`: Hydra composing the config, no torch, no MLflow;
3. `python -m sweeps.run +experiment=optimizers train.batch_size=0`: a bad value, composed
   and rejected before any data is loaded or any store opened;
4. the imports a study pays for, each alone: `import torch`; `import torch, torch._dynamo`
   (what a study's first meta-device op or flop counter pulls in, see below); `import pandas`;
   `import matplotlib.pyplot`; `import mlflow`; mlflow's SQLAlchemy tracking store (what
   opening a SQLite store imports, mlflow included);
5. the optimizer study with one training iteration (`train.iterations=1 train.progress=false
   dataset.download=false device=cpu resume=false`) into an existing SQLite store, into a new
   store each time (copied from the empty store kept as a template, `sweeps.stores`), and
   into a new store built by MLflow's schema migrations (no template kept).

Each row prints its median seconds and its share of (5) into an existing store. With
`--imports N` (default 12; 0 skips it) it also runs that study once under `python -X
importtime` and prints its N slowest top-level imports, cumulative: each counts what it pulls
in first, so `mlflow.store.tracking.sqlalchemy_store` includes `import mlflow`.

Measured on the 2-core development host (2026-11-24, `--repeats 3`, a shared and busy host):

    python -c pass                      0.02 s    0.3% of the study
    --help                              0.65 s    9.2%
    bad value (train.batch_size=0)      0.57 s    8.0%
    import torch                        1.39 s   19.5%
    import torch, torch._dynamo         2.77 s   38.7%
    import pandas                       0.37 s    5.1%
    import matplotlib.pyplot            0.45 s    6.2%
    import mlflow                       1.43 s   20.0%
    mlflow's SQLAlchemy store           2.40 s   33.6%
    study, existing store               7.15 s  100.0%
    study, new store                    8.27 s  115.8%

The one-iteration study was almost all fixed cost: torch with torch._dynamo (2.8 s), mlflow's
store with mlflow (2.4 s), pandas and matplotlib (0.8 s) added up to 6.0 of its 7.2 s.
torch._dynamo is not needed by a training study: `sweeps.networks._probe` ran the network on
the meta device under `FlopCounterMode`, and both reach functions that torch wraps in
`torch._disable_dynamo`, which imports torch._dynamo on their first call. Now networks of up to
256 MiB of parameters are probed on the CPU and only `kind=architectures` counts flops; the
same command then measured (2026-11-24, `--repeats 3`):

    python -c pass                      0.02 s    0.4% of the study
    --help                              0.59 s   13.0%
    bad value (train.batch_size=0)      0.54 s   11.7%
    import torch                        1.41 s   30.7%
    import torch, torch._dynamo         2.20 s   48.2%
    import pandas                       0.30 s    6.5%
    import matplotlib.pyplot            0.36 s    7.9%
    import mlflow                       1.15 s   25.2%
    mlflow's SQLAlchemy store           2.05 s   44.7%
    study, existing store               4.57 s  100.0%
    study, new store                    5.52 s  120.6%

torch._dynamo is gone from the study's imports (its slowest are now torch through
`sweeps.checkpoints`, 0.9 s, and mlflow's store, 0.8 + 0.6 s): what is left is torch, mlflow
and the store, which a study needs. Making pandas and the recording lazy in `sweeps.kinds`
rejects a bad value in 0.55 s instead of 0.71 s (medians of 5 interleaved runs).
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from benchmarks import progress, study_arguments
from sweeps.stores import TEMPLATES_ENV

STUDY = "study, existing store"
IMPORTS = {
    "import torch": "import torch",
    "import torch, torch._dynamo": "import torch, torch._dynamo",
    "import pandas": "import pandas",
    "import matplotlib.pyplot": "import matplotlib.pyplot",
    "import mlflow": "import mlflow",
    "mlflow's SQLAlchemy store": "import mlflow.store.tracking.sqlalchemy_store",
}


def study_command(folder: Path, store: Path, *extra: str) -> list[str]:
    """The optimizer study with one iteration, offline, its store at `store`, its Hydra output
    and dataset cache in `folder`; `resume=false` so a second run trains again."""
    return [
        sys.executable,
        *extra,
        "-m",
        "sweeps.run",
        "+experiment=optimizers",
        "train.iterations=1",
        "train.progress=false",
        "dataset.download=false",
        "device=cpu",
        "resume=false",
        f"dataset.cache_dir={folder / 'cache'}",
        f"tracking.uri=sqlite:///{store}",
        f"hydra.run.dir={folder / 'outputs'}",
    ]


def commands(folder: Path, round_: int) -> dict[str, list[str]]:
    """Every measured command of one round; the new store is a new file each round."""
    python = sys.executable
    bad = study_command(folder, folder / "existing.db")[:4] + ["train.batch_size=0"]
    return {
        "python -c pass": [python, "-c", "pass"],
        "--help": [python, "-m", "sweeps.run", "--help"],
        "bad value (train.batch_size=0)": bad,
        **{name: [python, "-c", code] for name, code in IMPORTS.items()},
        STUDY: study_command(folder, folder / "existing.db"),
        "study, new store": study_command(folder, folder / f"new-{round_}.db"),
        "study, new store, no template": [
            "env",
            f"{TEMPLATES_ENV}={folder / f'no-templates-{round_}'}",
            *study_command(folder, folder / f"built-{round_}.db"),
        ],
    }


def timed(command: list[str], folder: Path, expect: int = 0) -> tuple[float, str]:
    """Seconds `command` takes in `folder`, isolated from the caller's MLflow settings, and its
    stderr; a different exit status than `expect` stops the benchmark."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    started = time.perf_counter()
    proc = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if proc.returncode != expect:
        sys.exit(f"{' '.join(command)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return seconds, proc.stderr


@contextmanager
def probed_study(
    probe: str, arguments: Sequence[str], experiment: str, overrides: Sequence[str]
) -> Iterator[tuple[float, Path]]:
    """The study command run through `probe` (`python -c PROBE ARGUMENTS STUDY-ARGUMENTS`) in a
    scratch folder, its working directory: yields the wall seconds and the folder, where the
    probe's files and the study's store can be read until the block ends."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        study = study_arguments(folder, experiment, "cpu", overrides)
        wall, _ = timed([sys.executable, "-c", probe, *arguments, *study], folder)
        yield wall, folder


def slowest_imports(stderr: str, count: int) -> list[tuple[str, float]]:
    """The `count` top-level imports with the largest cumulative time in `-X importtime`
    output (the first to import a package is charged for it)."""
    pattern = re.compile(r"import time:\s+\d+ \|\s+(\d+) \| (\S.*)")
    top = [(m[2].strip(), int(m[1]) / 1e6) for m in map(pattern.match, stderr.splitlines()) if m]
    return sorted(top, key=lambda row: -row[1])[:count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="rounds of every command")
    parser.add_argument("--imports", type=int, default=12, help="slowest imports to list")
    parser.add_argument("--json", help="also write every number to this JSON file")
    options = parser.parse_args()
    seconds: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        # The first study pays for the dataset cache, the store template and the store: a
        # warm-up keeps them out. Templates here, not in the user's cache, whatever it holds.
        os.environ[TEMPLATES_ENV] = str(folder / "templates")
        progress("warm-up: the dataset cache, the store template and the existing store")
        timed(study_command(folder, folder / "existing.db"), folder)
        for round_ in range(options.repeats):
            for name, command in commands(folder, round_).items():
                progress(f"round {round_ + 1}/{options.repeats}: {name}")
                expect = 2 if name.startswith("bad value") else 0
                seconds.setdefault(name, []).append(timed(command, folder, expect)[0])
        imports: list[tuple[str, float]] = []
        if options.imports:
            progress("the study under python -X importtime")
            command = study_command(folder, folder / "existing.db", "-X", "importtime")
            imports = slowest_imports(timed(command, folder)[1], options.imports)

    medians = {name: statistics.median(runs) for name, runs in seconds.items()}
    study = medians[STUDY]
    print(f"median of {options.repeats} round(s), {len(os.sched_getaffinity(0))} cores")
    for name, value in medians.items():
        print(f"{name:34s} {value:6.2f} s  {value / study:6.1%} of the study")
    if imports:
        print("\nslowest top-level imports of the study (python -X importtime, cumulative)")
        for name, value in imports:
            print(f"{name:50s} {value:6.2f} s")
    if options.json:
        results = {"seconds": medians, "runs": seconds, "imports": dict(imports)}
        Path(options.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
