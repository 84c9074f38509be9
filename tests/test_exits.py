"""The processes that train and record skip the garbage collection at exit (sweeps.exits)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# A cycle whose finalizer says it ran: only the collector can free it, and Python's exit
# collects such cycles unless the collector's objects were frozen first.
SCRIPT = """
import sys
from sweeps import exits

class Cycle:
    def __del__(self):
        print("collected", flush=True)

if sys.argv[1] == "skip":
    exits.skip_collection_at_exit()
cycle = Cycle()
cycle.self = cycle
del cycle
import gc
gc.disable()  # only the exit may collect it
print("done", flush=True)
"""


def run(mode: str) -> list[str]:
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, mode], cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


def test_exit_skips_the_collection_and_everything_before_it_is_written() -> None:
    assert run("collect") == ["done", "collected"]
    assert run("skip") == ["done"]
