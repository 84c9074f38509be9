"""The processes that train and record run the garbage collector less (sweeps.collector)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Counts full collections while importing what a study imports.
IMPORTS = """
import gc, sys
from sweeps import collector
if sys.argv[1] == "tuned":
    collector.tune()
full = []
gc.callbacks.append(lambda phase, info: full.append(1) if info["generation"] == 2 else None)
import torch, mlflow.store.tracking.sqlalchemy_store
print(len(full) // 2)
"""

# A cycle whose finalizer says it ran: only the collector can free it, and the interpreter's
# exit collects such cycles unless the collector's objects were frozen first.
EXIT = """
import gc, sys
from sweeps import collector
class Cycle:
    def __del__(self):
        print("collected", flush=True)
if sys.argv[1] == "tuned":
    collector.tune()
cycle = Cycle()
cycle.self = cycle
del cycle
gc.disable()  # only the exit may collect it
print("done", flush=True)
"""


def run(script: str, mode: str) -> list[str]:
    proc = subprocess.run(
        [sys.executable, "-c", script, mode], cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


def test_importing_torch_and_mlflow_takes_no_full_collection() -> None:
    assert int(run(IMPORTS, "default")[0]) > 0
    assert int(run(IMPORTS, "tuned")[0]) == 0


def test_exit_skips_the_collection_and_everything_before_it_is_written() -> None:
    assert run(EXIT, "default") == ["done", "collected"]
    assert run(EXIT, "tuned") == ["done"]
