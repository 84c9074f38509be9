"""`python -m sweeps.run --help`: every study in conf/experiment with its one line, Hydra's
config groups and composed config below, and instant: none of the heavy libraries imported."""

import re
import time
from pathlib import Path

import pytest
from helpers import command
from omegaconf import OmegaConf

from sweeps.config import CONF_DIR, config_hash, config_names

HEAVY = ("torch", "mlflow", "pandas", "matplotlib", "optuna")
# Run in the help's own process, at its exit: which of HEAVY it imported.
REPORT_IMPORTS = (
    "import atexit, sys\n"
    f"atexit.register(lambda: print('imported:', [m for m in {HEAVY!r} if m in sys.modules],"
    " file=sys.stderr))"
)


def description(name: str) -> str:
    return OmegaConf.load(CONF_DIR / "experiment" / f"{name}.yaml").get("description", "")


@pytest.mark.parametrize("name", config_names("experiment"))
def test_every_study_has_a_one_line_description(name: str) -> None:
    text = description(name)
    assert text and "\n" not in text, f"conf/experiment/{name}.yaml needs a `description:` line"


def test_help_lists_every_study_without_heavy_imports(tmp_path: Path) -> None:
    started = time.monotonic()
    proc = command(tmp_path, "--help", prelude=REPORT_IMPORTS)
    seconds = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "imported: []" in proc.stderr, proc.stderr[-3000:]
    # About a second on a loaded 2-core machine; a study's imports alone take several.
    assert seconds < 20
    studies = proc.stdout.split("== Studies ==")[1].split("== Configuration groups ==")[0]
    listed = dict(re.findall(r"^  (\w+) +(.+)$", studies, re.MULTILINE))
    assert listed == {name: description(name) for name in config_names("experiment")}
    assert "experiment: activations, architectures," in proc.stdout
    assert "optimizer: adagrad, adam," in proc.stdout
    assert "\nstudy: default\n" in proc.stdout, "Hydra's composed config is missing"


def test_help_after_a_study_shows_its_config(tmp_path: Path) -> None:
    proc = command(tmp_path, "+experiment=optimizers", "--help")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "\nstudy: optimizers\n" in proc.stdout
    assert f"\ndescription: {description('optimizers')}\n" in proc.stdout


def test_description_leaves_the_config_hash_alone(make_cfg) -> None:
    """A reworded description must not make `resume` retrain a finished study."""
    cfg = make_cfg("+experiment=optimizers")
    assert cfg.description == description("optimizers")
    assert config_hash(cfg) == config_hash(make_cfg("+experiment=optimizers", "description=x"))
