"""The package's shape, read from its source with `ast`: imports point one way (no cycle, no
lower module importing a study kind or an entry point), and only the recording module imports
mlflow. The kind registry finds kinds by file and runs a new one from config alone."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT

from sweeps import kinds
from sweeps.errors import ConfigError

PACKAGES = ("sweeps", "models")
# The modules above the study kinds: entry points and the Hydra callback.
ENTRY_POINTS = {
    "sweeps.run",
    "sweeps.report",
    "sweeps.evaluate",
    "sweeps.multirun",
    "sweeps.search_worker",
    "sweeps.gallery",
    "sweeps.verify",
}


def modules() -> dict[str, Path]:
    """Dotted module name -> source file, for every module of the project's packages."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules `name` imports anywhere in its source (function bodies and
    TYPE_CHECKING blocks included: they are dependencies of the design all the same)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            # `from pkg import mod` imports the module pkg.mod; `from mod import name`, mod.
            targets.update(
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                for alias in node.names
            )
    return {t for t in targets if t in known and t != name}


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports(name, path, set(found)) for name, path in found.items()}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None: a depth-first search for a back edge."""
    state: dict[str, str] = {}  # "open" while on the current path, "done" once explored
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = "done"
        return None

    for start in sorted(edges):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_the_cycle_finder_names_a_cycle() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(edges) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_relative_imports_resolve_to_their_modules(tmp_path: Path) -> None:
    known = {"sweeps.kinds", "sweeps.kinds.train", "sweeps.config", "sweeps.plan"}
    path = tmp_path / "fake.py"
    path.write_text("from . import train\nfrom ..config import validate\nimport sweeps.plan\n")
    assert imports("sweeps.kinds.fake", path, known) == {
        "sweeps.kinds.train",
        "sweeps.config",
        "sweeps.plan",
    }


def test_the_package_has_no_import_cycle() -> None:
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_imports_point_down_from_entry_points_through_kinds() -> None:
    """Only entry points and the suite (which runs kinds through the registry) import the
    registry; no module imports a kind module or an entry point."""
    offenders = []
    for name, targets in graph().items():
        for target in targets:
            up = target in ENTRY_POINTS or target.startswith("sweeps.kinds.")
            registry = target == "sweeps.kinds" and name not in {
                *ENTRY_POINTS,
                "sweeps.kinds.suite",
            }
            if up or registry:
                offenders.append(f"{name} imports {target}")
    assert not offenders, "; ".join(offenders)


def test_only_the_recording_module_imports_mlflow() -> None:
    offenders = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            if name != "sweeps.recording" and any(n.split(".")[0] == "mlflow" for n in names):
                offenders.append(f"{name} (line {node.lineno})")
    assert not offenders, "mlflow imported outside sweeps.recording: " + ", ".join(offenders)


def imported(modules: str, heavy: set[str]) -> str:
    """Which of `heavy` a fresh interpreter holds after importing `modules`, as printed."""
    probe = f"import sys, {modules}\nprint(sorted({heavy!r} & set(sys.modules)))"
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_entry_points_import_neither_torch_nor_mlflow() -> None:
    """Hydra instantiates the multirun callback on every call: `--help` and config errors
    must not pay a second each for torch and mlflow."""
    assert imported("sweeps.run, sweeps.multirun", {"torch", "mlflow"}) == "[]"


def test_the_suite_starts_its_workers_without_importing_what_they_import() -> None:
    """The suite's own process only composes, hands out and stacks the studies' tables; its
    workers cannot start before it has imported its kind, so torch, MLflow and Optuna there
    would delay every study by a second."""
    assert imported("sweeps.run, sweeps.kinds.suite", {"torch", "mlflow", "optuna"}) == "[]"


def test_every_kind_module_is_registered_with_run_and_rebuild() -> None:
    assert set(kinds.names()) == {
        "activations",
        "architectures",
        "optimizer_paths",
        "search",
        "suite",
        "train",
    }
    for name in kinds.names():
        module = kinds.get(name)
        assert callable(module.run), name
        # The suite records no run of its own, so there is nothing to rebuild.
        assert callable(getattr(module, "rebuild", None)) != (name == "suite"), name


def test_every_experiment_names_a_registered_kind(make_cfg) -> None:
    for path in sorted((ROOT / "conf" / "experiment").glob("*.yaml")):
        cfg = make_cfg(f"+experiment={path.stem}")
        assert kinds.kind_of(cfg) in kinds.names(), path.name


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["kind=histograms"], "kind='histograms' is not valid; choose one of: activations"),
        (["+experiment=optimizer_paths", "+search=lr_wd"], "+search applies to training"),
        (["kind=search"], "kind=search needs a search space: add +search=NAME"),
    ],
)
def test_a_bad_kind_names_the_valid_ones(make_cfg, overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("+", r"\+")):
        kinds.run_study(make_cfg(*overrides))


def test_a_new_kind_is_one_module_found_by_its_file_name(
    make_cfg, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A module dropped into the registry's package runs as `kind=NAME`, listed among the
    valid kinds, with nothing else edited."""
    folder = tmp_path / "kinds"
    folder.mkdir()
    (folder / "echo.py").write_text(
        "import pandas as pd\n\n"
        "def run(cfg):\n"
        "    return pd.DataFrame({'study': [cfg.study], 'seed': [cfg.seed]})\n"
    )
    monkeypatch.setattr(kinds, "__path__", [*kinds.__path__, str(folder)])
    try:
        assert "echo" in kinds.names()
        table = kinds.run_study(make_cfg("kind=echo", "seed=7"))
    finally:
        sys.modules.pop("sweeps.kinds.echo", None)
    assert table.to_dict("records") == [{"study": "default", "seed": 7}]
