"""Experiment ``schedules_and_momentum``: the closed forms against independent computations
(eigenvalues of the explicit iteration matrix, long noisy simulations), the quick run's checks,
and determinism."""
import math

import numpy as np
import pytest
import torch

from losslab.phenomena import EXPERIMENTS, run_experiment
from losslab.phenomena import schedules_and_momentum as sm

_cache: dict = {}


def quick():
    if "r" not in _cache:
        _cache["r"] = run_experiment("schedules_and_momentum", quick=True, seed=0)
    return _cache["r"]


def _spd(n, seed, kappa=50.0):
    g = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(g.standard_normal((n, n)))
    lam = np.geomspace(1.0, kappa, n)
    return Q @ np.diag(lam) @ Q.T, lam


@pytest.mark.parametrize("lr,beta", [(0.01, 0.0), (0.03, 0.0), (0.05, 0.5), (0.02, 0.9), (0.08, 0.3), (0.1, 0.95)])
def test_heavy_ball_radius_equals_explicit_matrix_spectral_radius(lr, beta):
    # max over eigenvalues of the 2x2 roots == spectral radius of the explicit 2n x 2n matrix
    # (includes diverging settings: lr = 0.08, beta = 0.3 has lr*lmax = 4 > 2(1+beta))
    H, lam = _spd(5, seed=int(100 * lr + 10 * beta))
    rho_formula = sm.heavy_ball_radius(lam, lr, beta).max()
    rho_matrix = np.abs(np.linalg.eigvals(sm.heavy_ball_matrix(H, lr, beta))).max()
    assert rho_formula == pytest.approx(rho_matrix, rel=1e-7)


def test_polyak_parameters_are_optimal_and_give_the_rate():
    lmin, lmax = 0.3, 300.0
    lr, beta, rate = sm.polyak_parameters(lmin, lmax)
    k = lmax / lmin
    assert rate == pytest.approx((math.sqrt(k) - 1) / (math.sqrt(k) + 1), rel=1e-14)
    grid = np.linspace(lmin, lmax, 2001)
    # every eigenvalue in [lmin, lmax] contracts at exactly sqrt(beta) (complex or double roots)
    np.testing.assert_allclose(sm.heavy_ball_radius(grid, lr, beta), rate, rtol=1e-6)
    # perturbing lr or beta makes the worst mode slower (local optimality)
    for dlr, db in [(1.01, 0), (0.99, 0), (1, 0.01), (1, -0.01)]:
        assert sm.heavy_ball_radius(grid, lr * dlr, beta + db).max() > rate
    # beta = 0 reduces to gradient descent |1 - lr l|; GD's best rate is (k-1)/(k+1)
    lr_gd = 2 / (lmin + lmax)
    assert sm.heavy_ball_radius([lmin, lmax], lr_gd, 0.0).max() == pytest.approx((k - 1) / (k + 1), rel=1e-12)


def test_late_rate_on_known_sequences():
    t = np.arange(300)
    r, T = sm.late_rate(0.9 ** t)
    assert r == pytest.approx(0.9, rel=1e-12) and T < 300  # stops above the 1e-11 floor
    # a complex-root mode oscillates: rate still recovered from windowed sums of squares
    e = np.abs(0.97 ** t * np.cos(0.3 * t + 0.2)) + 0.5 * 0.97 ** t * np.abs(np.sin(0.3 * t))
    assert sm.late_rate(e)[0] == pytest.approx(0.97, rel=1e-3)
    with pytest.raises(ValueError, match="length >= 8"):
        sm.late_rate([1.0, 0.5])


def test_training_loop_matches_iteration_matrix_powers():
    # losslab.train with torch.optim's momentum == explicit (2n x 2n) matrix powers in numpy
    _, H, eig, _ = sm._bowl()
    lr, beta, _ = sm.polyak_parameters(float(eig[0]), float(eig[-1]))
    e, status, e0 = sm.bowl_errors(optimizer="momentum", lr=lr, beta=beta, steps=60, seed=3)
    ref = sm.iterate_errors(H, lr, beta, e0, 60)
    assert status == "completed"
    np.testing.assert_allclose(e, ref, rtol=1e-9)


@pytest.mark.parametrize("l,lr", [(2.0, 0.3), (1.0, 1.8)])
def test_stationary_variance_matches_long_simulation(l, lr):
    # lr*l = 1.8 separates the exact lr s^2/(l(2 - lr l)) from the small-lr approximation lr s^2/(2l) (10x)
    s = 0.5
    v = float(sm.stationary_variance([l], lr, s)[0])
    out = sm.noisy_quadratic_sgd([l], lr=lr, noise=s, steps=400, walkers=4000, x0=[0.0], window=300, seed=7)
    per_walker = out["window_sq"][:, 0]
    se = per_walker.std(ddof=1) / math.sqrt(len(per_walker))
    assert abs(per_walker.mean() - v) <= 4 * se, (per_walker.mean(), v, se)
    assert abs(v - lr * s ** 2 / (2 * l)) > 4 * se or lr * l < 1  # the (2 - lr l) factor is resolved
    # and the recursion's fixed point is the same closed form
    curve = sm.expected_loss_curve([l], [lr] * 2000, s, [0.0])
    assert curve[-1] == pytest.approx(0.5 * l * v, rel=1e-10)


def test_expected_curve_matches_simulation_under_step_schedule():
    lam = [1.0, 0.2]
    out = sm.noisy_quadratic_sgd(lam, lr=0.5, noise=0.2, steps=90, walkers=3000, x0=[1.0, -2.0], schedule="step",
                                 seed=1)
    ref = sm.expected_loss_curve(lam, out["lr"], 0.2, [1.0, -2.0])
    assert out["lr"][0] == 0.5 and out["lr"][-1] == pytest.approx(0.005)
    z = np.abs(out["loss_mean"][1:] - ref[1:]) / out["loss_se"][1:]
    assert z.max() <= 4.5, z.max()
    assert out["loss_mean"][0] == pytest.approx(ref[0], rel=1e-14)  # deterministic start


def test_warmup_then_cosine_schedule_trace():
    x = torch.nn.Parameter(torch.zeros(2))
    from losslab.optim import make_optimizer

    opt = make_optimizer("sgd", [x], lr=0.4)
    T, w = 50, 5
    sched = sm.build_schedule("warmup+cosine", opt, T, warmup_frac=0.1)
    lrs = []
    for _ in range(T):
        lrs.append(opt.param_groups[0]["lr"])
        x.grad = torch.zeros(2)
        opt.step()
        sched.step()
    warm = [0.4 * (0.01 + 0.99 * t / w) for t in range(w)]
    cos = [0.4 * 0.5 * (1 + math.cos(math.pi * t / (T - w))) for t in range(T - w)]
    np.testing.assert_allclose(lrs, warm + cos, rtol=1e-9, atol=1e-12)


def test_quick_run_checks():
    r = quick()
    s = r.summary
    assert r.passed, {k: v for k, v in r.checks.items() if not v}
    assert s["kappa"] == pytest.approx(315.6, rel=1e-3)
    assert abs(s["rate_gd_measured"] / s["rate_gd_closed_form"] - 1) <= 1e-4
    assert abs(s["rate_hb_measured"] / s["rate_hb_closed_form"] - 1) <= 0.01
    assert s["steps_to_tol_gd"] == s["steps_to_tol_gd_matrix"] and s["steps_to_tol_hb"] == s["steps_to_tol_hb_matrix"]
    assert abs(s["speedup_marginal"] / s["sqrt_kappa"] - 1) <= 0.10
    assert s["speedup_measured"] > 10  # order sqrt(kappa), less at finite tolerance (double root)
    for n in ("step", "cosine", "exponential", "warmup+cosine"):
        assert s[f"final_loss_{n}"] + 4 * s[f"final_loss_se_{n}"] < s["floor_loss_closed_form"]
    assert abs(s["final_loss_constant"] - s["floor_loss_closed_form"]) <= 4 * s["final_loss_se_constant"]
    assert {f.key for f in r.figures} == {"momentum_vs_gd", "beta_sweep", "schedule_loss", "schedule_lr"}
    assert "schedules_and_momentum" in EXPERIMENTS


def test_deterministic_and_seed_dependent():
    kw = dict(quick=True, tol=1e-3, sweep_betas=[0.9], sweep_steps=60, walkers=50, noise_steps=40,
              schedules=("constant", "cosine"))
    a = run_experiment("schedules_and_momentum", seed=2, **kw)
    b = run_experiment("schedules_and_momentum", seed=2, **kw)
    c = run_experiment("schedules_and_momentum", seed=3, **kw)
    assert a.arrays.keys() == b.arrays.keys()
    for k in a.arrays:
        # same seed, same numbers; BLAS reductions may round the last bit differently from call to call
        # (alignment-dependent kernels), so 1e-12 relative, far below any seed-to-seed difference
        np.testing.assert_allclose(a.arrays[k], b.arrays[k], rtol=1e-12, atol=1e-15)
    assert not np.array_equal(a.arrays["schedule/cosine/loss_mean"], c.arrays["schedule/cosine/loss_mean"])


def test_bad_inputs():
    with pytest.raises(ValueError, match="0 < lr\\*l < 2"):
        sm.stationary_variance([1.0], 2.5, 0.1)
    with pytest.raises(ValueError, match="beta"):
        sm.heavy_ball_radius([1.0], 0.1, 1.2)
    with pytest.raises(ValueError, match="eigenvalues"):
        sm.noisy_quadratic_sgd([1.0, -1.0], lr=0.1, noise=0.1, steps=5, walkers=4)
    with pytest.raises(ValueError, match="cosine"):  # unknown schedule: the error lists the valid names
        run_experiment("schedules_and_momentum", quick=True, schedules=("constant", "cosnie"))
    with pytest.raises(ValueError, match="constant"):
        run_experiment("schedules_and_momentum", quick=True, schedules=("cosine",))
    with pytest.raises(ValueError, match="lmin"):
        sm.polyak_parameters(0.0, 1.0)
