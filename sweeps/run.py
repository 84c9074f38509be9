"""Entry point: `python -m sweeps.run +experiment=NAME [overrides]`.

Hydra composes the config; the kind registry (`sweeps.kinds`) runs it. Heavy imports (torch,
mlflow) happen inside the kind, so `--help` and Hydra's own errors are instant.
"""

import logging
import sys

import hydra
from omegaconf import DictConfig

from sweeps.config import register

register()
log = logging.getLogger("sweeps")


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> None:
    """Run the composed study; a bad input exits 2 with one clear line instead of a traceback."""
    from sweeps.errors import UserError
    from sweeps.kinds import run_study

    try:
        run_study(cfg)
    except UserError as err:
        log.error("%s", err)
        sys.exit(2)


if __name__ == "__main__":
    main()
