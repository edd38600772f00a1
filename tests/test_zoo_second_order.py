"""The model zoo through the second-order entry points: Hessian-vector products, Lanczos, trace,
spectral density (SLQ), epsilon-sharpness and sharpness tracking during training.

Every entry of ``zoo.ZOO`` (MLP, CNN + batch norm + residual, transformer encoder with embedding,
LSTM, GRU, LayerNorm + GELU, tied/frozen/unused parameters, dict output with dict batches) runs
through each entry point against an exact float64 Hessian built *independently* of losslab's
operator: the gradient of the full-data mean loss by ``torch.autograd.grad(create_graph=True)``,
then one ``torch.autograd.grad`` of each gradient entry (one row per parameter), with the
parameters plugged in by ``torch.func.functional_call``. (Not ``torch.func.hessian``:
forward-over-reverse was found wrong through layer_norm on torch 2.13 CPU.) The reference runs
inside ``sdpa_kernel(SDPBackend.MATH)`` and ``torch.backends.cudnn.flags(enabled=False)`` with
oneDNN off: the fused attention / RNN kernels have no double backward. It is taken in eval mode
(batch norm with running statistics; the zoo's dropout is 0), as losslab measures by default,
and asserts the model is in eval mode.

No entry gets an error from these entry points (``ZooEntry.expected_errors`` holds none of them;
asserted below): the one documented exception is a slow trace target (``TRACE_NOT_CONVERGED``).

Tolerances (float64 throughout) and why:

- HVPs, dense matrix, gradient, loss: 1e-10 relative to ||H||_max (||v|| = 1 products are sums of
  at most a few thousand O(1) terms, rounding ~1e-15; five orders of margin, still far below
  any real error such as a float32 evaluation (1e-7) or a wrong buffer / batch weight (>= 1e-4)).
- Lanczos eigenvalues with ``tol=1e-10``: within 1e-9 x max|lambda| of ``eigvalsh`` (the stated
  bound is tol x max|theta|; 10x for rounding in the reference's eigvalsh), and the reported
  residuals equal ||H_ref x - theta x|| to 1e-10 x max|lambda|.
- Trace estimators: within 4 *stated* standard errors of tr H_ref (a calibrated estimator
  misses 4 s.e. with probability ~6e-5; fixed seeds make each run deterministic), and the stated
  s.e. of plain Hutchinson within [0.5, 2] x its exact value sqrt(2 (||H||_F^2 - sum H_ii^2) / n)
  for Rademacher probes (measured ratios 0.75-1.28 at n = 64).
- SLQ: every Ritz value theta with residual r lies within r (+ 1e-10 x max|lambda|) of an
  eigenvalue of H_ref (Krylov-Bogoliubov: for symmetric H, some lambda has |lambda - theta| <= r),
  each probe's weights sum to 1 (1e-12), and tr H, tr H^2 (integrated exactly by the quadrature)
  within 4 stated s.e. (10 probes: a t-statistic on 8-9 degrees of freedom exceeds 4 with
  probability < 0.5 %).
- epsilon-sharpness (full space and a random 5-dim subspace): at least 99 % of the rise at the box
  corner sign(g) * width (a point of the box; L-BFGS-B with the paper's 10 iterations gives a lower
  bound of the maximum, measured at most 0.3 % short of the corner) and at most the second-order
  upper bound L + |g|.width + 1/2 max(lambda_max, 0) ||width||^2 (plus 1e-3 of the quadratic term
  for third-order terms at eps = 1e-3).
- Tracking: lambda_max recorded at steps 0 and k within the callback's tol 1e-4 x scale of
  eigvalsh of H_ref at a hand-written torch.optim.SGD loop's parameters and buffers at those steps
  (and never above it: Ritz values interlace).
"""
from __future__ import annotations

import contextlib
import copy
import functools
import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

import losslab.hessian as H
from losslab import train
from zoo import ZOO_BY_NAME, ZOO_IDS, tensors

HVP_RTOL = 1e-10      # products, dense matrix, gradient: relative to max|H_ij| (module docstring)
EIG_RTOL = 1e-9       # Lanczos with tol=1e-10, relative to max|lambda|
N_SE = 4.0            # stochastic estimates: within N_SE stated standard errors


# -- the independent reference ----------------------------------------------------------------
@contextlib.contextmanager
def _double_differentiable():
    """The kernels double backward needs (MATH attention, plain-op RNNs), here by torch's own API."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    before = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    try:
        with sdpa_kernel(SDPBackend.MATH), torch.backends.cudnn.flags(enabled=False):
            yield
    finally:
        torch.backends.mkldnn.enabled = before


def _select(entry, out):
    if entry.output is None:
        return out
    return entry.output(out) if callable(entry.output) else out[entry.output]


def _trainable(model: nn.Module) -> list[tuple[str, torch.Tensor]]:
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]


def _loss_of(entry, model: nn.Module, theta: torch.Tensor, X, y) -> torch.Tensor:
    """The full-data mean loss at the flat trainable vector ``theta`` (frozen parameters and
    buffers as the model has them)."""
    named = _trainable(model)
    p, i = {}, 0
    for n, t in named:
        p[n] = theta[i:i + t.numel()].view_as(t)
        i += t.numel()
    assert i == theta.numel()
    state = {**dict(model.named_parameters()), **dict(model.named_buffers()), **p}
    out = _select(entry, functional_call(model, state, (X,), tie_weights=True))
    assert entry.loss == "cross_entropy"
    return F.cross_entropy(out, y)


def reference(entry, model: nn.Module, X, y):
    """(H, g, L, theta): exact float64 Hessian, gradient and loss of the eval-mode model by double
    backward, one row per parameter."""
    assert not model.training, "the reference is in eval mode, as losslab measures by default"
    assert not any(isinstance(m, nn.Dropout) and m.p > 0 for m in model.modules())
    theta = torch.cat([t.detach().reshape(-1) for _, t in _trainable(model)]).to(torch.float64)
    theta = theta.clone().requires_grad_(True)
    with _double_differentiable(), torch.enable_grad():
        L = _loss_of(entry, model, theta, X, y)
        (g,) = torch.autograd.grad(L, theta, create_graph=True)
        rows = []
        for i in range(theta.numel()):
            (r,) = torch.autograd.grad(g[i], theta, retain_graph=True, allow_unused=True)
            rows.append(torch.zeros_like(theta) if r is None else r)
    Hm = torch.stack(rows).detach()
    return Hm, g.detach(), float(L.detach()), theta.detach()


@functools.lru_cache(maxsize=None)
def _ref(name: str):
    """The zoo entry at seed 0 (float64, eval mode) with its exact Hessian and spectrum, computed
    once per entry (the transformer's 619 rows take a few seconds)."""
    entry = ZOO_BY_NAME[name]
    model = entry.model(0)
    X, y = tensors(entry)
    Hm, g, L, theta = reference(entry, model, X, y)
    assert float((Hm - Hm.T).abs().max()) <= 1e-12 * float(Hm.abs().max())  # symmetric to rounding
    Hm = (Hm + Hm.T) / 2
    return model, Hm, g, L, theta, torch.linalg.eigvalsh(Hm)


def _kw(entry) -> dict:
    return {"output": entry.output, "batch_keys": entry.batch_keys}


def _fingerprint(model: nn.Module):
    return ({k: v.detach().clone() for k, v in model.state_dict().items()}, model.training,
            [p.requires_grad for p in model.parameters()])


def _assert_unchanged(model: nn.Module, before) -> None:
    state, training, flags = before
    now = model.state_dict()
    assert now.keys() == state.keys()
    for k in state:
        assert torch.equal(now[k], state[k]), k
    assert model.training == training and [p.requires_grad for p in model.parameters()] == flags


SECOND_ORDER_ENTRY_POINTS = ("hessian_operator", "lambda_max", "lanczos", "hessian_trace", "slq", "epsilon_sharpness",
                             "train(sharpness_every)")


def test_no_zoo_entry_expects_an_error_from_a_second_order_entry_point():
    for name in ZOO_IDS:
        assert not set(ZOO_BY_NAME[name].expected_errors) & set(SECOND_ORDER_ENTRY_POINTS), name


# -- products ---------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["double_backward", "forward_over_reverse"])
@pytest.mark.parametrize("name", ZOO_IDS)
def test_hvps_match_the_exact_hessian(name, method):
    entry = ZOO_BY_NAME[name]
    model, Hm, g, L, theta, _ = _ref(name)
    before = _fingerprint(model)
    op = H.hessian_operator(model, entry.data(0), entry.loss, method=method, **_kw(entry))
    assert op.dtype == torch.float64 and op.size == theta.numel()
    assert list(op.spec.names) == [n for n, _ in _trainable(model)]  # frozen parameters left out
    torch.testing.assert_close(op.theta, theta, rtol=0, atol=0)
    scale = float(Hm.abs().max())
    gen = torch.Generator().manual_seed(0)
    V = torch.randn(op.size, 3, generator=gen, dtype=torch.float64)
    V = V / V.norm(dim=0)
    for j in range(3):
        torch.testing.assert_close(op.matvec(V[:, j]), Hm @ V[:, j], rtol=0, atol=HVP_RTOL * scale)
    torch.testing.assert_close(op.matmat(V), Hm @ V, rtol=0, atol=HVP_RTOL * scale)
    assert op.n_products == 6
    # the loss and gradient at the same point (the first-order pieces every estimator uses)
    assert op.loss_at() == pytest.approx(L, rel=1e-12)
    torch.testing.assert_close(op.gradient(), g, rtol=0, atol=HVP_RTOL * float(g.abs().max()))
    _assert_unchanged(model, before)


@pytest.mark.parametrize("name", [n for n in ZOO_IDS if n != "transformer"])  # (619 products: too slow here)
def test_dense_operator_is_the_exact_hessian(name):
    entry = ZOO_BY_NAME[name]
    model, Hm, *_ = _ref(name)
    dense = H.hessian_operator(model, entry.data(0), entry.loss, **_kw(entry)).dense()
    torch.testing.assert_close(dense, Hm, rtol=0, atol=HVP_RTOL * float(Hm.abs().max()))


def test_unused_parameter_has_zero_rows_and_the_tied_weight_counts_both_uses():
    """tied_frozen_unused: the never-used parameter's rows/columns are exactly zero, and the
    tied encoder weight's block is not that of the encoder use alone (both uses contribute)."""
    entry = ZOO_BY_NAME["tied_frozen_unused"]
    model, Hm, *_ = _ref("tied_frozen_unused")
    names = [n for n, _ in _trainable(model)]
    assert "frozen.weight" not in names and "unused" in names
    op = H.hessian_operator(model, entry.data(0), entry.loss)
    lo, hi = op.spec.offsets()["unused"]
    e = torch.zeros(op.size, dtype=torch.float64)
    e[lo] = 1.0
    assert float(op.matvec(e).abs().max()) == 0.0 and float(Hm[lo:hi].abs().max()) == 0.0


def test_batch_norm_is_measured_with_running_statistics_and_train_mode_on_request():
    """The default measurement is the eval-mode Hessian (running statistics), which differs from
    the train-mode (batch statistics) one on this entry by far more than rounding; train_mode=True
    gives the train-mode reference (built the same way, model copy in train mode, buffers cloned)."""
    entry = ZOO_BY_NAME["cnn_bn_residual"]
    model, Hm, *_ = _ref("cnn_bn_residual")
    X, y = tensors(entry)
    scale = float(Hm.abs().max())
    train_copy = copy.deepcopy(model).train()
    theta = torch.cat([t.detach().reshape(-1) for _, t in _trainable(train_copy)]).requires_grad_(True)
    with torch.enable_grad():
        (g,) = torch.autograd.grad(_loss_of(entry, train_copy, theta, X, y), theta, create_graph=True)
        Ht = torch.stack([torch.autograd.grad(g[i], theta, retain_graph=True)[0] for i in range(theta.numel())])
    assert float((Ht - Hm).abs().max()) > 1e-3 * scale  # the mode matters here: the test can tell them apart
    V = torch.randn(theta.numel(), 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    op_eval = H.hessian_operator(model, (X, y), entry.loss)
    op_train = H.hessian_operator(model, (X, y), entry.loss, train_mode=True)
    torch.testing.assert_close(op_eval.matmat(V), Hm @ V, rtol=0, atol=HVP_RTOL * scale * 10)
    torch.testing.assert_close(op_train.matmat(V), Ht @ V, rtol=0, atol=HVP_RTOL * scale * 10)
    assert not model.training


# -- extreme eigenvalues ------------------------------------------------------------------------
@pytest.mark.parametrize("name", ZOO_IDS)
def test_lambda_max_and_lanczos_top_and_bottom_match_eigvalsh(name):
    entry = ZOO_BY_NAME[name]
    model, Hm, _, _, _, ev = _ref(name)
    scale = float(ev.abs().max())
    with warnings.catch_warnings():
        warnings.simplefilter("error", H.ConvergenceWarning)  # each converges: no warning
        top = H.lambda_max(model, entry.data(0), entry.loss, tol=1e-10, seed=0, **_kw(entry))
        op = H.hessian_operator(model, entry.data(0), entry.loss, **_kw(entry))
        top3 = H.lanczos(op, 3, tol=1e-10, seed=1)
        bottom = H.lanczos(op, 1, which="smallest", tol=1e-10, seed=2)
    assert float(top.eigenvalues[0]) == pytest.approx(float(ev[-1]), abs=EIG_RTOL * scale)
    torch.testing.assert_close(top3.eigenvalues, ev[-3:].flip(0), rtol=0, atol=EIG_RTOL * scale)
    assert float(bottom.eigenvalues[0]) == pytest.approx(float(ev[0]), abs=EIG_RTOL * scale)
    # the stated residuals are the true ones ||H x - theta x|| (x: the returned unit Ritz vectors)
    for eig in (top, top3, bottom):
        assert eig.report.converged
        X = eig.eigenvectors
        torch.testing.assert_close(X.norm(dim=0), torch.ones(X.shape[1], dtype=torch.float64), rtol=0, atol=1e-10)
        true_res = (Hm @ X - X * eig.eigenvalues).norm(dim=0)
        torch.testing.assert_close(true_res, torch.tensor(eig.report.residuals, dtype=torch.float64), rtol=0,
                                   atol=1e-10 * scale)


# -- trace ----------------------------------------------------------------------------------
# entries where the deflated estimator at rtol 5 % does not reach its target within 300 remainder
# probes, and why: layernorm_gelu's Hessian is indefinite with tr H = -0.68 against ||H||_F ~ 1.9,
# so 5 % of |tr H| needs ~2400 probes after the 21 Lanczos steps its cost rule takes -- although
# all P = 87 steps would give the trace exactly (the rule weighs one step against one probe and
# never compares the planned probes with the P - k steps left; a finding, not fixed here)
TRACE_NOT_CONVERGED = {"layernorm_gelu"}

@pytest.mark.parametrize("name", ZOO_IDS)
def test_trace_estimates_are_within_their_stated_errors_of_the_exact_trace(name):
    entry = ZOO_BY_NAME[name]
    model, Hm, _, _, _, ev = _ref(name)
    exact = float(ev.sum())
    data, kw = entry.data(0), _kw(entry)
    n = 64
    # plain Hutchinson, a fixed number of Rademacher probes: the stated s.e. is honest
    h = H.hessian_trace(model, data, entry.loss, method="hutchinson", seed=0, rtol=0, min_samples=n, max_samples=n,
                        warn=False, **kw)
    true_se = math.sqrt(2 * (float((Hm ** 2).sum()) - float((Hm.diag() ** 2).sum())) / n)
    assert h.n_samples == n and h.n_products == n
    assert 0.5 * true_se <= h.stderr <= 2 * true_se, (h.stderr, true_se)
    assert abs(h.estimate - exact) <= N_SE * h.stderr, (h, exact)
    # the default (Krylov-deflated Hutchinson): converged, or a ConvergenceWarning says it is not
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        d = H.hessian_trace(model, data, entry.loss, seed=0, rtol=0.05, max_samples=300, **kw)
    warned = any(issubclass(x.category, H.ConvergenceWarning) for x in w)
    assert warned == (not d.converged)
    assert d.converged or name in TRACE_NOT_CONVERGED, d
    # + a rounding floor: on a small model (P = 87) the remainder is computed exactly (s.e. 0)
    assert abs(d.estimate - exact) <= N_SE * d.stderr + 1e-9 * abs(exact), (d, exact)
    # Hutch++
    hp = H.hessian_trace(model, data, entry.loss, method="hutchpp", seed=0, n_products=60, **kw)
    assert abs(hp.estimate - exact) <= N_SE * hp.stderr, (hp, exact)


# -- spectral density -------------------------------------------------------------------------
@pytest.mark.parametrize("name", ZOO_IDS)
def test_slq_ritz_values_are_located_by_their_residuals_and_its_moments_are_right(name):
    entry = ZOO_BY_NAME[name]
    model, Hm, _, _, _, ev = _ref(name)
    scale = float(ev.abs().max())
    op = H.hessian_operator(model, entry.data(0), entry.loss, **_kw(entry))
    sd = H.slq(op, n_probes=10, n_steps=20, seed=0)
    assert sd.dim == op.size and sd.n_products <= 10 * 20
    torch.testing.assert_close(sd.weights.sum(1), torch.ones(10, dtype=torch.float64), rtol=0, atol=1e-12)
    assert bool((sd.weights >= 0).all())
    for theta, r in sd._ritz():  # per probe: the steps actually run
        dist = (theta[:, None] - ev[None]).abs().min(1).values
        assert bool((dist <= r + 1e-10 * scale).all()), float((dist - r).max())
    assert float(sd.nodes.min()) >= float(ev[0]) - 1e-10 * scale  # interlacing: inside the spectrum
    assert float(sd.nodes.max()) <= float(ev[-1]) + 1e-10 * scale
    tr, se = sd.trace
    assert abs(tr - float(ev.sum())) <= N_SE * se, (tr, se, float(ev.sum()))
    tr2, se2 = sd.trace_f(lambda t: t ** 2)  # exact quadrature for degree < 2 n_steps: unbiased samples
    assert abs(tr2 - float((ev ** 2).sum())) <= N_SE * se2, (tr2, se2, float((ev ** 2).sum()))
    mass = float(torch.trapezoid(sd.density, sd.grid))
    assert mass == pytest.approx(1.0, abs=1e-3)


# -- epsilon-sharpness --------------------------------------------------------------------------
@pytest.mark.parametrize("name", ZOO_IDS)
def test_epsilon_sharpness_lies_between_a_box_corner_and_the_second_order_bound(name):
    """Keskar et al. (2017) Metric 2.1 in the full space (A = I) and in a random 5-dimensional
    subspace (A = the returned orthonormal basis): the box is |y_i| <= eps (|(A^T theta)_i| + 1).
    The corner y_c = sign(A^T g) * width is a point of the box; in a box this small (eps = 1e-3) the
    loss is nearly linear, so the maximum is at or near it: L-BFGS-B with the paper's 10 iterations
    (a lower bound of the maximum) must reach 99 % of the corner's rise (measured shortfall at most
    0.3 %, LSTM) and cannot pass the second-order upper bound."""
    entry = ZOO_BY_NAME[name]
    model, Hm, g, L, theta, ev = _ref(name)
    X, y = tensors(entry)
    eps = 1e-3
    before = _fingerprint(model)
    for subspace in (None, 5):
        r = H.epsilon_sharpness(model, entry.data(0), entry.loss, epsilon=eps, seed=0, subspace=subspace, **_kw(entry))
        _assert_unchanged(model, before)
        assert r.base_loss == pytest.approx(L, rel=1e-12)
        assert r.value == pytest.approx(100 * (r.max_loss - r.base_loss) / (1 + r.base_loss), rel=1e-12)
        if subspace is None:
            A = torch.eye(theta.numel(), dtype=torch.float64)
            assert r.basis is None and r.subspace is None
        else:
            A = r.basis
            assert r.subspace == 5 and A.shape == (theta.numel(), 5)
            torch.testing.assert_close(A.T @ A, torch.eye(5, dtype=torch.float64), rtol=0, atol=1e-12)
        width = eps * ((A.T @ theta).abs() + 1)
        gy = A.T @ g
        with torch.no_grad(), _double_differentiable():
            corner = float(_loss_of(entry, model, theta + A @ (torch.sign(gy) * width), X, y))
        lam = float(torch.linalg.eigvalsh(A.T @ Hm @ A)[-1])
        quad = 0.5 * max(lam, 0.0) * float(width @ width)
        upper = L + float(gy.abs() @ width) + quad
        assert corner > L  # the box holds points above the base loss: the value is informative
        assert L + 0.99 * (corner - L) <= r.max_loss <= upper + 1e-3 * quad + 1e-12, (subspace, corner, r.max_loss,
                                                                                       upper)


# -- tracking during training -------------------------------------------------------------------
def _hand_gd(entry, model, X, y, *, lr, steps, measure_every):
    """Full-batch gradient descent by torch.optim.SGD on a deep copy in train mode; before each
    update at a multiple of ``measure_every``, the exact lambda_max of the eval-mode copy."""
    m = copy.deepcopy(model).train()
    opt = torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=lr)
    lams = [float(_ref(entry.name)[-1][-1])]  # step 0: the entry itself (cached)
    for s in range(steps):
        if s % measure_every == 0 and s > 0:
            Hm, *_ = reference(entry, copy.deepcopy(m).eval(), X, y)
            lams.append(float(torch.linalg.eigvalsh((Hm + Hm.T) / 2)[-1]))
        opt.zero_grad()
        F.cross_entropy(_select(entry, m(X)), y).backward()
        opt.step()
    return m, lams


@pytest.mark.parametrize("name", ZOO_IDS)
def test_sharpness_tracking_during_training_matches_the_exact_hessian_of_a_hand_loop(name):
    entry = ZOO_BY_NAME[name]
    model = entry.model(0)
    X, y = tensors(entry)
    lr, steps, every = 0.5, 3, 2
    before = _fingerprint(model)
    traj = train(model, entry.data(0), loss=entry.loss, optimizer="gd", lr=lr, steps=steps, sharpness_every=every,
                 eval_every=steps, **_kw(entry))
    _assert_unchanged(model, before)
    ref_model, ref_lams = _hand_gd(entry, model, X, y, lr=lr, steps=steps, measure_every=every)
    assert traj.status == "completed"
    s, lam = traj.metrics["lambda_max"]
    np.testing.assert_array_equal(s, [0, 2])
    np.testing.assert_array_equal(traj.metrics["two_over_lr"][1], [2 / lr] * 2)
    for got, want in zip(lam, ref_lams):
        # the callback's Lanczos tol=1e-4 (relative to max|theta| ~ lambda_max here); never above
        assert want - 1e-4 * abs(want) <= got <= want + 1e-10 * abs(want), (got, want)
    # measuring changed nothing about the run: the same parameters and buffers as without it
    plain = train(model, entry.data(0), loss=entry.loss, optimizer="gd", lr=lr, steps=steps, eval_every=steps,
                  **_kw(entry))
    for (k, a), (_, b) in zip(traj.model.state_dict().items(), plain.model.state_dict().items()):
        assert torch.equal(a, b), k
    # and the run is the hand loop's (parameters and batch-norm running statistics)
    for (k, a), (_, b) in zip(traj.model.state_dict().items(), ref_model.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10, msg=k)


def test_a_model_in_train_mode_warns_once_on_the_hessian_side_and_the_mode_is_recorded():
    entry = ZOO_BY_NAME["cnn_bn_residual"]
    model, (X, y) = entry.model(0).train(), tensors(entry)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        op = H.hessian_operator(model, (X, y), "cross_entropy")
        H.lambda_max(model, (X, y), "cross_entropy", seed=0)
    mode_warnings = [x for x in w if "train mode" in str(x.message)]
    assert len(mode_warnings) == 2 and "bn1" in str(mode_warnings[0].message)  # one per call
    assert op.caller_mode == "train" and op.mode == "eval" and model.training  # the caller's mode untouched
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        op = H.hessian_operator(model, (X, y), "cross_entropy", train_mode=True)  # measured as it is: silent
        H.hessian_operator(model.eval(), (X, y), "cross_entropy")
    assert not [x for x in w if "train mode" in str(x.message)] and op.mode == "train"
