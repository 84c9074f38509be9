"""Entry point: `python -m sweeps.run +experiment=NAME [overrides]`."""

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
    from sweeps.study import run_study

    try:
        run_study(cfg)
    except UserError as err:
        log.error("%s", err)
        sys.exit(2)


if __name__ == "__main__":
    main()
