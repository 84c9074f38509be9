"""`report.html`: one study invocation on one self-contained page.

Figures are inline PNGs (base64), so the page needs nothing beside it: MLflow's artifact
viewer shows it on the parent run, and the file can be mailed or put on a course page. The
live study and `python -m sweeps.report` build it from the same values (a table, figures,
the config, the environment tags, the runs), so the rebuilt page matches the logged one.
"""

import base64
import html
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from sweeps.tables import format_number

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ddd; }
code, pre { background: #f5f5f5; border-radius: 4px; }
pre { padding: 0.8em; overflow-x: auto; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: right; }
th { background: #f0f0f0; } td:first-child, th:first-child { text-align: left; }
figure { display: inline-block; margin: 0.5em; } img { max-width: 100%; }
figcaption { font-size: 0.85em; color: #555; }
.swatch { display: inline-block; width: 0.9em; height: 0.9em; border-radius: 2px;
          vertical-align: middle; margin-right: 0.4em; }
"""


@dataclass(frozen=True)
class RunLink:
    """A child run as the report lists it: name, status, colour in the charts, its page."""

    name: str
    status: str
    colour: str | None
    url: str


@dataclass(frozen=True)
class ReportPage:
    """What one report shows."""

    title: str
    claim: str  # what the study reproduces, from the experiment's config
    command: str
    table: pd.DataFrame
    figures: Mapping[str, bytes]  # file name -> PNG
    config_yaml: str
    environment: Mapping[str, str]  # provenance and dataset tags
    runs_url: str
    runs: Sequence[RunLink]
    # The documents' findings and whether they held (`sweeps.verdicts.report_rows`).
    claims: pd.DataFrame | None = None


def png(figure: Any) -> bytes:
    """A matplotlib figure as PNG bytes, drawn once for both the artifact and the page."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _link(url: str, text: str) -> str:
    # MLflow shows the page in a frame: links open in the whole window.
    return f'<a href="{html.escape(url)}" target="_top">{html.escape(text)}</a>'


def render(page: ReportPage) -> str:
    """The page as one HTML document."""
    esc = html.escape
    shown = page.table.drop(columns="run_id", errors="ignore")
    table = shown.to_html(index=False, float_format=format_number, border=0, na_rep="")
    figures = "\n".join(
        f'<figure><img alt="{esc(name)}" src="data:image/png;base64,'
        f'{base64.b64encode(data).decode()}"><figcaption>{esc(name)}</figcaption></figure>'
        for name, data in page.figures.items()
    )
    runs = "\n".join(
        "<tr><td>"
        + (f'<span class="swatch" style="background:{esc(r.colour)}"></span>' if r.colour else "")
        + f"{_link(r.url, r.name)}</td><td>{esc(r.status)}</td></tr>"
        for r in page.runs
    )
    environment = "\n".join(
        f"<tr><td>{esc(k)}</td><td>{esc(str(v))}</td></tr>"
        for k, v in sorted(page.environment.items())
    )
    claim = f"<p>{esc(page.claim)}</p>" if page.claim else ""
    claims = (
        "<h2>Claims</h2>\n" + page.claims.to_html(index=False, border=0)
        if page.claims is not None and not page.claims.empty
        else ""
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(page.title)}</title>
<style>{STYLE}</style></head><body>
<h1>{esc(page.title)}</h1>
{claim}
<p>Made by <code>{esc(page.command)}</code>. All runs: {_link(page.runs_url, "runs table")}.</p>
<h2>Summary</h2>
{table}
{claims}
<h2>Figures</h2>
{figures}
<h2>Runs</h2>
<table><tr><th>run</th><th>status</th></tr>
{runs}
</table>
<h2>Configuration</h2>
<pre>{esc(page.config_yaml)}</pre>
<h2>Environment</h2>
<table><tr><th>tag</th><th>value</th></tr>
{environment}
</table>
</body></html>
"""
