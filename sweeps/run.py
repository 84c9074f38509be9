"""Entry point: `python -m sweeps.run +experiment=NAME [overrides]`.

Hydra composes the config; the kind registry (`sweeps.kinds`) runs it. Heavy imports (torch,
mlflow) happen inside the kind, so `--help` and Hydra's own errors are instant. `--help` lists
the studies, one line each from the `description` of `conf/experiment/NAME.yaml`, above
Hydra's usual help (conf/hydra/help/sweeps.yaml).

Exit codes: 0 done, 2 bad input (one line naming the key, the value and what is valid, Hydra's
composition errors included), 130 interrupted (Ctrl-C; the runs left open are closed KILLED).
"""

import logging
import os
import sys

import hydra
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from sweeps import collector, interrupts
from sweeps.config import config_names, register, study_description
from sweeps.errors import UserError, one_line

log = logging.getLogger("sweeps")


def studies_help() -> str:
    """The `${studies:}` of the `--help` template: a line per study, its name and its
    `description`. Read from the files rather than composed, so that `--help` stays instant,
    and from the files rather than a list here, so that a new study cannot be missing."""
    names = config_names("experiment")
    width = max(map(len, names))
    lines = []
    for name in names:
        lines.append(f"  {name:<{width}}  {study_description(name)}".rstrip())
    return "\n".join(lines).replace("$", "$$")  # Hydra then fills the template's $NAMEs


register()
if not OmegaConf.has_resolver("studies"):
    OmegaConf.register_new_resolver("studies", studies_help)


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> None:
    """Run the composed study; a bad input exits 2 with one clear line instead of a traceback."""
    from sweeps.kinds import run_study

    try:
        run_study(cfg)
    except UserError as err:
        log.error("%s", err)
        sys.exit(2)


def cli() -> None:
    """`main` with Hydra's errors and Ctrl-C turned into one line and an exit code.

    Hydra prints its own errors over several lines and exits 1 unless HYDRA_FULL_ERROR=1,
    which makes it raise them instead, so this sets it (a user's own setting wins).
    """
    collector.tune()
    os.environ.setdefault("HYDRA_FULL_ERROR", "1")
    interrupts.install()
    try:
        main()
    except KeyboardInterrupt as err:
        # What the interpreter records for an unhandled exception: the multirun's exit hook
        # reads it to close its parent run KILLED rather than FAILED.
        sys.last_exc = sys.last_value = err
        print("sweeps: interrupted; runs still open were closed as KILLED", file=sys.stderr)
        sys.exit(130)
    except (HydraException, OmegaConfBaseException) as err:
        print(f"sweeps: error: {one_line(err)}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    cli()
