"""Hostile inputs to the curvature functions: NaN/inf in data, parameters or products, models
forward-mode autodiff cannot handle, and bad numeric arguments and seeds -- each gets a clear
error (or an honest convergence report), never a numpy/torch traceback or a silent NaN."""
from __future__ import annotations

import math
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import losslab.hessian as H


def _data(n=40):
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 5, generator=g), torch.randint(0, 3, (n,), generator=g)


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 3))


class _Sqrt(nn.Module):
    """Finite parameters and data, but the loss is NaN (sqrt of negative pre-activations)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.l = nn.Linear(5, 3)

    def forward(self, x):
        return torch.sqrt(self.l(x))


class _LSTM(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.l = nn.LSTM(4, 3, batch_first=True)
        self.o = nn.Linear(3, 3)

    def forward(self, x):
        h, _ = self.l(x)
        return self.o(h[:, -1])


# -- finding 1: NaN ------------------------------------------------------------------------------
def test_nan_in_a_later_loader_batch_is_named():
    X, y = _data()
    X[25, 1] = float("nan")  # batch 2 of a loader with batch_size 10: check_model_data sees only batch 0
    loader = DataLoader(TensorDataset(X, y), batch_size=10)
    with pytest.raises(ValueError, match="data batch 2: the inputs X contain NaN"):
        H.lambda_max(_mlp(), loader, "cross_entropy")
    with pytest.raises(ValueError, match="data batch 2"):
        H.hessian_trace(_mlp(), loader, "cross_entropy")


def test_nan_parameter_and_buffer_are_rejected():
    X, y = _data()
    m = _mlp()
    with torch.no_grad():
        m[0].weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"parameter\(s\) 0.weight contain NaN"):
        H.lambda_max(m, (X, y), "cross_entropy")
    bn = nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(4), nn.Linear(4, 3)).eval()
    bn[1].running_var[0] = float("inf")
    with pytest.raises(ValueError, match=r"buffer\(s\) 1.running_var contain NaN or inf"):
        H.hessian_operator(bn, (X, y), "cross_entropy")
    # float64 -> float32 overflow is caught too (the operator computes in dtype)
    m64 = _mlp().double()
    with torch.no_grad():
        m64[0].bias[0] = 1e300
    with pytest.raises(ValueError, match="NaN or inf"):
        H.hessian_operator(m64, (X, y), "cross_entropy", dtype=torch.float32)


@pytest.mark.parametrize("run", [
    lambda op: H.lanczos(op, 1),
    lambda op: H.power_iteration(op, 1),
    lambda op: H.hutchinson(op),
    lambda op: H.hutchpp(op),
    lambda op: H.slq(op, n_probes=2, n_steps=5),
], ids=["lanczos", "power", "hutchinson", "hutchpp", "slq"])
def test_nonfinite_product_stops_at_once(run):
    X, y = _data()
    op = H.hessian_operator(_Sqrt(), (X, y), "cross_entropy")
    with pytest.raises(ValueError, match="Hessian-vector product is not finite .* the loss \\(nan\\)"):
        run(op)
    assert op.n_products <= 10  # stopped at the first product (hutchpp: its first sketch block), not 1000 probes


def test_nonfinite_product_forward_mode_ggn_and_exact():
    X, y = _data()
    m = _Sqrt()
    with pytest.raises(ValueError, match="Hessian-vector product is not finite"):
        H.lanczos(H.hessian_operator(m, (X, y), "cross_entropy", method="forward_over_reverse"), 1)
    with pytest.raises(ValueError, match="Gauss-Newton-vector product is not finite"):
        H.lanczos(H.ggn_operator(m, (X, y), "cross_entropy"), 1)
    with pytest.raises(ValueError, match="exact hessian is not finite"):
        H.exact_spectrum(m, (X, y), "cross_entropy")
    with pytest.raises(ValueError, match="loss at the model's parameters is nan"):
        H.epsilon_sharpness(m, (X, y), "cross_entropy")
    with pytest.raises(ValueError, match="loss at the model's parameters is nan"):
        H.loss_rise(m, (X, y), "cross_entropy")


def test_nonfinite_generic_operator():
    A = torch.full((6, 6), float("nan"), dtype=torch.float64)
    for run in (lambda: H.lanczos(A, 1), lambda: H.power_iteration(A, 1), lambda: H.hutchinson(A),
                lambda: H.slq(A, n_probes=2, n_steps=3)):
        with pytest.raises(ValueError, match="not finite"):
            run()
    op = H.hessian_operator(_mlp(), _data(), "cross_entropy")
    v = torch.zeros(op.size)
    v[0] = float("nan")
    with pytest.raises(ValueError, match="vector v contains NaN"):
        op.matvec(v)


# -- finding 2 and 4: bad numeric arguments ----------------------------------------------------
def test_power_iteration_validates_max_iter_and_tol():
    A = torch.diag(torch.arange(1.0, 6.0, dtype=torch.float64))
    with pytest.raises(ValueError, match="max_iter must be >= 1"):
        H.power_iteration(A, 1, max_iter=0)
    with pytest.raises(TypeError, match="max_iter must be an integer"):
        H.power_iteration(A, 1, max_iter=2.5)
    for tol in (-1, 0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="tol must be > 0 and finite"):
            H.power_iteration(A, 1, tol=tol)
    e = H.power_iteration(A, 1, tol=1e-10, max_iter=500)
    assert e.converged and abs(float(e.eigenvalues[0]) - 5.0) < 1e-6


def test_lanczos_and_sharpness_reject_nan_tolerances():
    A = torch.diag(torch.arange(1.0, 6.0, dtype=torch.float64))
    for tol in (float("nan"), float("inf"), -1.0):
        with pytest.raises(ValueError, match="tol must be > 0 and finite"):
            H.lanczos(A, 1, tol=tol)
    with pytest.raises(TypeError, match="max_iter must be an integer"):
        H.lanczos(A, 1, max_iter=3.5)
    X, y = _data()
    with pytest.raises(ValueError, match="epsilon must be > 0 and finite"):
        H.epsilon_sharpness(_mlp(), (X, y), "cross_entropy", epsilon=float("nan"))
    with pytest.raises(ValueError, match="rtol must be >= 0 and finite"):
        H.hutchinson(A, rtol=float("nan"))
    with pytest.raises(ValueError, match="block must be >= 1"):
        H.hutchinson(A, block=0)
    with pytest.raises(ValueError, match="sigma must be > 0 and finite"):
        H.slq(A, n_probes=2, n_steps=3, sigma=float("nan"))
    with pytest.raises(ValueError, match="radius must be finite"):
        H.loss_rise(_mlp(), (X, y), "cross_entropy", radius=[0.1, float("nan")])
    with pytest.raises(ValueError, match="tol must be > 0 and finite"):
        H.sharpness_callback(every=1, data=(X, y), loss="cross_entropy", lr=0.1, tol=float("nan"))


@pytest.mark.parametrize("seed", [None, 1.5, True, "1"])
def test_bad_seeds_rejected_everywhere(seed):
    A = torch.diag(torch.arange(1.0, 7.0, dtype=torch.float64))
    X, y = _data()
    m = _mlp()
    calls = [lambda: H.lanczos(A, 1, seed=seed), lambda: H.power_iteration(A, 1, seed=seed),
             lambda: H.hutchinson(A, seed=seed), lambda: H.hutchpp(A, seed=seed),
             lambda: H.slq(A, n_probes=2, n_steps=3, seed=seed),
             lambda: H.lambda_max(m, (X, y), "cross_entropy", seed=seed),
             lambda: H.hessian_trace(m, (X, y), "cross_entropy", seed=seed),
             lambda: H.epsilon_sharpness(m, (X, y), "cross_entropy", seed=seed),
             lambda: H.loss_rise(m, (X, y), "cross_entropy", seed=seed),
             lambda: H.sharpness_callback(every=1, data=(X, y), loss="cross_entropy", lr=0.1, seed=seed)]
    for call in calls:
        with pytest.raises(TypeError, match="seed must be an int"):
            call()


def test_good_seeds_int_numpy_int_generator_agree():
    A = torch.randn(8, 8, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    A = A + A.T
    a = H.hutchinson(A, seed=7, max_samples=12, warn=False).estimate
    b = H.hutchinson(A, seed=np.int64(7), max_samples=12, warn=False).estimate
    c = H.hutchinson(A, seed=torch.Generator().manual_seed(7), max_samples=12, warn=False).estimate
    d = H.hutchinson(A, seed=8, max_samples=12, warn=False).estimate
    assert a == b == c and a != d


# -- finding 3: models forward-mode cannot handle; torch's own deprecation noise -------------------
def test_lstm_forward_over_reverse_and_ggn_work():
    # (#15) float32 LSTMs on CPU run oneDNN's mkldnn_rnn_layer, which has no forward-mode rule;
    # losslab.kernels.second_order turns oneDNN off for RNN models, so forward-over-reverse, its
    # vmapped matmat and the GGN work and agree with double backward (float32: tolerance 1e-4 of
    # the product's norm, a few hundred float32 rounding steps)
    m = _LSTM()
    X = torch.randn(6, 4, 4, generator=torch.Generator().manual_seed(0))
    y = torch.randint(0, 3, (6,), generator=torch.Generator().manual_seed(1))
    fwd = H.hessian_operator(m, (X, y), "cross_entropy", method="forward_over_reverse")
    rev = H.hessian_operator(m, (X, y), "cross_entropy")
    V = torch.randn(fwd.size, 3, generator=torch.Generator().manual_seed(2))
    ref = rev.matmat(V)
    assert torch.allclose(fwd.matmat(V), ref, atol=1e-4 * float(ref.norm()))
    assert torch.allclose(fwd.matvec(V[:, 0]), ref[:, 0], atol=1e-4 * float(ref.norm()))
    g = H.ggn_operator(m, (X, y), "cross_entropy").matvec(V[:, 0])
    assert float(V[:, 0] @ g) >= -1e-5 * float(g.norm())  # PSD for cross-entropy
    assert torch.backends.mkldnn.enabled  # the caller's setting is back


def test_forward_over_reverse_emits_no_torch_jit_deprecation_warnings():
    # a fresh process: torch warns only the first time its forward-mode decompositions load
    code = ("import warnings, torch\n"
            "from torch import nn\n"
            "import losslab.hessian as H\n"
            "warnings.simplefilter('error', DeprecationWarning)\n"
            "torch.manual_seed(0)\n"
            "m = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))\n"
            "X, y = torch.randn(10, 3), torch.randint(0, 2, (10,))\n"
            "H.ggn_operator(m, (X, y), 'cross_entropy').matvec(torch.ones(26))\n"
            "H.hessian_operator(m, (X, y), 'cross_entropy', method='forward_over_reverse').matvec(torch.ones(26))\n"
            "print('clean')\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "clean" in r.stdout, r.stderr[-2000:]


# -- finding 5: the non-convergence message states the real reason ---------------------------------
def test_lanczos_one_step_message_says_too_few_steps():
    A = torch.diag(torch.arange(1.0, 21.0, dtype=torch.float64))
    with pytest.warns(H.ConvergenceWarning, match="too few to test convergence"):
        e = H.lanczos(A, 1, max_iter=1)
    assert not e.converged and "max_iter=1 reached" in e.report.message
    assert "0.00e+00" not in e.report.message
    assert e.report.error_bounds[0] > 0  # one Ritz value: no gap estimate, the bound is the residual


def test_lanczos_budget_message_names_bounds_and_converged_path_still_works():
    A = torch.diag(torch.linspace(1.0, 2.0, 200, dtype=torch.float64))  # clustered top: slow convergence
    with pytest.warns(H.ConvergenceWarning, match="max_iter=4 reached after 4 Lanczos steps with error bounds"):
        e = H.lanczos(A, 1, max_iter=4, tol=1e-12)
    assert not e.converged
    with warnings.catch_warnings():
        warnings.simplefilter("error", H.ConvergenceWarning)
        ok = H.lanczos(torch.diag(torch.arange(1.0, 31.0, dtype=torch.float64)), 2, tol=1e-8)
    assert ok.converged and ok.report.message == "converged"
    assert torch.allclose(ok.eigenvalues, torch.tensor([30.0, 29.0], dtype=torch.float64), atol=1e-6)


# -- finding 6: batch_size ---------------------------------------------------------------------------
def test_batch_size_validated():
    X, y = _data()
    for bs in (0, -3):
        with pytest.raises(ValueError, match="batch_size must be >= 1"):
            H.hessian_operator(_mlp(), (X, y), "cross_entropy", batch_size=bs)
    for bs in (2.5, True, "8"):
        with pytest.raises(TypeError, match="batch_size must be an integer"):
            H.hessian_operator(_mlp(), (X, y), "cross_entropy", batch_size=bs)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        H.lambda_max(_mlp(), (X, y), "cross_entropy", batch_size=0)
    a = H.hessian_operator(_mlp(), (X, y), "cross_entropy", batch_size=np.int64(7)).matvec(torch.ones(39))
    b = H.hessian_operator(_mlp(), (X, y), "cross_entropy").matvec(torch.ones(39))
    assert torch.allclose(a, b, atol=1e-6) and math.isfinite(float(a.sum()))
