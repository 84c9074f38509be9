"""`python -m sweeps.gallery`: run every study at its default budget and draw the README's
gallery from what MLflow recorded.

Each study runs as a user would type it (`python -m sweeps.run +experiment=NAME`) into a
fresh store, then `python -m sweeps.report` rebuilds its figures and table from that store,
so every picture in `docs/gallery.md` is one the tool itself made, with the command under it
and the claims' verdicts after its table.
"""

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from sweeps.config import config_names, study_description
from sweeps.recording import recorded_study
from sweeps.tables import format_table
from sweeps.verdicts import CLAIMS_FILE, console

SKIPPED = ("suite",)  # every chapter-6 study again, one after another
TABLE_ROWS = 16
# A study's table as `sweeps.report` writes it: a search's is its trials, best first.
TABLES = ("summary.csv", "trials.csv")


def studies() -> list[str]:
    """The experiments the gallery shows, in the order `--help` lists them."""
    return config_names("experiment", SKIPPED)


def run(study: str, store: Path, extra: list[str]) -> float:
    """The study's command into `store`; returns its seconds."""
    command = [sys.executable, "-m", "sweeps.run", f"+experiment={study}", *extra]
    start = time.perf_counter()
    subprocess.run([*command, f"tracking.uri=sqlite:///{store}"], check=True)
    return time.perf_counter() - start


def provenance(study: str, store: Path) -> str:
    """Which data and machine the study ran on, from its parent run's tags."""
    tags = recorded_study(study, None, f"sqlite:///{store}").parent.tags
    data = f"data `{tags['dataset.source']}`" if "dataset.source" in tags else "no dataset"
    if tags.get("dataset.fallback") == "true":
        data += " (the offline fallback: not comparable with the full dataset)"
    return f"{data}; {tags.get('device.name', '?')}, {tags.get('torch.threads', '?')} threads"


def section(study: str, folder: Path, page: Path, note: str, extra: list[str]) -> str:
    """The study's gallery entry: its figures, the command that made them, its table and
    its claims' verdicts."""
    command = " ".join(["python -m sweeps.run", f"+experiment={study}", *extra])
    lines = [f"## {study}", "", study_description(study), ""]
    for image in sorted(folder.glob("*.png")):
        lines.append(f"![{image.stem}]({image.relative_to(page.parent).as_posix()})")
    path = next(folder / name for name in TABLES if (folder / name).exists())
    table = pd.read_csv(path).drop(columns="run_id", errors="ignore")
    lines += ["", f"`{command}` ({note})", "", "```", format_table(table.head(TABLE_ROWS)), "```"]
    if len(table) > TABLE_ROWS:
        lines.append(f"({len(table) - TABLE_ROWS} more rows in the study's CSV artifact)")
    if (folder / CLAIMS_FILE).exists():
        lines += ["", "```", console(pd.read_csv(folder / CLAIMS_FILE)), "```"]
    return "\n".join([*lines, ""])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sweeps.gallery", description=__doc__)
    parser.add_argument("studies", nargs="*", help="default: every study but the suite")
    parser.add_argument("--out", default="docs/gallery", help="figures' folder")
    parser.add_argument("--page", default="docs/gallery.md", help="the markdown page")
    parser.add_argument("--override", action="append", default=[], help="e.g. device=cpu")
    args = parser.parse_args(argv)
    out, names = Path(args.out), args.studies or studies()
    sections = []
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "mlflow.db"
        for i, study in enumerate(names):
            print(f"gallery [{i + 1}/{len(names)}]: {study}", file=sys.stderr, flush=True)
            seconds = run(study, store, args.override)
            folder = out / study
            shutil.rmtree(folder, ignore_errors=True)
            report = [sys.executable, "-m", "sweeps.report", study, "--out", str(folder)]
            subprocess.run([*report, "--tracking-uri", f"sqlite:///{store}"], check=True)
            (folder / "report.html").unlink()
            note = f"{seconds:.0f} s; {provenance(study, store)}"
            sections.append(section(study, folder, Path(args.page), note, args.override))
    header = (
        "# Gallery\n\nEvery study at its default budget, drawn by `python -m sweeps.gallery` "
        "from what MLflow recorded.\n\n"
    )
    Path(args.page).write_text(header + "\n".join(sections))
    print(f"gallery: {args.page} and {out}/", file=sys.stderr)


if __name__ == "__main__":
    main()
