"""Spectral density by stochastic Lanczos quadrature (SLQ).

Ubaru, Chen & Saad (2017), "Fast estimation of tr(f(A)) via stochastic Lanczos quadrature",
eq. (11); Ghorbani, Krishnan & Xiao (2019) for neural-network Hessians. For n_v random unit
probes v_l (normalized Rademacher) and m Lanczos steps from each, with T_m = Y diag(theta) Y^T:

    nodes  theta_j^(l),   weights  tau_j^(l) = (e_1^T y_j^(l))^2   (each probe's weights sum to 1)

    tr f(H) ~ (P / n_v) sum_l sum_j tau_j^(l) f(theta_j^(l))

The spectral measure is phi(t) = (1/P) sum_i delta(t - lambda_i) ~ (1/n_v) sum_l sum_j tau delta(t - theta);
the smoothed density replaces each delta by a Gaussian of width ``sigma`` and integrates to 1
over the real line (multiply by P for eigenvalue counts). The count of eigenvalues in [a, b)
is tr 1_[a,b)(H). Each per-probe value is an unbiased-in-the-limit sample, so the standard
error is the sample standard deviation over probes / sqrt(n_v); it does not include the
quadrature error, which vanishes for f a polynomial of degree < 2m and is small for f smooth on
the spectrum, but not for the step functions of ``count`` and ``index``.

The index, two numbers (they answer different questions):

- ``index()``: the SLQ *estimate* P x (quadrature mass below -threshold), with its s.e. over
  probes. It is a mass, not a count of found eigenvalues: each probe spreads its weight over
  its m Ritz values, and a step function is the worst case for Gauss quadrature (bias up to
  about P / m per probe near a crowded zero), so read e.g. "340.1 +- 8.5" as about 340.
- ``resolved_index()``: the number of Ritz values of one probe's T_m below -threshold, the
  largest over probes. With T_m = Q^T H Q (full reorthogonalization) Cauchy interlacing gives
  lambda_i(H) <= theta_i(T_m) for the i-th smallest, so this is a guaranteed *lower bound* on
  the number of eigenvalues below -threshold (up to rounding); ``converged`` counts only those
  whose interval theta +- r (r = beta_m |e_m^T y|, GVL eq. 10.1.8) lies below -threshold.

The trace: the linear f of tr H is integrated exactly by the quadrature, so the per-probe
estimate is plain Hutchinson with n_v samples -- too few for an honest standard error when a few
large eigenvalues dominate (a skewed sample: measured coverage of +- 2 s.e. 81-86 % with 10
probes). ``trace`` therefore deflates: the first probe's Krylov basis Q_1 gives
tr(Q_1^T H Q_1) = sum alpha^(1) exactly, and each other probe v_l a Hutchinson sample of the
remainder, (P v_l)^T H (P v_l) with P = I - Q_1 Q_1^T, computed from H v_l = ||v_l|| (alpha_1 q_1
+ beta_1 q_2) of its own Lanczos run without any further product (Meyer et al. 2021's Hutch++
identity; see :mod:`losslab.hessian.trace`). Its s.e. is over the n_v - 1 remainder samples.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from .lanczos import _generator, _not_finite, _tridiag, lanczos_iterate
from .operator import as_operator, check_int, check_positive
from .trace import probes


@dataclass(frozen=True)
class SpectralDensity:
    """SLQ nodes and weights (n_v, m) plus a smoothed density on a grid."""

    nodes: torch.Tensor  # (n_v, m), float64
    weights: torch.Tensor  # (n_v, m), rows sum to 1 (zero-padded after an early breakdown)
    dim: int  # P, the operator size
    grid: torch.Tensor  # (G,)
    density: torch.Tensor  # (G,), integrates to ~1
    sigma: float
    n_products: int
    seconds: float
    residuals: torch.Tensor | None = field(default=None, repr=False)  # (n_v, m) beta_m |e_m^T y_j| per Ritz pair
    n_ritz: tuple[int, ...] | None = None  # Lanczos steps actually run per probe (the rest of a row is padding)
    trace_top: float | None = None  # tr(Q_1^T H Q_1) = sum alpha of the first probe (deflated trace)
    trace_remainder: torch.Tensor | None = field(default=None, repr=False)  # (n_v - 1,) remainder samples

    def __repr__(self) -> str:
        tr, se = self.trace
        idx, ise = self.index()
        return (f"SpectralDensity({self.n_probes} probes x {self.nodes.shape[1]} steps, P={self.dim}, "
                f"nodes [{float(self.nodes.min()):.4g}, {float(self.nodes.max()):.4g}], trace {tr:.6g} +- {se:.2g}, "
                f"index estimate {idx:.1f} +- {ise:.1f} (P x mass below -threshold), at least "
                f"{self.resolved_index()} negative (Ritz values), {self.n_products} products)")

    @property
    def n_probes(self) -> int:
        return int(self.nodes.shape[0])

    def _per_probe(self, values: torch.Tensor) -> tuple[float, float]:
        per = self.dim * (self.weights * values).sum(1)  # (n_v,)
        se = float(per.std(unbiased=True)) / math.sqrt(per.numel()) if per.numel() > 1 else float("nan")
        return float(per.mean()), se

    def trace_f(self, f: Callable[[torch.Tensor], torch.Tensor]) -> tuple[float, float]:
        """(estimate, stderr) of tr f(H) for an elementwise f on eigenvalues."""
        return self._per_probe(f(self.nodes))

    def count(self, a: float = -math.inf, b: float = math.inf) -> tuple[float, float]:
        """(estimate, stderr) of the number of eigenvalues in [a, b)."""
        return self._per_probe(((self.nodes >= a) & (self.nodes < b)).to(torch.float64))

    def _threshold(self, threshold: float | None) -> float:
        return 1e-8 * float(self.nodes.abs().max()) if threshold is None else float(threshold)

    def index(self, threshold: float | None = None) -> tuple[float, float]:
        """(estimate, stderr) of the number of eigenvalues below -threshold (the Morse index):
        P x the SLQ quadrature mass below -threshold (an estimate of a count, module docstring).

        ``threshold`` defaults to 1e-8 * max|node| so that numerically-zero eigenvalues (a
        Hessian's null space, found to rounding by Lanczos) do not count as negative. Mass at
        exactly the threshold is ambiguous for any quadrature: read it with its stderr.
        """
        return self.count(-math.inf, -self._threshold(threshold))

    def _ritz(self):
        """Per probe: (Ritz values, residuals) of the steps actually run (padding dropped)."""
        counts = self.n_ritz or (self.nodes.shape[1],) * self.n_probes
        res = self.residuals if self.residuals is not None else torch.full_like(self.nodes, math.inf)
        return [(self.nodes[l, :j], res[l, :j]) for l, j in enumerate(counts)]

    def resolved_index(self, threshold: float | None = None, *, converged: bool = False) -> int:
        """The number of eigenvalues Lanczos shows to lie below -threshold: the most Ritz values of
        one probe below -threshold, a lower bound on the true count by Cauchy interlacing (module
        docstring). ``converged=True``: only Ritz values whose interval theta +- r lies below
        -threshold (eigenvalues located to their residual r)."""
        thr = self._threshold(threshold)
        best = 0
        for theta, r in self._ritz():
            below = (theta + r < -thr) if converged else (theta < -thr)
            best = max(best, int(below.sum()))
        return best

    @property
    def trace(self) -> tuple[float, float]:
        """(estimate, stderr) of tr H: deflated by the first probe's Krylov space when there are at
        least 3 probes (module docstring), else the per-probe (Hutchinson) estimate."""
        rem = self.trace_remainder
        if self.trace_top is not None and rem is not None and rem.numel() >= 2:
            return self.trace_top + float(rem.mean()), float(rem.std(unbiased=True)) / math.sqrt(rem.numel())
        return self.trace_f(lambda t: t)

    def smoothed(self, grid: torch.Tensor, sigma: float) -> torch.Tensor:
        """Gaussian-smoothed density (1/n_v) sum tau N(t; theta, sigma^2) on ``grid``."""
        g = grid.to(torch.float64)[:, None, None]  # (G, 1, 1)
        k = torch.exp(-0.5 * ((g - self.nodes[None]) / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))
        return (k * self.weights[None]).sum((1, 2)) / self.n_probes


def slq(op, *, n_probes: int = 10, n_steps: int = 80, seed: int | torch.Generator = 0,
        sigma: float | None = None, grid_points: int = 1000) -> SpectralDensity:
    """Stochastic Lanczos quadrature: ``n_probes`` runs of ``n_steps`` Lanczos steps (full
    reorthogonalization) from normalized Rademacher probes. ``sigma`` defaults to 1% of the
    node range; the grid spans the nodes +- 5 sigma. ``seed``: an int or a ``torch.Generator``.
    A NaN/inf operator product raises a ValueError."""
    op = as_operator(op)
    if (isinstance(n_probes, int) and isinstance(n_steps, int)) and (n_probes < 1 or n_steps < 1):
        raise ValueError(f"n_probes and n_steps must be >= 1, got {n_probes}, {n_steps}")
    n_probes, n_steps = check_int("n_probes", n_probes), check_int("n_steps", n_steps)
    grid_points = check_int("grid_points", grid_points, minimum=2)
    if sigma is not None:
        if isinstance(sigma, (int, float)) and not isinstance(sigma, bool) and sigma <= 0:
            raise ValueError(f"sigma must be > 0, got {sigma}")
        sigma = check_positive("sigma", sigma)
    gen = _generator(seed)
    device = getattr(op, "device", "cpu")
    n0 = getattr(op, "n_products", 0)
    t0 = time.perf_counter()
    m = min(n_steps, op.size)
    nodes = torch.zeros(n_probes, m, dtype=torch.float64)
    weights = torch.zeros(n_probes, m, dtype=torch.float64)
    residuals = torch.zeros(n_probes, m, dtype=torch.float64)
    n_ritz: list[int] = []
    Q1 = T1 = None  # the first probe's Krylov basis (P, j) in float64 and T_j, for the deflated trace
    top, remainder = None, []

    for l in range(n_probes):
        v = probes(op.size, 1, gen=gen, dtype=op.dtype, device=device)[:, 0]

        def stop(alphas, betas, beta, _l=l):  # an invariant Krylov space is exact: stop there
            scale = max(abs(a) for a in alphas) + max(betas, default=0.0)
            return beta <= 1e-10 * max(scale, 1e-300)

        Q, alphas, betas, beta = lanczos_iterate(op, v, m, gen=gen, stop=stop)
        T = _tridiag(alphas, betas)
        theta, Y = torch.linalg.eigh(T)
        j = theta.shape[0]
        nodes[l, :j] = theta
        nodes[l, j:] = theta[-1]
        weights[l, :j] = Y[0] ** 2
        residuals[l, :j] = abs(beta) * Y[-1].abs()  # ||H x - theta x|| per Ritz pair (GVL eq. 10.1.8)
        n_ritz.append(j)
        if n_probes >= 3:
            if l == 0:
                Q1, T1, top = Q.to(torch.float64), T, float(sum(alphas))
            else:  # (P v)^T H (P v) from H v = ||v|| (alpha_1 q_1 + beta_1 q_2): no further product
                v64 = v.to(torch.float64)
                q = Q.to(torch.float64)
                Hv = float(torch.linalg.vector_norm(v64)) * (alphas[0] * q[:, 0] + (betas[0] * q[:, 1] if j > 1 else 0.0))
                c = Q1.T @ v64
                remainder.append(float(v64 @ Hv - 2 * (c @ (Q1.T @ Hv)) + c @ (T1 @ c)))
    lo, hi = float(nodes.min()), float(nodes.max())
    if sigma is None:
        sigma = max(0.01 * (hi - lo), 1e-12 * max(abs(lo), abs(hi), 1.0))
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    grid = torch.linspace(lo - 5 * sigma, hi + 5 * sigma, grid_points, dtype=torch.float64)
    partial = SpectralDensity(nodes, weights, op.size, grid, torch.empty(0), float(sigma),
                              getattr(op, "n_products", 0) - n0, 0.0)
    dens = partial.smoothed(grid, sigma)
    rem = torch.tensor(remainder, dtype=torch.float64) if top is not None else None
    if rem is not None and not (math.isfinite(top) and bool(torch.isfinite(rem).all())):
        raise _not_finite("the SLQ deflated trace")
    return SpectralDensity(nodes, weights, op.size, grid, dens, float(sigma), partial.n_products,
                           time.perf_counter() - t0, residuals, tuple(n_ritz), top, rem)
