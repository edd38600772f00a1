"""Part-B training phenomena at their --quick sizes with fixed seeds: each asserts its claim
with measured numbers. The curve helper is tested against closed forms."""

import numpy as np
import pytest
import torch

from losslab.phenomena import EXPERIMENTS, run_experiment
from losslab.phenomena.curves import bezier_points, curve_barrier, losses_along, train_bezier
from losslab.phenomena.mode_connectivity import ring_loss


def test_registered():
    for name in ("flat-vs-sharp", "mode_connectivity", "saddles", "edge-of-stability", "rnn_vs_lstm"):
        assert EXPERIMENTS.get(name).fn is not None


# ---- curves helper --------------------------------------------------------------------------
def test_bezier_points_closed_form_and_ring_bend():
    w0, w1 = torch.tensor([1.0, 0.0], dtype=torch.float64), torch.tensor([-1.0, 0.0], dtype=torch.float64)
    theta = torch.tensor([0.0, 2.0], dtype=torch.float64)
    ts = np.linspace(0, 1, 201)
    pts = bezier_points(w0, theta, w1, ts).numpy()
    np.testing.assert_allclose(pts[:, 0], 1 - 2 * ts, atol=1e-15)  # (1-t)^2 - t^2
    np.testing.assert_allclose(pts[:, 1], 4 * ts * (1 - ts), atol=1e-15)  # 2 t (1-t) * 2
    # ||phi||^2 = 1 - s^2 + s^4 with s = 2t - 1: min 3/4 at s^2 = 1/2, so max loss (1/4)^2 = 1/16
    L = losses_along(ring_loss, pts)
    assert L.max() == pytest.approx(1 / 16, abs=1e-4)
    b = curve_barrier(ts, L)
    assert b.height == pytest.approx(1 / 16, abs=1e-4)


def test_train_bezier_on_ring_is_seeded_and_keeps_ends():
    w0, w1 = torch.tensor([1.0, 0.0], dtype=torch.float64), torch.tensor([-1.0, 0.0], dtype=torch.float64)
    c1 = train_bezier(ring_loss, w0, w1, steps=150, lr=0.05, seed=3)
    c2 = train_bezier(ring_loss, w0, w1, steps=150, lr=0.05, seed=3)
    np.testing.assert_array_equal(c1.theta, c2.theta)
    np.testing.assert_array_equal(c1.w0, w0.numpy())
    ts = np.linspace(0, 1, 101)
    assert curve_barrier(ts, losses_along(ring_loss, c1.points(ts))).height < 0.1
    assert c1.history[-10:].mean() < c1.history[:10].mean()
    with pytest.raises(ValueError, match="same length"):
        train_bezier(ring_loss, w0, torch.zeros(3))


# ---- experiments (quick sizes, fixed seeds) ---------------------------------------------------
@pytest.mark.slow
def test_saddles_quick():
    r = run_experiment("saddles", quick=True, seed=0)
    s = r.summary
    assert s["toy_saddle_free_final_f"] < -0.24
    assert s["toy_newton_final_f"] > -0.01
    assert s["toy_gd_steps_to_f_below_-0.24"] >= 3 * s["toy_saddle_free_steps_to_f_below_-0.24"]
    assert s["net_distinct_critical_points"] >= 5
    assert s["net_spearman_index_loss"] > 0
    assert s["net_saddles"] > s["net_minima"]
    assert s["race_gd_escape_steps"] == s["race_gd_escape_closed_form"]
    assert s["escape_saddle_free_krylov_final_loss"] < s["escape_gd_final_loss"]
    assert r.passed, r.checks


@pytest.mark.slow
def test_mode_connectivity_quick():
    r = run_experiment("mode_connectivity", quick=True, seed=0)
    s = r.summary
    assert s["toy_linear_barrier"] == pytest.approx(1.0, abs=1e-9)
    assert s["toy_curve_barrier"] < 0.1
    assert s["net_linear_barrier"] > 0.05
    assert s["net_curve_barrier"] < 0.25 * s["net_linear_barrier"]
    # the landscape evaluator and the flat-vector loss agree on the straight line (float64 both)
    assert s["net_evaluators_max_abs_diff"] < 1e-5
    assert r.passed, r.checks


@pytest.mark.slow
def test_edge_of_stability_quick():
    r = run_experiment("edge_of_stability", quick=True, seed=0)
    s = r.summary
    assert s["lambda_max_early_mean"] < 0.7 * s["two_over_lr"]
    assert abs(s["late_mean_over_two_over_lr"] - 1) < 0.15
    assert s["status"] == "completed"
    assert r.passed, r.checks


@pytest.mark.slow
def test_rnn_vs_lstm_quick():
    r = run_experiment("rnn_vs_lstm", quick=True, seed=0)
    s = r.summary
    assert s["rnn_ratio_init"] * 100 <= s["lstm_ratio_init"]
    assert s["rnn_ratio_final"] * 100 <= s["lstm_ratio_final"]
    assert s["lstm_final_val_loss"] < 0.25 / 6
    assert s["rnn_final_val_loss"] > 0.5 / 6
    assert r.passed, r.checks


def test_state_gradient_norms_match_manual_autograd():
    from losslab.models import build
    from losslab.params import module_fingerprint, same_fingerprint
    from losslab.phenomena.rnn_vs_lstm import state_gradient_norms

    net = build("rnn", in_dim=2, hidden=4, out_dim=1, seed=0)
    fp = module_fingerprint(net)
    g = torch.Generator().manual_seed(0)
    X, y = torch.randn(5, 6, 2, generator=g), torch.randn(5, 1, generator=g)
    norms = state_gradient_norms(net, X, y)
    # reference: retain_grad on each h_k of a manual unroll with the same cell
    h = torch.zeros(5, 4)
    hs = []
    for k in range(6):
        h = net.cell(X[:, k], h)
        h.retain_grad()
        hs.append(h)
    ((net.readout(h) - y) ** 2).mean().backward()
    ref = np.asarray([float(t.grad.norm()) for t in hs])
    net.zero_grad(set_to_none=True)
    np.testing.assert_allclose(norms, ref, rtol=1e-5)
    assert same_fingerprint(fp, module_fingerprint(net))


def test_edge_of_stability_counts_uncertified_measurements_instead_of_printing_a_warning(monkeypatch):
    """A tracked lambda_max whose Lanczos check did not finish is counted in the summary and the caption;
    no ConvergenceWarning reaches the console of a tour (the measurement itself records it)."""
    import dataclasses
    import warnings

    import losslab.hessian.tracking as tracking

    real = tracking.lanczos

    def every_other_uncertified(op, k, **kw):
        eig = real(op, k, **kw)
        if (kw["seed"] // 20) % 2:  # steps 20, 60, ...: seed = 0 + step
            eig = dataclasses.replace(eig, report=dataclasses.replace(eig.report, converged=False))
        return eig

    monkeypatch.setattr(tracking, "lanczos", every_other_uncertified)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning that escapes fails the test
        r = run_experiment("edge_of_stability", quick=True, seed=0, steps=100)
    s = r.summary
    assert s["n_measurements"] == 5 and s["n_certified"] == 3  # steps 0, 40, 80 certified; 20, 60 not
    fig = next(f for f in r.figures if f.key.endswith("sharpness"))
    assert "Certified: 3 of 5 measurements" in fig.caption
    assert fig.table["n_certified"] == 3
