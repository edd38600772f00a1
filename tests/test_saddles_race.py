"""Saddles: the optimizers' race closed forms, the symmetry-aware critical-point distance, and the
quick run's new checks (seed 002: the race at a saddle; seed 003: saddles with few downward directions)."""

import math

import numpy as np
import pytest
from conftest import assert_same_summary
import torch

from losslab.phenomena import run_experiment
from losslab.phenomena.saddles import (adam_step_bound, binomial_sign_p, first_reach, gd_escape_steps,
                                       momentum_escape_steps, momentum_linear_path, momentum_roots,
                                       newton_step_on_race, race_saddle, run_torch_optimizer, symmetry_distance)


@pytest.mark.parametrize("lr,beta", [(0.01, 0.9), (0.05, 0.5), (0.1, 0.0)])
def test_momentum_root_matches_linear_recursion(lr, beta):
    z1, z2 = momentum_roots(lr, beta)
    assert z1 ** 2 - (1 + beta + 2 * lr) * z1 + beta == pytest.approx(0, abs=1e-12)
    assert z1 > 1 > z2 >= 0
    # simulate y_{t+1} = y_t - lr b_{t+1}, b_{t+1} = beta b_t + g_t, g = -2 y (torch's heavy ball)
    y, b, ys = 1e-6, 0.0, [1e-6]
    for _ in range(200):
        b = beta * b - 2 * y
        y = y - lr * b
        ys.append(y)
    np.testing.assert_allclose(ys, momentum_linear_path(1e-6, lr, beta, 200), rtol=1e-11)
    assert ys[-1] / ys[-2] == pytest.approx(z1, rel=1e-6)  # the largest root sets the growth
    if beta == 0:
        assert z1 == pytest.approx(1 + 2 * lr)
        assert momentum_escape_steps(1e-6, 0.1, lr, 0.0) == gd_escape_steps(1e-6, 0.1, lr)


def test_escape_closed_forms_match_torch_optimizers_on_quadratic_saddle():
    quad = lambda w: w[..., 0] ** 2 - w[..., 1] ** 2  # noqa: E731
    z0 = torch.tensor([0.3, 1e-5], dtype=torch.float64)
    for lr in (0.02, 0.1):
        n = gd_escape_steps(1e-5, 0.05, lr)
        assert n == math.ceil(math.log(0.05 / 1e-5) / math.log(1 + 2 * lr))
        assert first_reach(run_torch_optimizer("gd", quad, z0, lr=lr, steps=n + 3)[:, 1], 0.05) == n
        m = momentum_escape_steps(1e-5, 0.05, lr, 0.9)
        path = run_torch_optimizer("momentum", quad, z0, lr=lr, steps=m + 3, momentum=0.9)[:, 1]
        assert first_reach(path, 0.05) == m < n
    with pytest.raises(ValueError):
        gd_escape_steps(0.0, 0.1, 0.1)
    with pytest.raises(ValueError):
        momentum_roots(0.1, 1.0)


def test_newton_step_and_adam_bound():
    x1, y1 = newton_step_on_race(0.7, 1e-3)
    H = torch.diag(torch.tensor([2.0, -2 + 3e-6], dtype=torch.float64))
    g = torch.func.grad(race_saddle)(torch.tensor([0.7, 1e-3], dtype=torch.float64))
    step = torch.tensor([0.7, 1e-3], dtype=torch.float64) - torch.linalg.solve(H, g)
    assert float(step[0]) == pytest.approx(x1, abs=1e-15) and float(step[1]) == pytest.approx(y1, rel=1e-6)
    assert abs(y1) < 1e-8  # ~ -y0^3: on the saddle
    assert adam_step_bound(1) == pytest.approx(1.0)
    # bound holds for adversarial gradient sequences (rapidly growing, constant sign)
    for t in (2, 5, 20):
        gs = 10.0 ** np.arange(t)
        w = 0.1 * 0.9 ** (t - np.arange(1, t + 1)) / (1 - 0.9 ** t)
        u = 0.001 * 0.999 ** (t - np.arange(1, t + 1)) / (1 - 0.999 ** t)
        assert (w * gs).sum() / np.sqrt((u * gs ** 2).sum()) <= adam_step_bound(t) + 1e-12
    assert binomial_sign_p(3, 3) == pytest.approx(1 / 8)


def test_symmetry_distance_sees_permutations_and_sign_flips():
    rng = np.random.default_rng(0)
    h, d = 3, 2
    th = rng.normal(size=h * d + 2 * h + 1)
    W, b, v, c = th[:6].reshape(3, 2), th[6:9], th[9:12], th[12]
    perm, sign = [2, 0, 1], np.array([1.0, -1.0, -1.0])
    th2 = np.concatenate([(W[perm] * sign[:, None]).ravel(), b[perm] * sign, v[perm] * sign, [c]])
    assert np.linalg.norm(th - th2) > 0.5
    assert symmetry_distance(th, th2, in_dim=d, hidden=h) == pytest.approx(0, abs=1e-12)
    # and the function really is the same
    x = torch.tensor(rng.normal(size=(5, 2)))
    f = lambda p: torch.tanh(x @ torch.tensor(p[:6]).reshape(3, 2).T + torch.tensor(p[6:9])) @ torch.tensor(p[9:12]) + p[12]  # noqa: E731
    torch.testing.assert_close(f(th), f(th2))
    th3 = th2.copy()
    th3[-1] += 0.3
    assert symmetry_distance(th, th3, in_dim=d, hidden=h) == pytest.approx(0.3, abs=1e-12)
    with pytest.raises(ValueError):
        symmetry_distance(th, th2[:-1], in_dim=d, hidden=h)


@pytest.mark.slow
def test_saddles_quick_race_and_counts_deterministic():
    r1 = run_experiment("saddles", quick=True, seed=1)
    assert r1.passed, {k: v for k, v in r1.checks.items() if not v}
    s = r1.summary
    assert s["race_gd_escape_steps"] == s["race_gd_escape_closed_form"]
    assert s["race_momentum_escape_steps"] == s["race_momentum_escape_closed_form"]
    assert s["race_momentum_escape_steps"] < s["race_gd_escape_steps"]
    assert s["race_newton_escape_steps"] == -1
    assert s["race_adam_escape_steps"] < s["race_saddle_free_escape_steps"] < s["race_momentum_escape_steps"]
    assert s["net_saddles"] > s["net_minima"] >= 1
    assert s["net_distinct_critical_points"] == s["net_saddles"] + s["net_minima"]
    assert s["net_distinct_symmetry_orbits"] <= s["net_distinct_by_parameter_distance"] <= s["net_converged"]
    assert s["net_distinct_critical_points"] <= s["net_distinct_symmetry_orbits"]
    r2 = run_experiment("saddles", quick=True, seed=1)
    assert_same_summary(r2.summary, s)
    np.testing.assert_allclose(r1.arrays["race/adam/points"], r2.arrays["race/adam/points"], rtol=1e-12, atol=1e-15)
