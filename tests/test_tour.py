"""The tour: chapters run, fail without stopping the tour, are stored, and make one report."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

from losslab.tour import CHAPTERS, ORDER, Chapter, run_tour, tour_order


def test_chapter_order_covers_the_story():
    # the story: why guessing fails and how lonely high dimensions are, then the cost functions and
    # gradient descent on the seven points, ..., and the gradient check last
    assert ORDER[:4] == ["random_guessing", "curse_of_dimensionality", "cost_functions", "seven_point_bowl"]
    assert ORDER[-1] == "gradient_check"
    assert {"dln_balance", "optimizers", "flat_vs_sharp", "overfitting", "saddles", "deep_linear", "rnn_vs_lstm",
            "gradient_check", "edge_of_stability", "perceptron", "depth_and_minima"} <= set(ORDER)
    # the perceptron follows the sigmoid neuron's curse of nonlinearity; depth and minima follow flat vs sharp
    assert ORDER.index("perceptron") == ORDER.index("nonconvexity") + 1
    assert ORDER.index("depth_and_minima") == ORDER.index("flat_vs_sharp") + 1
    assert set(tour_order(quick=True)) == set(ORDER) - {"edge_of_stability"}


def test_failing_chapter_is_shown_and_the_tour_goes_on(tmp_path, monkeypatch):
    def boom(quick, seed):
        raise RuntimeError("chapter exploded <script>alert(1)</script>")

    monkeypatch.setitem(CHAPTERS._items, "gradient_check", Chapter("gradient_check", "Broken", "text", boom))
    res = run_tour(quick=True, store=tmp_path / "store", chapters=["gradient_check", "seven_point_bowl"])
    st = {c.key: c for c in res.chapters}
    assert st["gradient_check"].status == "failed" and "chapter exploded" in st["gradient_check"].error
    assert st["seven_point_bowl"].status == "ok" and st["seven_point_bowl"].n_figures == 3
    text = res.report.read_text()
    assert res.report == tmp_path / "store" / "reports" / "tour.html"
    assert (res.report.parent / "plotly-cartesian.min.js").exists()
    assert 'class="error"' in text and "chapter exploded &lt;script&gt;" in text and "<script>alert" not in text
    # both chapters are in the store, in one study, the failed one with status failed
    from losslab.store import open_store

    runs = open_store(tmp_path / "store").list(study=res.study)
    assert sorted(r.status for r in runs) == ["completed", "failed"]
    assert json.loads(json.dumps(res.to_dict()))["chapters"][0]["key"] == "gradient_check"


def test_bowl_paths_are_gradient_descent_on_the_drawn_surface(tmp_path):
    """The bowl chapter's paths against a hand-written gradient step and its grid against the
    closed-form loss (independent of losslab.train)."""
    res = CHAPTERS.get("seven_point_bowl").run(True, 0)
    from losslab.data import load

    d = load("seven_points").train
    x, y = d.X.double().numpy().ravel(), d.y.double().numpy().ravel()
    contour, surf3d, curves = res.figures
    assert contour.slider and surf3d.slider and contour.kind == "contour" and surf3d.kind == "surface"
    g = surf3d.grid
    W, B = np.meshgrid(g.x, g.y)
    np.testing.assert_allclose(g.z, ((W[..., None] * x + B[..., None] - y) ** 2).mean(-1), rtol=1e-12)
    np.testing.assert_allclose(contour.grid.z, np.log10(g.z), rtol=1e-12)
    lrs = list(res.settings["learning rates"].values())
    for path, lr in zip(contour.paths, lrs):
        w, b = path.x, path.y
        for k in range(min(5, len(w) - 1)):  # theta_{k+1} = theta_k - lr * grad L(theta_k)
            r = w[k] * x + b[k] - y
            gw, gb = 2 * np.mean(r * x), 2 * np.mean(r)
            assert w[k + 1] == pytest.approx(w[k] - lr * gw, rel=1e-9, abs=1e-12)
            assert b[k + 1] == pytest.approx(b[k] - lr * gb, rel=1e-9, abs=1e-12)
    H = 2 / len(x) * np.stack([x, np.ones_like(x)], 1).T @ np.stack([x, np.ones_like(x)], 1)
    assert res.summary["lambda_max"] == pytest.approx(np.linalg.eigvalsh(H)[-1], rel=1e-12)
    assert all(res.checks.values()), res.checks


@pytest.mark.slow
def test_tour_quick_cli(tmp_path):
    """`losslab tour --quick` end to end: every chapter ran and every check it makes passed (or it says why not)."""
    from typer.testing import CliRunner

    from losslab.cli import app

    r = CliRunner().invoke(app, ["tour", "--quick", "--store", str(tmp_path / "s"), "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["report"].endswith("tour.html")
    keys = [c["key"] for c in out["chapters"]]
    assert keys == tour_order(quick=True) and "edge_of_stability" not in keys
    for c in out["chapters"]:
        assert c["status"] in ("ok", "unavailable"), (c["key"], c["error"])
        # a chapter that ran checks its claims; every one must hold at the quick sizes (seed 0)
        assert c["status"] != "ok" or c["checks_passed"] == c["checks_total"], (c["key"], c)
    text = open(out["report"], encoding="utf-8").read()
    assert len(re.findall(r'<section id=', text)) == len(keys)
