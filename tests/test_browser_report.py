"""Issue #17 in a real browser: a tour report a teacher can put on the wall.

Playwright drives Debian's Chromium (/usr/bin/chromium, never a downloaded browser) over a small
tour (four chapters, built once per module) and the store's index, opened from file://. Each test
checks one item of the issue as the browser shows it: every plot rendered within 5 s with no
console errors; one colour per meaning within a chapter; named bar categories; log axes labelled
at decades only; reference lines told apart; "numbers shown" tables not clipped; raw tables
folded; the index's final loss and accuracy columns. Screenshots of every chapter go to
test-artifacts/ (look at them).

Setup (root): ``apt-get install -y chromium`` and ``make browser-setup`` (no ``playwright install``).
"""
from __future__ import annotations

import math
import os
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
#: the bowl (contour, 3-D surface, slider, three lrs), a log-scale race, the faceted sharpness bars
#: with 2/lr per lr, and the saddles' reference lines: every item of the issue, in ~20 s
CHAPTERS = ["seven_point_bowl", "learning_rate", "flat_vs_sharp", "saddles"]
RENDER_BUDGET_MS = 5000.0  # the goal: all plots drawn within 5 s of navigation

# every plot div has plotly's SVG layer: the time since navigation start, else false
ALL_RENDERED = """() => {
  const d = Array.from(document.querySelectorAll('div.plot'));
  return d.length > 0 && d.every(x => x.querySelector('.main-svg') && x._fullLayout) ? performance.now() : false;
}"""

# per chapter, per figure: its legend entries (name, colour, dash, whether a reference line)
LEGENDS = """() => Array.from(document.querySelectorAll('section.chapter')).map(sec => ({
  key: sec.dataset.key,
  figures: Array.from(sec.querySelectorAll('figure.fig')).map(f => {
    const div = f.querySelector('div.plot');
    return {key: f.dataset.key, kind: f.dataset.kind, traces: (div._fullData || [])
      .filter(t => t.visible !== false && t.showlegend && ['scatter', 'scatter3d', 'bar', 'histogram'].includes(t.type))
      .map(t => ({name: t.name, type: t.type, meta: t.meta || null,
                  color: (t.type === 'bar' || t.type === 'histogram' || (t.mode || '').indexOf('lines') < 0)
                         ? String(t.marker.color) : String(t.line.color),
                  dash: t.line ? (t.line.dash || 'solid') : 'solid'}))};
  })
}))"""


def _browser_or_skip():
    if not (os.path.exists(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.skip(f"no Chromium at {CHROMIUM} (install Debian's: apt-get install -y chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (make browser-setup; never `playwright install`)")
    return sync_playwright


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(tour page, index page, the training run's summary): a four-chapter quick tour plus one
    stored classification run, and the store's index."""
    _browser_or_skip()
    from losslab.data import load
    from losslab.models import build
    from losslab.report import write_index
    from losslab.store import open_store
    from losslab.tour import run_tour
    from losslab.train import train

    st = open_store(tmp_path_factory.mktemp("browser17") / "store")
    res = run_tour(quick=True, store=st, chapters=CHAPTERS)
    model = build("mlp", in_dim=2, hidden=[8], out_dim=2, seed=0)
    traj = train(model, load("moons", seed=0, n=120), loss="cross_entropy", optimizer="adam", lr=0.05, steps=30,
                 eval_every=10)
    rid = st.save_trajectory(traj, name="moons-mlp")
    index = write_index(st)
    return res.report, index, rid, traj.summary()


@pytest.fixture(scope="module")
def browser():
    sync_playwright = _browser_or_skip()
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            b.close()


def open_page(browser, path: Path, width: int = 1300):
    """A page opened at ``path`` with its console errors collected; returns (page, errors, ms to
    every plot drawn, measured from navigation start by the page's own clock)."""
    page = browser.new_page(viewport={"width": width, "height": 900})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(path.as_uri())
    ms = page.wait_for_function(ALL_RENDERED, polling="raf", timeout=60_000).json_value()
    return page, errors, float(ms)


@pytest.fixture(scope="module")
def tour(browser, built):
    page, errors, ms = open_page(browser, built[0])
    yield page, errors, ms
    page.close()


def test_every_plot_renders_without_console_errors(tour):
    # correctness only: the 5 s render goal is a measurement, not a test (a loaded CI machine would make it
    # flaky); measure it with LOSSLAB_TOUR_REPORT=... and test_a_built_tour_renders_within_5s, see docs/report.md
    page, errors, ms = tour
    n = page.locator("div.plot").count()
    assert n >= 10
    assert page.locator("div.plot .main-svg").count() >= n
    assert page.locator("p.plot-error").count() == 0
    print(f"{n} plots rendered in {ms:.0f} ms")
    assert errors == [], errors


def test_plots_on_screen_are_drawn_first_and_the_page_keeps_drawing_the_rest(browser, built):
    """Opened at the last chapter's anchor, that chapter's plots are drawn before the plots above it,
    the drawing runs in slices (the page reports when all are drawn), and every plot is drawn."""
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    try:
        page.goto(built[0].as_uri())
        sec = page.evaluate("Array.from(document.querySelectorAll('section.chapter')).pop().id")
        page.goto("about:blank")
        page.goto(built[0].as_uri() + "#" + sec)  # a fresh load, scrolled to the last chapter
        assert page.evaluate("scrollY") > 900 or page.evaluate("location.hash") == "#" + sec
        page.wait_for_function("() => document.body.dataset.plotsDrawn !== undefined", timeout=60_000)
        order = page.evaluate("""sec => Array.from(document.querySelectorAll('div.plot')).map(d => ({
            order: +d.dataset.drawOrder, here: !!d.closest('section#' + CSS.escape(sec))}))""", sec)
        assert int(page.evaluate("document.body.dataset.plotsDrawn")) == len(order)
        assert all(o["order"] >= 0 for o in order) and sorted(o["order"] for o in order) == list(range(len(order)))
        here = [o["order"] for o in order if o["here"]]
        assert here, f"no plots in section {sec!r}: the anchor does not name the chapter"
        # the chapter scrolled to is drawn first (it is the one on screen), before any chapter above it
        assert min(here) == 0, order
        assert page.evaluate(ALL_RENDERED)
    finally:
        page.close()


SCENE = "div.plot[data-scene='3d']"


def _scene_page(browser, built):
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    page.goto(built[0].as_uri())
    page.wait_for_function("() => document.body.dataset.plotsDrawn !== undefined", timeout=60_000)
    page.locator(SCENE).first.scroll_into_view_if_needed()
    return page


def _scene_state(page):
    return page.evaluate(f"() => document.querySelector(\"{SCENE}\")._losslabScene.state()")


def _canvas_pixels(page):
    """(distinct colours, a hash of the pixels) of the first scene's canvas."""
    return page.evaluate(f"""() => {{
        const c = document.querySelector("{SCENE} canvas.scene3d"), d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        const seen = new Set(); let h = 0;
        for (let i = 0; i < d.length; i += 4) {{ const v = (d[i] << 16) | (d[i + 1] << 8) | d[i + 2]; if (d[i + 3]) seen.add(v); h = (h * 31 + v + d[i + 3]) | 0; }}
        return [seen.size, h];
    }}""")


def test_a_3d_scene_is_a_canvas_drawing_of_the_surface_with_no_webgl(browser, built):
    """The bowl's 3-D scene is drawn on a 2-D canvas (scene3d.py: plotly's WebGL scene cost 0.35-2.5 s
    each in software WebGL, #17): shaded quads of the whole grid, the paths over them, plotly's own
    legend and colour bar around it; no WebGL context anywhere on the page; the page loads plotly's
    cartesian bundle only."""
    page = _scene_page(browser, built)
    try:
        st = _scene_state(page)
        assert st["width"] > 300 and st["height"] > 300
        assert st["quads"] > 0
        assert page.evaluate("() => typeof Plotly.newPlot === 'function' && !('surface' in (Plotly.PlotSchema.get().traces))")
        assert page.evaluate("() => Array.from(document.querySelectorAll('canvas')).every(c => c.classList.contains('scene3d'))")
        colours, _ = _canvas_pixels(page)
        assert colours > 200, colours  # a shaded, colour-mapped surface, not a blank or flat box
        # plotly draws the frame: a legend entry per path (the proxies), and the colour bar
        legend = page.locator(f"{SCENE} .legend .traces").count()
        assert legend == sum(1 for p in st["paths"] if p["lines"]) >= 2
        assert page.locator(f"{SCENE} .colorbar").count() == 1
        assert "drag to rotate" in page.locator(f"{SCENE} canvas.scene3d").get_attribute("aria-label")
        # nothing cropped (the 3-D surface was cut at the top right): every vertex of the drawn grid
        # lies inside the canvas, with room for tick labels
        pts = page.evaluate(f"""() => {{ const s = document.querySelector("{SCENE}")._losslabScene, out = [];
            for (let i = 0; i < 200; i++) for (let j = 0; j < 200; j++) {{ const v = s.vertexAt(i, j); if (v.gx === undefined || v.gy === undefined) break; out.push([v.x, v.y]); }}
            return out; }}""")
        assert len(pts) > 100
        assert all(20 <= x <= st["width"] - 20 and 20 <= y <= st["height"] - 20 for x, y in pts), (st["width"], st["height"])
    finally:
        page.close()


def test_hovering_the_3d_scene_reads_the_data_under_the_pointer(browser, built):
    """A surface vertex and a path point, each hovered at the spot where the scene drew it, show their own
    numbers: the vertex its (x, y, loss) from the figure's downloadable data (4 significant digits, the
    hover's format), the path point its step."""
    page = _scene_page(browser, built)
    try:
        div = page.locator(SCENE).first
        fid = div.get_attribute("id")
        grid = page.evaluate(f"() => JSON.parse(window.losslabDownload('{fid}', 'json')).grid")  # the download's numbers
        canvas = page.locator(f"{SCENE} canvas.scene3d").first
        box = canvas.bounding_box()
        tip = page.locator(f"{SCENE} .scene3d-tip")
        nx, ny = len(grid["x"]), len(grid["y"])
        # a corner of the grid, away from the paths (they start near the middle)
        for i, j in ((nx - 1, 0), (0, 0), (nx - 1, ny - 1)):
            v = page.evaluate(f"() => document.getElementById('{fid}')._losslabScene.vertexAt({i}, {j})")
            page.mouse.move(box["x"] + v["x"], box["y"] + v["y"])
            text = tip.inner_text()
            if text.startswith("x "):
                break
        lines = dict(ln.rsplit(" ", 1) for ln in text.split("\n"))
        assert float(lines["x"]) == pytest.approx(grid["x"][i], rel=1e-3, abs=1e-9)
        assert float(lines["y"]) == pytest.approx(grid["y"][j], rel=1e-3, abs=1e-9)
        zname = grid["z_label"]
        assert float(lines[zname]) == pytest.approx(grid["z"][j][i], rel=1e-3), (text, grid["z"][j][i])
        st = _scene_state(page)
        path = next(p for p in st["paths"] if p["lines"] and p["n"] > 5)
        k = path["n"] // 2
        page.mouse.move(box["x"] + path["x"][k], box["y"] + path["y"][k])
        assert "step" in tip.inner_text(), tip.inner_text()
        page.mouse.move(box["x"] - 50, box["y"] - 50)
        assert not tip.is_visible()
    finally:
        page.close()


def test_the_3d_scene_rotates_zooms_resets_hides_paths_and_follows_the_slider(browser, built):
    page = _scene_page(browser, built)
    try:
        canvas = page.locator(f"{SCENE} canvas.scene3d").first
        box = canvas.bounding_box()
        st0, px0 = _scene_state(page), _canvas_pixels(page)
        cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        page.mouse.move(cx, cy)
        page.mouse.down()
        page.mouse.move(cx + 120, cy + 30, steps=4)
        page.mouse.up()
        st1 = _scene_state(page)
        assert st1["az"] == pytest.approx(st0["az"] - 1.2, abs=1e-6) and st1["el"] > st0["el"]
        assert _canvas_pixels(page)[1] != px0[1]  # drawn again from the new angle
        page.mouse.wheel(0, -300)
        assert _scene_state(page)["zoom"] > 1.0
        canvas.dblclick(position={"x": box["width"] / 2, "y": box["height"] / 2})
        st2 = _scene_state(page)
        assert (st2["az"], st2["el"], st2["zoom"]) == (pytest.approx(st0["az"]), pytest.approx(st0["el"]), 1.0)
        # a legend click hides the path in the scene too (plotly's legend, the scene listens)
        first = next(p for p in st0["paths"] if p["lines"])
        page.locator(f"{SCENE} .legend .traces").first.click()
        page.wait_for_function(f"() => document.querySelector(\"{SCENE}\")._losslabScene.state().hidden[0] === true")
        # the step slider moves each path's marker to its point at that step
        fid = page.locator(SCENE).first.get_attribute("id")
        sl = page.evaluate(f"() => JSON.parse(document.getElementById('{fid}-spec').textContent).slider")
        assert sl, "the bowl's 3-D scene has a step slider"
        n = len(sl["steps"])
        page.locator(f"#{fid}-slider").fill(str(n - 1))
        page.locator(f"#{fid}-slider").dispatch_event("input")
        st3 = _scene_state(page)
        marks = [p for p in st3["paths"] if not p["lines"]]
        assert len(marks) == len(sl["traces"])
        assert [m["trace"] for m in marks] == sl["traces"]
        assert marks and any(m["data"] != [None, None, None] for m in marks)
        assert first["name"] == st0["paths"][0]["name"]
        # a narrower window: plotly resizes its frame and the scene follows (drawn again at the new size)
        page.set_viewport_size({"width": 800, "height": 900})
        page.wait_for_function(f"w => document.querySelector(\"{SCENE}\")._losslabScene.state().width < w", arg=st0["width"] - 50)
    finally:
        page.close()


def test_every_chapter_screenshot(tour):
    """One PNG per chapter (and the whole page) for a person to look at."""
    page = tour[0]
    ARTIFACTS.mkdir(exist_ok=True)
    keys = page.evaluate("Array.from(document.querySelectorAll('section.chapter')).map(s => s.id)")
    assert len(keys) == len(CHAPTERS)
    for sid in keys:
        shot = ARTIFACTS / f"chapter-{sid}.png"
        page.locator(f"section#{sid}").screenshot(path=str(shot))
        assert shot.stat().st_size > 20_000  # drawn plots, not blank boxes


def test_one_colour_per_meaning_within_a_chapter(tour):
    """Legend entries with the same name have the same colour in every figure of a chapter, and
    within one figure different entries never look the same (colour and dash)."""
    chapters = tour[0].evaluate(LEGENDS)
    seen_any = 0
    for ch in chapters:
        by_name: dict[str, set] = {}
        for f in ch["figures"]:
            looks = [(t["color"], t["dash"]) for t in f["traces"]]
            names = [t["name"] for t in f["traces"]]
            if len(set(names)) == len(names):
                assert len(set(looks)) == len(looks), (ch["key"], f["key"], list(zip(names, looks)))
            for t in f["traces"]:
                by_name.setdefault(t["name"], set()).add(t["color"])
        shared = {n: c for n, c in by_name.items() if sum(n in [t["name"] for t in f["traces"]]
                                                          for f in ch["figures"]) > 1}
        seen_any += len(shared)
        bad = {n: c for n, c in shared.items() if len(c) > 1}
        assert not bad, (ch["key"], bad)
    assert seen_any >= 3  # names that recur across figures were compared (the bowl's lrs at least)
    # the bowl names each learning rate the same way in every figure that shows it (contour, 3-D, excess loss)
    bowl = next(ch for ch in chapters if ch["key"] == "seven_point_bowl")
    lr_names = [sorted(t["name"] for t in f["traces"] if "lr=" in t["name"]) for f in bowl["figures"]]
    lr_names = [n for n in lr_names if n]
    assert len(lr_names) >= 2 and all(n == lr_names[0] for n in lr_names), lr_names
    assert len(lr_names[0]) == 3 and all(re.search(r"^(small|good|too large): ", n) for n in lr_names[0]), lr_names


def test_bar_charts_have_named_categories(tour):
    """A bar chart names its bars (x tick labels or facet titles), never bare positions 0-4; the
    faceted sharpness measures give each measure its own y axis."""
    page = tour[0]
    bars = page.evaluate("""() => Array.from(document.querySelectorAll('figure.fig[data-kind="bars"]')).map(f => {
      const d = f.querySelector('div.plot');
      return {key: f.dataset.key,
              ticks: Array.from(d.querySelectorAll('.xtick text')).map(t => t.textContent),
              titles: Array.from(d.querySelectorAll('.annotation-text')).map(t => t.textContent),
              yaxes: Object.keys(d._fullLayout).filter(k => /^yaxis\\d*$/.test(k)).length};
    })""")
    assert bars, "the tour's chapters draw bar charts"
    for b in bars:
        if "histogram" in b["key"]:  # a histogram's bars are bins of a number: numeric ticks are its names
            continue
        labels = [t for t in b["ticks"] + b["titles"] if t.strip()]
        assert labels, b
        assert not all(re.fullmatch(r"[−-]?\d+(\.\d+)?", t.strip()) for t in b["ticks"] if t.strip()) or b["titles"], b
        assert any(re.search(r"[A-Za-z]", t) for t in labels), b
    facet = [b for b in bars if len(b["titles"]) >= 2]
    assert facet, bars
    for b in facet:
        assert b["yaxes"] >= len(b["titles"]), b  # one y axis per measure: their units differ


def test_log_axes_are_labelled_at_decades_only(tour):
    """A log axis spanning two decades or more prints labels at powers of ten only (no "2, 3, ... 9"
    minor labels between them); a narrower one plain 1-2-5 values (never a lone "1")."""
    axes = tour[0].evaluate("""() => {
      const out = [];
      document.querySelectorAll('div.plot').forEach(d => {
        const L = d._fullLayout; if (!L) return;
        Object.keys(L).filter(k => /^[xy]axis\\d*$/.test(k) && L[k].type === 'log').forEach(k => {
          const letter = k[0], num = k.slice(5);
          const labels = Array.from(d.querySelectorAll('.' + letter + (num || '') + 'tick text, .' + letter + 'tick text'))
            .filter(t => (L[k]._id || '') && t.closest('.' + L[k]._id.replace(/\\d+$/, '') + 'axislayer-above, g') )
            .map(t => t.textContent);
          const own = Array.from(d.querySelectorAll('g.' + (L[k]._id) + 'tick text')).map(t => t.textContent);
          out.push({fig: d.id, axis: k, range: L[k].range, labels: own.length ? own : labels});
        });
      });
      return out;
    }""")
    assert axes, "the tour's chapters draw log axes"
    checked = under = 0
    for a in axes:
        lo, hi = sorted(a["range"])
        # under one decade of data plotly's own labels are the readable ones (the renderer's rule); plotly pads
        # the drawn range by up to ~10 % on each side, so such an axis can span up to ~1.2 decades here
        # plotly writes superscripts with zero-width spaces around them and U+2212 for minus
        labels = [t.replace("\u200b", "").replace("\u2212", "-").strip() for t in a["labels"] if t.strip()]
        plain = labels and all(re.fullmatch(r"-?\d+(\.\d+)?(e[+-]?\d+)?", t) for t in labels)
        if hi - lo < 1.9 or (hi - lo < 2.2 and plain):
            # under two decades of data (plotly pads the drawn range by up to ~10 % a side): plain 1-2-5
            # values (or single digits on a very narrow axis), never plotly's "2, 0.1, 9, 8, ..., 3, 2",
            # and at least two of them
            assert plain and 2 <= len(labels) <= 10, a
            under += 1
            continue
        assert labels, a
        for t in labels:
            # "10-3", "10", "1", "0.1", "1000": a one followed by zeros or a power of ten
            assert re.fullmatch(r"-?(10-?\d*|1(0*)|0\.0*1|1e[+-]?\d+)", t), a
        checked += 1
    assert checked >= 2 and under >= 1, axes  # flat_vs_sharp draws a log axis under a decade


def test_reference_lines_are_told_apart(tour):
    """Several reference lines in one figure have distinct legend names and look different; the
    2/lr line of each learning rate has its lr's colour (three lrs: three colours)."""
    chapters = tour[0].evaluate(LEGENDS)
    lr_figs = 0
    for ch in chapters:
        for f in ch["figures"]:
            refs = [t for t in f["traces"] if t["meta"] == "reference"]
            if len(refs) < 2:
                continue
            names = [t["name"] for t in refs]
            assert len(set(names)) == len(names), (f["key"], names)
            looks = [(t["color"], t["dash"]) for t in refs]
            assert len(set(looks)) == len(looks), (f["key"], looks)
            if all("2/lr" in n for n in names):
                lr_figs += 1
                assert len({t["color"] for t in refs}) == len(refs), (f["key"], refs)
                curves = {t["color"] for t in f["traces"] if t["meta"] != "reference"}
                assert {t["color"] for t in refs} <= curves, (f["key"], refs, curves)  # each line has its curve's colour
    assert lr_figs >= 1


@pytest.mark.parametrize("width", [1300, 900])
def test_numbers_tables_are_not_clipped(browser, built, width):
    """Every open table beside a figure fits its column (or sits in a container that scrolls)."""
    page, errors, _ = open_page(browser, built[0], width=width)
    try:
        rows = page.evaluate("""() => Array.from(document.querySelectorAll('figure.fig .side table')).filter(t => t.offsetParent)
          .map(t => {
            let c = t.parentElement, scroll = false;
            for (; c && !c.matches('figure'); c = c.parentElement) {
              const s = getComputedStyle(c).overflowX;
              if ((s === 'auto' || s === 'scroll') && c.scrollWidth > c.clientWidth) { scroll = true; break; }
            }
            const side = t.closest('.side').getBoundingClientRect(), r = t.getBoundingClientRect();
            return {fig: t.closest('figure').dataset.key, right: r.right, sideRight: side.right,
                    sw: t.scrollWidth, cw: t.parentElement.clientWidth, scroll: scroll};
          })""")
        assert rows
        for r in rows:
            assert (r["sw"] <= r["cw"] + 1 and r["right"] <= r["sideRight"] + 1) or r["scroll"], r
        assert errors == [], errors
    finally:
        page.close()


def test_numbers_table_cells_never_break_a_short_word(tour):
    """A value such as "completed" or "0.003427" stays on one line (a cell breaks between words;
    only a word longer than the whole column may be split): each word of each open table cell
    beside a figure has one line box."""
    broken = tour[0].evaluate("""() => {
      const out = [];
      document.querySelectorAll('figure.fig .side table td, figure.fig .side table th').forEach(c => {
        if (!c.offsetParent) return;
        const walker = document.createTreeWalker(c, NodeFilter.SHOW_TEXT);
        for (let n = walker.nextNode(); n; n = walker.nextNode()) {
          for (const m of n.textContent.matchAll(/\\S+/g)) {
            if (m[0].length > 14) continue;
            const r = document.createRange(); r.setStart(n, m.index); r.setEnd(n, m.index + m[0].length);
            const lines = new Set(Array.from(r.getClientRects()).map(x => Math.round(x.top)));
            if (lines.size > 1) out.push([c.closest('figure').dataset.key, m[0]]);
          }
        }
      });
      return out;
    }""")
    assert broken == [], broken[:10]


def test_raw_tables_are_folded(tour):
    """The measured numbers of a chapter are a closed <details> after its figures; no open table
    is long (a figure's own "numbers shown" table sits beside it by design); a chapter leads with its
    text and a figure, not a table."""
    page = tour[0]
    info = page.evaluate("""() => Array.from(document.querySelectorAll('section.chapter')).map(sec => {
      const kids = Array.from(sec.children);
      const firstFig = kids.findIndex(e => e.matches('figure.fig'));
      const firstTable = kids.findIndex(e => e.matches('table, .tablewrap') || (e.matches('details') && e.open));
      return {key: sec.dataset.key, firstFig: firstFig, firstTable: firstTable,
              summaries: Array.from(sec.querySelectorAll('table.summary')).map(t => {
                const d = t.closest('details'); return {folded: !!d && !d.open, visible: !!t.offsetParent};
              }),
              longOpen: Array.from(sec.querySelectorAll('table')).filter(t => t.offsetParent && !t.closest('figure.fig') && !t.closest('details:not([open])') && t.rows.length > 12).length};
    })""")
    assert len(info) == len(CHAPTERS)
    for s in info:
        assert s["firstFig"] >= 0, s
        assert s["firstTable"] < 0 or s["firstTable"] > s["firstFig"], s
        # folded = inside a closed <details> (Chromium keeps an offsetParent for closed details content)
        assert s["summaries"] and all(t["folded"] for t in s["summaries"]), s
        assert s["longOpen"] == 0, s  # long raw tables are folded; only a figure's own table stays open
    # a folded table opens on a click and shows its rows
    d = page.locator("section.chapter details:has(table.summary)").first
    d.locator("summary").click()
    assert d.locator("table.summary tr").first.is_visible()
    d.locator("summary").click()


def test_index_shows_final_loss_and_accuracy(browser, built):
    """The store index has "final loss" and "accuracy" columns, filled for a training run with its
    validation numbers; step counters are not shown."""
    _, index, rid, summ = built
    page, errors, _ = open_page_plain(browser, index)
    try:
        heads = page.eval_on_selector_all("h2:has-text('Runs') + table th", "ths => ths.map(t => t.textContent)")
        assert "final loss" in heads and "accuracy" in heads, heads
        row = page.locator(f"tr:has(code:text-is('{rid}'))")
        cells = row.locator("td").all_text_contents()
        loss = cells[heads.index("final loss")]
        acc = cells[heads.index("accuracy")]
        assert math.isclose(float(loss), summ["final_val_loss"], rel_tol=1e-3), (loss, summ)  # 4 digits shown
        assert math.isclose(float(acc), summ["final_val_acc"], rel_tol=1e-3), (acc, summ)
        text = page.locator("body").inner_text()
        assert "status step" not in text and "restored step" not in text and "status_step" not in text
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "index.png"), full_page=True)
        assert errors == [], errors
    finally:
        page.close()


def open_page_plain(browser, path: Path):
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(path.as_uri())
    return page, errors, None


@pytest.mark.skipif(not os.environ.get("LOSSLAB_TOUR_REPORT"), reason="set LOSSLAB_TOUR_REPORT to a built tour page")
def test_a_built_tour_renders_within_5s(browser):
    """The full tour (``losslab tour``, minutes to build) within the budget: point
    LOSSLAB_TOUR_REPORT at its tour.html."""
    page, errors, ms = open_page(browser, Path(os.environ["LOSSLAB_TOUR_REPORT"]))
    try:
        n = page.locator("div.plot").count()
        print(f"{n} plots rendered in {ms:.0f} ms")
        assert ms < RENDER_BUDGET_MS, f"{n} plots took {ms:.0f} ms"
        assert errors == [], errors
    finally:
        page.close()


def test_a_3d_scene_with_a_diverged_region_a_path_off_the_grid_and_a_fine_grid(browser, tmp_path):
    """NaN losses (a diverged region) leave holes, not a broken drawing; a path leaving the grid (its
    z is NaN there) is drawn where it is known; a 201x201 grid is drawn at a stride (<= 100x100 quads)
    while its hover reads the data's own values; an escaped name stays text."""
    import numpy as np

    from losslab.figures import Figure, Grid, Path as FPath
    from losslab.report import Section, write_page

    x = np.linspace(-1, 1, 201)
    z = x[None, :] ** 2 + 2 * x[:, None] ** 2
    z[:40, :40] = np.nan
    t = np.linspace(0, 1, 30)
    fig = Figure("s", "<b>bold</b> scene", "surface", "a & <b>", "b", grid=Grid(x, x, z),
                 paths=(FPath("<i>run</i>", 1.5 * (1 - t), 0.5 * (1 - t), None, np.arange(30), None),), slider=True)
    page_path = write_page("scene edge cases", [Section("s", "s", figures=(fig,))], tmp_path / "p.html")
    page, errors, _ = open_page(browser, page_path)
    try:
        st = _scene_state(page)
        assert 0 < st["quads"] < 100 * 100  # the NaN corner is a hole
        assert errors == [], errors
        path = st["paths"][0]
        known = [i for i in range(path["n"]) if path["x"][i] is not None and not math.isnan(path["x"][i])]
        assert 0 < len(known) < path["n"]  # outside the grid (x > 1) the path has no loss: not drawn there
        v = page.evaluate(f"() => document.querySelector(\"{SCENE}\")._losslabScene.vertexAt(100, 100)")
        assert v["gx"] == pytest.approx(x[200]) and v["value"] == pytest.approx(z[200, 200])
        assert "<i>run</i>" in page.locator(f"{SCENE} .legend").text_content()
        assert st["titles"]["x"] == "a & <b>"  # drawn on the canvas as the text it is
    finally:
        page.close()


def test_the_pages_csv_download_equals_figure_csv_for_every_kind_of_array(browser, tmp_path):
    """The CSV the page writes in the browser equals ``figure_csv`` byte for byte: string categories of a
    bar chart (plain lists in the page, not binary arrays: they were written as empty cells), curves
    without x, a grid and a path with steps."""
    import numpy as np

    from losslab.figures import Figure, Grid, Path as FPath, Series
    from losslab.report import Section, write_page
    from losslab.report.serialize import figure_csv

    x = np.linspace(-1, 1, 4)
    figs = (Figure("bars", "b", "bars", series=(Series("v", np.array(["gd", "a,b"]), np.array([1.0, 2.5])),)),
            Figure("l", "l", "lines", series=(Series("s", None, np.array([1.0, 2.0, 3.0])),)),
            Figure("c", "c", "contour", grid=Grid(x, x, x[None, :] + 2 * x[:, None]),
                   paths=(FPath("p", x[:3], x[:3], None, np.array([0, 5, 10]), None),)))
    page_path = write_page("csv", [Section("s", "s", figures=figs)], tmp_path / "p.html")
    page, errors, _ = open_page(browser, page_path)
    try:
        for k, f in enumerate(figs):
            got = page.evaluate(f"() => window.losslabDownload('f0-{k}', 'csv')")
            assert got == figure_csv(f), (f.key, got)
        assert errors == []
    finally:
        page.close()
