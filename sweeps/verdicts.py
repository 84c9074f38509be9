"""A study's claims judged on its results: per seed, then over the seeds.

The study's experiment file states the documents' findings as claims (`sweeps.claims`); a
kind turns its results into one `claims.Results` per seed and hands them here. What comes
back is the claims table, one row per claim and seed, which is logged as `claims.csv`,
printed under the study's table, recorded on the parent run (`claim/NAME`, 1 when the claim
held in every seed) and shown in `report.html`; `python -m sweeps.verify` reads it back.
"""

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from sweeps.claims import (
    SHOWN,
    Claim,
    ClaimError,
    Results,
    evaluate,
    parse_all,
    shown_number,
    validate,
)

CLAIMS_FILE = "claims.csv"
COLUMNS = ["claim", "seed", "held", "numbers", "says", "check", "values"]


def claims_of(cfg: DictConfig) -> list[Claim]:
    """The study's claims, parsed: a syntax error names the claim and where."""
    return parse_all(OmegaConf.to_container(cfg.claims, resolve=True) or {})


def check(cfg: DictConfig, dry: Results) -> list[Claim]:
    """The study's claims, checked against results shaped like the study's (zeros) before
    any training: an unknown variant or metric fails before anything is spent."""
    claims = claims_of(cfg)
    try:
        validate(claims, dry)
    except ClaimError as err:
        name = str(err).split(":", 1)[0]
        raise ClaimError(
            f"{err} (to run without this claim: ~{name}; to change it: {name}.check='...')"
        ) from None
    return claims


def table_results(
    table: pd.DataFrame, label: str, aliases: Mapping[str, str] | None = None
) -> Results:
    """A study whose results are one table row per variant (named by its `label` column), as
    its claims read it: the row's numbers by variant."""
    rows = table.set_index(label)
    numbers = rows.select_dtypes("number")
    return Results(
        table=numbers, params=pd.DataFrame(index=rows.index), aliases=aliases or {}, score=None
    )


def aliases(cfg: DictConfig) -> dict[str, str]:
    """The experiment's variant keys as names claims may use (`std` for `std=0.01`); none for
    a grid, whose runs are named by their values."""
    if cfg.grid:
        return {}
    return {str(key): str((spec or {}).get("name") or key) for key, spec in cfg.variants.items()}


def check_table(cfg: DictConfig, names: Sequence[str], columns: Sequence[str], label: str) -> None:
    """`check` for a study whose results are one table row per variant (`names`, in its
    `label` column) with numeric `columns`."""
    dry = pd.DataFrame(0.0, index=range(len(names)), columns=list(columns))
    dry[label] = list(names)
    check(cfg, table_results(dry, label, aliases(cfg)))


def judge_table(cfg: DictConfig, table: pd.DataFrame, label: str) -> pd.DataFrame:
    """`judge` for a study whose results are its table: one seed, the study's."""
    return judge(claims_of(cfg), {cfg.seed: table_results(table, label, aliases(cfg))})


def judge(claims: Sequence[Claim], per_seed: Mapping[int, Results]) -> pd.DataFrame:
    """Every claim on every seed's results: the claims table (`COLUMNS`; `values` holds the
    numbers behind the verdict as JSON, for the statistics over seeds)."""
    rows = []
    for seed, results in per_seed.items():
        for verdict in evaluate(claims, results):
            rows.append(
                {
                    "claim": verdict.claim.name,
                    "seed": seed,
                    "held": verdict.held,
                    "numbers": verdict.describe(),
                    "says": verdict.claim.says,
                    "check": verdict.claim.check,
                    "values": json.dumps(verdict.numbers),
                }
            )
    return pd.DataFrame(rows, columns=COLUMNS)


def files(table: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """`claims.csv` for a study's artifacts, or nothing for a study without claims."""
    return {CLAIMS_FILE: table} if not table.empty else {}


def spread(values: Sequence[float]) -> str:
    """One number over two or more seeds: `mean ± std (min..max)` (sample std)."""
    a = np.asarray(values, dtype=float)
    if np.allclose(a, a[0], rtol=1e-9, atol=0):  # a study with nothing random in it
        return f"{shown_number(a[0])} in every seed"
    low, high = shown_number(a.min()), shown_number(a.max())
    return f"{shown_number(a.mean())} ± {a.std(ddof=1):.2g} ({low}..{high})"


def over_seeds(rows: pd.DataFrame) -> str:
    """The numbers behind one claim over its seeds, element by element: each operand as
    `text = mean ± std (min..max)`, long vectors as their count and range of means; for one
    seed, its verdict's own description."""
    if len(rows) == 1:
        return str(rows["numbers"].iloc[0])
    per_operand: dict[str, list[list[float]]] = {}
    for text in rows["values"]:
        for operand, values in json.loads(text).items():
            per_operand.setdefault(operand, []).append(values)
    parts = []
    for operand, seeds in per_operand.items():
        lengths = {len(v) for v in seeds}
        if len(lengths) != 1:  # a `best N` selection may differ in size: show each seed's
            parts.append(f"{operand} = {len(seeds)} seeds of {min(lengths)}..{max(lengths)}")
            continue
        columns = np.asarray(seeds, dtype=float).T
        if len(columns) > SHOWN:
            means = columns.mean(axis=1)
            low, high = shown_number(means.min()), shown_number(means.max())
            parts.append(f"{operand} = {len(columns)} values, means {low}..{high}")
        else:
            parts.append(f"{operand} = " + ", ".join(spread(c) for c in columns))
    return "; ".join(parts)


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """One row per claim: in how many seeds it held, and the numbers behind it over seeds."""
    rows = []
    for name, rows_of in table.groupby("claim", sort=False):
        rows.append(
            {
                "claim": name,
                "held": int(rows_of["held"].astype(bool).sum()),
                "seeds": len(rows_of),
                "numbers": over_seeds(rows_of),
                "says": rows_of["says"].iloc[0],
            }
        )
    return pd.DataFrame(rows, columns=["claim", "held", "seeds", "numbers", "says"])


def report_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The claims as `report.html` lists them: the finding, the check, the verdict."""
    rows = summary(table)
    checks = table.groupby("claim", sort=False)["check"].first()
    return pd.DataFrame(
        {
            "claim": rows["claim"],
            "says": rows["says"],
            "check": rows["claim"].map(checks),
            "verdict": [verdict_text(row) for _, row in rows.iterrows()],
        }
    )


def verdict_text(row: Mapping[str, Any]) -> str:
    """`held: NUMBERS` or `FAILED: NUMBERS` for one seed, else `held in 4 of 5 seeds: ...`."""
    held, seeds = row["held"], row["seeds"]
    if seeds == 1:
        return f"{'held' if held else 'FAILED'}: {row['numbers']}"
    return f"held in {held} of {seeds} seeds: {row['numbers']}"


def console(table: pd.DataFrame) -> str:
    """The claims under a study's table: one line each, the finding and its verdict."""
    if table.empty:
        return ""
    rows = summary(table)
    held = int((rows["held"] == rows["seeds"]).sum())
    every = " in every seed" if (rows["seeds"] > 1).any() else ""
    lines = [f"claims: {held} of {len(rows)} held{every}"]
    for _, row in rows.iterrows():
        mark = "ok  " if row["held"] == row["seeds"] else "FAIL"
        lines.append(f"  {mark} {row['claim']}: {row['says']}")
        lines.append(f"       {verdict_text(row)}")
    return "\n".join(lines)


def show(table: pd.DataFrame) -> None:
    """Print the claims on stdout, after the study's table."""
    if not table.empty:
        print(console(table) + "\n", flush=True)


def parent_record(table: pd.DataFrame) -> tuple[dict[str, float], dict[str, str]]:
    """The parent run's `claim/NAME` metrics (1: held in every seed) and `claim.NAME` tags
    (the verdict and the numbers behind it)."""
    metrics, tags = {}, {}
    for _, row in summary(table).iterrows():
        metrics[f"claim/{row['claim']}"] = float(row["held"] == row["seeds"])
        tags[f"claim.{row['claim']}"] = verdict_text(row)
    return metrics, tags
