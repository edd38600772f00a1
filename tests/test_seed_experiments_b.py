"""The seed experiments of #16 items 5 and 6 (``depth_and_minima``, ``perceptron``) at their quick sizes,
against independent references: parameter counts of the built models, per-seed nn.Module forwards and
``losslab.train`` runs, a naive pair count for Mann-Whitney's U, exact enumeration of its permutation
distribution, finite differences, a hand-written perceptron loop and the mean-field closed forms."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from losslab.phenomena import EXPERIMENTS, run_experiment


@pytest.fixture(scope="module")
def depth():
    return run_experiment("depth_and_minima", quick=True)


@pytest.fixture(scope="module")
def perc():
    return run_experiment("perceptron", quick=True)


def test_registered_and_in_the_tour():
    from losslab.tour import ORDER

    for n in ("depth_and_minima", "perceptron"):
        assert n in EXPERIMENTS and n in ORDER


# -- depth_and_minima -----------------------------------------------------------------------------
def test_depth_checks(depth):
    assert depth.passed, {k: v for k, v in depth.checks.items() if not v}


def test_param_counts_match_the_built_models():
    from losslab.models import build
    from losslab.phenomena.depth_and_minima import mlp_param_count, widths_for_budget

    for d, w in itertools.product((1, 2, 4), (3, 7)):
        m = build("mlp", in_dim=1, hidden=[w] * d, out_dim=1)
        assert mlp_param_count(d, w) == sum(p.numel() for p in m.parameters())
    arch = widths_for_budget((1, 2, 3, 4), 100)
    for d, (w, p) in arch.items():  # the closest count over all widths, by brute force
        assert abs(p - 100) == min(abs(mlp_param_count(d, v) - 100) for v in range(1, 200))


def test_batched_forward_and_training_equal_per_seed_runs():
    """The stacked nets are the per-seed models (forward), and stacked Adam is per-seed Adam (losslab.train)."""
    from losslab.models import build
    from losslab.phenomena.depth_and_minima import batched_forward, sine_task, stacked_mlps, train_batched
    from losslab.train import train

    X, Y = sine_task(16, dtype=torch.float64)
    seeds = [3, 8, 11]
    layers = stacked_mlps(2, 5, seeds, dtype=torch.float64)
    out = batched_forward(layers, X)
    models = [build("mlp", in_dim=1, hidden=[5, 5], out_dim=1, seed=s, dtype=torch.float64) for s in seeds]
    for i, m in enumerate(models):
        torch.testing.assert_close(out[i], m(X), rtol=1e-12, atol=1e-12)
    final, _, curves, gn, trained = train_batched(layers, X, Y, steps=40, lr=0.01, record_every=10)
    assert layers[0][0].grad is None and not layers[0][0].requires_grad  # the inputs are not trained in place
    for i, m in enumerate(models):
        tr = train(m, (X, Y), loss="mse", optimizer="adam", lr=0.01, steps=40, eval_every=40, seed=0)
        with torch.no_grad():
            ref = float(((tr.model(X) - Y) ** 2).mean())
        assert final[i] == pytest.approx(ref, rel=1e-9)  # float64; only the summation order differs
    # the final gradient norm is the norm of the full per-seed gradient, recomputed with autograd
    m = [(w[:1].clone().requires_grad_(), b[:1].clone().requires_grad_()) for w, b in trained]
    L = ((batched_forward(m, X) - Y) ** 2).mean()
    g = torch.autograd.grad(L, [t for pair in m for t in pair])
    assert gn[0] == pytest.approx(float(torch.sqrt(sum((x ** 2).sum() for x in g))), rel=1e-9)


def test_mann_whitney_against_pair_count_and_exact_permutations():
    from losslab.phenomena.depth_and_minima import mann_whitney_greater, permutation_p_greater

    rng = np.random.default_rng(0)
    a, b = rng.normal(0.8, 1, 6), rng.normal(0, 1, 5)
    U, p = mann_whitney_greater(a, b)
    assert U == sum(float(x > y) + 0.5 * float(x == y) for x in a for y in b)
    # exact permutation distribution of U: every way to pick 6 of the 11 pooled values
    z = np.concatenate([a, b])
    us = [sum(float(z[i] > z[j]) for i in idx for j in set(range(11)) - set(idx))
          for idx in itertools.combinations(range(11), 6)]
    p_exact = np.mean(np.array(us) >= U - 1e-12)
    assert p == pytest.approx(p_exact, abs=1e-12)  # scipy's exact method (small samples, no ties)
    p_perm = permutation_p_greater(a, b, resamples=40000, seed=1)
    assert abs(p_perm - p_exact) <= 4 * math.sqrt(p_exact * (1 - p_exact) / 40000) + 1e-4


def test_depth_summary_recomputed_from_arrays(depth):
    from scipy.stats import mannwhitneyu

    s, a = depth.summary, depth.arrays
    depths, near = depth.settings["depths"], depth.settings["near"]
    finals = {d: a[f"depth{d}/final"] for d in depths}
    assert all(len(v) == depth.settings["seeds"] for v in finals.values())
    best = min(v.min() for v in finals.values())
    assert s["best final loss over all runs"] == best
    for d, v in finals.items():
        assert s[f"depth {d}: share near the overall best"] == pytest.approx(np.mean(v <= near * best))
        assert s[f"depth {d}: median"] == pytest.approx(np.median(v))
        assert np.all(a[f"depth{d}/curves"][-1] == v)  # the last recorded losses are the final ones
    d1, dD = depths[0], depths[-1]
    ref = mannwhitneyu(finals[d1], finals[dD], alternative="greater")
    assert s[f"one-sided p (depth {d1} losses larger than depth {dD})"] == pytest.approx(ref.pvalue, rel=1e-12)
    assert s["claim supported at alpha (p < alpha)"] == (ref.pvalue < depth.settings["alpha"])
    # the target
    np.testing.assert_allclose(a["Y"], np.sin(3 * np.pi * a["X"]), atol=1e-6)


def test_depth_bad_input():
    with pytest.raises(ValueError, match="depths"):
        run_experiment("depth_and_minima", quick=True, depths=(2, 1))
    with pytest.raises(ValueError, match="near > 1"):
        run_experiment("depth_and_minima", quick=True, near=1.0)


# -- perceptron -----------------------------------------------------------------------------------
def test_perceptron_checks(perc):
    assert perc.passed, {k: v for k, v in perc.checks.items() if not v}


def naive_perceptron(Xa, y, order_seed, max_epochs=1000):
    """Rosenblatt's rule written out again, in plain Python lists (the reference)."""
    rng = np.random.default_rng(order_seed)
    w = [0.0] * Xa.shape[1]
    updates = 0
    for _ in range(max_epochs):
        mist = 0
        for n in rng.permutation(len(Xa)):
            if y[n] * sum(wi * xi for wi, xi in zip(w, Xa[n])) <= 0:
                w = [wi + y[n] * xi for wi, xi in zip(w, Xa[n])]
                mist += 1
        updates += mist
        if mist == 0:
            return np.array(w), updates
    return np.array(w), updates


@pytest.mark.parametrize("margin", [0.05, 0.3])
def test_rosenblatt_against_a_naive_loop_and_novikoff(margin):
    from losslab.phenomena.perceptron import augment, rosenblatt, separable_data

    X, y, u = separable_data(60, margin, seed=4)
    Xa = augment(X)
    assert abs(np.linalg.norm(u) - 1) < 1e-12 and np.all(y * (Xa @ u) >= margin)  # the promised margin
    assert 0 < np.mean(y > 0) < 1  # both classes present
    r = rosenblatt(X, y, seed=9, u=u)
    w_ref, k_ref = naive_perceptron(Xa, y, 9)
    np.testing.assert_allclose(r["w"], w_ref, rtol=1e-12, atol=1e-12)
    assert r["updates"] == k_ref and r["converged"]
    assert np.all(np.sign(Xa @ r["w"]) == y)
    R, gamma = np.linalg.norm(Xa, axis=1).max(), (y * (Xa @ u)).min()
    assert r["updates"] <= (R / gamma) ** 2


def test_perceptron_never_converges_on_xor():
    from losslab.phenomena.perceptron import rosenblatt

    r = rosenblatt(np.array([[0, 0], [0, 1], [1, 0], [1, 1.0]]), np.array([-1, 1, 1, -1.0]), max_epochs=50)
    assert not r["converged"] and r["epochs"] == 50 and np.all(r["mistakes"] > 0)


def test_step_loss_is_the_error_rate_and_flat():
    from losslab.phenomena.perceptron import augment, central_differences, neuron_loss, separable_data

    X, y, u = separable_data(50, 0.1, seed=2)
    Xa, y01 = augment(X), (y > 0).astype(float)
    th = np.array([0.3, -1.2, 0.1])
    L = float(neuron_loss(torch.tensor(th), torch.tensor(Xa), torch.tensor(y01), "step"))
    assert L == pytest.approx(np.mean((Xa @ th > 0) != (y01 > 0)), abs=1e-15)  # no point exactly at z = 0 here
    f = lambda t: float(neuron_loss(torch.tensor(t), torch.tensor(Xa), torch.tensor(y01), "step"))  # noqa: E731
    assert np.all(central_differences(f, th, 1e-5) == 0)
    # a larger step that crosses points sees the jumps: the loss is piecewise constant, not smooth
    assert np.any(central_differences(f, th, 0.5) != 0)


def test_sigmoid_backprop_against_numpy_finite_differences():
    from losslab.phenomena.perceptron import augment, separable_data, sigmoid_backprop

    X, y, _ = separable_data(30, 0.1, seed=5)
    Xa, y01 = augment(X), (y > 0).astype(float)
    th = np.array([0.7, -0.4, 0.2])
    f = lambda t: np.mean((1 / (1 + np.exp(-(Xa @ t))) - y01) ** 2)  # noqa: E731
    h = 1e-6  # central differences in float64: O(h^2) truncation + O(eps / h) rounding ~ 1e-10
    fd = np.array([(f(th + h * e) - f(th - h * e)) / (2 * h) for e in np.eye(3)])
    np.testing.assert_allclose(sigmoid_backprop(th, Xa, y01), fd, rtol=1e-7, atol=1e-10)


def test_layer_gradients_against_mean_field_closed_forms():
    from losslab.phenomena.perceptron import layer_gradients

    # ReLU with He init: fan_in Var(W) = 2 and mean(relu'^2) = 1/2, so chi = 1 (to sampling error)
    wg, dl, c = layer_gradients("relu", "kaiming", depth=8, width=128, in_dim=16, n=256, seed=0)
    assert np.all(np.abs(c - 1) < 0.15)
    # sigmoid with PyTorch's default init: Var(W) = 1/(3 fan_in) and sigma' <= 1/4, so sqrt(chi) <= sqrt(1/48)
    wg, dl, c = layer_gradients("sigmoid", "default", depth=8, width=128, in_dim=16, n=256, seed=0)
    assert np.all(c <= math.sqrt(1 / 48) * 1.05) and np.all(c > 0.1)  # 5%: the sampled Var(W) vs 1/(3 fan_in)
    assert len(wg) == 8 and len(dl) == 7 and len(c) == 6
    assert np.all(np.diff(np.log(wg[1:-1])) > 0)  # each hidden weight gradient larger than the one below it


def test_perceptron_figures_and_bad_input(perc):
    keys = [f.key for f in perc.figures]
    assert keys == ["step_vs_sigmoid_line", "novikoff", "mistakes_per_epoch", "sigmoid_training", "vanishing_gradient"]
    b = perc.arrays["novikoff/bound"]
    assert np.all(perc.arrays["novikoff/updates"] <= b)
    with pytest.raises(ValueError, match="margins"):
        run_experiment("perceptron", quick=True, margins=(0.1, -0.1))
    with pytest.raises(ValueError, match="margin > 0"):
        from losslab.phenomena.perceptron import separable_data

        separable_data(10, 0.0)
