"""Lanczos, power iteration, Hutchinson / Hutch++, SLQ density and the sharpness measures
against closed forms: quadratics with a chosen spectrum, OLS models with known Hessians."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from losslab.hessian import (ConvergenceWarning, MatrixOperator, epsilon_sharpness, hessian_operator, hessian_trace,
                             hutchinson, hutchpp, lambda_max, lanczos, loss_rise, power_iteration, slq)
from losslab.landscape.directions import filter_normalized
from losslab.losses import Loss
from losslab.params import module_fingerprint, same_fingerprint




def chosen_matrix(eigs: torch.Tensor, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    V, _ = torch.linalg.qr(torch.randn(len(eigs), len(eigs), generator=g, dtype=torch.float64))
    A = V @ torch.diag(eigs) @ V.T
    return (A + A.T) / 2


def spectrum_60() -> torch.Tensor:
    g = torch.Generator().manual_seed(5)
    bulk = torch.rand(54, generator=g, dtype=torch.float64) * 4 - 1  # in [-1, 3]
    return torch.cat([torch.tensor([10.0, 9.0, 8.5, -5.0, -4.5, -4.0], dtype=torch.float64), bulk])


class Quad(nn.Module):
    """L(theta) = 1/2 theta^T A theta through a model + loss: forward broadcasts theta."""

    def __init__(self, P: int, seed: int = 0):
        super().__init__()
        self.theta = nn.Parameter(torch.randn(P, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))

    def forward(self, x):
        return self.theta.expand(x.shape[0], -1)


def quad_loss(A: torch.Tensor) -> Loss:
    return Loss("quad", lambda out, y: 0.5 * ((out @ A) * out).sum(1), "regression")


def test_lanczos_quadratic_chosen_spectrum_through_model():
    eigs = spectrum_60()
    A = chosen_matrix(eigs)
    model = Quad(60)
    X = torch.zeros(8, 1, dtype=torch.float64)
    op = hessian_operator(model, (X, torch.zeros(8)), quad_loss(A), batch_size=3)
    srt = eigs.sort().values
    top = lanczos(op, 3, which="largest", tol=1e-12, seed=1)
    bot = lanczos(op, 3, which="smallest", tol=1e-12, seed=1)
    assert top.converged and bot.converged
    # acceptance criterion: top/bottom to 1e-8 relative in float64
    torch.testing.assert_close(top.eigenvalues, srt.flip(0)[:3], rtol=1e-8, atol=0)
    torch.testing.assert_close(bot.eigenvalues, srt[:3], rtol=1e-8, atol=0)
    # eigenvector residual ~ sqrt(eigenvalue error x gap) when stopped on the r^2/gap bound
    R = A @ top.eigenvectors - top.eigenvectors * top.eigenvalues
    assert float(R.norm(dim=0).max()) < 1e-5 * 10
    torch.testing.assert_close(torch.tensor(top.report.residuals, dtype=torch.float64), R.norm(dim=0),
                               rtol=1e-3, atol=1e-12)
    assert top.report.n_products < 60  # did not need the whole space


def test_lanczos_warns_when_not_converged_and_reports():
    A = chosen_matrix(spectrum_60())
    with pytest.warns(ConvergenceWarning, match="not converged"):
        e = lanczos(A, 3, tol=1e-14, max_iter=5)
    assert not e.converged and e.report.n_iter == 5 and e.report.n_products == 5
    with pytest.raises(ValueError, match="k must be an integer"):
        lanczos(A, 0)
    with pytest.raises(ValueError, match="eigenvalue end"):
        lanczos(A, 1, which="middle")


def test_lanczos_multiplicity_via_restart():
    # a repeated top eigenvalue: one Krylov space sees it once; breakdown-restart finds the copy
    eigs = torch.tensor([3.0, 3.0, 1.0, 0.5, -1.0, 2.0], dtype=torch.float64)
    e = lanczos(chosen_matrix(eigs), 3, tol=1e-12, seed=0)
    torch.testing.assert_close(e.eigenvalues, torch.tensor([3.0, 3.0, 2.0], dtype=torch.float64), rtol=1e-10,
                               atol=1e-12)


def test_power_iteration_against_exact():
    eigs = torch.linspace(0.1, 1.0, 40, dtype=torch.float64)
    eigs[-1] = 3.0
    e = power_iteration(chosen_matrix(eigs), 1, tol=1e-10, max_iter=200)
    assert e.converged
    assert abs(float(e.eigenvalues[0]) - 3.0) < 1e-8
    assert e.report.residuals[0] < 1e-4


def test_hutchinson_within_three_stderr_and_stopping_rule():
    A = chosen_matrix(spectrum_60())
    tr = float(torch.trace(A))
    for seed in range(4):
        t = hutchinson(A, rtol=0.05, seed=seed, max_samples=2000)
        assert t.converged and t.stderr <= 0.05 * abs(t.estimate)
        assert abs(t.estimate - tr) <= 3 * t.stderr, (seed, t.estimate, tr, t.stderr)
        assert t.n_products == t.n_samples
    with pytest.warns(ConvergenceWarning, match="max_samples"):
        t = hutchinson(A, rtol=1e-9, min_samples=5, max_samples=5)
    assert not t.converged
    # block=4 (matmat) reproduces the same probes
    a = hutchinson(A, rtol=0.05, seed=3, max_samples=2000, block=1)
    b = hutchinson(A, rtol=0.05, seed=3, max_samples=2000, block=4)
    assert a.samples[:8] == pytest.approx(b.samples[:8])


def test_hutchpp_exact_on_low_rank_and_within_stderr():
    eigs = torch.zeros(50, dtype=torch.float64)
    eigs[:3] = torch.tensor([5.0, 2.0, 1.0])
    A = chosen_matrix(eigs)
    t = hutchpp(A, n_products=30, seed=0)  # sketch of 10 columns captures the rank-3 range exactly
    assert abs(t.estimate - 8.0) < 1e-9 and t.n_products == 30
    eigs = 1.0 / torch.arange(1, 201, dtype=torch.float64) ** 2 * 10
    A = chosen_matrix(eigs, seed=2)
    tr = float(eigs.sum())
    for seed in range(3):
        t = hutchpp(A, n_products=60, seed=seed)
        assert abs(t.estimate - tr) <= 3 * t.stderr + 1e-12
        h = hutchinson(A, rtol=0.0, min_samples=60, max_samples=60, seed=seed, warn=False)
        assert t.stderr < h.stderr  # Hutch++ pays on a decaying spectrum


def test_slq_counts_index_trace_and_normalization():
    g = torch.Generator().manual_seed(0)
    eigs = torch.cat([-2 + 0.01 * torch.randn(20, generator=g, dtype=torch.float64),
                      1 + 0.01 * torch.randn(30, generator=g, dtype=torch.float64),
                      5 + 0.01 * torch.randn(10, generator=g, dtype=torch.float64)])
    A = chosen_matrix(eigs, seed=3)
    d = slq(A, n_probes=20, n_steps=25, seed=0)
    assert d.nodes.shape == (20, 25)
    torch.testing.assert_close(d.weights.sum(1), torch.ones(20, dtype=torch.float64), rtol=1e-10, atol=1e-10)
    for (a, b), true in [((-3, -1), 20), ((0, 2), 30), ((4, 6), 10)]:
        est, se = d.count(a, b)
        assert abs(est - true) <= 3 * se + 1e-9, ((a, b), est, se)
        assert se < 2.5  # 20 probes of 60 dims: the count is pinned to a few eigenvalues
    idx, se = d.index()
    assert abs(idx - 20) <= 3 * se + 1e-9
    tr, se = d.trace
    assert abs(tr - float(eigs.sum())) <= 3 * se + 1e-9
    sq, se = d.trace_f(lambda t: t ** 2)
    assert abs(sq - float((eigs ** 2).sum())) <= 3 * se + 1e-9
    mass = float(torch.trapezoid(d.density, d.grid))
    assert abs(mass - 1.0) < 1e-3  # smoothed density integrates to 1 (Gaussians inside the grid)


def test_slq_exact_when_krylov_space_is_whole_space():
    eigs = torch.tensor([-1.0, 0.5, 2.0, 3.0], dtype=torch.float64)
    d = slq(chosen_matrix(eigs), n_probes=3, n_steps=10, seed=0)
    for l in range(3):
        nz = d.weights[l] > 1e-12
        torch.testing.assert_close(d.nodes[l][nz].sort().values, eigs, rtol=1e-10, atol=1e-10)


def _ols_model(d=6, n=60, seed=0, diag=True):
    """Linear regression with H = 2 X^T X / N = diag(h) and its minimizer w* (loss 0)."""
    g = torch.Generator().manual_seed(seed)
    Qm, _ = torch.linalg.qr(torch.randn(n, d, generator=g, dtype=torch.float64))
    h = torch.linspace(0.5, 4.0, d, dtype=torch.float64)
    X = Qm * torch.sqrt(n * h / 2)  # orthogonal columns: X^T X = diag(n h / 2)
    w = torch.randn(d, generator=g, dtype=torch.float64) * 2
    y = X @ w
    model = nn.Linear(d, 1, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(w[None])
    return model, X, y[:, None], h, w


def test_epsilon_sharpness_quadratic_closed_form():
    model, X, y, h, w = _ols_model()
    before = module_fingerprint(model)
    eps = 1e-2
    s = epsilon_sharpness(model, (X, y), "mse", epsilon=eps, maxiter=50, seed=0)
    # max over the box |z_i| <= eps(|w_i|+1) of 1/2 sum h_i z_i^2 is at a vertex (diagonal H)
    closed = 100 * 0.5 * float((h * (eps * (w.abs() + 1)) ** 2).sum()) / (1 + 0.0)
    assert s.base_loss < 1e-20
    assert s.value == pytest.approx(closed, rel=1e-6)
    assert same_fingerprint(before, module_fingerprint(model))
    with pytest.raises(ValueError, match="epsilon must be > 0"):
        epsilon_sharpness(model, (X, y), "mse", epsilon=0)


def test_loss_rise_quadratic_expectation_and_direction_definition():
    model, X, y, h, w = _ols_model(d=8)
    r = 0.3
    res = loss_rise(model, (X, y), "mse", radius=[r, 2 * r], n_directions=400, seed=0)
    # one weight row => d is uniform on the sphere of radius ||w||: E[d^T H d] = ||w||^2 tr(H)/P
    expect = 0.5 * r ** 2 * float(w.norm() ** 2 * h.sum() / 8)
    assert abs(res.mean[0] - expect) <= 3 * res.stderr[0]
    # exact quadratic: the rise scales with r^2 direction by direction
    torch.testing.assert_close(res.rises[:, 1], 4 * res.rises[:, 0], rtol=1e-9, atol=1e-14)
    p = {"w": torch.randn(5, 3, dtype=torch.float64), "b": torch.randn(5, dtype=torch.float64)}
    d = filter_normalized(p, torch.Generator().manual_seed(0))
    torch.testing.assert_close(d["w"].norm(dim=1), p["w"].norm(dim=1), rtol=1e-9, atol=0)
    assert torch.all(d["b"] == 0)
    d = filter_normalized(p, torch.Generator().manual_seed(0), include_biases=True)
    assert float(d["b"].norm()) == pytest.approx(float(p["b"].norm()), rel=1e-9)


def test_lambda_max_and_trace_wrappers_on_ols():
    model, X, y, h, _ = _ols_model()
    e = lambda_max(model, (X, y), "mse", tol=1e-10)
    assert float(e.eigenvalues[0]) == pytest.approx(4.0, rel=1e-9)
    t = hessian_trace(model, (X, y), "mse", rtol=0.02, seed=0, max_samples=5000)
    # Diagonal Hessian with equal entries: every Rademacher sample is exactly tr(H), so the
    # stderr is pure rounding noise and can be below the estimate's own rounding error.
    # Absolute floor: 1e-12 * |tr H| (float64 sums of P=8 products, far above 8 * 2.2e-16).
    tr = float(h.sum())
    assert abs(t.estimate - tr) <= 3 * t.stderr + 1e-12 * abs(tr)
    t = hessian_trace(model, (X, y), "mse", method="hutchpp", n_products=18)
    assert t.estimate == pytest.approx(float(h.sum()), rel=1e-9)  # rank 6 <= sketch of 6
    with pytest.raises(TypeError, match="unknown option"):
        hessian_trace(model, (X, y), "mse", method="hutchpp", rtol=0.1)


def test_lanczos_iterate_basis_orthonormal_and_tridiagonal():
    # independent check of the recurrence: Q^T Q = I and Q^T A Q = T(alphas, betas)
    from losslab.hessian.lanczos import _generator, _tridiag, lanczos_iterate

    A = chosen_matrix(spectrum_60())
    g = torch.Generator().manual_seed(3)
    v0 = torch.randn(60, generator=g, dtype=torch.float64)
    Q, alphas, betas, beta = lanczos_iterate(MatrixOperator(A), v0, 25, gen=_generator(0))
    assert Q.shape == (60, 25) and len(alphas) == 25 and len(betas) == 24
    # float64 with full reorthogonalization: orthogonality to ~1e-15; 1e-12 leaves headroom
    torch.testing.assert_close(Q.T @ Q, torch.eye(25, dtype=torch.float64), rtol=0, atol=1e-12)
    torch.testing.assert_close(Q.T @ A @ Q, _tridiag(alphas, betas), rtol=0, atol=1e-10)
    torch.testing.assert_close(Q[:, 0], v0 / v0.norm(), rtol=0, atol=1e-15)
    # beta_last is the norm of the next residual: ||A q_m - alpha_m q_m - beta_{m-1} q_{m-1}||
    r = A @ Q[:, -1] - alphas[-1] * Q[:, -1] - betas[-1] * Q[:, -2]
    assert abs(float(r.norm()) - beta) <= 1e-10 * 10


def test_lanczos_operator_output_aliasing_its_input():
    # an operator that returns its input tensor itself (the identity) must not corrupt the basis
    from losslab.hessian import FunctionOperator

    e = lanczos(FunctionOperator(lambda v: v, 30), 1, tol=1e-10, seed=0)
    assert e.converged
    torch.testing.assert_close(e.eigenvalues, torch.ones(1, dtype=torch.float64), rtol=1e-12, atol=0)
    # and a scaled identity plus a rank-one term through the same aliasing path: v.add_ is in place
    u = torch.zeros(30, dtype=torch.float64)
    u[0] = 1.0
    e = lanczos(FunctionOperator(lambda v: v.mul(2.0).add_(u * (5.0 * float(u @ v))), 30), 1, tol=1e-12, seed=0)
    torch.testing.assert_close(e.eigenvalues, torch.tensor([7.0], dtype=torch.float64), rtol=1e-10, atol=0)


def test_lanczos_error_bounds_match_bruteforce_definition():
    # the reported bound min(r, r^2/gap) recomputed from the definition with the true spectrum's
    # Ritz values: r = ||A x - theta x|| (true residual), gap = distance to the next Ritz value
    A = chosen_matrix(spectrum_60())
    e = lanczos(A, 2, tol=1e-3, seed=4, warn=False)
    R = A @ e.eigenvectors - e.eigenvectors * e.eigenvalues
    torch.testing.assert_close(torch.tensor(e.report.residuals, dtype=torch.float64), R.norm(dim=0),
                               rtol=1e-6, atol=1e-12)
    w = torch.linalg.eigvalsh(A).flip(0)[:2]
    for lam, th, b in zip(w.tolist(), e.eigenvalues.tolist(), e.report.error_bounds):
        assert abs(lam - th) <= b * (1 + 1e-6) + 1e-12  # the bound holds on the true error


def test_epsilon_sharpness_random_subspace_closed_form():
    """Keskar's random-subspace variant: with H = c I, max over the box |y_i| <= eps(|(A^T w)_i| + 1) of
    1/2 c ||A y||^2 = 1/2 c ||y||^2 is at any vertex (A has orthonormal columns), a closed form."""
    g = torch.Generator().manual_seed(3)
    d, n, c = 12, 40, 0.8
    Qm, _ = torch.linalg.qr(torch.randn(n, d, generator=g, dtype=torch.float64))
    X = Qm * math.sqrt(n * c / 2)  # X^T X = (n c / 2) I: the mse Hessian 2/n X^T X = c I
    w = torch.randn(d, generator=g, dtype=torch.float64) * 2
    model = nn.Linear(d, 1, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(w[None])
    eps = 1e-2
    s = epsilon_sharpness(model, (X, (X @ w)[:, None]), "mse", epsilon=eps, maxiter=50, seed=4, subspace=5)
    A = s.basis
    assert s.subspace == 5 and A.shape == (d, 5)
    torch.testing.assert_close(A.T @ A, torch.eye(5, dtype=torch.float64), rtol=0, atol=1e-12)
    widths = eps * ((A.T @ w).abs() + 1)
    closed = 100 * 0.5 * c * float((widths ** 2).sum())
    assert s.value == pytest.approx(closed, rel=1e-6)
    # same seed, same subspace and value; the full-space value is larger (a superset of directions)
    s2 = epsilon_sharpness(model, (X, (X @ w)[:, None]), "mse", epsilon=eps, maxiter=50, seed=4, subspace=5)
    assert torch.equal(s2.basis, A) and s2.value == s.value
    full = epsilon_sharpness(model, (X, (X @ w)[:, None]), "mse", epsilon=eps, maxiter=50, seed=4)
    assert full.subspace is None and full.value > s.value
    with pytest.raises(ValueError, match="at most the number of parameters"):
        epsilon_sharpness(model, (X, (X @ w)[:, None]), "mse", subspace=d + 1)
