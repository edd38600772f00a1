"""Experiment ``gradient_scale``: its pieces against closed forms and independent computations,
and the quick run's checks."""
import math

import numpy as np
import pytest
from conftest import assert_same_summary
import torch

from losslab.data import Data
from losslab.hessian import exact_spectrum
from losslab.models import build
from losslab.phenomena import EXPERIMENTS, run_experiment
from losslab.phenomena import gradient_scale as gs
from losslab.phenomena.rnn_vs_lstm import state_gradient_norms


# ---- part 1: conditioning ---------------------------------------------------------------------
def test_regression_hessian_matches_exact_autodiff_hessian():
    g = torch.Generator().manual_seed(3)
    X = torch.randn(20, 3, generator=g, dtype=torch.float64) * torch.tensor([1.0, 5.0, 0.2], dtype=torch.float64) + 2
    y = torch.randn(20, 1, generator=g, dtype=torch.float64)
    model = build("linear", in_dim=3, out_dim=1, seed=0, dtype=torch.float64)
    ev_exact = exact_spectrum(model, Data(X, y), "mse").eigenvalues.numpy()
    ev, kappa = gs.condition_number(gs.regression_hessian(X.numpy()))
    np.testing.assert_allclose(ev_exact, ev, rtol=0, atol=1e-10 * ev[-1])
    assert kappa == pytest.approx(ev[-1] / ev[0])


def test_kappa_2x2_closed_form_and_standardised_is_one():
    x = np.array([2.4, 2.8, 3.2, 3.6, 4.0, 4.2, 5.0])
    _, k = gs.condition_number(gs.regression_hessian(x[:, None]))
    assert gs.kappa_2x2(x) == pytest.approx(k, rel=1e-12)
    z = (x - x.mean()) / x.std()
    assert gs.kappa_2x2(z) == pytest.approx(1.0, abs=1e-12)  # H = 2 I
    with pytest.raises(ValueError, match="positive definite"):
        gs.condition_number(gs.regression_hessian(np.ones((5, 1))))  # constant feature = the bias column


def test_kappa_bound_steps_definition():
    for kappa, eps in ((10.0, 1e-3), (315.6, 1e-6), (2.0, 0.5)):
        t = gs.kappa_bound_steps(kappa, eps)
        r = 1 - 1 / kappa
        assert r ** (2 * t) <= eps < r ** (2 * (t - 1))
    assert gs.kappa_bound_steps(1.0, 1e-6) == 1
    with pytest.raises(ValueError):
        gs.kappa_bound_steps(10.0, 1.5)


def test_modal_excess_matches_direct_gradient_descent():
    H = np.diag([4.0, 1.0, 0.25])
    R = np.linalg.qr(np.random.default_rng(0).standard_normal((3, 3)))[0]
    H = R @ H @ R.T
    d = np.array([1.0, -2.0, 0.5])
    lr = 1 / 4.0
    direct = []
    for _ in range(30):
        direct.append(0.5 * d @ H @ d)
        d = d - lr * H @ d
    np.testing.assert_allclose(gs.modal_excess(H, np.array([1.0, -2.0, 0.5]), lr, np.arange(30)), direct, rtol=1e-12)


# ---- part 2: mean field -------------------------------------------------------------------------
def test_mean_field_linear_activation_closed_form():
    q, chi = gs.mean_field(0.8, 2.0, 6, sigma_b=0.3, activation="linear")
    np.testing.assert_allclose(chi, 0.64, rtol=1e-12)
    expect = [2.0]
    for _ in range(5):
        expect.append(0.64 * expect[-1] + 0.09)
    np.testing.assert_allclose(q, expect, rtol=1e-12)


def test_mean_field_tanh_against_monte_carlo_and_limits():
    q, chi = gs.mean_field(1.5, 0.7, 2)
    z = np.random.default_rng(0).standard_normal(2_000_000)
    u = math.sqrt(0.7) * z
    assert q[1] == pytest.approx(2.25 * np.mean(np.tanh(u) ** 2), rel=3e-3)
    assert chi[0] == pytest.approx(2.25 * np.mean((1 - np.tanh(u) ** 2) ** 2), rel=3e-3)
    # q -> 0 (no bias, sigma_w < 1): tanh is linear there, so chi -> sigma_w^2
    q, chi = gs.mean_field(0.7, 1.0, 200)
    assert chi[-1] == pytest.approx(0.49, rel=1e-3)
    with pytest.raises(ValueError, match="unknown activation"):
        gs.mean_field(1.0, 1.0, 3, activation="relu6")


def test_critical_gain_has_chi_one():
    sw = gs.critical_sigma_w(math.sqrt(0.05))
    assert 1.2 < sw < 1.45  # Schoenholz et al. 2017, Fig. 1: sigma_w^2 ~ 1.76 at sigma_b^2 = 0.05
    _, chi = gs.mean_field(sw, 1.0, 500, sigma_b=math.sqrt(0.05))
    assert chi[-1] == pytest.approx(1.0, abs=1e-3)
    assert gs.critical_sigma_w(0.0) == pytest.approx(1.0, abs=0.02)  # tanh without bias: sigma_w = 1


def test_mlp_gradient_profile_matches_per_example_autograd_and_leaves_model():
    net = gs.gaussian_mlp(in_dim=2, width=8, depth=3, out_dim=2, sigma_w=1.2, sigma_b=0.2, seed=1)
    before = [p.detach().clone() for p in net.parameters()]
    g = torch.Generator().manual_seed(0)
    X, y = torch.randn(5, 2, generator=g), torch.tensor([0, 1, 1, 0, 1])
    prof = gs.mlp_gradient_profile(net, X, y, "cross_entropy")
    # reference: per-example weight gradients by plain autograd, one example at a time
    ref = np.zeros(3)
    n64 = gs.gaussian_mlp(in_dim=2, width=8, depth=3, out_dim=2, sigma_w=1.2, sigma_b=0.2, seed=1).double()
    Ws = [m.weight for m in n64.net if isinstance(m, torch.nn.Linear)][:3]
    for i in range(5):
        L = torch.nn.functional.cross_entropy(n64(X[i:i + 1].double()), y[i:i + 1])
        gr = torch.autograd.grad(L, Ws)
        ref += np.array([float((a ** 2).sum()) for a in gr])
    np.testing.assert_allclose(prof["G"], np.sqrt(ref / 5), rtol=1e-10)
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))
    assert next(net.parameters()).dtype == torch.float32
    with pytest.raises(TypeError, match="tanh MLP"):
        gs.mlp_gradient_profile(build("mlp", hidden=[4], activation="relu"), X, y, "cross_entropy")


def test_gaussian_mlp_is_seeded_with_the_requested_scale():
    a = gs.gaussian_mlp(in_dim=2, width=256, depth=3, out_dim=1, sigma_w=2.0, sigma_b=0.3, seed=4)
    b = gs.gaussian_mlp(in_dim=2, width=256, depth=3, out_dim=1, sigma_w=2.0, sigma_b=0.3, seed=4)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    W = a.net[2].weight.detach()  # a square hidden layer: variance sigma_w^2 / fan_in
    assert float(W.var()) * 256 == pytest.approx(4.0, rel=0.02)
    assert float(a.net[2].bias.detach().std()) == pytest.approx(0.3, rel=0.15)


# ---- part 3: RNN ------------------------------------------------------------------------------
def test_rnn_jacobian_product_matches_autograd_and_linear_rate():
    m = gs.scaled_orthogonal_rnn(rho=1.3, hidden=6, seed=2).double()
    g = torch.Generator().manual_seed(0)
    X, y = torch.rand(4, 12, 2, generator=g, dtype=torch.float64), torch.rand(4, 1, generator=g, dtype=torch.float64)
    np.testing.assert_allclose(gs.rnn_jacobian_product_norms(m, X, y), state_gradient_norms(m, X, y), rtol=1e-10)
    lin = gs.rnn_jacobian_product_norms(m, X * 1e-9, y * 1e-9)
    np.testing.assert_allclose(lin[:-1] / lin[1:], 1.3, rtol=1e-6)  # orthogonal x 1.3: exact norm growth
    with pytest.raises(TypeError):
        gs.rnn_jacobian_product_norms(build("lstm", hidden=4), X, y)
    with pytest.raises(ValueError):
        gs.scaled_orthogonal_rnn(rho=0.0, hidden=4)


# ---- the experiment -----------------------------------------------------------------------------
def test_registered_and_bad_options():
    assert EXPERIMENTS.get("gradient_scale").fn is not None
    with pytest.raises(ValueError, match="depth"):
        run_experiment("gradient_scale", quick=True, depth=2)


@pytest.fixture(scope="module")
def quick():
    return run_experiment("gradient_scale", quick=True, seed=0)


def test_quick_run_checks_and_numbers(quick):
    s = quick.summary
    assert quick.passed, {k: v for k, v in quick.checks.items() if not v}
    assert len(quick.checks) >= 14
    assert s["seven_points_raw_kappa"] == pytest.approx(315.6104564, rel=1e-8)
    assert s["seven_points_standardised_gd_steps"] == 1
    assert s["seven_points_raw_gd_steps"] == s["seven_points_raw_modal_steps"]
    assert s["max_slope_deviation"] <= gs.SLOPE_TOL
    assert s["gain_0.5_slope_measured"] > 0.5 and s["gain_3_slope_measured"] < -0.2
    assert s["rnn_linear_growth_rate"] == pytest.approx(1.5, rel=1e-4)
    assert s["rnn_no_clip_status"] == "diverged" and s["rnn_clip_status"] == "completed"
    keys = {f.key for f in quick.figures}
    assert {"conditioning", "init_gradient_profile", "init_slope_vs_gain", "init_train_loss", "rnn_state_gradients",
            "rnn_clipping"} <= keys


@pytest.mark.slow
def test_quick_run_is_deterministic(quick):
    again = run_experiment("gradient_scale", quick=True, seed=0)
    assert_same_summary(again.summary, quick.summary)
    for k, v in quick.arrays.items():
        np.testing.assert_allclose(v, again.arrays[k], rtol=1e-12, atol=1e-15)  # last-bit BLAS rounding only
