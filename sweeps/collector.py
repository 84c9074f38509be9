"""How Python's cyclic garbage collector runs in the processes that train and record.

Its default thresholds start a young collection every 700 new container objects and a full
one, a walk over every object alive, every 100 young ones. Importing torch, MLflow,
SQLAlchemy and pandas creates millions of objects, so a study paid 8 to 12 full walks of them,
most while importing: 0.65 s of the optimizer study, 1.40 s of the search (`python -m
benchmarks.collector`; docs/DESIGN.md, "The garbage collector"). A young collection every
10,000 new objects leaves one. Cyclic garbage waits longer to be freed, and a device
running out of memory collects it first (`sweeps.trainer`).

As the interpreter exits it walks everything again, repeatedly, while it clears the modules:
about 1 s after a study returned. Freezing the collector's objects from an exit handler
(`gc.freeze`) skips those walks; every exit handler still runs and every module is still
cleared, so logs, files and stores close as before. Only objects held in reference cycles are
left unfinalized at exit, which Python does not promise anyway.
"""

import atexit
import gc

YOUNG = 10_000  # new container objects between young collections (Python's default: 700)


def tune() -> None:
    """Call first thing in a process's entry point, before the heavy imports."""
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG, middle, old)
    atexit.register(gc.freeze)
