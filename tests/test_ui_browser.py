"""The optimizer study as a person sees it: recorded into a real `mlflow server`
(tests/servers.py), then looked at in Debian's headless Chromium, driven by Playwright.

It opens the runs table the study prints (the machine-learning view), expands the study's
row to show its five variants, checks their colour swatches, opens the study's run page, its
figure artifact and its report.html. Screenshots of each step go to test-artifacts/ui/,
1400x900, for the README's "Looking at results" (copied to docs/images/ui-*.png); where a step
fails, failure.png shows the page it failed on.

The browser is the system's, not a Playwright download: `chromium` on PATH (Debian's package;
.ci/run installs it). Without it the test skips, except in CI, where it fails.

Selectors, found by reading MLflow 3.17's UI: the runs table is an AG Grid whose cells hold
links to the runs (`#/experiments/E/runs/RUN_ID`); the cell with the parent's link holds the
nesting expander, its only button (no label); each run's colour swatch is
data-testid="experiment-view-table-run-color" around an <input type="color">; the run page
has role=tab "Artifacts"; the artifact tree's nodes are data-testid="artifact-tree-node";
an image preview is <img alt="NAME">.
"""

import contextlib
import os
import re
import shutil
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest
from helpers import ROOT, command, runs_by_name
from mlflow import MlflowClient

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # the dev extra is not installed: the fixture skips, or fails in CI
    expect = sync_playwright = None

VARIANTS = ["sgd", "momentum", "adagrad", "rmsprop", "adam"]
FIGURE = "optimizers.png"
SHOTS = ROOT / "test-artifacts" / "ui"
VIEWPORT = {"width": 1400, "height": 900}
FIRST_LOAD_MS = 120_000  # the UI bundle is large; a busy 2-core machine parses it slowly
STEP_MS = 60_000  # every other wait
# Chromium runs as root in CI (no sandbox then), on machines without a GPU, in containers
# whose /dev/shm may be tiny.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
# Local-storage settings of MLflow's UI, as a user who chose them has: "Model training" as
# the sidebar's view on every page (the run page has no workflowType in its URL), and the
# Assistant panel, which opens itself on a first visit, already shown once, so it does not
# cover a third of each screenshot. Only cosmetic: the assertions do not depend on them.
UI_SETTINGS = """
localStorage.setItem("mlflow.workflowType_v1", JSON.stringify("machine_learning"));
localStorage.setItem("mlflow.assistant.fab.autoOpenedOnFirstLoad_v1", "true");
"""


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1")


def _missing(reason: str) -> NoReturn:
    """Skip on a developer's machine; fail in CI, which installs both (.ci/run, the dev extra)."""
    if _in_ci():
        pytest.fail(f"{reason}, but CI is set")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator:
    """Headless system Chromium under Playwright, one for the module."""
    chromium = shutil.which("chromium")
    if chromium is None:
        _missing("no chromium on PATH (Debian package chromium)")
    if sync_playwright is None:
        _missing("the playwright package is not installed (the dev extra)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def _png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk, which follows its 8-byte signature."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])


def test_study_in_the_mlflow_ui(
    browser, mlflow_server: str, tmp_path: Path, data_cache: Path
) -> None:
    proc = command(
        tmp_path,
        "+experiment=optimizers",
        "train.iterations=150",  # enough for the figure in the screenshots to show a descent
        "dataset.train_size=200",
        "train.progress=false",
        "device=cpu",
        "dataset.download=false",
        f"dataset.cache_dir={data_cache}",
        f"tracking.uri={mlflow_server}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = runs_by_name(mlflow_server, "optimizers")
    assert set(runs) == {"optimizers", *VARIANTS}
    parent = runs.pop("optimizers")
    colours = {name: run.data.tags["mlflow.runColor"].lower() for name, run in runs.items()}
    assert len(set(colours.values())) == len(VARIANTS), colours
    experiment_id = parent.info.experiment_id

    SHOTS.mkdir(parents=True, exist_ok=True)
    (SHOTS / "failure.png").unlink(missing_ok=True)  # a past run's
    context = browser.new_context(viewport=VIEWPORT)
    context.add_init_script(UI_SETTINGS)
    context.set_default_timeout(STEP_MS)
    expect.set_options(timeout=STEP_MS)
    page = context.new_page()
    try:
        # The runs table, as the study's log line gives it: the parent's row, children folded.
        page.goto(
            f"{mlflow_server}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"
        )

        def run_link(run):
            """The link named as the run is, to its page (the page may hold others to it)."""
            named = page.get_by_role("link", name=run.info.run_name, exact=True)
            return named.and_(page.locator(f'[href$="/runs/{run.info.run_id}"]'))

        def run_cell(run):
            return page.get_by_role("gridcell").filter(has=run_link(run))

        expect(run_link(parent)).to_be_visible(timeout=FIRST_LOAD_MS)
        for run in runs.values():
            expect(run_link(run)).to_have_count(0)

        run_cell(parent).get_by_role("button").click()
        painted = {}
        for name, run in runs.items():
            expect(run_link(run)).to_be_visible()
            # The swatch shows the run's mlflow.runColor tag. (The parent has no tag: the UI
            # picks it a colour, which may be a variant's.)
            swatch = run_cell(run).get_by_test_id("experiment-view-table-run-color")
            expect(swatch.locator("input[type=color]")).to_have_value(colours[name])
            painted[name] = swatch.evaluate("s => getComputedStyle(s).backgroundColor")
        assert len(set(painted.values())) == len(VARIANTS), f"run colours repeat: {painted}"
        page.mouse.click(VIEWPORT["width"] // 2, VIEWPORT["height"] - 150)  # the grid's focus
        page.screenshot(path=SHOTS / "runs-table.png")

        # The study's run page, reached as a person would: its link in the table.
        run_link(parent).click()
        expect(page).to_have_url(re.compile(f"/runs/{parent.info.run_id}"))
        for run in runs.values():  # "Child runs" in "About this run"
            expect(run_link(run)).to_be_visible()
        expect(page.get_by_text("Description", exact=True)).to_be_visible()
        page.screenshot(path=SHOTS / "parent-run.png")

        # Its artifacts tab, and the figure in the preview, loaded and decoded.
        page.get_by_role("tab", name="Artifacts").click()
        node = page.get_by_test_id("artifact-tree-node").filter(has_text=FIGURE)
        with page.expect_response(lambda r: FIGURE in r.url) as response_info:
            node.click()
        response = response_info.value
        assert response.status == 200, response.status
        assert response.headers["content-type"].startswith("image/png")
        # the figure as recorded; the response's body is not kept for a fetch read as a blob
        recorded = MlflowClient(mlflow_server).download_artifacts(
            parent.info.run_id, FIGURE, str(tmp_path)
        )
        width, height = _png_size(Path(recorded).read_bytes())
        image = page.get_by_role("img", name=FIGURE)
        expect(image).to_be_visible()
        natural = image.evaluate("i => i.decode().then(() => [i.naturalWidth, i.naturalHeight])")
        assert natural == [width, height], (natural, width, height)
        page.screenshot(path=SHOTS / "parent-figure.png")

        # report.html, which the artifact viewer shows in a frame: the whole study on a page.
        page.get_by_test_id("artifact-tree-node").filter(has_text="report.html").click()
        report = page.frame_locator("iframe").first
        expect(report.get_by_role("heading", name="Summary")).to_be_visible()
        expect(report.get_by_role("img", name=FIGURE)).to_be_visible()
        for name in VARIANTS:
            expect(report.get_by_role("link", name=name, exact=True)).to_be_visible()
        page.screenshot(path=SHOTS / "report.png")
    except BaseException:
        with contextlib.suppress(Exception):  # the error to report is the one above
            page.screenshot(path=SHOTS / "failure.png")
        raise
    finally:
        context.close()
