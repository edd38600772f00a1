"""The report in a real browser: Playwright driving Debian's Chromium (/usr/bin/chromium; never a
downloaded browser). Opens a report from file://, checks that every plot rendered, that there
are no console errors, that the step slider moves the plotted point, that an escaped run
name shows as text, and that a download button delivers the figure's CSV. Saves a screenshot
to test-artifacts/.

Setup (root): ``apt-get install -y chromium`` and ``pip install playwright`` (no
``playwright install``)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
EVIL = "<script>alert(1)</script>"
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


def _browser_or_skip():
    if not (os.path.exists(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.skip(f"no Chromium at {CHROMIUM} (install Debian's: apt-get install -y chromium)")
    try:
        from playwright.sync_api import sync_playwright  # noqa: F401
    except ImportError:
        pytest.skip("playwright is not installed (pip install playwright; never `playwright install`)")
    return sync_playwright


def _report(tmp_path) -> Path:
    """A tour report (the bowl chapter, with its slider) plus a stored run named like a script."""
    from losslab.figures import Figure, Grid, Path as FPath, Series
    from losslab.report import Section, save_section
    from losslab.store import open_store
    from losslab.tour import run_tour

    st = open_store(tmp_path / "store")
    x = np.linspace(-1, 1, 15)
    Z = x[None, :] ** 2 + x[:, None] ** 2
    p = FPath("path", np.linspace(-0.9, 0, 6), np.linspace(0.9, 0, 6), None, np.arange(6), None)
    save_section(st, Section(EVIL, EVIL, f"run named {EVIL}", figures=(
        Figure("c", EVIL, "contour", "a", "b", grid=Grid(x, x, Z), paths=(p,), slider=True),
        Figure("l", "lines", "lines", series=(Series(EVIL, np.arange(3.0), np.array([1.0, 0.5, 0.2])),)))),
        study="browser")
    res = run_tour(quick=True, store=st, chapters=["seven_point_bowl"])
    from losslab.report import write_report

    (study_page,) = write_report("browser", store=st)
    return res.report, study_page


def test_report_in_chromium(tmp_path):
    sync_playwright = _browser_or_skip()
    tour, study = _report(tmp_path)
    ARTIFACTS.mkdir(exist_ok=True)
    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--no-first-run"]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=args)
        try:
            for page_path, shot in ((tour, "tour.png"), (study, "escaped-run.png")):
                page = browser.new_page(viewport={"width": 1300, "height": 900}, accept_downloads=True)
                errors, dialogs = [], []
                page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
                page.on("pageerror", lambda e: errors.append(str(e)))
                page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
                page.goto(page_path.as_uri())
                n = page.locator("div.plot").count()
                assert n >= 2
                # every plot rendered: plotly's layout object is on every plot div
                page.wait_for_function("Array.from(document.querySelectorAll('div.plot')).every(d => d._fullLayout)",
                                       timeout=30_000)
                assert page.locator("p.plot-error").count() == 0
                # the step slider moves the plotted point
                slider = page.locator("input.step-slider").first
                fid = slider.get_attribute("data-for")
                trace = f"document.getElementById('{fid}').data"
                before = page.evaluate(f"(() => {{ const d = {trace}; const t = d[d.length - 1]; return [t.x[0], t.y[0]]; }})()")
                last = slider.get_attribute("max")
                slider.fill(last)
                after = page.evaluate(f"(() => {{ const d = {trace}; const t = d[d.length - 1]; return [t.x[0], t.y[0]]; }})()")
                assert after != before, (before, after)
                assert page.locator(f"#{fid}-step").text_content() != "0"
                # a figure's data downloads as CSV from the page (Blob, works from file://)
                with page.expect_download() as dl:
                    page.locator("button.dl").first.click()
                csv_text = Path(dl.value.path()).read_text()
                assert csv_text.startswith("part,name,index,x,y,z")
                page.screenshot(path=str(ARTIFACTS / shot), full_page=False)
                if page_path == study:
                    # the run named like a script shows as text and never runs
                    assert page.get_by_role("heading", name=EVIL).count() >= 1
                    assert page.get_by_text(f"run named {EVIL}").count() == 1
                    assert page.evaluate("document.querySelectorAll('h2 script, p script').length") == 0
                    legend = page.evaluate(f"document.getElementById('{fid}').querySelector('.gtitle').textContent")
                    assert legend == EVIL
                assert dialogs == [], dialogs
                assert errors == [], errors
                page.close()
        finally:
            browser.close()
    assert (ARTIFACTS / "tour.png").stat().st_size > 10_000
