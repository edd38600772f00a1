"""The ``escape`` experiment and its pieces: the double well's closed forms, heavy-ball momentum
(torch optimizer vs numpy recursion vs the continuum ODE), Langevin first passage vs the exact
MFPT, and the finite-population mini-batch noise formula by exhaustive enumeration."""
import itertools
import math

import numpy as np
import pytest
from conftest import assert_same_summary
import torch

from losslab.phenomena import EXPERIMENTS, run_experiment
from losslab.phenomena.escape import (DoubleWell, batch_grads, bisect_threshold, censored_mean, heavy_ball_numpy,
                                      heavy_ball_paths, langevin_first_passage, minibatch_noise_predicted,
                                      ode_friction_threshold, per_example_grads, sample_batches, sgd_first_passage,
                                      tilted_examples)


# ---- the double well --------------------------------------------------------------------------
@pytest.mark.parametrize("a,s,b,k", [(-1.0, -0.5, 1.0, 1.0), (-2.0, -0.3, 1.5, 0.7)])
def test_double_well_closed_forms_against_grid_autograd_and_quadrature(a, s, b, k):
    from scipy.integrate import quad

    w = DoubleWell(a, s, b, k)
    xs = np.linspace(a - 1, b + 1, 2_000_001)
    u = w.value(xs)
    h = xs[1] - xs[0]
    i = np.flatnonzero((u[1:-1] < u[:-2]) & (u[1:-1] < u[2:])) + 1  # grid local minima
    j = np.flatnonzero((u[1:-1] > u[:-2]) & (u[1:-1] > u[2:])) + 1  # grid local maxima
    np.testing.assert_allclose(xs[i], [a, b], atol=2 * h)
    np.testing.assert_allclose(xs[j], [s], atol=2 * h)
    # barrier and gap: integrals of U' (quadrature), independent of the antiderivative
    assert w.barrier == pytest.approx(quad(w.grad, a, s, epsabs=1e-14)[0], rel=1e-10)
    assert w.gap == pytest.approx(-quad(w.grad, a, b, epsabs=1e-14)[0], rel=1e-10)
    assert w.barrier == pytest.approx(u[j[0]] - u[i[0]], abs=1e-9)
    # U' = autograd of U; U'' = central difference of U'
    x = torch.linspace(a - 0.5, b + 0.5, 41, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(w.value(x).sum(), x)
    torch.testing.assert_close(g, w.grad(x.detach()), rtol=1e-12, atol=1e-12)
    xn = x.detach().numpy()
    fd = (w.grad(xn + 1e-5) - w.grad(xn - 1e-5)) / 2e-5
    np.testing.assert_allclose(w.curvature(xn), fd, rtol=1e-8, atol=1e-8)
    assert w.curvature(a) == pytest.approx(k * (a - s) * (a - b))
    assert w.curvature(s) == pytest.approx(k * (s - a) * (s - b))


def test_double_well_default_shape_and_bad_input():
    w = DoubleWell()
    assert w.barrier == pytest.approx(7 / 192, rel=1e-12)  # int_0^{1/2} u (u - 1/2)(u - 2) du
    assert w.gap == pytest.approx(2 / 3, rel=1e-12)  # -4s/3 for a = -1, b = 1
    assert w.shallow == -1.0
    with pytest.raises(ValueError, match="a < s < b"):
        DoubleWell(0.0, -1.0, 1.0)
    with pytest.raises(ValueError, match="k > 0"):
        DoubleWell(k=0.0)


# ---- heavy ball --------------------------------------------------------------------------------
def test_heavy_ball_torch_equals_numpy_and_gd_stops_at_shallow_minimum():
    w = DoubleWell()
    betas = [0.0, 0.5, 0.9]
    starts = np.array([-1.6, -1.5, -1.2])
    P = heavy_ball_paths(w, starts, lr=0.1, betas=betas, steps=400, stop_tol=0.0)  # no early stop
    assert P.shape == (3, 3, 401)
    np.testing.assert_allclose(P[:, :, -1], heavy_ball_numpy(w, starts, lr=0.1, betas=betas, steps=400), atol=1e-12)
    # first step: v = U'(x0), x1 = x0 - lr U'(x0) for every beta
    # one float64 step in torch vs numpy: a few ulps apart at most (1e-13 is ~500 ulps at |x| ~ 1.5)
    np.testing.assert_allclose(P[:, :, 1], np.broadcast_to(starts - 0.1 * w.grad(starts), (3, 3)), rtol=1e-13)
    assert abs(P[0, 1, -1] - w.a) < 1e-9  # gradient descent from x0 = -1.5 rests at a
    p = heavy_ball_paths(w, -1.5, lr=0.1, betas=[0.0], steps=400)
    assert p.shape == (1, 401) and p[0, -1] == pytest.approx(w.a, abs=1e-9)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        heavy_ball_paths(w, -1.5, lr=0.1, betas=[1.0], steps=10)


def test_bisect_threshold_and_ode_threshold():
    assert bisect_threshold(lambda p: p >= 0.3141, 0.0, 1.0, tol=1e-9) == pytest.approx(0.3141, abs=1e-9)
    with pytest.raises(ValueError, match="bisection needs"):
        bisect_threshold(lambda p: True, 0.0, 1.0)
    w = DoubleWell()
    g = ode_friction_threshold(w, -1.5, tol=1e-5)
    # heavy ball at small lr approaches the continuum threshold gamma* = (1 - beta*)/sqrt(lr)
    lr = 0.01
    bt = bisect_threshold(lambda bb: heavy_ball_numpy(w, -1.5, lr=lr, betas=[bb], steps=4000)[0] > w.s,
                          0.5, 0.99, tol=1e-6)
    assert (1 - bt) / math.sqrt(lr) == pytest.approx(g, rel=0.03)
    # no friction below the energy bound: a start with U(x0) < U(s) cannot cross for any gamma
    x_low = -1.2
    assert w.value(x_low) < w.value(w.s)
    with pytest.raises(ValueError, match=r"U\(x0\) > U\(s\)"):
        ode_friction_threshold(w, x_low, tol=1e-3)


# ---- Langevin ----------------------------------------------------------------------------------
def test_mfpt_chain_integral_and_kramers_agree():
    w = DoubleWell()
    T = w.barrier / 3
    x_abs = (w.s + w.b) / 2
    exact = w.mfpt_integral(T, w.a, x_abs)
    chain = w.mfpt_chain(T, 0.01, w.a, x_abs, cells=1500)
    assert chain == pytest.approx(exact, rel=0.01)  # lr -> 0: the chain tends to the SDE
    assert w.mfpt_chain(T, 0.1, w.a, x_abs, cells=800) == pytest.approx(w.mfpt_chain(T, 0.1, w.a, x_abs, cells=1600),
                                                                       rel=2e-3)  # grid converged
    # Kramers is the Laplace approximation of the integral: ratio -> 1 as dU/T grows
    r3, r8 = exact / w.kramers_time(T), w.mfpt_integral(w.barrier / 8, w.a, x_abs) / w.kramers_time(w.barrier / 8)
    assert 1 < r8 < r3 < 1.2


def test_langevin_first_passage_seeded_and_matches_chain():
    w = DoubleWell()
    T, lr = w.barrier / 2, 0.1
    x_abs = (w.s + w.b) / 2
    h1 = langevin_first_passage(w, T=T, lr=lr, walkers=800, max_steps=3000, x_start=w.a, x_abs=x_abs, seed=3)
    h2 = langevin_first_passage(w, T=T, lr=lr, walkers=800, max_steps=3000, x_start=w.a, x_abs=x_abs, seed=3)
    h3 = langevin_first_passage(w, T=T, lr=lr, walkers=800, max_steps=3000, x_start=w.a, x_abs=x_abs, seed=4)
    np.testing.assert_array_equal(h1, h2)
    assert not np.array_equal(h1, h3)
    m, n = censored_mean(h1, 3000)
    ref = w.mfpt_chain(T, lr, w.a, x_abs)
    assert m * lr == pytest.approx(ref, rel=4 / math.sqrt(n) + 0.02)
    with pytest.raises(ValueError, match="T > 0"):
        langevin_first_passage(w, T=0.0, lr=lr, walkers=4, max_steps=5, x_start=w.a, x_abs=x_abs, seed=0)


def test_tilted_examples_and_sgd_walkers():
    w = DoubleWell()
    c = tilted_examples(12, 0.8, seed=5)
    assert float(c.mean()) == pytest.approx(0.0, abs=1e-15)
    assert float(c.pow(2).mean()) == pytest.approx(0.64, rel=1e-12)
    torch.testing.assert_close(c, tilted_examples(12, 0.8, seed=5), rtol=0, atol=0)
    # the batch-mean loss (1/B) sum_n [U(x) + c_n x] has gradient U'(x) + mean_B c (autograd)
    x = torch.tensor(-0.7, dtype=torch.float64, requires_grad=True)
    batch = [1, 4, 9]
    (gx,) = torch.autograd.grad(torch.stack([w.value(x) + c[n] * x for n in batch]).mean(), x)
    assert float(gx) == pytest.approx(float(w.grad(x.detach()) + c[batch].mean()), rel=1e-13)
    kw = dict(lr=0.1, walkers=300, max_steps=2000, x_start=w.a, x_abs=(w.s + w.b) / 2)
    h1, h2 = sgd_first_passage(w, c, 1, seed=1, **kw), sgd_first_passage(w, c, 1, seed=1, **kw)
    np.testing.assert_array_equal(h1, h2)
    # full batch (B = N): no noise, gradient descent sits at a forever
    assert np.all(sgd_first_passage(w, c, 12, seed=1, **{**kw, "max_steps": 200}) == -1)
    with pytest.raises(ValueError, match="1 <= B <= N"):
        sgd_first_passage(w, c, 13, seed=1, **kw)


def test_discrete_noise_chain_tends_to_gaussian_chain():
    from scipy.stats import norm

    w = DoubleWell()
    T, lr = w.barrier / 2.5, 0.1
    sd = math.sqrt(2 * T / lr)  # lr^2 Var(m) = 2 lr T
    m = sd * norm.ppf((np.arange(4001) + 0.5) / 4001)  # a fine quantile grid of N(0, sd^2)
    x_abs = (w.s + w.b) / 2
    assert w.mfpt_chain_discrete(lr, m, w.a, x_abs, cells=1500) == pytest.approx(
        w.mfpt_chain(T, lr, w.a, x_abs, cells=1500), rel=0.01)


def test_censored_mean():
    assert censored_mean(np.array([2, 4, 6]), 10) == (4.0, 3)
    assert censored_mean(np.array([2, -1, -1]), 10) == (22.0, 1)  # (2 + 10 + 10) / 1
    assert censored_mean(np.array([-1, -1]), 10)[1] == 0


# ---- mini-batch noise ----------------------------------------------------------------------------
def test_minibatch_noise_formula_by_exhaustive_enumeration():
    g = torch.Generator().manual_seed(0)
    G = torch.randn(7, 3, generator=g, dtype=torch.float64) * torch.tensor([1.0, 3.0, 0.2], dtype=torch.float64)
    gbar = G.mean(0)
    for B in range(1, 8):
        subsets = list(itertools.combinations(range(7), B))
        exact = np.mean([float(((G[list(c)].mean(0) - gbar) ** 2).sum()) for c in subsets])
        assert minibatch_noise_predicted(G, B)[0] == pytest.approx(exact, rel=1e-12, abs=1e-15)
    # with replacement would be sigma^2 / B: different for B > 1
    s2 = float(((G - gbar) ** 2).sum(1).mean())
    assert minibatch_noise_predicted(G, 3)[0] == pytest.approx(s2 / 3 * (7 - 3) / (7 - 1))
    with pytest.raises(ValueError, match="1 <= B <= N"):
        minibatch_noise_predicted(G, 8)


def test_sample_batches_are_uniform_subsets():
    g = torch.Generator().manual_seed(1)
    idx = sample_batches(10, 4, 5000, g)
    assert idx.shape == (5000, 4)
    assert all(len(set(r.tolist())) == 4 for r in idx[:200])
    counts = torch.bincount(idx.reshape(-1), minlength=10).double() / 5000
    assert torch.allclose(counts, torch.full((10,), 0.4, dtype=torch.float64), atol=0.03)  # P(n in batch) = B/N


def test_per_example_and_batch_grads_against_autograd_and_model_untouched():
    from losslab.losses import get_loss
    from losslab.models import build

    model = build("mlp", in_dim=2, hidden=[3], out_dim=2, seed=0, dtype=torch.float64)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    g = torch.Generator().manual_seed(0)
    X = torch.randn(6, 2, generator=g, dtype=torch.float64)
    y = torch.tensor([0, 1, 1, 0, 1, 0])
    loss = get_loss("cross_entropy")

    def ref_grad(rows):
        model.zero_grad()
        loss(model(X[rows]), y[rows]).backward()
        out = torch.cat([p.grad.reshape(-1) for p in model.parameters()]).clone()
        model.zero_grad()
        return out

    G = per_example_grads(model, X, y, loss)
    for n in range(6):
        torch.testing.assert_close(G[n], ref_grad([n]), rtol=1e-10, atol=1e-12)
    idx = torch.tensor([[0, 2, 5], [1, 3, 4]])
    Gb = batch_grads(model, X, y, loss, idx)
    for r in range(2):
        torch.testing.assert_close(Gb[r], ref_grad(idx[r].tolist()), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(Gb, G[idx].mean(1), rtol=1e-10, atol=1e-12)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])


# ---- the experiment ------------------------------------------------------------------------------
def test_registered_and_bad_options():
    assert EXPERIMENTS.get("escape").fn is not None
    with pytest.raises(ValueError, match="U\\(x0\\) > U\\(s\\)"):
        run_experiment("escape", quick=True, x0=-1.2)
    with pytest.raises(ValueError, match="shallow"):
        run_experiment("escape", quick=True, s=0.5)
    with pytest.raises(ValueError, match="distinct positive"):
        run_experiment("escape", quick=True, ratios=[2.0])


def test_escape_small_is_deterministic():
    kw = dict(quick=True, seed=2, ratios=[1.5, 2.0], walkers=200, n_batches=200, batch_sizes=[1, 8, 60], hb_steps=500,
              sgd_batch_sizes=[1, 2], sgd_steps=300, sgd_walkers=100)
    r1, r2 = run_experiment("escape", **kw), run_experiment("escape", **kw)
    assert_same_summary(r1.summary, r2.summary)
    assert r1.checks == r2.checks
    for k in r1.arrays:
        np.testing.assert_allclose(r1.arrays[k], r2.arrays[k], rtol=1e-12, atol=1e-15)  # last-bit BLAS rounding only


@pytest.mark.slow
def test_escape_quick():
    r = run_experiment("escape", quick=True, seed=0)
    s = r.summary
    assert r.passed, {k: v for k, v in r.checks.items() if not v}
    assert s["barrier_dU"] == pytest.approx(7 / 192)
    assert s["gd_final_x"] == pytest.approx(-1.0, abs=1e-6)
    assert s["beta_star_torch"] == pytest.approx(s["beta_star_numpy"], abs=2e-6)
    assert s["gamma_star_heavy_ball"] == pytest.approx(s["gamma_star_ode"], rel=0.05)
    assert s["momentum_escapes_from_below_barrier_energy"] == 0
    assert s["langevin_slope_over_dU"] == pytest.approx(1.0, abs=0.10)
    for r_ in (1.5, 2.5, 3.5):
        assert s[f"langevin_mfpt_dU/T={r_:g}"] == pytest.approx(s[f"langevin_chain_mfpt_dU/T={r_:g}"], rel=0.12)
    assert s["langevin_slope_over_dU"] == pytest.approx(s["langevin_chain_slope_over_dU"], abs=4 * s["langevin_slope_se_over_dU"])
    for B in (1, 2, 3):
        assert s[f"sgd_B={B}_mfpt"] == pytest.approx(s[f"sgd_B={B}_mfpt_chain"], rel=0.2)
    assert s["sgd_B=1_escaped_fraction"] > s["sgd_B=2_escaped_fraction"] > s["sgd_B=3_escaped_fraction"]
    assert s["noise_max_z"] < 4
    assert s["noise_full_batch_measured"] < 1e-24
    assert {f.key for f in r.figures} == {"well", "momentum_scan", "momentum_fraction", "kramers", "gradient_noise",
                                        "sgd_escape"}
