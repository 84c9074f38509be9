"""Where a study command's time goes: the seconds spent in each of its phases, measured in
the real command.

The command (`python -m sweeps.run +experiment=NAME`, a fresh SQLite store, the embedded
digits) runs as `python -m sweeps.run` does, in a process that first wraps the functions
below with a clock; each row is a phase: how often it ran, its seconds in all, and when it
first started (seconds after the process began). Phases nest (the search's `train` includes
its `steps`, and a step its parts, marked `-`: what a step leaves out of them is the update
rules and the divergence check), so the seconds do not add up; what the listed phases leave
out of the process's wall time is interpreter start-up, imports before the first phase, and
exit:

    python -m benchmarks.phases [--experiment hparam_search] [--json results.json]
        [--overrides train.iterations=1 ...]
"""

import argparse
import json
from pathlib import Path

import pandas as pd

from benchmarks import progress
from benchmarks.startup import probed_study

# (module, attribute path, phase): what a training study and a search spend their time on.
PHASES = [
    ("hydra._internal.hydra", "Hydra.compose_config", "Hydra composes the config"),
    ("sweeps.kinds", "run_study", "the study"),
    ("sweeps.kinds.train", "load_data", "data"),
    ("sweeps.kinds.search", "load_data", "data"),
    ("sweeps.recording", "open_tracking", "the MLflow store opened"),
    ("sweeps.kinds.train", "train_group", "train and record a population"),
    ("sweeps.trainer", "train_population", "train"),
    ("sweeps.population", "Population.step", "steps"),
    ("sweeps.population", "Population.losses", "- forward pass"),
    ("torch.autograd", "grad", "- backward pass"),
    ("sweeps.stacks", "ModuleStack.bank_grads", "- gradients moved, decay added"),
    ("sweeps.stacks", "ModuleStack.weight_penalty", "- weight penalty"),
    ("sweeps.population", "Population.correct", "evaluate"),
    ("sweeps.trial_pool", "TrialPool.take", "ask Optuna for trials"),
    ("sweeps.recording", "StudyRun.child", "open a child run"),
    ("sweeps.recording", "StudyRun.close_child", "close a child run"),
    ("optuna.study", "Study.tell", "tell Optuna"),
    ("optuna.trial", "Trial.set_user_attr", "set a trial's attribute"),
    ("sweeps.kinds.search", "Search.finish", "finish the search"),
    ("sweeps.kinds.search", "search_outputs", "read the trials back, importances and figures"),
    ("sweeps.search_outputs", "optuna_figures", "Optuna's figures"),
    ("sweeps.kinds.search", "judge", "judge the claims"),
    ("sweeps.kinds.search", "Search.test_once", "retrain the best and test it"),
    ("sweeps.kinds.train", "outputs", "table and figures"),
    ("sweeps.recording", "StudyRun.log_outputs", "log figures and tables"),
]

PROBE = """
import importlib, json, runpy, sys, time
started = time.perf_counter()
phases, out = json.loads(sys.argv[1]), sys.argv[2]
clock = {}

def wrap(owner, attr, phase):
    inner = getattr(owner, attr)
    def timed(*args, **kwargs):
        entry = clock.setdefault(phase, [0, 0.0, time.perf_counter() - started])
        begin = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            entry[0] += 1
            entry[1] += time.perf_counter() - begin
    setattr(owner, attr, timed)

for module, path, phase in phases:
    owner = importlib.import_module(module)
    *parents, attr = path.split(".")
    for name in parents:
        owner = getattr(owner, name)
    wrap(owner, attr, phase)
sys.argv = ["sweeps.run", *sys.argv[3:]]
try:
    runpy.run_module("sweeps.run", run_name="__main__")
finally:
    with open(out, "w") as fh:
        json.dump(clock, fh)
"""


def phases(experiment: str, overrides: list[str]) -> tuple[float, pd.DataFrame]:
    """The command's wall seconds and its phases (calls, seconds, first start)."""
    arguments = [json.dumps(PHASES), "phases.json"]
    with probed_study(PROBE, arguments, experiment, overrides) as (wall, folder):
        clock = json.loads((folder / "phases.json").read_text())
    rows = [
        {"phase": phase, "calls": calls, "seconds": seconds, "first_at_s": first}
        for phase, (calls, seconds, first) in clock.items()
    ]
    return wall, pd.DataFrame(rows).sort_values("first_at_s", kind="stable")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default="hparam_search")
    parser.add_argument("--json", help="also write every number to this JSON file")
    parser.add_argument("--overrides", nargs="*", default=[], help="Hydra overrides")
    args = parser.parse_args()
    progress(f"{args.experiment}: one run with its phases timed")
    wall, table = phases(args.experiment, args.overrides)
    print(f"{args.experiment}: {wall:.2f} s wall; its phases (nested, so they do not add up):")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    if args.json:
        result = {"wall_s": wall, "phases": table.to_dict("records"), "overrides": args.overrides}
        Path(args.json).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
