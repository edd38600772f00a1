"""Sharpness measures of a model at its current parameters (the model is never mutated).

- ``lambda_max``: the top Hessian eigenvalue (Lanczos, :func:`losslab.hessian.lanczos`).
- ``trace``: tr H with a standard error (Krylov-deflated Hutchinson, :func:`losslab.hessian.deflated_hutchinson`).
- ``epsilon_sharpness``: Keskar, Mudigere, Nocedal, Smelyanskiy & Tang (2017), Metric 2.1, with
  A = I (the full parameter space):

      C_eps = { z in R^P : |z_i| <= eps (|theta_i| + 1) }
      phi(theta, eps) = 100 * (max_{z in C_eps} L(theta + z) - L(theta)) / (1 + L(theta))

  The inner maximization is box-constrained; as in the paper it is solved approximately with
  L-BFGS-B (scipy), started from a seeded random point of the box (the gradient vanishes at a
  minimum, so a start at z = 0 would not move). ``maxiter`` defaults to 10 (the paper's
  budget); the result is a lower bound of the true maximum.
- ``loss_rise``: the mean rise L(theta + r d) - L(theta) over random filter-normalized
  directions d (Li, Xu, Taylor, Studer & Goldstein 2018, sec. 4): d ~ N(0, I) and, for each
  tensor with ndim > 1 and each slice i along dim 0 (a filter / output neuron),
  d_i <- d_i ||theta_i|| / (||d_i|| + 1e-10); 1-D tensors (biases, norm layers) get d = 0
  unless ``include_1d`` (then they are normalized as one filter). So r = 1 moves every filter
  by its own norm. Reported with its standard error over directions.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..losses import Loss
from ..registry import Registry
from .lanczos import Eigen, _generator, lanczos
from .operator import BlockSpec, HessianOperator, NonFiniteError, check_int, check_positive, check_seed, hessian_operator
from .trace import TraceEstimate, deflated_hutchinson, hutchinson, hutchpp


def _op(model, data, loss, *, block=None, batch_size=None, dtype=None, method="double_backward", output=None,
        batch_keys=None) -> HessianOperator:
    return hessian_operator(model, data, loss, block=block, batch_size=batch_size, dtype=dtype, method=method,
                            output=output, batch_keys=batch_keys)


def _base_loss(op: HessianOperator) -> float:
    """The loss at the operator's point, which must be finite (parameters and data are)."""
    base = op.loss_at()
    if not math.isfinite(base):
        raise NonFiniteError(f"the loss at the model's parameters is {base} (not finite) although parameters and data "
                             "are finite; sharpness is undefined there (a diverged model?): use finite, trained "
                             "parameters")
    return base


def lambda_max(model: nn.Module, data, loss: str | Loss, *, tol: float = 1e-6, max_iter: int | None = None,
               seed: int | torch.Generator = 0, block: BlockSpec = None, batch_size: int | None = None,
               dtype: torch.dtype | None = None, method: str = "double_backward",
               v0: torch.Tensor | None = None, output=None, batch_keys=None) -> Eigen:
    """The top Hessian eigenvalue and eigenvector by Lanczos (see :func:`lanczos` for ``tol``).
    ``output``/``batch_keys``: see :func:`hessian_operator`."""
    check_seed(seed)
    check_positive("tol", tol)
    op = _op(model, data, loss, block=block, batch_size=batch_size, dtype=dtype, method=method, output=output,
             batch_keys=batch_keys)
    return lanczos(op, 1, which="largest", tol=tol, max_iter=max_iter, seed=seed, v0=v0)


TRACE_METHODS: Registry = Registry("trace method")
TRACE_METHODS.register("deflated_hutchinson", deflated_hutchinson)
TRACE_METHODS.register("hutchinson", hutchinson)
TRACE_METHODS.register("hutchpp", hutchpp)


def hessian_trace(model: nn.Module, data, loss: str | Loss, *, method: str = "deflated_hutchinson",
                  seed: int | torch.Generator = 0, block: BlockSpec = None, batch_size: int | None = None,
                  dtype: torch.dtype | None = None, output=None, batch_keys=None, **options) -> TraceEstimate:
    """tr H by ``deflated_hutchinson`` (the default: Lanczos deflation of the top of the spectrum plus
    Hutchinson on the remainder; options rtol, atol, min_samples, max_samples, max_rank), ``hutchinson``
    (options rtol, atol, min_samples, max_samples) or ``hutchpp`` (option n_products). See
    :mod:`losslab.hessian.trace`; the digits MLP 64-32-10 reaches a stated 1 % in ~66 products with
    the default vs ~1000 with plain Hutchinson (benchmarks/RESULTS.md). ``output``/``batch_keys``: see
    :func:`hessian_operator`."""
    from ..registry import call_with_options

    fn = TRACE_METHODS.get(method)
    check_seed(seed)
    op = _op(model, data, loss, block=block, batch_size=batch_size, dtype=dtype, output=output, batch_keys=batch_keys)
    import functools

    return call_with_options("trace method", method, functools.partial(fn, op, seed=seed), options)


@dataclass(frozen=True)
class EpsilonSharpness:
    """Keskar et al. (2017) Metric 2.1: 100 (max_{y in C_eps} L(theta + A y) - L) / (1 + L); ``subspace``
    None means A = I (the full space), else the number p of columns of the random A (``basis``)."""

    value: float
    epsilon: float
    base_loss: float
    max_loss: float
    n_evaluations: int
    maxiter: int
    subspace: int | None = None
    basis: torch.Tensor | None = None  # (P, p) orthonormal columns, or None for A = I


def epsilon_sharpness(model: nn.Module, data, loss: str | Loss, *, epsilon: float = 1e-3, maxiter: int = 10,
                      seed: int | torch.Generator = 0, subspace: int | None = None, block: BlockSpec = None,
                      batch_size: int | None = None, dtype: torch.dtype | None = torch.float64, output=None,
                      batch_keys=None) -> EpsilonSharpness:
    """epsilon-sharpness (Keskar et al. 2017, Metric 2.1), maximized by L-BFGS-B over the box
    C_eps = {y : |y_i| <= eps (|(A^+ theta)_i| + 1)} of phi = 100 (max L(theta + A y) - L(theta)) / (1 + L(theta)).

    ``subspace=None``: A = I (the full space, y = z). ``subspace=p``: A is a random P x p matrix
    (Keskar et al. also report this variant), drawn from ``seed`` as the Q factor of a Gaussian
    matrix, so its columns are orthonormal and A^+ = A^T (the maximization then runs in p dimensions).
    ``output``/``batch_keys``: see :func:`hessian_operator`.
    """
    from scipy.optimize import minimize
    from torch.func import grad_and_value

    epsilon = check_positive("epsilon", epsilon)
    maxiter = check_int("maxiter", maxiter)
    check_seed(seed)
    op = _op(model, data, loss, block=block, batch_size=batch_size, dtype=dtype, output=output, batch_keys=batch_keys)
    theta = op.theta
    base = _base_loss(op)
    gen = _generator(seed)
    A = None
    if subspace is not None:
        p_dim = check_int("subspace", subspace)
        if p_dim > op.size:
            raise ValueError(f"subspace must be at most the number of parameters ({op.size}), got {p_dim}")
        A, _ = torch.linalg.qr(torch.randn(op.size, p_dim, generator=gen, dtype=torch.float64))
        A64 = A
        A = A.to(dtype=op.dtype, device=op.device)
        coords = (A64.T @ theta.detach().to("cpu", torch.float64))  # A^+ theta with A^+ = A^T
    else:
        coords = theta.detach().to("cpu", torch.float64)
    width = (epsilon * (coords.abs() + 1)).numpy().astype(np.float64)  # box half-widths
    z0 = ((torch.rand(len(width), generator=gen, dtype=torch.float64) * 2 - 1).numpy()) * width
    count = [0]

    def negf(z: np.ndarray):
        count[0] += 1
        zt = torch.as_tensor(z, dtype=op.dtype, device=op.device)
        t = theta + (zt if A is None else A @ zt)
        p = op.spec.unflatten(t)
        val, g = 0.0, torch.zeros_like(t)
        for X, y in op._batches:
            gb, vb = grad_and_value(lambda q: op._batch_loss(q, X, y))(p)
            val += float(vb)
            g += op.spec.flatten(gb)
        if A is not None:
            g = A.T @ g  # chain rule: d/dy L(theta + A y) = A^T grad L
        return -val, -g.detach().cpu().numpy().astype(np.float64)

    res = minimize(negf, z0, jac=True, method="L-BFGS-B", bounds=list(zip(-width, width)),
                   options={"maxiter": int(maxiter)})
    max_loss = max(-float(res.fun), base)
    return EpsilonSharpness(100.0 * (max_loss - base) / (1.0 + base), float(epsilon), base, max_loss, count[0],
                            int(maxiter), None if A is None else int(A.shape[1]),
                            None if A is None else A.detach().cpu().to(torch.float64))


@dataclass(frozen=True)
class LossRise:
    """Mean loss rise at each radius along random filter-normalized directions."""

    radii: tuple[float, ...]
    mean: tuple[float, ...]  # (R,)
    stderr: tuple[float, ...]  # (R,)
    rises: torch.Tensor  # (n_directions, R)
    base_loss: float


def loss_rise(model: nn.Module, data, loss: str | Loss, *, radius: float | list[float] = 0.1,
              n_directions: int = 20, seed: int | torch.Generator = 0, include_1d: bool = False,
              block: BlockSpec = None, batch_size: int | None = None,
              dtype: torch.dtype | None = None, output=None, batch_keys=None) -> LossRise:
    """Mean of L(theta + r d) - L(theta) over ``n_directions`` filter-normalized directions d.
    ``output``/``batch_keys``: see :func:`hessian_operator`."""
    radii = [float(radius)] if isinstance(radius, (int, float)) else [float(r) for r in radius]
    if not radii:
        raise ValueError("radius must be a number or a non-empty list of numbers")
    if not all(math.isfinite(r) for r in radii):
        raise ValueError(f"radius must be finite, got {radii}")
    n_directions = check_int("n_directions", n_directions)
    check_seed(seed)
    op = _op(model, data, loss, block=block, batch_size=batch_size, dtype=dtype, output=output, batch_keys=batch_keys)
    gen = _generator(seed)
    base = _base_loss(op)
    theta = op.theta
    from ..landscape.directions import filter_normalized  # Li et al. 2018 (definition in DESIGN.md)

    rises = torch.zeros(n_directions, len(radii), dtype=torch.float64)
    for i in range(n_directions):
        d = op.spec.flatten(filter_normalized(op.params, gen, include_biases=include_1d))
        for j, r in enumerate(radii):
            rises[i, j] = op.loss_at(theta + r * d) - base
    mean = rises.mean(0)
    se = rises.std(0, unbiased=True) / math.sqrt(n_directions) if n_directions > 1 else torch.full_like(mean, math.nan)
    return LossRise(tuple(radii), tuple(mean.tolist()), tuple(se.tolist()), rises, base)
