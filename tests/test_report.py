"""The report layer: figure data (CSV/JSON), plotly specs, the step slider, escaping, offline
plotly.js, static PNG/PDF, reports of stored runs and the store's index."""
from __future__ import annotations

import csv
import html
import io
import json
import re

import numpy as np
import pytest
import torch

from losslab.figures import Figure, Grid, Path, Series
from losslab.report import (Section, figure_csv, figure_from_dict, figure_to_dict, plotly_spec, save_section,
                            to_plotly, trajectory_figures, write_index, write_page, write_report, write_static)
from losslab.report.binary import ArrayTable, resolve
from losslab.report.plotly_render import path_z

EVIL = "<script>alert(1)</script>"


def _figs():
    x = np.linspace(-1, 1, 5)
    y = np.linspace(0, 2, 4)
    Z = 2 * x[None, :] + 3 * y[:, None]  # (ny, nx)
    p1 = Path("p1", np.array([-1.0, 0.0, 0.5]), np.array([0.0, 1.0, 2.0]), None, np.array([0, 10, 20]),
              np.array([0.0, 0.1, 0.2]))
    p2 = Path("p2", np.array([1.0, 0.5]), np.array([2.0, 1.5]), np.array([7.0, 5.5]), np.array([0, 5]), None)
    return [
        Figure("lines", EVIL, "lines", "step", "loss",
               (Series(EVIL, np.arange(4.0), np.array([3.0, np.nan, 1.0, 0.5]), band_lo=np.zeros(4), band_hi=np.ones(4) * 4),
                Series("ref", np.arange(4.0), np.ones(4), dash=True)),
               hlines=(("2/lr", 2.5),), caption=f"caption {EVIL}", table={EVIL: 1.5, "nested": {"k": [1, 2]}},
               settings={"name": EVIL}, log_y=False),
        Figure("contour", "c", "contour", "a", "b", grid=Grid(x, y, Z), paths=(p1, p2), slider=True),
        Figure("surface", "s", "surface", "a", "b", grid=Grid(x, y, Z), paths=(p1, p2), slider=True),
        Figure("hist", "h", "histogram", series=(Series("samples", None, np.array([0.1, 0.2, 0.2, 0.9])),
                                                 Series("binned", np.array([0.25, 0.75]), np.array([3.0, 1.0])))),
        Figure("bars", "b", "bars", series=(Series("v", np.array(["x", "y"]), np.array([1.0, 2.0])),)),
        Figure("bars2", "b2", "bars", series=(Series("v", np.array([0.0, 1.0]), np.array([1.0, 2.0])),),
               settings={"labels": ["gd", "momentum"]}),
        Figure("heat", "hm", "heatmap", grid=Grid(x, y, Z)),
        Figure("scatter", "sc", "scatter", log_x=True, series=(Series("pts", np.array([1.0, 10.0]), np.array([2.0, 3.0])),)),
    ]


def test_figure_dict_roundtrip_keeps_arrays_and_nan():
    for f in _figs():
        d = figure_to_dict(f)
        json.dumps(d, allow_nan=False)  # JSON-safe: NaN became null
        g = figure_from_dict(json.loads(json.dumps(d)))
        assert (g.key, g.kind, g.title, g.slider, g.hlines) == (f.key, f.kind, f.title, f.slider, f.hlines)
        for a, b in zip(f.series, g.series):
            np.testing.assert_array_equal(np.asarray(a.y, dtype=float), np.asarray(b.y, dtype=float))  # NaN == NaN here
        if f.grid is not None:
            np.testing.assert_array_equal(f.grid.z, g.grid.z)
        for a, b in zip(f.paths, g.paths):
            np.testing.assert_array_equal(a.x, b.x)
            np.testing.assert_array_equal(a.steps, b.steps)
    with pytest.raises(ValueError, match="figure dict"):
        figure_from_dict({"title": "no kind"})


def test_figure_csv_has_every_number():
    lines, contour = _figs()[0], _figs()[1]
    rows = list(csv.DictReader(io.StringIO(figure_csv(lines))))
    ser = [r for r in rows if r["part"] == "series" and r["name"] == EVIL]
    assert [r["y"] for r in ser] == ["3.0", "nan", "1.0", "0.5"]
    assert [float(r["band_hi"]) for r in ser] == [4.0] * 4
    assert [r for r in rows if r["part"] == "hline"][0]["y"] == "2.5"
    rows = list(csv.DictReader(io.StringIO(figure_csv(contour))))
    grid = [r for r in rows if r["part"] == "grid"]
    assert len(grid) == 5 * 4
    for r in grid:  # z = 2x + 3y at every cell, full precision
        assert float(r["z"]) == pytest.approx(2 * float(r["x"]) + 3 * float(r["y"]), abs=1e-12)
    p1 = [r for r in rows if r["part"] == "path" and r["name"] == "p1"]
    assert [(float(r["x"]), int(r["step"]), float(r["off_plane"])) for r in p1] == [(-1.0, 0, 0.0), (0.0, 10, 0.1),
                                                                                     (0.5, 20, 0.2)]


def test_plotly_specs_validate_for_every_kind():
    for f in _figs():
        fig = to_plotly(f)  # plotly.graph_objects validates every attribute
        assert len(fig.data) >= 1
    spec = plotly_spec(_figs()[0])
    names = [t.get("name") for t in spec["data"]]
    assert html.escape(EVIL) in names and EVIL not in names  # plotly decodes entities: shown as text
    assert "2/lr" in names  # the reference line


def test_the_page_draws_a_3d_scene_on_a_canvas_and_plotly_py_keeps_its_webgl_surface():
    """The report page's spec of a surface figure: a 2-D plotly frame of proxy traces (legend entries,
    colour bar), trace for trace, and the scene's own arrays (scene3d.py); ``to_plotly`` (for plotly.py
    users) still gives plotly's surface and scatter3d traces."""
    import plotly.graph_objects as go

    from losslab.report.scene3d import canvas_scene

    f = _figs()[2]
    webgl, page = plotly_spec(f), plotly_spec(f, canvas_3d=True)
    assert [t["type"] for t in webgl["data"]][:3] == ["surface", "scatter3d", "scatter3d"]
    assert {t["type"] for t in page["data"]} == {"scatter"} and len(page["data"]) == len(webgl["data"])
    go.Figure(data=page["data"], layout=page["layout"])  # plotly validates the frame
    sc = page["scene3d"]
    assert sc["surface"]["z"] == webgl["data"][0]["z"] and sc["surface"]["x"] == webgl["data"][0]["x"]
    assert page["data"][0]["marker"]["showscale"] and page["data"][0]["marker"]["cmin"] == webgl["data"][0]["cmin"]
    assert [p["trace"] for p in sc["paths"]] == list(range(1, len(webgl["data"])))
    for p in sc["paths"]:  # each path's numbers, as the WebGL scene had them, and its proxy's look
        w, proxy = webgl["data"][p["trace"]], page["data"][p["trace"]]
        assert (p["x"], p["y"], p["z"]) == (w["x"], w["y"], w["z"])
        assert proxy["x"] == [None] and proxy["name"] == w["name"] and proxy.get("line") == w.get("line")
        assert p["lines"] == ("lines" in w["mode"])
    for t in page["slider"]["traces"]:  # the slider still names the step markers
        assert page["data"][t]["mode"] == "markers" and not sc["paths"][t - 1]["lines"]
    assert sc["axes"]["z"]["range"] == webgl["layout"]["scene"]["zaxis"]["range"]
    assert "scene" not in page["layout"] and page["layout"]["xaxis"]["visible"] is False
    assert [t.type for t in to_plotly(f).data][:1] == ["surface"]
    with pytest.raises(ValueError, match="surface and scatter3d"):
        canvas_scene({**webgl, "data": webgl["data"] + [{"type": "bar"}]})
    for f2 in _figs():  # the other kinds are the same either way
        if f2.kind != "surface":
            assert plotly_spec(f2, canvas_3d=True) == plotly_spec(f2)


def test_long_paths_and_curves_show_at_most_max_markers():
    from losslab.figures import Figure, Path as FPath, Series
    from losslab.report.plotly_render import MAX_MARKERS

    n = 500
    t = np.arange(n, dtype=float)
    f = Figure("l", "l", "lines", series=(Series("long", t, np.sin(t / 50), mode="lines+markers"),
                                          Series("short", t[:20], t[:20], mode="lines+markers")))
    tr = {d["name"]: d for d in plotly_spec(f)["data"]}
    assert tr["long"]["marker"]["maxdisplayed"] == MAX_MARKERS and len(tr["long"]["y"]) == n  # hover keeps every point
    assert "maxdisplayed" not in tr["short"]["marker"]
    g = Grid(np.linspace(0, 1, 3), np.linspace(0, 1, 3), np.zeros((3, 3)))
    c = Figure("c", "c", "contour", grid=g, paths=(FPath("p", t / n, t / n, None, None, None),))
    p = next(d for d in plotly_spec(c)["data"] if d["name"] == "p")
    assert p["marker"]["maxdisplayed"] == MAX_MARKERS and len(p["x"]) == n


def test_slider_positions_follow_each_path():
    f = _figs()[1]
    sl = plotly_spec(f)["slider"]
    assert sl["steps"] == [0, 5, 10, 20]
    # path 1 recorded at 0, 10, 20: at slider step 5 it is still at its step-0 point
    assert sl["points"][0]["x"] == [-1.0, -1.0, 0.0, 0.5]
    # path 2 recorded at 0, 5 only: afterwards it stays at its last point
    assert sl["points"][1]["x"] == [1.0, 0.5, 0.5, 0.5]
    spec = plotly_spec(f)
    for t in sl["traces"]:
        assert spec["data"][t]["mode"] == "markers"
    s3 = plotly_spec(_figs()[2])["slider"]
    # 3D: path 1 has no z -> interpolated from the grid z = 2x + 3y; path 2 has its own z
    assert s3["points"][0]["z"] == pytest.approx([2 * -1 + 0, 2 * -1 + 0, 0 + 3, 1 + 6])
    assert s3["points"][1]["z"] == [7.0, 5.5, 5.5, 5.5]


def test_path_z_bilinear_is_exact_on_planes_and_nan_outside():
    x, y = np.linspace(0, 1, 3), np.linspace(0, 2, 5)
    g = Grid(x, y, 2 * x[None, :] - y[:, None] + 1)
    rng = np.random.default_rng(0)
    px, py = rng.uniform(0, 1, 20), rng.uniform(0, 2, 20)
    z = path_z(Path("p", np.append(px, 5.0), np.append(py, 1.0)), g)
    np.testing.assert_allclose(z[:-1], 2 * px - py + 1, rtol=0, atol=1e-12)
    assert np.isnan(z[-1])


def _embedded(text: str, ident: str):
    m = re.search(rf'<script type="application/json" id="{re.escape(ident)}">(.*?)</script>', text, re.S)
    assert m, ident
    return json.loads(m.group(1))


def _data(text: str, fid: str):
    """A figure's download data as the page's script decodes it (arrays resolved)."""
    return resolve(_embedded(text, f"{fid}-data"), _embedded(text, "page-arrays"))


def test_html_escapes_user_text_and_embeds_data(tmp_path):
    page = write_page(EVIL, [Section("s", EVIL, f"text {EVIL}", figures=tuple(_figs()), summary={EVIL: 1.0},
                                     checks={EVIL: True}, error=f"error {EVIL}")], tmp_path / "r.html")
    text = page.read_text()
    assert EVIL not in text
    assert html.escape(EVIL) in text
    assert "</script>alert" not in text
    # every <script> tag is ours: plotly.js, the template, the array table, spec + data per figure, the page code
    assert text.count("<script") == 1 + 1 + 1 + 2 * len(_figs()) + 1
    # the download payload resolves to the exact data (float64, NaN kept), arrays stored once
    blobs = _embedded(text, "page-arrays")
    data = resolve(_embedded(text, "f0-0-data"), blobs)
    assert data["title"] == EVIL
    np.testing.assert_array_equal(data["series"][0]["y"], [3.0, np.nan, 1.0, 0.5])
    # stored as float32 only where float32 holds the values exactly (these do), else float64
    assert data["series"][0]["y"].dtype in (np.float32, np.float64)
    tab = ArrayTable()
    r = tab.ref(np.array([0.1, 1 / 3]))
    assert resolve(r, tab.blobs).dtype == np.float64 and resolve(r, tab.blobs).tolist() == [0.1, 1 / 3]
    spec = _embedded(text, "f0-1-spec")  # the contour: its grid is the same array as in its data
    assert spec["data"][0]["z"] == _embedded(text, "f0-1-data")["grid"]["z"]
    assert len({b["bdata"] for b in blobs}) == len(blobs)  # no array stored twice
    assert 'class="error"' in text and 'class="step-slider"' in text
    assert "cdn" not in text.lower() and "https://" not in text


def test_plotly_js_shared_once_or_inlined(tmp_path):
    from losslab.report.plotly_render import PLOTLY_BUNDLE

    def get_plotlyjs():
        return PLOTLY_BUNDLE.read_text(encoding="utf-8")

    assert "plotly.js (cartesian - minified) v4.1.1" in get_plotlyjs()[:200]  # the vendored bundle
    write_page("a", [Section("s", "s", figures=(_figs()[0],))], tmp_path / "a.html")
    js = tmp_path / "plotly-cartesian.min.js"
    assert js.read_text(encoding="utf-8") == get_plotlyjs()
    m0 = js.stat().st_mtime_ns
    write_page("b", [Section("s", "s", figures=(_figs()[0],))], tmp_path / "b.html")
    assert js.stat().st_mtime_ns == m0  # not rewritten
    assert '<script src="plotly-cartesian.min.js"' in (tmp_path / "b.html").read_text()
    d = tmp_path / "alone"
    p = write_page("c", [Section("s", "s", figures=(_figs()[0],))], d / "c.html", standalone=True)
    assert not (d / "plotly-cartesian.min.js").exists()
    assert get_plotlyjs()[:200] in p.read_text(encoding="utf-8")
    with pytest.raises(ValueError, match=r"\.html"):
        write_page("x", [], tmp_path / "x.txt")


def test_static_png_and_pdf(tmp_path):
    import matplotlib.image as mpimg

    for f in _figs():
        p = write_static(f, tmp_path / f"{f.key}.png")
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        img = mpimg.imread(p)
        assert img.shape[0] > 300 and img.shape[1] > 500
        assert img[..., :3].std() > 0.01  # not blank
    assert write_static(_figs()[1], tmp_path / "c.pdf").read_bytes()[:5] == b"%PDF-"
    with pytest.raises(ValueError, match="png, pdf"):
        write_static(_figs()[0], tmp_path / "x.svg")


def _train_small():
    from losslab.data import load
    from losslab.models import build
    from losslab.train import train

    data = load("moons", seed=0, n=80)
    model = build("mlp", in_dim=2, hidden=[4], out_dim=2, seed=0)
    return train(model, data, loss="cross_entropy", optimizer="adam", lr=0.05, steps=20, eval_every=5, snapshot_every=5)


def test_trajectory_figures_show_the_recorded_arrays():
    tr = _train_small()
    figs = {f.key.split("-", 1)[1]: f for f in trajectory_figures(tr, name="r")}
    assert {"loss", "accuracy", "grad-norm"} <= set(figs)
    loss = {s.name: s for s in figs["loss"].series}
    np.testing.assert_array_equal(loss["train (batch, per step)"].y, tr.train_loss)
    np.testing.assert_array_equal(loss["validation"].y, tr.val_loss)
    assert figs["loss"].table["final validation loss"] == pytest.approx(float(tr.val_loss[-1]))
    acc = {s.name: s for s in figs["accuracy"].series}
    np.testing.assert_array_equal(acc["validation"].y, tr.val_acc)
    # sharpness against 2/lr from recorded metrics
    arr = dict(tr.arrays())
    arr.update({"metric_steps/lambda_max": np.array([0, 10]), "metric/lambda_max": np.array([1.0, 3.0]),
                "metric_steps/two_over_lr": np.array([0, 10]), "metric/two_over_lr": np.array([40.0, 40.0])})
    sh = [f for f in trajectory_figures(arr, name="r") if f.key.endswith("sharpness")][0]
    assert [s.name for s in sh.series] == ["lambda_max (top Hessian eigenvalue)", "2/lr"]
    assert sh.table["final lambda_max / threshold"] == pytest.approx(3.0 / 40.0)
    with pytest.raises(ValueError, match="train_loss"):
        trajectory_figures({"x": np.zeros(3)})


def test_surface_figures_project_paths_on_the_plane():
    from losslab.data import load
    from losslab.landscape import random_directions, surface
    from losslab.params import flatten_params
    from losslab.models import build
    from losslab.report import surface_figures

    data = load("moons", seed=0, n=60)
    model = build("mlp", in_dim=2, hidden=[3], out_dim=2, seed=0)
    dirs = random_directions(model, kind="filter", k=2, seed=1)
    surf = surface(model, data.train, loss="cross_entropy", directions=dirs, resolution=7, span=1.0)
    base = torch.as_tensor(surf.base, dtype=torch.float64)
    D = torch.as_tensor(surf.directions, dtype=torch.float64)
    ab = np.array([[0.0, 0.0], [0.3, -0.2], [0.5, 0.4]])
    in_plane = (base + torch.as_tensor(ab) @ D).numpy()  # (3, P): exactly on the plane
    off = in_plane.copy()
    off[:, 0] += 0.25  # moved off the plane along the first parameter axis
    figs = {f.key.rsplit("-", 1)[-1]: f for f in surface_figures(surf, trajectories={"on": (np.arange(3), in_plane),
                                                                                       "off": off}, name="s")}
    on = figs["contour"].paths[0]
    np.testing.assert_allclose(np.stack([on.x, on.y], 1), ab, atol=1e-9)
    np.testing.assert_allclose(on.off_plane, 0.0, atol=1e-9)
    # off-plane distance of a point moved by e: |e - proj(e)| where proj is onto span(D)
    e = np.zeros(D.shape[1])
    e[0] = 0.25
    Dn = D.numpy()
    coef = np.linalg.solve(Dn @ Dn.T, Dn @ e)
    expect = np.linalg.norm(e - coef @ Dn)
    np.testing.assert_allclose(figs["contour"].paths[1].off_plane, expect, rtol=1e-7)
    # grid orientation: Surface.loss[i, j] is at (axes[0][i], axes[1][j]); Grid.z is (ny, nx)
    np.testing.assert_array_equal(figs["contour"].grid.z, surf.loss.T)
    assert figs["contour"].slider and figs["surface"].kind == "surface" and "plane" in figs
    assert flatten_params(model).shape[0] == D.shape[1]


def test_store_reports_and_index_escape_names(tmp_path):
    from losslab.store import open_store

    st = open_store(tmp_path / "store")
    rid = st.save_trajectory(_train_small(), name=EVIL, study="study <b>1</b>")
    sid = save_section(st, Section("sec", "A section", "hello", figures=(_figs()[1],), summary={"x": 1.0}),
                       study="study <b>1</b>")
    (page,) = write_report(rid, store=st)
    assert page.name == f"run-{rid}.html" and page.parent == tmp_path / "store" / "reports"
    text = page.read_text()
    assert EVIL not in text and html.escape(EVIL) in text
    assert (page.parent / "plotly-cartesian.min.js").exists()
    # a stored section comes back with its figures
    (p2,) = write_report(sid, store=st)
    assert _data(p2.read_text(), "f0-0")["paths"][0]["x"].tolist() == [-1.0, 0.0, 0.5]
    # the study report has one section per run; png writes one file per figure
    (p3,) = write_report("study <b>1</b>", store=st)
    assert p3.read_text().count('<section ') == 2
    pngs = write_report(rid, store=st, fmt="png", out=tmp_path / "png")
    assert len(pngs) >= 2 and all(p.suffix == ".png" and p.stat().st_size > 1000 for p in pngs)
    idx = write_index(st)
    itext = idx.read_text()
    assert EVIL not in itext and "<b>1</b>" not in itext and html.escape(EVIL) in itext
    assert f'href="run-{rid}.html"' in itext and f'href="run-{sid}.html"' in itext
    assert re.search(r'href="study-study--b-1--b-?-[0-9a-f]{6}\.html"', itext)
    with pytest.raises(ValueError, match="neither a run id, a study nor a run name"):
        write_report("no-such-thing", store=st)
    with pytest.raises(ValueError, match="format"):
        write_report(rid, store=st, fmt="svg")


def test_cli_report_and_index(tmp_path):
    from typer.testing import CliRunner

    from losslab.cli import app
    from losslab.store import open_store

    st = open_store(tmp_path / "s")
    rid = st.save_trajectory(_train_small(), name="cli run")
    r = CliRunner().invoke(app, ["report", rid[:12], "--store", str(tmp_path / "s"), "--json"])
    assert r.exit_code == 0, r.output
    path = json.loads(r.stdout)["paths"][0]
    assert path.endswith(f"run-{rid}.html")
    r = CliRunner().invoke(app, ["report", "index", "--store", str(tmp_path / "s")])
    assert r.exit_code == 0 and r.stdout.strip().endswith("index.html")
    r = CliRunner().invoke(app, ["report", rid, "--store", str(tmp_path / "s"), "--format", "pdf", "-o",
                                 str(tmp_path / "pdf")])
    assert r.exit_code == 0 and all(p.suffix == ".pdf" for p in (tmp_path / "pdf").iterdir())
    r = CliRunner().invoke(app, ["report", rid, "--store", str(tmp_path / "nostore")])
    assert r.exit_code == 2


def test_every_figure_gets_a_numbers_table(tmp_path):
    from losslab.report.html import auto_table

    f = _figs()[1]  # contour without a table: the grid minimum and the paths' ends are listed
    t = auto_table(f)
    assert t["min loss"] == pytest.approx(float(f.grid.z.min()))
    j, i = np.unravel_index(np.argmin(f.grid.z), f.grid.z.shape)
    assert t["at (x, y)"] == [f.grid.x[i], f.grid.y[j]]
    assert t["p1: end"] == [0.5, 2.0]
    text = write_page("t", [Section("a", "A", figures=(f,)), Section("a", "A again")], tmp_path / "t.html").read_text()
    assert "no numbers" not in text and "min loss" in text
    assert 'id="a"' in text and 'id="a-1"' in text  # section anchors stay unique


def test_histogram_samples_vs_binned_and_bar_labels():
    from losslab.report.plotly_render import histogram_bins

    figs = {f.key: f for f in _figs()}
    tr = plotly_spec(figs["hist"])["data"]
    assert tr[0]["type"] == "histogram" and tr[0]["x"] == [0.1, 0.2, 0.2, 0.9]  # raw samples, binned by plotly
    assert tr[1]["type"] == "bar" and tr[1]["x"] == [0.25, 0.75] and tr[1]["y"] == [3.0, 1.0] and tr[1]["width"] == [0.5, 0.5]
    c, w, n = histogram_bins(Series("e", np.array([0.0, 1.0, 3.0]), np.array([2.0, 5.0])))  # edges
    assert c.tolist() == [0.5, 2.0] and w.tolist() == [1.0, 2.0] and n.tolist() == [2.0, 5.0]
    with pytest.raises(ValueError, match="bin centres"):
        histogram_bins(Series("bad", np.arange(5.0), np.arange(2.0)))
    ax = plotly_spec(figs["bars2"])["layout"]["xaxis"]
    assert ax["tickvals"] == [0.0, 1.0] and ax["ticktext"] == ["gd", "momentum"]


def test_stored_surface_run_draws_its_training_run(tmp_path):
    """A surface stored as arrays (as the study runner does) with ``parent`` = its training run:
    the report projects the run's snapshots on the surface's plane."""
    from losslab.landscape import pca_directions, surface
    from losslab.data import load
    from losslab.report import run_sections
    from losslab.store import open_store

    st = open_store(tmp_path / "s")
    tr = _train_small()
    tid = st.save_trajectory(tr, name="parent run")
    pca = pca_directions(tr.snapshots, 2, model=tr.model)
    surf = surface(tr.model, load("moons", seed=0, n=80).train, loss="cross_entropy", directions=pca, resolution=5,
                   span=1.0)
    arrays = {"axis0": surf.axes[0], "axis1": surf.axes[1], "loss": surf.loss, "base": surf.base,
              "directions": surf.directions}
    sid = st.put_run("surf1", name="surface of parent", kind="surface", settings={"directions": "pca"},
                     status="completed", summary={}, arrays=arrays, parent=tid)
    (sec,) = run_sections(st, sid)
    contour = [f for f in sec.figures if f.kind == "contour"][0]
    (path,) = contour.paths
    assert path.name == "training run parent run"
    # coordinates and off-plane distances against a direct least-squares projection
    D = np.asarray(surf.directions, dtype=float)  # (2, P)
    R = tr.snapshots.astype(float) - surf.base  # (K, P)
    C = np.linalg.solve(D @ D.T, D @ R.T).T  # (K, 2)
    np.testing.assert_allclose(np.stack([path.x, path.y], 1), C, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(path.off_plane, np.linalg.norm(R - C @ D, axis=1), rtol=1e-6, atol=1e-6)
    assert path.off_plane[-1] == pytest.approx(0.0, abs=1e-5)  # the plane is anchored at the last snapshot
    np.testing.assert_array_equal(path.steps, tr.snapshot_steps)


def test_stored_experiment_run_is_reported(tmp_path):
    from losslab.phenomena import ExperimentResult
    from losslab.phenomena.storage import save_experiment
    from losslab.store import open_store

    st = open_store(tmp_path / "s")
    res = ExperimentResult(name="toy", title=f"Toy {EVIL}", claim="a claim", summary={"x": 2.0},
                           checks={"x is 2": True}, figures=(_figs()[1],), arrays={"a": np.arange(3.0)},
                           settings={"n": 3}, text="what was done")
    rid = save_experiment(st, res, study="exp")
    (page,) = write_report(rid, store=st)
    text = page.read_text()
    assert html.escape(f"Toy {EVIL}") in text and EVIL not in text
    assert "✔ x is 2" in text and "Claim: a claim" in text
    assert _data(text, "f0-0")["paths"][1]["x"].tolist() == [1.0, 0.5]


def test_more_curves_than_colours_still_look_different():
    # twelve optimizers on one plot: the palette repeats, so a repeated colour gets a dash
    names = [f"opt{i}" for i in range(12)]
    f = Figure("many", "many", "lines", series=tuple(Series(n, np.arange(3.0), np.arange(3.0) + i) for i, n in enumerate(names)))
    looks = [(t["line"]["color"], t["line"].get("dash")) for t in plotly_spec(f)["data"] if t.get("name") in names]
    assert len(looks) == 12 and len(set(looks)) == 12, looks
    x = np.linspace(-1, 1, 5)
    g = Grid(x, x, x[None, :] + x[:, None])
    paths = tuple(Path(n, np.array([0.0, 0.5]), np.array([0.0, 0.1 * i])) for i, n in enumerate(names))
    for kind in ("contour", "surface"):
        data = plotly_spec(Figure("p", "p", kind, grid=g, paths=paths))["data"]
        looks = [(t["line"]["color"], t["line"].get("dash")) for t in data if t.get("name") in names]
        assert len(looks) == 12 and len(set(looks)) == 12, (kind, looks)


def test_a_log_axis_under_two_decades_is_labelled_at_1_2_5_values():
    from losslab.report.plotly_render import log_axis
    ax = log_axis([np.array([0.0018, 0.05, 0.21])])  # about 2.07 decades of data -> decades only
    assert ax["dtick"] == 1 and "tickvals" not in ax
    ax = log_axis([np.array([0.4, 1.0, 4.0])])  # one decade: decades alone would label "1" only
    assert ax["tickvals"] == [0.5, 1.0, 2.0] and ax["ticktext"] == ["0.5", "1", "2"]
    ax = log_axis([np.array([0.018, 0.05, 0.21])])  # about 1.07 decades
    assert ax["tickvals"] == [0.02, 0.05, 0.1, 0.2]
    ax = log_axis([np.array([0.019, 0.05, 0.17])])  # under a decade: 0.02, 0.05, 0.1 (no "2, 0.1, 9, 8, ...")
    assert ax["tickvals"] == [0.02, 0.05, 0.1] and ax["ticktext"] == ["0.02", "0.05", "0.1"]
    ax = log_axis([np.array([3.1, 3.9])])  # narrow: single digits 3, 4 (1-2-5 gives none here)
    assert ax["tickvals"] == [3.0, 4.0]
    ax = log_axis([np.array([3.1, 3.2])])  # a sliver: plotly's own labels
    assert "tickvals" not in ax and ax["type"] == "log"


def test_one_meaning_one_colour_within_a_figure_told_apart_by_dash():
    f = Figure("pairs", "pairs", "lines", series=(
        Series("gain 1: measured", np.arange(3.0), np.ones(3)), Series("gain 1: mean field", np.arange(3.0), np.ones(3), dash=True),
        Series("gain 2: measured", np.arange(3.0), 2 * np.ones(3)), Series("gain 2: mean field", np.arange(3.0), 2 * np.ones(3), dash=True)))
    tr = {t["name"]: (t["line"]["color"], t["line"].get("dash")) for t in plotly_spec(f)["data"]}
    assert tr["gain 1: measured"][0] == tr["gain 1: mean field"][0] != tr["gain 2: measured"][0] == tr["gain 2: mean field"][0]
    assert len(set(tr.values())) == 4
