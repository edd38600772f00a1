"""The DLN experiments as registered phenomena (losslab.phenomena.dln_experiments): figures, checks,
the conversion against the DLN results they come from, storing through the run store, the CLI.

The numerics themselves (invariants, end-to-end ODE, Saxe, Langevin, depth) are tested against
closed forms in tests/test_dln.py and tests/test_dln_experiments.py; here the references are the
DLN result arrays and independent recomputations of what the figures show."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from losslab.dln import saxe_curve
from losslab.phenomena.dln_experiments import save_result
from losslab.phenomena.dln_runs import EXPERIMENTS as DLN
from losslab.figures import FIGURE_KINDS, Figure
from losslab.phenomena import EXPERIMENTS, ExperimentResult, run_experiment
from losslab.phenomena.dln_experiments import PHENOMENON_OF, to_experiment_result
from losslab.phenomena.storage import load_experiment
from losslab.store import open_store

NAMES = ["dln_conservation", "dln_end_to_end", "dln_depth", "dln_saxe", "dln_langevin"]
_CACHE: dict[str, ExperimentResult] = {}


def quick(name: str) -> ExperimentResult:
    """Each quick experiment runs once per test session (they take 0.2-3 s each)."""
    if name not in _CACHE:
        _CACHE[name] = run_experiment(name, quick=True, seed=0)
    return _CACHE[name]


def test_all_five_registered():
    assert set(NAMES) <= set(EXPERIMENTS.names())
    assert sorted(PHENOMENON_OF) == sorted(DLN.names())
    for n in NAMES:
        info = EXPERIMENTS.get(n.replace("_", "-"))  # registry names: '-' == '_'
        assert info.title and info.claim


@pytest.mark.parametrize("name", NAMES)
def test_quick_result_figures_and_checks(name):
    r = quick(name)
    assert isinstance(r, ExperimentResult) and r.name == name
    assert r.checks and all(r.checks.values()), {k: v for k, v in r.checks.items() if not v}
    assert r.passed
    assert r.wall_time > 0
    # summary: flat scalars (the run index filters on them)
    for k, v in r.summary.items():
        assert isinstance(v, (int, float, bool, str)) or v is None, (k, v)
        if isinstance(v, float):
            assert math.isfinite(v), (k, v)
    assert r.text and r.settings["quick"] is True and r.settings["dln_experiment"] == name[4:]
    json.dumps(r.settings)  # settings are JSON-able
    assert r.arrays and all(isinstance(a, np.ndarray) for a in r.arrays.values())
    assert r.figures
    for f in r.figures:
        assert isinstance(f, Figure) and f.kind in FIGURE_KINDS
        assert f.caption and f.series
        for s in f.series:
            x, y = np.asarray(s.x, dtype=float), np.asarray(s.y, dtype=float)
            assert x.shape == y.shape and x.ndim == 1 and x.size >= 2, (f.key, s.name)
            assert np.isfinite(x).all(), (f.key, s.name)
            assert not np.isinf(y).any(), (f.key, s.name)
            if f.log_y:
                # log axes: non-positive values are turned into gaps (NaN); what is drawn is > 0
                fin = y[np.isfinite(y)]
                assert fin.size >= 0.5 * y.size and (fin > 0).all(), (f.key, s.name)
            else:
                assert np.isfinite(y).all(), (f.key, s.name)
        json.dumps(f.table)  # the numbers beside the figure are JSON-able


def test_conservation_figures_match_the_dln_result():
    d = DLN.get("conservation")(quick=True, seed=0)
    r = to_experiment_result("conservation", d)
    drift = {f.key: f for f in r.figures}["dln_invariant_drift"]
    flow = drift.series[0]
    np.testing.assert_array_equal(flow.x, d.times[1:])
    np.testing.assert_array_equal(flow.y, d.flow_drift[1:])  # all > 0 after t = 0
    for i, lr in enumerate(d.lrs):
        np.testing.assert_array_equal(drift.series[1 + i].y, d.gd_drift[i, 1:])
    # the halving ratio in the summary is the recomputed drift(lr)/drift(lr/2) at the smallest steps
    assert r.summary["halving_ratio_smallest_steps"] == pytest.approx(d.gd_final_drift[-2] / d.gd_final_drift[-1], rel=1e-12)
    np.testing.assert_array_equal(r.arrays["gd_drift"], d.gd_drift)


def test_saxe_dashed_series_is_the_closed_form():
    r = quick("dln_saxe")
    fig = {f.key: f for f in r.figures}["dln_saxe_modes"]
    s, u0 = r.arrays["s"], r.settings["u0"]
    dashed = [x for x in fig.series if x.dash]
    solid = [x for x in fig.series if not x.dash]
    assert len(dashed) == len(solid) == s.size
    for a, ser in enumerate(dashed):
        np.testing.assert_allclose(ser.y, saxe_curve(ser.x, s[a], u0), rtol=1e-14, atol=0)
        # the flow's curve is within the claimed 1e-6 of it, measured here independently of the checks
        assert np.max(np.abs(solid[a].y - ser.y)) < 1e-6


def test_langevin_densities_integrate_to_one():
    r = quick("dln_langevin")
    fig = {f.key: f for f in r.figures}["dln_langevin_histogram"]
    width = np.diff(r.arrays["edges"])
    for ser in fig.series:  # density x bin width summed over the bins = bin probabilities summed = 1
        assert float(np.sum(ser.y * width)) == pytest.approx(1.0, abs=1e-9), ser.name
    # the TV in the summary is recomputed from the arrays: 0.5 sum |p - q|
    tv = 0.5 * np.abs(r.arrays["empirical"] - r.arrays["predicted"]).sum()
    assert r.summary["tv_vs_predicted"] == pytest.approx(tv, rel=1e-12)


def test_depth_table_and_check_agree_with_the_arrays():
    r = quick("dln_depth")
    stt = r.arrays["steps_to_target"]  # (P, D, seeds)
    mean = stt.mean(-1)
    assert r.summary["p4_depth1_mean_steps_to_target"] == mean[0, 0]
    assert r.summary["p4_depth2_mean_steps_to_target"] == mean[0, 1]
    assert mean[0, 1] < mean[0, 0]
    bars = {f.key: f for f in r.figures}["dln_depth_steps"]
    np.testing.assert_array_equal(bars.series[0].y, mean[0])


def test_end_to_end_entropy_matches_the_dln_entropy():
    from losslab.dln import entropy

    r = quick("dln_end_to_end")
    X, N = r.arrays["X_layers"], r.settings["N"]
    S = r.arrays["entropy_layers"]
    for t in (0, len(S) // 2, len(S) - 1):
        assert S[t] == pytest.approx(entropy(X[t], N), rel=1e-12)


def test_unknown_option_is_a_clear_error():
    with pytest.raises(TypeError, match="valid options"):
        run_experiment("dln_saxe", quick=True, no_such_option=1)


def test_full_size_conservation_and_saxe_checks_pass():
    """Full sizes of the two cheap experiments (about 5 s together): the checks hold there too
    (conservation uses six step sizes at full size, see FULL_DEFAULTS)."""
    for name in ("dln_conservation", "dln_saxe"):
        r = run_experiment(name, quick=False, seed=0)
        assert r.settings["quick"] is False
        assert all(r.checks.values()), (name, r.checks)


def test_save_result_stores_an_experiment_run(tmp_path):
    d = DLN.get("saxe")(quick=True, seed=0)
    rid = save_result(d, tmp_path, "saxe")
    st = open_store(tmp_path)
    (rec,) = st.list()
    assert rec.id == rid and rec.kind == "experiment" and rec.name == "dln_saxe" and rec.status == "completed"
    assert rec.summary["checks_passed"] == rec.summary["checks_total"] > 0
    back = load_experiment(st, rid)
    np.testing.assert_array_equal(back.arrays["u_flow"], d.u_flow)
    assert [f.key for f in back.figures] == [f.key for f in to_experiment_result("saxe", d).figures]
    np.testing.assert_array_equal(back.figures[0].series[0].y, d.u_flow[:, 0])
    with pytest.raises(TypeError, match="DLN experiment result"):
        save_result({"not": "a result"}, tmp_path)


def test_cli_stores_a_run(tmp_path):
    from typer.testing import CliRunner

    from losslab.cli import app

    store = tmp_path / "store"
    res = CliRunner().invoke(app, ["dln", "conservation", "--quick", "--json", "--store", str(store)])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    runs = open_store(store).list()
    assert [r.id for r in runs] == [out["run_id"]]
    assert runs[0].kind == "experiment" and runs[0].name == "dln_conservation"
    assert out["passed"] is True and out["summary"]["flow_max_drift"] < 1e-9
    # --no-save writes nothing
    res = CliRunner().invoke(app, ["dln", "conservation", "--quick", "--json", "--no-save", "--store", str(store)])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["run_id"] is None and len(open_store(store).list()) == 1
