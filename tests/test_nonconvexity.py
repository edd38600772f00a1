"""The ``nonconvexity`` experiment (the chapter's "curse of nonlinearity"): its quick run's checks against
independent references, determinism, and unit tests of its pieces (coordinate descent's Gauss-Seidel
contraction, the sigmoid-neuron Hessian closed form, finite differences, the midpoint gap)."""
import math

import numpy as np
import pytest
import torch

from losslab.phenomena import EXPERIMENTS, run_experiment
from losslab.phenomena.nonconvexity import (binary_seven_points, central_fd_hessian, coordinate_descent,
                                            gauss_seidel_rate, linear_bowl_hessian, midpoint_gap, sigmoid_mse_hessian)

X7 = np.array([2.4, 2.8, 3.2, 3.6, 4.0, 4.2, 5.0])
Y7 = np.array([1.7, 1.85, 1.79, 1.95, 2.1, 2.0, 2.7])
_cache: dict = {}


def quick():
    if "r" not in _cache:
        _cache["r"] = run_experiment("nonconvexity", quick=True, seed=0)
    return _cache["r"]


def test_quick_run_checks_and_references():
    r = quick()
    s, a = r.summary, r.arrays
    assert "nonconvexity" in EXPERIMENTS
    assert r.passed, {k: v for k, v in r.checks.items() if not v}
    # 1. the line fit's Hessian: (2/N) [[sum x^2, sum x], [sum x, N]] from the chapter's table (float32 data -> 1e-6)
    H_ref = 2 / 7 * np.array([[np.sum(X7 ** 2), np.sum(X7)], [np.sum(X7), 7.0]])
    np.testing.assert_allclose(np.array(s["linear_hessian"]), H_ref, rtol=1e-6)
    assert s["linear_lambda_min"] > 0 and np.all(a["linear/midpoint_gaps"] <= 0)
    # 2. the sigmoid neuron: negative curvature somewhere, and the reported violation recomputed here in numpy
    assert 0.5 < s["sigmoid_fraction_lambda_min_negative"] < 1 and s["sigmoid_min_lambda_min_on_grid"] < 0
    t = (Y7 > Y7.mean()).astype(float)

    def L(th):
        return float(np.mean((1 / (1 + np.exp(-(th[0] * X7 + th[1]))) - t) ** 2))

    pa, pb = np.array(s["violation_a"]), np.array(s["violation_b"])
    assert L((pa + pb) / 2) - (L(pa) + L(pb)) / 2 == pytest.approx(s["violation_gap"], rel=1e-5)
    assert s["violation_gap"] > 0.01
    # lambda_min map equals the closed form's eigenvalues on the grid
    Hc = sigmoid_mse_hessian(a["sigmoid/grid_w"][None, :], a["sigmoid/grid_b"][:, None], X7, t)
    np.testing.assert_allclose(a["sigmoid/lambda_min"], np.linalg.eigvalsh(Hc)[..., 0], atol=1e-6)
    # 3. coordinate descent: rho^2 = mean(x)^2 / mean(x^2) for the line fit (H12^2 / (H11 H22))
    rho2 = np.mean(X7) ** 2 / np.mean(X7 ** 2)
    assert s["bowl_rho^2_per_sweep"] == pytest.approx(rho2, rel=1e-6)
    assert s["bowl_measured_error_ratio_per_sweep"] == pytest.approx(rho2, rel=1e-6)
    assert abs(s["coordinate_descent_sweeps"] - s["coordinate_descent_sweeps_predicted"]) <= 1
    assert s["coordinate_descent_sweeps"] >= 10 * s["lbfgs_steps"]
    assert abs(s["newton_excess_after_1_step"]) <= 1e-12 and abs(s["centered_x_excess_after_1_sweep"]) <= 1e-12
    assert s["gd_steps"] <= s["gd_steps_bound"]
    # 4. the lines: OLS vs np.polyfit on the table itself; the constructed lines' mses
    pf = np.polyfit(X7, Y7, 1)
    assert s["ols_slope"] == pytest.approx(pf[0], rel=1e-5) and s["ols_intercept"] == pytest.approx(pf[1], rel=1e-5)
    assert s["ols_mse"] == pytest.approx(np.mean((np.polyval(pf, X7) - Y7) ** 2), rel=1e-5)
    assert s["ols_mse"] == pytest.approx(0.01805, abs=5e-6)
    mses = sorted(s["line_mses"].values())
    assert mses[1] == pytest.approx(0.08, abs=1e-12) and mses[2] == pytest.approx(0.17, abs=1e-12)
    keys = [f.key for f in r.figures]
    assert keys == ["linear_bowl", "sigmoid_surface", "sigmoid_lambda_min", "coordinate_descent_path",
                    "bowl_convergence", "candidate_lines"]
    assert any(p.name.startswith("lambda_min = 0") for p in r.figures[1].paths)


def _close(u, v):
    if isinstance(u, float):
        return u == pytest.approx(v, rel=1e-12, abs=1e-14)
    if isinstance(u, (list, tuple)):
        return len(u) == len(v) and all(_close(a, b) for a, b in zip(u, v))
    if isinstance(u, dict):
        return u.keys() == v.keys() and all(_close(u[k], v[k]) for k in u)
    return u == v


def test_deterministic():
    # same seed -> same result. Equality is up to the last bits: torch's CPU reductions may round
    # differently with the memory alignment of a tensor, so values at rounding level (errors ~1e-16,
    # excess losses ~1e-31) can differ between runs in one process; every check and its name are identical.
    r1 = quick()
    r2 = run_experiment("nonconvexity", quick=True, seed=0)
    assert r1.checks == r2.checks
    assert r1.summary.keys() == r2.summary.keys()
    for k in r1.summary:
        assert _close(r1.summary[k], r2.summary[k]), (k, r1.summary[k], r2.summary[k])
    for k in r1.arrays:
        np.testing.assert_allclose(r1.arrays[k], r2.arrays[k], rtol=1e-12, atol=1e-14)
    r3 = run_experiment("nonconvexity", quick=True, seed=1, resolution=7, n_points=3, sweeps=150)
    assert not np.array_equal(r3.arrays["linear/points"], r1.arrays["linear/points"][:3])  # the seed is used


def test_coordinate_descent_gauss_seidel_contraction():
    # f = 1/2 e^T H e with H = [[4, 3], [3, 9]]: rho^2 = 9/36 = 1/4 per sweep
    H = torch.tensor([[4.0, 3.0], [3.0, 9.0]], dtype=torch.float64)
    x_star = torch.tensor([1.0, -2.0], dtype=torch.float64)

    def f(th):
        e = th - x_star
        return 0.5 * e @ H @ e

    assert gauss_seidel_rate(H.numpy()) == pytest.approx(0.25, rel=1e-15)
    e0 = torch.tensor([0.7, 1.1], dtype=torch.float64)
    cd = coordinate_descent(f, x_star + e0, sweeps=12)
    err = cd.sweep_points - x_star.numpy()
    # first sweep by hand: e_w <- -(H12/H11) e_b, e_b <- -(H12/H22) e_w
    ew1 = -3 / 4 * 1.1
    eb1 = -3 / 9 * ew1
    np.testing.assert_allclose(err[1], [ew1, eb1], rtol=1e-12)
    for k in range(2, 13):
        np.testing.assert_allclose(err[k], 0.25 ** (k - 1) * err[1], rtol=1e-9, atol=1e-15)
    assert cd.points.shape == (25, 2) and np.all(np.diff(cd.values) <= 1e-15)
    # every update moves one coordinate only (the staircase)
    moved = np.abs(np.diff(cd.points, axis=0)) > 0
    assert np.all(moved.sum(1) <= 1)


def test_coordinate_descent_independent_weights_one_sweep_and_errors():
    H = torch.diag(torch.tensor([5.0, 0.01], dtype=torch.float64))  # ill-conditioned but uncoupled: rho = 0
    f = lambda th: 0.5 * th @ H @ th  # noqa: E731
    cd = coordinate_descent(f, torch.tensor([3.0, -4.0], dtype=torch.float64), sweeps=1)
    np.testing.assert_allclose(cd.sweep_points[-1], [0.0, 0.0], atol=1e-14)
    assert gauss_seidel_rate(H.numpy()) == 0.0
    with pytest.raises(ValueError, match="not convex"):
        coordinate_descent(lambda th: th[0] ** 2 - th[1] ** 2, torch.tensor([1.0, 1.0], dtype=torch.float64), sweeps=1)
    with pytest.raises(ValueError, match="sweeps"):
        coordinate_descent(f, torch.zeros(2, dtype=torch.float64), sweeps=0)
    with pytest.raises(ValueError, match="2x2"):
        gauss_seidel_rate(np.eye(3))


def test_sigmoid_hessian_closed_form_and_fd():
    Xb, t = binary_seven_points()
    assert t.reshape(-1).tolist() == [0, 0, 0, 0, 1, 0, 1]  # y > mean(y) = 2.0129
    x, tt = Xb.reshape(-1), t.reshape(-1)

    def f(th):
        return ((torch.sigmoid(th[0] * x + th[1]) - tt) ** 2).mean()

    for th in ([0.9, -1.25], [2.6, -10.9], [-1.0, 3.0]):
        th = torch.tensor(th, dtype=torch.float64)
        H_ad = torch.autograd.functional.hessian(f, th)
        np.testing.assert_allclose(sigmoid_mse_hessian(th[0].item(), th[1].item(), x.numpy(), tt.numpy()), H_ad.numpy(),
                                   rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(central_fd_hessian(f, th, 1e-4).numpy(), H_ad.numpy(), atol=1e-6)


def test_central_fd_and_midpoint_gap_on_known_functions():
    f = lambda th: th[0] ** 2 * th[1] + torch.sin(th[1])  # noqa: E731
    th = torch.tensor([0.5, 1.2], dtype=torch.float64)
    H = torch.tensor([[2 * 1.2, 2 * 0.5], [2 * 0.5, -math.sin(1.2)]], dtype=torch.float64)
    torch.testing.assert_close(central_fd_hessian(f, th, 1e-4), H, atol=1e-7, rtol=0)
    A = torch.tensor([[2.0, 0.5], [0.5, 1.0]], dtype=torch.float64)
    q = lambda v: v @ A @ v + v.sum()  # noqa: E731  Hessian 2A
    a, b = torch.tensor([1.0, -2.0], dtype=torch.float64), torch.tensor([0.3, 0.7], dtype=torch.float64)
    assert midpoint_gap(q, a, b) == pytest.approx(float(-(a - b) @ (2 * A) @ (a - b) / 8), rel=1e-12)
    assert midpoint_gap(lambda v: -(v ** 2).sum(), a, b) > 0  # concave: the gap is positive


def test_linear_bowl_hessian_closed_form():
    H = linear_bowl_hessian(torch.tensor(X7))
    np.testing.assert_allclose(H.numpy(), 2 / 7 * np.array([[np.sum(X7 ** 2), np.sum(X7)], [np.sum(X7), 7.0]]),
                               rtol=1e-14)


def test_bad_options():
    with pytest.raises(ValueError, match="resolution"):
        run_experiment("nonconvexity", quick=True, resolution=3)
    with pytest.raises(ValueError, match="w_range"):
        run_experiment("nonconvexity", quick=True, w_range=(2.0, 1.0))
    with pytest.raises(ValueError, match="target"):
        run_experiment("nonconvexity", quick=True, target=2.0)
