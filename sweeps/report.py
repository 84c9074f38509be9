"""`python -m sweeps.report STUDY`: redraw a study's figures, table and `report.html` from the
store alone.

The parent run's `config.yaml` says what the study was and which kind ran it; the kind's
`rebuild` turns its child runs' params and metric histories back into the table and figures.
So a study run yesterday, or on another machine sharing the tracking server, is redrawn
without re-training.
"""

import argparse
import sys
from pathlib import Path

import pandas as pd

from sweeps import kinds
from sweeps.errors import UserError
from sweeps.figures import pyplot
from sweeps.html_report import png, render
from sweeps.recording import REPORT, claim_of, recorded_study, report_page
from sweeps.tables import format_table
from sweeps.verdicts import CLAIMS_FILE, console


def rebuild(
    experiment: str, run_id: str | None = None, out: str | None = None, uri: str | None = None
) -> tuple[pd.DataFrame, Path]:
    """Write the study's figures, tables (summary.csv or trials.csv, claims.csv) and
    report.html into `out`; return the study's table and the folder."""
    study = recorded_study(experiment, run_id, uri)
    tables, figures = kinds.get(kinds.kind_of(study.config)).rebuild(study)
    folder = Path(out or Path("reports") / experiment / study.parent.run_id)
    folder.mkdir(parents=True, exist_ok=True)
    plt = pyplot()
    images = {}
    for name, fig in figures.items():
        images[name] = png(fig)
        plt.close(fig)
        (folder / name).write_bytes(images[name])
    for name, frame in tables.items():
        frame.to_csv(folder / name, index=False)
    table = next(iter(tables.values()))
    page = report_page(
        study.store.uri,
        study.experiment_id,
        study.parent,
        list(study.children.values()),
        table,
        images,
        study.config_yaml,
        claim_of(study.config),
        tables.get(CLAIMS_FILE),
    )
    (folder / REPORT).write_text(render(page))
    return table, folder


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m sweeps.report",
        description="Redraw a study's figures and table from the MLflow store.",
    )
    parser.add_argument("experiment", help="MLflow experiment (the study's name)")
    parser.add_argument("--run-id", help="the study's parent run (default: the latest)")
    parser.add_argument("--out", help="output folder (default: reports/EXPERIMENT/RUN_ID)")
    parser.add_argument("--tracking-uri", help="default: $MLFLOW_TRACKING_URI or ./mlflow.db")
    args = parser.parse_args(argv)
    try:
        table, folder = rebuild(args.experiment, args.run_id, args.out, args.tracking_uri)
    except UserError as err:
        sys.exit(f"error: {err}")
    print(f"{args.experiment}: figures, tables and {REPORT} in {folder}")
    print(format_table(table))
    if (folder / CLAIMS_FILE).exists():
        print(console(pd.read_csv(folder / CLAIMS_FILE)))


if __name__ == "__main__":
    main()
