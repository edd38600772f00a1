"""The same computations on a CUDA device as on the CPU (skipped cleanly where torch sees no GPU).

CI has no GPU; these run on a machine with one (`pytest tests/test_cuda.py`). Every check compares
the CUDA result with the CPU path or with an exact answer computed on the CPU in float64.
"""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from test_landscape import small_cnn

from losslab import train
from losslab.data import load
from losslab.hessian import exact_spectrum, hessian_operator, hessian_trace, lambda_max, lanczos
from losslab.landscape import random_directions, surface
from losslab.models import build
from losslab.params import module_fingerprint, same_fingerprint
from losslab.rng import seeded

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (torch.cuda.is_available() is False)")

# float32 on both devices, TF32 off (losslab's default precision "fp32"): the two differ only by
# summation order over a few hundred examples, ~1e-7 per op; 1e-5 relative is the contract.
RTOL32 = 1e-5


@pytest.fixture(scope="module")
def digits():
    sp = load("digits", seed=0)
    return sp.train.X[:400], sp.train.y[:400]


def _mlp(seed=0):
    return build("mlp", in_dim=64, hidden=[32], out_dim=10, activation="tanh", seed=seed)


_cnn_bn = small_cnn  # the CNN with batch norm of the CPU surface tests


@pytest.mark.parametrize("affine", [True, False])
def test_mlp_surface_cuda_equals_cpu(digits, affine):
    X, y = digits
    m = _mlp()
    cpu = surface(m, (X, y), loss="cross_entropy", resolution=7, affine=affine)
    m_gpu = copy.deepcopy(m).cuda()
    fp = module_fingerprint(m_gpu)
    gpu = surface(m_gpu, (X.cuda(), y.cuda()), loss="cross_entropy", resolution=7, affine=affine)
    assert same_fingerprint(fp, module_fingerprint(m_gpu))
    assert next(m_gpu.parameters()).is_cuda  # the caller's model stays where it was
    np.testing.assert_allclose(gpu.loss, cpu.loss, rtol=RTOL32)
    np.testing.assert_allclose(gpu.accuracy, cpu.accuracy, atol=1e-6)  # counts / 400


def test_cnn_batchnorm_surface_cuda_equals_cpu():
    torch.manual_seed(2)
    X, y = torch.randn(40, 1, 8, 8), torch.randint(0, 10, (40,))
    net = _cnn_bn()
    for bn in ("eval", "recompute"):
        cpu = surface(net, (X, y), loss="cross_entropy", resolution=4, span=0.5, bn=bn)
        gpu = surface(copy.deepcopy(net).cuda(), (X.cuda(), y.cuda()), loss="cross_entropy", resolution=4,
                      span=0.5, bn=bn)
        np.testing.assert_allclose(gpu.loss, cpu.loss, rtol=RTOL32)


def test_cpu_model_evaluated_on_cuda_by_option(digits):
    """device='cuda' on a CPU model: the directions are the CPU ones (same seed), the grid runs on the GPU."""
    X, y = digits
    m = _mlp(1)
    fp = module_fingerprint(m)
    cpu = surface(m, (X, y), loss="cross_entropy", resolution=5)
    gpu = surface(m, (X, y), loss="cross_entropy", resolution=5, device="cuda")
    assert same_fingerprint(fp, module_fingerprint(m))
    np.testing.assert_allclose(gpu.loss, cpu.loss, rtol=RTOL32)


def test_tf32_and_bf16_errors_are_measured_on_cuda(digits):
    X, y = digits
    m = _mlp(2).cuda()
    ref = surface(m, (X.cuda(), y.cuda()), loss="cross_entropy", resolution=5)
    switches = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    for precision, bound in (("tf32", 1e-2), ("bf16", 5e-2)):  # 10-bit / 8-bit mantissas, a 64-wide inner product
        s = surface(m, (X.cuda(), y.cuda()), loss="cross_entropy", resolution=5, precision=precision)
        measured = s.info["precision_max_rel_error"]
        actual = float(np.max(np.abs(s.loss - ref.loss) / np.abs(ref.loss)))
        assert 0 <= measured < bound and actual < bound, (precision, measured, actual)
    # the global TF32 switches are restored after the call
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == switches


def test_lanczos_on_cuda_equals_exact_spectrum(digits):
    X, y = digits[0][:200], digits[1][:200]
    m = build("mlp", in_dim=64, hidden=[6], out_dim=10, activation="tanh", seed=3)
    exact = exact_spectrum(m, (X, y), "cross_entropy", dtype=torch.float64).eigenvalues
    top = exact.sort(descending=True).values[:5]
    m64 = copy.deepcopy(m).to(device="cuda", dtype=torch.float64)
    op = hessian_operator(m64, (X.cuda().double(), y.cuda()), "cross_entropy")
    assert op.device.type == "cuda"
    got = lanczos(op, 5, which="largest", tol=1e-10, seed=0)
    # float64 on both sides; 1e-8 relative as for the quadratic with a chosen spectrum
    torch.testing.assert_close(got.eigenvalues.cpu(), top.cpu().to(got.eigenvalues.dtype), rtol=1e-8, atol=1e-10)
    # float32 on the GPU: the 1e-4 relative for top eigenvalues
    lm = lambda_max(copy.deepcopy(m).cuda(), (X.cuda(), y.cuda()), "cross_entropy", tol=1e-6, seed=0)
    assert abs(float(lm.eigenvalues[0]) - float(top[0])) <= 1e-4 * abs(float(top[0]))


def test_hutchinson_trace_on_cuda_is_seeded_and_within_its_error(digits):
    X, y = digits[0][:200], digits[1][:200]
    m = build("mlp", in_dim=64, hidden=[6], out_dim=10, activation="tanh", seed=4)
    exact = float(exact_spectrum(m, (X, y), "cross_entropy", dtype=torch.float64).eigenvalues.sum())
    mg = copy.deepcopy(m).cuda().double()
    a = hessian_trace(mg, (X.cuda().double(), y.cuda()), "cross_entropy", seed=7, rtol=5e-2)
    b = hessian_trace(mg, (X.cuda().double(), y.cuda()), "cross_entropy", seed=7, rtol=5e-2)
    assert a.estimate == b.estimate  # same seed, same probes, same result
    assert abs(a.estimate - exact) <= 4 * a.stderr + 1e-9  # 4 standard errors: a 6e-5 two-sided miss rate


def test_training_on_cuda_is_reproducible_and_leaves_model_alone():
    sp = load("moons", seed=0)
    m = build("mlp", in_dim=2, hidden=[16], out_dim=2, activation="tanh", seed=0)
    fp = module_fingerprint(m)
    kw = dict(loss="cross_entropy", optimizer="sgd", lr=0.1, steps=50, seed=0, device="cuda")
    t1, t2 = train(m, sp, **kw), train(m, sp, **kw)
    assert same_fingerprint(fp, module_fingerprint(m)) and not next(m.parameters()).is_cuda
    np.testing.assert_array_equal(t1.train_loss, t2.train_loss)
    cpu = train(m, sp, **{**kw, "device": None})
    # same start and data; float32 GEMMs differ in summation order between devices: a few ulps
    # per step, amplified mildly over 50 steps of a smooth loss
    np.testing.assert_allclose(t1.train_loss, cpu.train_loss, rtol=1e-4)


def test_seeded_restores_cuda_rng():
    torch.cuda.manual_seed_all(123)
    expected = torch.rand(3, device="cuda")
    torch.cuda.manual_seed_all(123)
    with seeded(0):
        torch.rand(5, device="cuda")
    after = torch.rand(3, device="cuda")
    torch.testing.assert_close(after, expected, rtol=0, atol=0)


def test_directions_drawn_identically_for_cpu_and_cuda_models():
    m = _mlp(5)
    a = random_directions(m, kind="filter", k=2, seed=9)
    b = random_directions(copy.deepcopy(m).cuda(), kind="filter", k=2, seed=9)
    torch.testing.assert_close(b.vectors.cpu(), a.vectors, rtol=1e-6, atol=1e-7)
