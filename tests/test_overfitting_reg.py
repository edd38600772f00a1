"""The regularization parts of ``overfitting``: closed-form ridge against independent solvers, the
input-noise identity (Bishop 1995) against quadrature and Monte Carlo, the quick run's new checks,
and determinism of the stochastic pieces."""
import math

import numpy as np
import pytest
import torch

from losslab.phenomena import run_experiment
from losslab.phenomena.overfitting import (_input_noise_linear, noise_penalised_mse, noisy_mse_monte_carlo, ridge,
                                           ridge_by_training)


def _augmented_lstsq(X, y, lam, intercept):
    """min ||[X 1; sqrt(N lam) I 0] (w, b) - (y, 0)||^2 = N x the ridge objective (b unpenalised)."""
    N, P = X.shape
    top = np.c_[X, np.ones(N)] if intercept else X
    pen = np.c_[math.sqrt(N * lam) * np.eye(P), np.zeros((P, 1))] if intercept else math.sqrt(N * lam) * np.eye(P)
    sol = np.linalg.lstsq(np.r_[top, pen], np.r_[y, np.zeros(P)], rcond=None)[0]
    return (sol[:P], sol[P]) if intercept else (sol, None)


@pytest.mark.parametrize("intercept", [False, True])
@pytest.mark.parametrize("lam", [1e-6, 1e-2, 3.0])
def test_ridge_matches_augmented_lstsq(lam, intercept):
    g = np.random.default_rng(0)
    X, y = g.normal(size=(20, 4)), g.normal(size=20)
    w, b = ridge(torch.tensor(X), torch.tensor(y), lam, intercept=intercept)
    w_ref, b_ref = _augmented_lstsq(X, y, lam, intercept)
    np.testing.assert_allclose(w.numpy(), w_ref, rtol=1e-10, atol=1e-12)
    if intercept:
        assert b == pytest.approx(b_ref, rel=1e-10, abs=1e-12)
    else:
        assert b is None
        # and the normal-equations form (X^T X + N lam I)^-1 X^T y, fine on this well-conditioned X
        np.testing.assert_allclose(w.numpy(), np.linalg.solve(X.T @ X + 20 * lam * np.eye(4), X.T @ y), rtol=1e-10)


def test_ridge_on_vandermonde_and_lambda_zero():
    from losslab.closed_form import ols
    from losslab.data import load
    from losslab.models import build

    sp = load("polynomial", seed=0, n=12, noise=0.25)
    F = build("polynomial", degree=5).features(sp.train.X.double())  # (9, 6), cond ~ 1e5
    y = sp.train.y.double()
    for lam in (1e-8, 1e-3):
        w, _ = ridge(F, y, lam)
        w_ref, _ = _augmented_lstsq(F.numpy(), y.numpy()[:, 0], lam, False)
        np.testing.assert_allclose(w.numpy(), w_ref, rtol=1e-7)
    # lam = 0 with an unpenalised intercept is ordinary least squares
    w0, b0 = ridge(F[:, 1:], y, 0.0, intercept=True)
    ref = ols(F[:, 1:], y)
    np.testing.assert_allclose(w0.numpy(), ref.weight.numpy()[0], rtol=1e-7)
    assert b0 == pytest.approx(float(ref.bias[0]), rel=1e-7)


def test_ridge_rejects_bad_input():
    X, y = torch.randn(5, 2), torch.randn(5)
    with pytest.raises(ValueError, match="lam"):
        ridge(X, y, -1.0)
    with pytest.raises(ValueError, match="shape"):
        ridge(X, torch.randn(4), 0.1)
    with pytest.raises(ValueError, match="NaN"):
        ridge(X, torch.tensor([1.0, float("nan"), 0, 0, 0]), 0.1)


def test_noise_identity_against_quadrature_and_monte_carlo():
    # tiny case: 3 points, 1 input. E over eps ~ N(0, s^2) of a quadratic in eps is exact with 4-point
    # Gauss-Hermite (probabilists') quadrature -- an independent route to mse + s^2 w^2.
    X = torch.tensor([[0.3], [-1.2], [2.0]], dtype=torch.float64)
    y = torch.tensor([0.5, -0.7, 1.1], dtype=torch.float64)
    w, b, s = torch.tensor([1.7], dtype=torch.float64), -0.4, 0.8
    nodes, weights = np.polynomial.hermite_e.hermegauss(4)
    weights = weights / weights.sum()
    quad = np.mean([sum(q * (w.item() * (x + s * t) + b - yy) ** 2 for t, q in zip(nodes, weights))
                    for x, yy in zip(X[:, 0].tolist(), y.tolist())])
    assert noise_penalised_mse(X, y, w, b, s) == pytest.approx(quad, rel=1e-12)
    mc, se = noisy_mse_monte_carlo(X, y, w, b, s, draws=20000, seed=1)
    assert se > 0 and abs(mc - quad) <= 4 * se
    # and the MC estimator is not blind: a wrong penalty (2 s^2 w^2) is rejected
    wrong = quad + s ** 2 * float(w @ w)
    assert abs(mc - wrong) > 10 * se
    assert noisy_mse_monte_carlo(X, y, w, b, 0.0, draws=5, seed=0)[0] == pytest.approx(
        noise_penalised_mse(X, y, w, b, 0.0), rel=1e-14)


def test_stochastic_pieces_are_deterministic():
    X, y = torch.randn(6, 2, dtype=torch.float64), torch.randn(6, dtype=torch.float64)
    w = torch.tensor([0.5, -1.0], dtype=torch.float64)
    assert noisy_mse_monte_carlo(X, y, w, 0.1, 0.3, draws=50, seed=3) == noisy_mse_monte_carlo(X, y, w, 0.1, 0.3,
                                                                                               draws=50, seed=3)
    assert noisy_mse_monte_carlo(X, y, w, 0.1, 0.3, draws=50, seed=3) != noisy_mse_monte_carlo(X, y, w, 0.1, 0.3,
                                                                                               draws=50, seed=4)
    a = _input_noise_linear(seed=0, sigma=0.5, steps=200, lr=0.1, n=40, dim=2, draws=20)
    b = _input_noise_linear(seed=0, sigma=0.5, steps=200, lr=0.1, n=40, dim=2, draws=20)
    # same seed, same numbers up to last-bit BLAS rounding (alignment-dependent kernels)
    np.testing.assert_allclose(a["avg"], b["avg"], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(a["dist_iter_ridge"], b["dist_iter_ridge"], rtol=1e-12, atol=1e-15)
    from losslab.data import load

    tr = load("polynomial", seed=0, n=12).train
    c1, _ = ridge_by_training(tr, 3, 1e-2, seed=0)
    c2, _ = ridge_by_training(tr, 3, 1e-2, seed=0)
    assert torch.equal(c1, c2)
    # and it reaches the closed form (wd = 2 lam scaling)
    from losslab.models import build

    F = build("polynomial", degree=3).features(tr.X.double())
    ref, _ = ridge(F, tr.y, 1e-2)
    assert float((c1 - ref).norm() / ref.norm()) <= 1e-6


def test_quick_run_regularization_checks():
    r = run_experiment("overfitting", quick=True, seed=0)
    s, a = r.summary, r.arrays
    # ridge theorems on the measured path
    assert np.all(np.diff(a["ridge/coef_norm"]) <= 1e-9 * a["ridge/coef_norm"][:-1])
    assert np.all(np.diff(a["ridge/train_mse"]) >= -1e-12)
    assert s["ridge_training_max_rel_err"] <= 1e-5
    # lambda = 0 of the SVD path is the interpolant that closed_form.ols found in the degree sweep
    assert s["ridge_test_mse_lambda_0"] == pytest.approx(s["test_mse_max_degree"], rel=1e-6)
    assert s["ridge_test_mse_best"] < s["ridge_test_mse_unregularised"]
    assert s["ridge_norm_best"] < s["ridge_norm_unregularised"]
    # input noise = ridge(sigma^2)
    assert s["noise_identity_max_abs_z"] <= 4
    assert s["noise_gd_max_abs_z"] <= 4 and s["noise_gd_dist_to_ridge"] <= 0.1 * s["noise_ridge_to_ols"]
    assert s["noise_gd_dist_to_ols"] >= 0.5 * s["noise_ridge_to_ols"]
    assert np.isfinite(s["mlp_input_noise_test_mse"])
    assert {"ridge_path", "ridge_norm", "ridge_fits", "input_noise_identity", "input_noise_gd",
            "mlp_input_noise"} <= {f.key for f in r.figures}
    assert r.passed, {k: v for k, v in r.checks.items() if not v}
