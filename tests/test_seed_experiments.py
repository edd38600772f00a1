"""The seed experiments of #16 at their quick sizes, against independent references (closed forms,
numpy least squares, brute-force two-point lines, the shell formula, finite-difference Hessians)."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from losslab.phenomena import EXPERIMENTS, run_experiment


@pytest.fixture(scope="module")
def curse():
    return run_experiment("curse_of_dimensionality", quick=True)


@pytest.fixture(scope="module")
def costs():
    return run_experiment("cost_functions", quick=True)


@pytest.fixture(scope="module")
def balance():
    return run_experiment("dln_balance", quick=True)


def test_registered():
    for n in ("curse_of_dimensionality", "cost_functions", "dln_balance"):
        assert n in EXPERIMENTS


# -- curse_of_dimensionality ----------------------------------------------------------------------
def test_curse_checks_and_exact_counts(curse):
    assert curse.passed, {k: v for k, v in curse.checks.items() if not v}
    from losslab.phenomena.curse_of_dimensionality import chapter_counts, decimal_digits

    c = chapter_counts()
    assert [v["weights"] for v in c.values()] == [2, 3, 44, 11935]
    for v in c.values():  # exact integer arithmetic: 10^d - 1 has d digits, 10^d has d + 1
        assert v["grid"] == f"10^{v['weights']}" and isinstance(v["digits"], int)
        assert decimal_digits(10 ** v["weights"] - 1) == v["weights"] == v["digits"] - 1
    assert curse.summary["grid_10_per_axis_11935"] == "10^11935"


def test_curse_shell_fraction_against_formula(curse):
    a = curse.arrays
    ref = 1 - (1 - curse.settings["eps"]) ** a["shell_d"]  # the formula, recomputed here
    # the same formula through numpy's vectorised pow here and Python's scalar pow in the experiment: they
    # may differ by an ulp, and 1 - (1 - eps)^d amplifies that by up to 1/eps near d = 1 (cancellation), so
    # the floor is ~1e-16 / eps = 1e-14 relative; 1e-12 leaves room and still catches a wrong formula (>1e-3)
    np.testing.assert_allclose(a["shell_formula"], ref, rtol=1e-12)
    assert np.all(np.abs(a["shell_mc"] - ref) <= 4 * a["shell_se"])  # 4 standard errors


def test_curse_batched_scores_match_a_per_model_loop():
    from losslab.models import build
    from losslab.phenomena.curse_of_dimensionality import _sample_guesses, batched_scores, score_of
    from torch.func import functional_call

    g = torch.Generator().manual_seed(0)
    X = torch.randn(50, 40, generator=g)
    y = torch.randint(0, 10, (50,), generator=g)
    model = build("mlp", in_dim=40, hidden=[6], out_dim=10, seed=0)
    P = _sample_guesses(model, 7, g)
    s = batched_scores(model, P, X, y, "classification")
    for i in range(7):
        out = functional_call(model, {k: v[i] for k, v in P.items()}, (X,))
        assert float(s[i]) == pytest.approx(float((out.argmax(1) == y).float().mean()), abs=1e-7)
    # guesses lie in the default init box U[-1/sqrt(fan_in), 1/sqrt(fan_in)]
    assert float(P["net.0.weight"].abs().max()) <= 1 / math.sqrt(40) and float(P["net.2.bias"].abs().max()) <= 1 / math.sqrt(6)
    # R^2 of the seven points' OLS line is the regression score's maximum
    from losslab.data import load

    d = load("seven_points")
    lin = torch.nn.Linear(1, 1).double()
    A = np.c_[d.train.X.double().numpy(), np.ones(7)]
    coef, *_ = np.linalg.lstsq(A, d.train.y.double().numpy().ravel(), rcond=None)
    with torch.no_grad():
        lin.weight.fill_(coef[0])
        lin.bias.fill_(coef[1])
    r2 = score_of(lin, d.train.X.double(), d.train.y.double(), "regression")
    yy = d.train.y.double().numpy().ravel()
    assert r2 == pytest.approx(1 - np.mean((A @ coef - yy) ** 2) / np.var(yy), rel=1e-12)


# -- cost_functions -------------------------------------------------------------------------------
SEVEN_X = np.array([2.4, 2.8, 3.2, 3.6, 4.0, 4.2, 5.0])
SEVEN_Y = np.array([1.7, 1.85, 1.79, 1.95, 2.1, 2.0, 2.7])


def test_cost_functions_minima_against_references(costs):
    assert costs.passed, {k: v for k, v in costs.checks.items() if not v}
    s = costs.summary
    x32, y32 = SEVEN_X.astype(np.float32).astype(float), SEVEN_Y.astype(np.float32).astype(float)  # the dataset is float32
    coef, *_ = np.linalg.lstsq(np.c_[x32, np.ones(7)], y32, rcond=None)
    np.testing.assert_allclose(s["OLS (m, b)"], coef, rtol=1e-9)
    # brute force over lines through two points (an L1 optimum is one of them)
    best = min(np.abs((y32[j] - y32[i]) / (x32[j] - x32[i]) * (x32 - x32[i]) + y32[i] - y32).mean()
               for i, j in itertools.combinations(range(7), 2))
    assert s["LAD linprog mean |r|"] == pytest.approx(best, abs=1e-9)  # HiGHS' tolerance ~1e-9
    # Huber's minimum: central finite-difference gradient ~ 0 (h = 1e-6: error ~h^2 * third derivative)
    from losslab.phenomena.cost_functions import costs as cost_fn

    m, b = s["Huber (m, b) (L-BFGS-B)"]
    f = lambda mm, bb: float(cost_fn(np.array(mm), np.array(bb), x32, y32, s["huber delta"])["huber"])  # noqa: E731
    h = 1e-6
    gm = (f(m + h, b) - f(m - h, b)) / (2 * h)
    gb = (f(m, b + h) - f(m, b - h)) / (2 * h)
    assert abs(gm) < 1e-5 and abs(gb) < 1e-5


def test_cost_surfaces_match_the_losses_registry(costs):
    from losslab.losses import get_loss

    a = costs.arrays
    x32, y32 = SEVEN_X.astype(np.float32).astype(float), SEVEN_Y.astype(np.float32).astype(float)
    i, j = 7, 23
    m, b = a["grid/m"][j], a["grid/b"][i]
    out = torch.tensor(m * x32 + b).unsqueeze(1)
    y = torch.tensor(y32).unsqueeze(1)
    assert float(get_loss("mse")(out, y)) == pytest.approx(a["grid/l2"][i, j], rel=1e-12)
    assert float(get_loss("l1")(out, y)) == pytest.approx(a["grid/l1"][i, j], rel=1e-12)
    assert float(get_loss("huber", delta=0.1)(out, y)) == pytest.approx(a["grid/huber"][i, j], rel=1e-12)


def test_cost_inverse_time_lrs(costs):
    lr, decay = costs.settings["lr"], costs.settings["decay"]
    t = np.arange(costs.settings["steps"])
    np.testing.assert_allclose(costs.arrays["lr_inverse_time"], lr / (1 + decay * t), rtol=1e-12)


# -- dln_balance ----------------------------------------------------------------------------------
def test_dln_balance_checks(balance):
    assert balance.passed, {k: v for k, v in balance.checks.items() if not v}
    s = balance.summary
    assert s["largest converging lr, balanced (median)"] > s["largest converging lr, unbalanced (median)"]


def test_dln_balance_hessian_against_finite_differences():
    from losslab.dln.core import balanced_factorization, end_to_end, invariants
    from losslab.phenomena.dln_balance import hessian_lambda_max, unbalance

    rng = np.random.default_rng(3)
    Phi = rng.standard_normal((2, 2))
    Wb = balanced_factorization(rng.standard_normal((2, 2)), [2, 2, 2, 2], rotate=True, seed=1)
    Wu = unbalance(Wb, 3.0)
    np.testing.assert_allclose(end_to_end(Wu), end_to_end(Wb), atol=1e-12)
    assert max(np.linalg.norm(g) for g in invariants(Wb)) < 1e-10 < max(np.linalg.norm(g) for g in invariants(Wu))
    # Hessian of L by central differences of the analytic gradient (h = 1e-5: O(h^2) error, float64)
    from losslab.dln.core import weight_gradients

    theta = np.concatenate([w.ravel() for w in Wu])

    def grad(t):
        ws = [t[4 * k: 4 * k + 4].reshape(2, 2) for k in range(3)]
        return np.concatenate([g.ravel() for g in weight_gradients(ws, end_to_end(ws) - Phi)])

    h = 1e-5
    H = np.stack([(grad(theta + h * e) - grad(theta - h * e)) / (2 * h) for e in np.eye(12)])
    lam_fd = np.linalg.eigvalsh(0.5 * (H + H.T)).max()
    assert hessian_lambda_max(Wu, Phi) == pytest.approx(lam_fd, rel=1e-6)
