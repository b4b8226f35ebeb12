"""The MLflow UI seen through a real browser: Debian's `chromium` driven headless by playwright (no browser
download), for the UI test (tests/test_study.py) and the screenshots in docs/ (bench/ui_screenshots.py).

`runs_url(base, experiment_id)` is the study's runs view. MLflow 3.17's UI chooses an experiment's landing page
from a browser-wide "GenAI | Model training" switch (localStorage `mlflow.workflowType`, default GenAI: the traces
overview), which the URL parameter `workflowType=machine_learning` overrides; the experiment tag
`mlflow.experimentKind` (which studykit sets) only labels the experiment. So `studykit ui` prints these links.
Needs the `dev` extra (playwright) and a chromium on PATH; `chromium_path()` is None without one.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from studykit.infra.procs import answers, free_port

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
EXPANDER = 'button[data-component-id*="runnamecellrenderer"]'  # the [+] before a parent run's name
LOAD_S = 120.0  # a cold UI on a loaded 2-core machine takes this long to render its first table


def runs_url(base: str, experiment_id: str) -> str:
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"


def chromium_path() -> str | None:
    return next((p for p in map(shutil.which, BROWSERS) if p), None)


@contextmanager
def page(width: int = 1500, height: int = 820) -> Iterator:
    """A playwright page in headless system chromium (no sandbox: CI runs as root)."""
    from playwright.sync_api import sync_playwright

    exe = chromium_path()
    if exe is None:
        raise RuntimeError(f"no chromium on PATH (looked for {', '.join(BROWSERS)}); apt-get install chromium")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, args=["--no-sandbox", "--disable-gpu",
                                                                 "--disable-dev-shm-usage"])
        try:
            yield browser.new_page(viewport={"width": width, "height": height})
        finally:
            browser.close()


def open_runs(pg, base: str, experiment_id: str, first_row: str, timeout_s: float = LOAD_S) -> None:
    """Open the runs view and wait until the row named `first_row` shows; close the assistant side panel."""
    pg.goto(runs_url(base, experiment_id))
    pg.get_by_text(first_row, exact=True).first.wait_for(timeout=timeout_s * 1000)
    close = pg.locator('button[aria-label="Close"]')
    if close.count():
        close.first.click()


def run_rows(pg) -> list[str]:
    """The run names the runs table shows now, top to bottom."""
    return [t.strip() for t in pg.locator('[col-id="attributes.`Run Name`"][role="gridcell"]').all_inner_texts()]


def expand(pg, parent: str, child: str, timeout_s: float = 30.0) -> list[str]:
    """Click the expander of the (first) parent row and wait for `child`; returns the rows shown then."""
    pg.locator(EXPANDER).first.click()
    pg.get_by_text(child, exact=True).first.wait_for(timeout=timeout_s * 1000)
    return run_rows(pg)


def widen_names(pg, pixels: int = 260) -> None:
    """Drag the Run Name column wider, so names like `rq1 random | toy:strong | toy | s0` are read whole."""
    box = pg.locator(".ag-header-cell").filter(has_text="Run Name").first.bounding_box()
    if box:  # the resize grip is the header cell's right edge
        x, y = box["x"] + box["width"] - 2, box["y"] + box["height"] / 2
        pg.mouse.move(x, y)
        pg.mouse.down()
        pg.mouse.move(x + pixels, y, steps=8)
        pg.mouse.up()


def filter_runs(pg, search: str) -> None:
    """Type an MLflow search filter into the runs view's search box (MLflow keeps a matching run's parent, and
    shows the matches under it when it is expanded)."""
    box = pg.get_by_placeholder('metrics.rmse < 1 and params.model = "tree"')
    box.fill(search)
    box.press("Enter")


def chart_view(pg, metric: str, child: str | None = None, timeout_s: float = 60.0):
    """Switch the runs view to its charts and return the chart card of `metric` (a locator). The charts plot the
    runs the side table shows, which starts with the parent collapsed: with `child`, expand the parent until that
    child shows. The metric is typed into the chart search, since only cards scrolled into view are drawn."""
    pg.locator('label:has(input[value="CHART"])').first.click()
    if child is not None:
        expander = pg.locator(EXPANDER).first
        expander.wait_for(timeout=timeout_s * 1000)
        if not pg.get_by_text(child, exact=True).count():
            expander.click()
        pg.get_by_text(child, exact=True).first.wait_for(timeout=timeout_s * 1000)
    pg.get_by_placeholder("Search metric charts").fill(metric)
    card = pg.locator('[data-testid="experiment-view-compare-runs-card"]').filter(has_text=metric).first
    card.wait_for(timeout=timeout_s * 1000)
    return card


def save(shot_of, path: Path) -> Path:
    """Screenshot of a page or locator into `path` (its folder made)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    shot_of.screenshot(path=str(path))
    return path


def api_answers(base: str) -> bool:
    """Whether the MLflow UI at `base` answers its REST API (it then serves the runs view too)."""
    return answers(f"{base}/ajax-api/2.0/mlflow/experiments/search?max_results=1")


@contextmanager
def serving(uri: str, timeout_s: float = 300.0) -> Iterator[str]:
    """`studykit ui --uri URI` on a free loopback port until the block ends (then SIGTERM: it stops its tree);
    yields the base URL once the API answers."""
    import signal
    import subprocess
    import sys
    import time

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "studykit.cli.commands", "ui", "--uri", uri, "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + timeout_s
        while not api_answers(base):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"studykit ui did not answer on {base}: {proc.poll()=}")
            time.sleep(0.5)
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
