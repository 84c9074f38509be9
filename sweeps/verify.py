"""`python -m sweeps.verify [--budget quick|textbook] [--seeds N] [STUDY...] [KEY=VALUE...]`:
run studies and say whether the documents' findings held.

Each study runs as `python -m sweeps.run +experiment=STUDY` would (recorded in MLflow, its
table, figures and claims on its parent run), at the textbook's budget or at its `quick`
overrides, over N seeds: a training study once with `seeds=[S..S+N-1]` (one population), any
other kind once per seed. Its claims are read back from the runs' `claims.csv`, so the
replication table below says what the store holds. A claim holds when it held in every
seed. Exit status: 0, or 1 when a claim failed at the textbook budget (at the quick budget
a failure is reported, not fatal: the documents' findings need their budgets), 2 on bad
input, 130 on Ctrl-C.
"""

import argparse
import io
import logging
import sys
import time

import pandas as pd
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from sweeps import interrupts
from sweeps.config import CONF_DIR, compose_study, config_names, register
from sweeps.errors import UserError, one_line

log = logging.getLogger("sweeps")

BUDGETS = ("textbook", "quick")
COLUMNS = ["study", "claim", "held", "numbers", "seconds"]


def studies_with_claims() -> list[str]:
    """Every study whose experiment file states claims, read from the files."""
    return [
        name
        for name in config_names("experiment", exclude=("suite",))
        if OmegaConf.load(CONF_DIR / "experiment" / f"{name}.yaml").get("claims")
    ]


def invocations(name: str, budget: str, seeds: int, overrides: list[str]) -> list[DictConfig]:
    """The configs that run `name` at `budget` over `seeds` seeds: one with `seeds=[...]`
    for a training study, else one per seed."""
    cfg = composed(name, overrides)
    quick = list(cfg.quick) if budget == "quick" else []
    if quick:
        cfg = composed(name, [*quick, *overrides])
    if seeds == 1:
        return [cfg]
    replicates = [cfg.seed + i for i in range(seeds)]
    if cfg.kind == "train" and cfg.search is None:
        listed = ",".join(map(str, replicates))
        return [composed(name, [*quick, *overrides, f"seeds=[{listed}]"])]
    return [composed(name, [*quick, *overrides, f"seed={s}"]) for s in replicates]


def composed(name: str, overrides: list[str]) -> DictConfig:
    """The study as `python -m sweeps.run +experiment=NAME OVERRIDES` composes it; a search
    also gets the Optuna study that command would search (named by its overrides), rather
    than the one every seed and dataset would share without a command line."""
    cfg = compose_study(name, overrides, "studies")
    if cfg.search is not None and cfg.search.study_name is None:
        from sweeps.optuna_study import study_name

        cfg.search.study_name = study_name(cfg.study, overrides)
    return cfg


def recorded_claims(cfg: DictConfig) -> pd.DataFrame:
    """The claims table of the study's latest run, as its parent run holds it."""
    from sweeps.recording import recorded_study
    from sweeps.verdicts import CLAIMS_FILE

    study = recorded_study(cfg.tracking.experiment, None, cfg.tracking.uri)
    data = study.store.artifact(study.parent.run_id, CLAIMS_FILE)
    return pd.read_csv(io.BytesIO(data))


def verify(names: list[str], budget: str, seeds: int, overrides: list[str]) -> pd.DataFrame:
    """Run every study of `names` and return the replication table (`COLUMNS`)."""
    from sweeps.kinds import run_study
    from sweeps.verdicts import over_seeds

    configs = {name: invocations(name, budget, seeds, overrides) for name in names}
    for name, runs in configs.items():  # a study without claims has nothing to verify
        if not runs[0].claims:
            raise UserError(
                f"study {name!r} states no claims; studies with claims: "
                f"{', '.join(studies_with_claims())}"
            )
    rows = []
    for name, runs in configs.items():
        start = time.perf_counter()
        tables = []
        for cfg in runs:
            run_study(cfg)
            tables.append(recorded_claims(cfg))
        seconds = time.perf_counter() - start
        claims = pd.concat(tables, ignore_index=True)
        for claim, per_seed in claims.groupby("claim", sort=False):
            held = int(per_seed["held"].astype(bool).sum())
            rows.append([name, claim, f"{held} of {len(per_seed)}", over_seeds(per_seed), seconds])
    return pd.DataFrame(rows, columns=COLUMNS)


def failed(table: pd.DataFrame) -> pd.DataFrame:
    """The claims that did not hold in every seed."""
    counts = table["held"].str.split(" of ", expand=True).astype(int)
    return table[counts[0] < counts[1]]


def render(table: pd.DataFrame, budget: str, seeds: int, seconds: float) -> str:
    """The replication table: a line per claim (study, claim, in how many seeds it held, the
    study's time) and under it the numbers behind the verdict."""
    plural = "s" if seeds > 1 else ""
    lines = [f"replication at the {budget} budget over {seeds} seed{plural} ({seconds:.1f} s):"]
    width = {c: max(len(c), *(len(str(v)) for v in table[c])) for c in ("study", "claim")}
    lines.append(f"{'study':<{width['study']}}  {'claim':<{width['claim']}}  held    seconds")
    for _, row in table.iterrows():
        lines.append(
            f"{row['study']:<{width['study']}}  {row['claim']:<{width['claim']}}  "
            f"{row['held']:<6}  {row['seconds']:.1f}"
        )
        lines.append(f"{'':<{width['study']}}    {row['numbers']}")
    missed = failed(table)
    lines.append(
        f"{len(table) - len(missed)} of {len(table)} claims held in every seed"
        + (f"; failed: {', '.join(missed['claim'])}" if len(missed) else "")
    )
    return "\n".join(lines)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m sweeps.verify",
        description="Run studies and say whether the documents' findings (each study's "
        "`claims`) held, over seeds.",
        epilog="Exit status: 0; 1 when a claim failed in a seed at the textbook budget; 2 on "
        "bad input; 130 on Ctrl-C.",
    )
    parser.add_argument(
        "studies",
        nargs="*",
        metavar="STUDY | KEY=VALUE",
        help="studies (default: every study with claims) and overrides for all of them, "
        "e.g. dataset=fashion_mnist device=cpu '~claims.NAME'",
    )
    parser.add_argument(
        "--budget",
        choices=BUDGETS,
        default="textbook",
        help="textbook: the experiment files' budgets (default); quick: each study's `quick` "
        "overrides, a check that runs, not a replication",
    )
    parser.add_argument("--seeds", type=int, default=1, help="seeds per study (default 1)")
    args = parser.parse_intermixed_args(argv)
    if args.seeds < 1:
        parser.error(f"--seeds {args.seeds}: give 1 or more")
    overrides = [a for a in args.studies if "=" in a or a.startswith(("~", "+"))]
    args.studies = [a for a in args.studies if a not in overrides] or studies_with_claims()
    args.overrides = overrides
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s] %(message)s")
    register()
    interrupts.install()
    start = time.perf_counter()
    try:
        table = verify(args.studies, args.budget, args.seeds, args.overrides)
    except UserError as err:
        print(f"sweeps.verify: error: {err}", file=sys.stderr)
        sys.exit(2)
    except (HydraException, OmegaConfBaseException) as err:
        print(f"sweeps.verify: error: {one_line(err)}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("sweeps.verify: interrupted; runs still open were closed as KILLED", file=sys.stderr)
        sys.exit(130)
    print("\n" + render(table, args.budget, args.seeds, time.perf_counter() - start), flush=True)
    if args.budget == "textbook" and len(failed(table)):
        sys.exit(1)


if __name__ == "__main__":
    main()
