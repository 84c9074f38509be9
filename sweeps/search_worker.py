"""`python -m sweeps.search_worker CONFIG.yaml`: one more worker on a search, from the resolved
config that a `search.workers=N` invocation wrote for the workers it starts.

Such a worker is the same as running the search's command again: it joins the Optuna study,
trains trials until the study has `search.n_trials`, records them under a parent run of its
own, and ends like the first (see `sweeps.trial_pool`).
"""

import logging
import sys

from omegaconf import OmegaConf

from sweeps import collector, interrupts
from sweeps.config import Config, register
from sweeps.errors import UserError

log = logging.getLogger("sweeps")


def main() -> None:
    collector.tune()
    logging.basicConfig(
        level=logging.INFO,
        format="[%(asctime)s][worker %(process)d][%(name)s][%(levelname)s] - %(message)s",
        stream=sys.stderr,
    )
    register()
    interrupts.install()
    cfg = OmegaConf.merge(OmegaConf.structured(Config), OmegaConf.load(sys.argv[1]))
    from sweeps.kinds import run_study

    try:
        run_study(cfg)
    except UserError as err:
        log.error("%s", err)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
