"""Second-order steps against independent references: |H| = sqrtm(H^2) (scipy), closed-form
Newton on quadratics, the exact saddle-free step for a full Krylov space, and the toy saddle."""
import numpy as np
import pytest
import scipy.linalg
import torch

from losslab.optim.second_order import (METHODS, find_critical_points, gradient, hessian, hvp_fn,
                                        krylov_saddle_free_direction, minimize, model_loss_fn, newton_direction,
                                        saddle_free_direction)
from losslab.params import module_fingerprint, same_fingerprint


def _sym(P, seed, neg=2):
    g = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(P, P, generator=g, dtype=torch.float64))
    w = torch.linspace(0.5, 3.0, P, dtype=torch.float64)
    w[:neg] = -w[:neg]
    return Q @ torch.diag(w) @ Q.T, torch.randn(P, generator=g, dtype=torch.float64)


def toy(w):
    return w[0] ** 2 / 2 - w[1] ** 2 / 2 + w[1] ** 4 / 4


def test_saddle_free_direction_matches_sqrtm_reference():
    H, g = _sym(6, 0)
    absH = scipy.linalg.sqrtm((H @ H).numpy()).real  # |H| = (H^2)^{1/2}, an independent route
    for damping in (0.0, 0.3):
        ref = -np.linalg.solve(absH + damping * np.eye(6), g.numpy())
        np.testing.assert_allclose(saddle_free_direction(g, H, damping=damping).numpy(), ref, rtol=1e-9, atol=1e-12)


def test_newton_direction_is_linear_solve_and_sfn_equals_newton_when_pd():
    H, g = _sym(5, 1, neg=0)
    ref = -np.linalg.solve(H.numpy(), g.numpy())
    np.testing.assert_allclose(newton_direction(g, H).numpy(), ref, rtol=1e-10)
    np.testing.assert_allclose(saddle_free_direction(g, H).numpy(), ref, rtol=1e-10)
    with pytest.raises(ValueError, match="singular"):
        newton_direction(g, torch.zeros(5, 5, dtype=torch.float64))
    with pytest.raises(ValueError, match="damping"):
        saddle_free_direction(g, H, damping=-1.0)


def test_krylov_full_space_equals_exact_and_partial_space_differs():
    H, g = _sym(8, 2)
    exact = saddle_free_direction(g, H, damping=0.1)
    full = krylov_saddle_free_direction(g, lambda v: H @ v, k=8, damping=0.1)
    # full Krylov space = R^P: identical up to Lanczos round-off (full reorthogonalization), 1e-8
    torch.testing.assert_close(full.direction, exact, rtol=1e-8, atol=1e-10)
    assert full.n_products == 8
    part = krylov_saddle_free_direction(g, lambda v: H @ v, k=3, damping=0.1)
    assert float(torch.linalg.vector_norm(part.direction - exact)) > 1e-3
    # still a descent direction: g^T d < 0 since (|T| + damping) is positive definite
    assert float(g @ part.direction) < 0


def test_hvp_and_hessian_match_closed_form_of_quadratic():
    A, b = _sym(4, 3)
    f = lambda x: 0.5 * x @ A @ x + b @ x  # noqa: E731
    x = torch.randn(4, dtype=torch.float64)
    torch.testing.assert_close(hessian(f, x), A)
    v = torch.randn(4, dtype=torch.float64)
    torch.testing.assert_close(hvp_fn(f, x)(v), A @ v)
    torch.testing.assert_close(gradient(f, x), A @ x + b)


def test_newton_solves_pd_quadratic_in_one_step():
    A, b = _sym(4, 4, neg=0)
    f = lambda x: 0.5 * x @ A @ x + b @ x  # noqa: E731
    p = minimize(f, torch.zeros(4, dtype=torch.float64), method="newton", steps=3)
    np.testing.assert_allclose(p.points[1], -np.linalg.solve(A.numpy(), b.numpy()), rtol=1e-10)
    assert p.status == "converged"


def test_toy_saddle_newton_stays_sfn_escapes_gd_slow():
    x0 = torch.tensor([0.5, 0.01], dtype=torch.float64)
    newton = minimize(toy, x0, method="newton", steps=30)
    sfn = minimize(toy, x0, method="saddle_free", steps=30)
    kry = minimize(toy, x0, method="saddle_free_krylov", steps=30, krylov_dim=2, damping=0.0)
    gd = minimize(toy, x0, method="gd", lr=0.1, steps=30)
    assert newton.final_value > -0.01 and abs(newton.final_point[1]) < 1e-6  # converged to the saddle (0, 0)
    assert sfn.final_value < -0.24 and kry.final_value < -0.24
    np.testing.assert_allclose(sfn.final_value, -0.25, atol=1e-12)
    # gradient descent: y grows by ~(1 + lr) per step, from 0.01 it needs > 30 steps
    assert gd.final_value > -0.24
    assert sfn.steps_to(-0.24) <= 10


def test_minimize_validates_and_lists_methods():
    with pytest.raises(KeyError, match="saddle_free"):
        minimize(toy, torch.zeros(2), method="nope")
    with pytest.raises(ValueError, match="flat parameter vector"):
        minimize(toy, torch.zeros(2, 2))
    assert set(METHODS.names()) == {"gd", "newton", "saddle_free", "saddle_free_krylov"}


def test_find_critical_points_on_toy_finds_saddle_and_minimum():
    starts = torch.tensor([[0.3, 0.05], [0.2, 0.8], [-0.1, -1.3]], dtype=torch.float64)
    cp = find_critical_points(toy, starts, steps=100, tol=1e-24)
    assert cp.converged.all()
    # critical points of the toy: (0, 0) f = 0 and (0, +-1) f = -1/4 (closed form)
    for p, v in zip(cp.points, cp.values):
        assert abs(p[0]) < 1e-10 and min(abs(p[1]), abs(abs(p[1]) - 1)) < 1e-10
        assert v == pytest.approx(0.0 if abs(p[1]) < 0.5 else -0.25, abs=1e-12)


def test_model_loss_fn_matches_model_and_does_not_mutate():
    from losslab.models import build

    net = build("mlp", in_dim=2, hidden=[3], out_dim=1, seed=0)
    fp = module_fingerprint(net)
    X, y = torch.randn(10, 2), torch.randn(10, 1)
    f, th = model_loss_fn(net, (X, y), "mse")
    ref = float(((net(X).double() - y.double()) ** 2).mean())
    assert float(f(th)) == pytest.approx(ref, rel=1e-6)  # float32 model vs float64 evaluation
    minimize(f, th, method="saddle_free_krylov", steps=2, krylov_dim=4, damping=1e-3)
    assert same_fingerprint(fp, module_fingerprint(net))
