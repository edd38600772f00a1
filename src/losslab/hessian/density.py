"""Spectral density by stochastic Lanczos quadrature (SLQ).

Ubaru, Chen & Saad (2017), "Fast estimation of tr(f(A)) via stochastic Lanczos quadrature",
eq. (11); Ghorbani, Krishnan & Xiao (2019) for neural-network Hessians. For n_v random unit
probes v_l (normalized Rademacher) and m Lanczos steps from each, with T_m = Y diag(theta) Y^T:

    nodes  theta_j^(l),   weights  tau_j^(l) = (e_1^T y_j^(l))^2   (each probe's weights sum to 1)

    tr f(H) ~ (P / n_v) sum_l sum_j tau_j^(l) f(theta_j^(l))

The spectral measure is phi(t) = (1/P) sum_i delta(t - lambda_i) ~ (1/n_v) sum_l sum_j tau delta(t - theta);
the smoothed density replaces each delta by a Gaussian of width ``sigma`` and integrates to 1
over the real line (multiply by P for eigenvalue counts). The count of eigenvalues in [a, b)
is tr 1_[a,b)(H); the index (number of negative eigenvalues) is the count below -threshold.
Each per-probe value is an unbiased-in-the-limit sample, so the standard error is the sample
standard deviation over probes / sqrt(n_v) (it does not include the quadrature error, which
vanishes for f a polynomial of degree < 2m and is small for f smooth on the spectrum).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import torch

from .lanczos import _generator, _tridiag, lanczos_iterate
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

    def index(self, threshold: float | None = None) -> tuple[float, float]:
        """(estimate, stderr) of the number of eigenvalues below -threshold (the Morse index).

        ``threshold`` defaults to 1e-8 * max|node| so that numerically-zero eigenvalues (a
        Hessian's null space, found to rounding by Lanczos) do not count as negative. Mass at
        exactly the threshold is ambiguous for any quadrature: read it with its stderr.
        """
        if threshold is None:
            threshold = 1e-8 * float(self.nodes.abs().max())
        return self.count(-math.inf, -threshold)

    @property
    def trace(self) -> tuple[float, float]:
        """(estimate, stderr) of tr H = sum of eigenvalues."""
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

    for l in range(n_probes):
        v = probes(op.size, 1, gen=gen, dtype=op.dtype, device=device)[:, 0]

        def stop(alphas, betas, beta, _l=l):  # an invariant Krylov space is exact: stop there
            scale = max(abs(a) for a in alphas) + max(betas, default=0.0)
            return beta <= 1e-10 * max(scale, 1e-300)

        _, alphas, betas, _ = lanczos_iterate(op, v, m, gen=gen, stop=stop)
        theta, Y = torch.linalg.eigh(_tridiag(alphas, betas))
        j = theta.shape[0]
        nodes[l, :j] = theta
        nodes[l, j:] = theta[-1]
        weights[l, :j] = Y[0] ** 2
    lo, hi = float(nodes.min()), float(nodes.max())
    if sigma is None:
        sigma = max(0.01 * (hi - lo), 1e-12 * max(abs(lo), abs(hi), 1.0))
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    grid = torch.linspace(lo - 5 * sigma, hi + 5 * sigma, grid_points, dtype=torch.float64)
    partial = SpectralDensity(nodes, weights, op.size, grid, torch.empty(0), float(sigma),
                              getattr(op, "n_products", 0) - n0, 0.0)
    dens = partial.smoothed(grid, sigma)
    return SpectralDensity(nodes, weights, op.size, grid, dens, float(sigma), partial.n_products,
                           time.perf_counter() - t0)
