"""Deep linear network geometry: each formula against an independent computation (float64)."""
import numpy as np
import pytest
import torch

from losslab import models
from losslab.dln.core import (DLN, Frobenius, LpRegression, Regression, as_weights, balanced_factorization, balancedness,
                              end_to_end, get_energy, invariants, random_init, saxe_init, weight_gradients,
                              whiten)
from losslab.dln.entropy import entropy, entropy_by_gram, entropy_vandermonde, orbit_generators
from losslab.dln.flow import end_to_end_flow, gradient_descent, gradient_flow, scalar_flow_closed_form
from losslab.dln.operator import (end_to_end_operator, end_to_end_velocity, layerwise_velocity, operator_eigenvalues,
                                  operator_eigenvalues_closed_form, operator_matrix, psd_power)
from losslab.params import module_fingerprint, same_fingerprint
from losslab.registry import UnknownNameError


def _svd_matrix(rng, s, m=None, n=None):
    s = np.asarray(s, float)
    m = m or s.size
    n = n or s.size
    U, _ = np.linalg.qr(rng.standard_normal((m, m)))
    V, _ = np.linalg.qr(rng.standard_normal((n, n)))
    S = np.zeros((m, n))
    S[np.arange(s.size), np.arange(s.size)] = s
    return U @ S @ V.T


# ---------------------------------------------------------------- weights, energies, gradients

def test_from_model_does_not_mutate_and_matches_end_to_end():
    model = models.build("deep_linear", widths=[3, 4, 2], seed=1, dtype=torch.float64)
    fp = module_fingerprint(model)
    dln = DLN.from_model(model)
    assert same_fingerprint(module_fingerprint(model), fp)
    assert dln.widths == [3, 4, 2] and dln.depth == 2
    np.testing.assert_allclose(dln.end_to_end(), model.end_to_end().detach().numpy(), rtol=0, atol=1e-15)
    back = dln.to_model()
    assert torch.equal(back.end_to_end(), model.end_to_end())


def test_bad_shapes_and_names_give_clear_errors():
    with pytest.raises(ValueError, match="shapes must chain"):
        as_weights([np.zeros((3, 2)), np.zeros((2, 4))])
    with pytest.raises(UnknownNameError, match="frobenius"):
        get_energy("frobenious", target=np.eye(2))
    with pytest.raises(ValueError, match="expects end-to-end matrices"):
        Frobenius(np.eye(2))(np.eye(3))


@pytest.mark.parametrize("energy_name", ["frobenius", "regression", "whitened", "lp"])
def test_weight_gradients_match_torch_autograd(energy_name):
    # independent reference: torch autograd through the product W_N..W_1 and the energy written in torch
    rng = np.random.default_rng(0)
    widths = [3, 4, 5, 2]
    ws = random_init(widths, scale=0.7, seed=2)
    x, y = rng.standard_normal((20, 3)), rng.standard_normal((20, 2))
    if energy_name == "frobenius":
        e = Frobenius(rng.standard_normal((2, 3)))
        f = lambda X: 0.5 * ((X - torch.as_tensor(e.target)) ** 2).sum()  # noqa: E731
    elif energy_name in ("regression", "whitened"):
        e = Regression(x, y, whiten=energy_name == "whitened")
        xx = torch.as_tensor(e.inputs)
        f = lambda X: 0.5 * ((xx @ X.T - torch.as_tensor(y)) ** 2).sum() / 20  # noqa: E731
    else:
        e = LpRegression(x, y, p=4)
        f = lambda X: ((torch.as_tensor(x) @ X.T - torch.as_tensor(y)) ** 4).sum() / (4 * 20)  # noqa: E731
    tw = [torch.tensor(w, requires_grad=True) for w in ws]
    X = tw[0]
    for w in tw[1:]:
        X = w @ X
    L = f(X)
    L.backward()
    assert abs(L.item() - float(e.loss(ws))) < 1e-12 * max(1, abs(L.item()))
    for g, t in zip(weight_gradients(ws, e.grad(end_to_end(ws))), tw):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-11, atol=1e-13)


def test_whiten_gives_identity_covariance():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((50, 4)) @ rng.standard_normal((4, 4))
    xw = whiten(x)
    np.testing.assert_allclose(xw.T @ xw / 50, np.eye(4), atol=1e-12)


# ---------------------------------------------------------------- balanced factorization, invariants

@pytest.mark.parametrize("widths", [[3, 3, 3], [4, 5, 6, 3], [2, 4, 4, 4, 4, 2], [3, 5, 3]])
def test_balanced_factorization_reproduces_X_with_zero_invariants(widths):
    rng = np.random.default_rng(4)
    X = rng.standard_normal((widths[-1], widths[0]))
    for rotate in (False, True):
        ws = balanced_factorization(X, widths, rotate=rotate, seed=5)
        # done-when: X to 1e-12 and all G_p below 1e-12 (measured ~1e-15)
        assert np.max(np.abs(end_to_end(ws) - X)) < 1e-12
        assert all(np.linalg.norm(g) < 1e-12 for g in invariants(ws))
        assert balancedness(ws) < 1e-12


def test_balanced_factorization_rejects_too_narrow_network():
    X = np.random.default_rng(0).standard_normal((3, 3))
    with pytest.raises(ValueError, match="rank 3 but the narrowest width is 2"):
        balanced_factorization(X, [3, 2, 3])


def test_invariants_definition_and_random_init_unbalanced():
    ws = random_init([2, 3, 2], scale=1.0, seed=0)
    (G,) = invariants(ws)
    np.testing.assert_allclose(G, ws[1].T @ ws[1] - ws[0] @ ws[0].T)
    assert balancedness(ws) > 0.1


def test_saxe_init_mode_strengths():
    rng = np.random.default_rng(1)
    C = _svd_matrix(rng, [3, 2, 1])
    ws = saxe_init(C, [3, 3, 3], u0=1e-3)
    U, s, Vt = np.linalg.svd(C)
    np.testing.assert_allclose(U.T @ end_to_end(ws) @ Vt.T, 1e-3 * np.eye(3), atol=1e-15)
    assert balancedness(ws) < 1e-14


# ---------------------------------------------------------------- operator A_{N,X}

def test_psd_power_zeroes_tiny_eigenvalues_and_alpha_zero_is_identity():
    rng = np.random.default_rng(0)
    v = rng.standard_normal((4, 2))
    M = v @ v.T  # rank 2: round-off eigenvalues ~1e-16 that a naive power would turn into ~1e-5
    R = psd_power(M, 1 / 3)
    evals = np.sort(np.linalg.eigvalsh(R))
    assert np.all(np.abs(evals[:2]) < 1e-12)
    np.testing.assert_allclose(psd_power(M, 0.5) @ psd_power(M, 0.5), M, atol=1e-12)
    np.testing.assert_allclose(psd_power(M, 0), np.eye(4))


@pytest.mark.parametrize("N,shape", [(1, (3, 3)), (2, (3, 3)), (3, (3, 4)), (5, (4, 2))])
def test_operator_eigenvalues_match_formula(N, shape):
    rng = np.random.default_rng(N)
    X = rng.standard_normal(shape)
    M = operator_matrix(X, N)
    np.testing.assert_allclose(M, M.T, atol=1e-12)  # self-adjoint
    lam = operator_eigenvalues(X, N)
    np.testing.assert_allclose(np.sort(np.linalg.eigvalsh(M)), np.sort(lam.ravel()), rtol=1e-10, atol=1e-12)
    # eigenvectors u_i v_j^T, and the closed form (s_i^2 - s_j^2)/(s_i^{2/N} - s_j^{2/N}) / N s^{2-2/N}
    U, s, Vt = np.linalg.svd(X)
    sp_i = np.zeros(shape[0]); sp_i[: s.size] = s
    sp_j = np.zeros(shape[1]); sp_j[: s.size] = s
    cf = operator_eigenvalues_closed_form(sp_i[:, None], sp_j[None, :], N)
    for i in range(shape[0]):
        for j in range(shape[1]):
            P = np.outer(U[:, i], Vt[j])
            np.testing.assert_allclose(end_to_end_operator(X, P, N), lam[i, j] * P, atol=1e-11)
            if N > 1 and not (sp_i[i] == 0 and sp_j[j] == 0):
                assert abs(cf[i, j] - lam[i, j]) < 1e-10 * lam[i, j]


@pytest.mark.parametrize("widths", [[3, 3, 3], [3, 4, 5, 2], [2, 3, 3, 3, 3, 2]])
def test_layerwise_velocity_equals_end_to_end_operator_on_balanced_point(widths):
    rng = np.random.default_rng(7)
    X = rng.standard_normal((widths[-1], widths[0]))
    ws = balanced_factorization(X, widths, rotate=True, seed=8)
    e = Frobenius(rng.standard_normal(X.shape))
    v_layers = layerwise_velocity(ws, e.grad(end_to_end(ws)))
    v_op = end_to_end_velocity(X, e.grad(X), len(ws))
    # done-when: 1e-10 relative (measured ~3e-15)
    assert np.linalg.norm(v_layers - v_op) < 1e-10 * np.linalg.norm(v_op)
    # off the balanced manifold the identity fails (so the test can fail)
    wu = [w.copy() for w in ws]
    wu[0] *= 1.5
    wu[1] /= 1.5
    v_unb = layerwise_velocity(wu, e.grad(end_to_end(wu)))
    assert np.linalg.norm(v_unb - v_op) > 1e-2 * np.linalg.norm(v_op)


# ---------------------------------------------------------------- flows

def test_invariants_conserved_along_gradient_flow():
    rng = np.random.default_rng(0)
    ws = random_init([3, 4, 4, 2], scale=0.6, seed=1)
    e = Frobenius(rng.standard_normal((2, 3)))
    tr = gradient_flow(ws, e, np.linspace(0, 3, 31))
    assert tr.loss[-1] < 0.1 * tr.loss[0]  # the flow did move
    assert np.max(tr.invariant_drift()) < 1e-9  # done-when (measured ~1e-11 at rtol 1e-10)


def test_gd_invariant_drift_halves_with_step():
    rng = np.random.default_rng(0)
    ws = random_init([3, 4, 4, 2], scale=0.6, seed=1)
    e = Frobenius(rng.standard_normal((2, 3)))
    T = 2.0
    drifts = [gradient_descent(ws, e, lr=lr, steps=int(round(T / lr)), record_every=10).invariant_drift()[-1]
              for lr in (0.02, 0.01, 0.005)]
    ratios = np.array(drifts[:-1]) / np.array(drifts[1:])
    assert np.all(np.abs(ratios - 2) < 0.4), ratios  # halves within 20% (measured 2.09, 2.04)


def test_gd_one_step_exact_second_order_change():
    # G_p(after) - G_p(before) = lr^2 (g_{p+1}^T g_{p+1} - g_p g_p^T), exactly
    rng = np.random.default_rng(2)
    ws = random_init([2, 3, 2], scale=1.0, seed=3)
    e = Frobenius(rng.standard_normal((2, 2)))
    lr = 0.1
    g = weight_gradients(ws, e.grad(end_to_end(ws)))
    tr = gradient_descent(ws, e, lr=lr, steps=1)
    dG = tr.invariants()[0][1] - tr.invariants()[0][0]
    np.testing.assert_allclose(dG, lr ** 2 * (g[1].T @ g[1] - g[0] @ g[0].T), atol=1e-14)


def test_layer_flow_matches_end_to_end_ode_from_balanced_start():
    rng = np.random.default_rng(1)
    widths = [3, 4, 4, 3]
    X0 = 0.3 * rng.standard_normal((3, 3))
    e = Frobenius(rng.standard_normal((3, 3)))
    t = np.linspace(0, 2, 11)
    a = gradient_flow(balanced_factorization(X0, widths, rotate=True, seed=2), e, t)
    b = end_to_end_flow(X0, e, 3, t)
    assert np.max(np.linalg.norm(a.X - b.X, axis=(1, 2))) < 1e-7 * np.max(np.linalg.norm(b.X, axis=(1, 2)))


@pytest.mark.parametrize("x0,a", [(0.05, 1.0), (0.5, 2.0), (3.0, 1.0)])
def test_scalar_closed_form_N2(x0, a):
    t = np.linspace(0, 4, 41)
    e = Frobenius(np.array([[a]]))
    cf = scalar_flow_closed_form(t, x0, a)
    ode = end_to_end_flow(np.array([[x0]]), e, 2, t).X[:, 0, 0]
    w = np.sqrt(x0)
    wts = gradient_flow([np.array([[w]]), np.array([[w]])], e, t).X[:, 0, 0]
    assert np.max(np.abs(ode - cf)) < 1e-8 and np.max(np.abs(wts - cf)) < 1e-8


def test_gradient_descent_flags_divergence():
    e = Frobenius(np.array([[1.0]]))
    with pytest.warns(RuntimeWarning, match="diverged"):
        tr = gradient_descent([np.array([[2.0]]), np.array([[2.0]])], e, lr=5.0, steps=200)
    assert tr.settings["diverged"] and np.isnan(tr.loss[-1])


# ---------------------------------------------------------------- entropy

@pytest.mark.parametrize("N", [2, 3, 5])
@pytest.mark.parametrize("d", [2, 3, 4])
def test_entropy_formula_matches_gram_determinant(N, d):
    rng = np.random.default_rng(10 * N + d)
    s = np.sort(rng.uniform(0.4, 3.0, d))[::-1]
    X = _svd_matrix(rng, s)
    # done-when: 1e-10 (the constant is exactly 0 with the orthonormal so(d) basis; measured ~4e-15)
    S = entropy(X, N)
    assert abs(S - entropy_by_gram(X, N, seed=1)) < 1e-10
    assert abs(S - entropy_vandermonde(X, N)) < 1e-10
    # the volume density is the same at another point of the fiber (isometric group action)
    assert abs(entropy_by_gram(X, N, seed=2) - S) < 1e-10


def test_entropy_at_repeated_and_zero_singular_values():
    rng = np.random.default_rng(0)
    # repeated singular values: the van ratio is 0/0, its limit (N s^{2-2/N} per tied pair) is what
    # the orbit's Gram determinant gives: the fiber does not degenerate
    X = _svd_matrix(rng, [2.0, 2.0, 1.0])
    assert abs(entropy(X, 3) - entropy_by_gram(X, 3, seed=1)) < 1e-10
    # two zero singular values: the pair's lambda is 0 and the Gram matrix is singular
    Z = _svd_matrix(rng, [2.0, 0.0, 0.0])
    assert entropy(Z, 3) == -np.inf
    J = orbit_generators(balanced_factorization(Z, [3, 3, 3, 3], rotate=True, seed=1))
    sv = np.linalg.svd(J, compute_uv=False)
    assert sv[-1] < 1e-10 * sv[0]
