"""Extreme eigenpairs of a symmetric operator: Lanczos with full reorthogonalization, and power
iteration (for comparison).

Lanczos (Lanczos 1950; Golub & Van Loan, *Matrix Computations*, 4th ed., Alg. 10.1.1) builds an
orthonormal basis Q_m of the Krylov space K_m(H, q_1) and the tridiagonal T_m = Q_m^T H Q_m.
Every new vector is orthogonalized against all previous ones twice ("twice is enough",
Parlett), so no ghost eigenvalues appear. For a Ritz pair (theta_j, x_j = Q_m y_j),

    ||H x_j - theta_j x_j|| = beta_{m+1} |e_m^T y_j|                     (GVL eq. 10.1.8)

and the eigenvalue error satisfies |lambda - theta_j| <= min(r_j, r_j^2 / gap_j)
(Kahan-Parlett-Jiang; Parlett, *The Symmetric Eigenvalue Problem*, Thm 11.7.1), with gap_j the
distance from theta_j to the rest of the spectrum, estimated by the other Ritz values. The
iteration stops when that bound is below ``tol * scale`` for every wanted pair, where
``scale = max |theta|`` (so ``tol`` is relative to the spectral norm) *and* the Ritz values
moved by less than the same amount in the last step (a guard against an optimistic gap
estimate early on). The convergence report states the residuals and bounds; a
:class:`ConvergenceWarning` is raised when the budget ran out before convergence.

Power iteration (von Mises 1929) with deflation against found vectors returns the
largest-*magnitude* eigenvalues; it stops when the Rayleigh quotient changes by less than
``tol`` relative (PyHessian's rule), which says nothing about the error -- hence its report
carries the true residual.
"""
from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from ..registry import Registry
from .operator import NonFiniteError, as_operator, check_int, check_positive, check_seed


class ConvergenceWarning(UserWarning):
    """An iterative curvature solver stopped before meeting its tolerance."""


WHICH: Registry = Registry("eigenvalue end")
WHICH.register("largest", "largest", doc="Algebraically largest eigenvalues (top-k).")
WHICH.register("smallest", "smallest", doc="Algebraically smallest eigenvalues (bottom-k).")


@dataclass(frozen=True)
class ConvergenceReport:
    """How an iterative eigen-solver ended."""

    method: str
    converged: bool
    n_iter: int
    n_products: int
    tol: float
    residuals: tuple[float, ...]  # ||H x - theta x|| per returned pair
    error_bounds: tuple[float, ...]  # bound on |lambda - theta| per pair (min(r, r^2/gap))
    seconds: float
    message: str = ""


@dataclass(frozen=True)
class Eigen:
    """k eigenvalues (ordered from the requested end inwards) and eigenvectors (P, k)."""

    eigenvalues: torch.Tensor
    eigenvectors: torch.Tensor | None
    which: str
    report: ConvergenceReport

    @property
    def converged(self) -> bool:
        return self.report.converged


def _random_unit(size: int, gen: torch.Generator, dtype, device) -> torch.Tensor:
    v = torch.randn(size, generator=gen, dtype=dtype).to(device)
    return v / torch.linalg.vector_norm(v)


def _generator(seed: int | torch.Generator) -> torch.Generator:
    """The generator for ``seed``: an int (a fresh CPU generator seeded with it) or a
    ``torch.Generator`` (used as is, so its state advances). Anything else is a TypeError."""
    check_seed(seed)
    if isinstance(seed, torch.Generator):
        return seed
    g = torch.Generator()
    g.manual_seed(int(seed))
    return g


def _not_finite(what: str) -> NonFiniteError:
    return NonFiniteError(f"{what} is not finite (NaN/inf): the operator returned NaN/inf (for a Hessian: the loss or "
                          "its gradient is not finite at these parameters, e.g. a diverged model); check the operator")


def _tridiag(alphas: list[float], betas: list[float]) -> torch.Tensor:
    m = len(alphas)
    T = torch.diag(torch.tensor(alphas, dtype=torch.float64))
    if m > 1:
        b = torch.tensor(betas[: m - 1], dtype=torch.float64)
        T += torch.diag(b, 1) + torch.diag(b, -1)
    return T


def _tridiag_np(alphas: list[float], betas: list[float]) -> np.ndarray:
    """T_m as a float64 numpy array (the stopping test runs every step: numpy is ~10x cheaper
    than torch for a matrix this small)."""
    m = len(alphas)
    T = np.zeros((m, m))
    T.flat[:: m + 1] = alphas
    if m > 1:
        T.flat[1 :: m + 1] = betas[: m - 1]
        T.flat[m :: m + 1] = betas[: m - 1]
    return T


def lanczos_iterate(op, v0: torch.Tensor, m: int, *, gen: torch.Generator, stop=None):
    """Run up to ``m`` Lanczos steps with full reorthogonalization from ``v0``.

    Returns (Q (P, j), alphas, betas, beta_last) where betas[i] couples steps i and i+1 and
    beta_last is the residual norm after the last step. On an exact invariant subspace
    (breakdown) a fresh random vector orthogonal to Q continues with a zero coupling, so Ritz
    values stay exact. ``stop(alphas, betas, beta_last) -> bool`` may end early.

    The basis is stored row-wise (j, P) so that Q_j = rows[:j] is one contiguous block and each
    reorthogonalization pass is two matrix-vector products (classical Gram-Schmidt, done twice).
    """
    P = op.size
    m = min(int(m), P)
    rows = torch.empty(m, P, dtype=op.dtype, device=v0.device)  # row i = Lanczos vector q_{i+1}
    rows[0] = v0 / torch.linalg.vector_norm(v0)
    alphas: list[float] = []
    betas: list[float] = []
    beta_prev = 0.0
    scale = 0.0
    for j in range(m):
        Qj = rows[: j + 1]
        w = op.matvec(rows[j])
        # w <- (I - Q_j Q_j^T) w twice (classical Gram-Schmidt, "twice is enough"); the first
        # pass's coefficient on q_j is alpha_j = q_j^T H q_j, and it also removes the
        # beta_{j-1} q_{j-1} term of the three-term recurrence. addmv returns a new tensor, so
        # an operator output that aliases its input is never overwritten.
        h = Qj @ w
        alpha = float(h[j])
        w = torch.addmv(w, Qj.T, h, alpha=-1)
        w = torch.addmv(w, Qj.T, Qj @ w, alpha=-1)
        beta = float(torch.linalg.vector_norm(w))
        if not (math.isfinite(alpha) and math.isfinite(beta)):  # any operator (a HessianOperator raises first)
            raise _not_finite(f"Lanczos step {j + 1}: the operator product")
        alphas.append(alpha)
        scale = max(scale, abs(alpha) + beta + beta_prev)
        if stop is not None and stop(alphas, betas, beta):
            return rows[: j + 1].T, alphas, betas, beta
        if j + 1 == m:
            return rows.T, alphas, betas, beta
        if beta <= 1e-12 * max(scale, 1e-300):  # invariant subspace: restart orthogonally
            w = torch.randn(P, generator=gen, dtype=op.dtype).to(v0.device)
            for _ in range(2):
                w = torch.addmv(w, Qj.T, Qj @ w, alpha=-1)
            rows[j + 1] = w / torch.linalg.vector_norm(w)
            betas.append(0.0)
            beta_prev = 0.0
        else:
            rows[j + 1].copy_(w).div_(beta)
            betas.append(beta)
            beta_prev = beta
    return rows.T, alphas, betas, 0.0  # pragma: no cover


def _wanted(m: int, k: int, which: str) -> np.ndarray:
    return np.arange(m - 1, m - 1 - k, -1) if which == "largest" else np.arange(k)


def _bounds(theta: np.ndarray, Y: np.ndarray, beta: float, idx: np.ndarray):
    """Residual norms beta |e_m^T y_i| (GVL eq. 10.1.8) and error bounds min(r, r^2/gap)
    (Kahan-Parlett-Jiang) of the Ritz pairs ``idx`` of T_m = Y diag(theta) Y^T, with gap the
    distance to the nearest other Ritz value."""
    th = theta.tolist()  # plain floats: m <= a few hundred, and numpy's per-call cost dominates
    last = Y[-1].tolist()
    res, bounds = [], []
    for i in idx.tolist():
        r = beta * abs(last[i])
        gap = min((abs(t - th[i]) for j, t in enumerate(th) if j != i), default=float("inf"))
        res.append(r)
        # no other Ritz value (one step): the gap is unknown, so only the residual bounds the error
        bounds.append(min(r, r * r / gap) if 0 < gap < float("inf") else r)
    return res, bounds


def lanczos(op, k: int = 1, *, which: str = "largest", tol: float = 1e-6, max_iter: int | None = None,
            seed: int | torch.Generator = 0, v0: torch.Tensor | None = None, vectors: bool = True,
            warn: bool = True) -> Eigen:
    """The k eigenvalues at one end of the spectrum (and eigenvectors) by Lanczos.

    ``op``: a :class:`HessianOperator`, a square tensor, or any operator with ``matvec``.
    ``which``: ``largest`` (top-k, largest first) or ``smallest`` (bottom-k, smallest first).
    ``tol``: stop when every wanted Ritz value's error bound min(r, r^2/gap) and its last
    change are below ``tol * max|theta|`` (so at least two steps are needed unless the Krylov
    space is the whole space). ``max_iter``: Lanczos steps (default min(P, max(60, 20 k))).
    ``seed``: an int or a ``torch.Generator`` (the random start). ``v0``: starting vector
    (e.g. the previous top eigenvector). Each step costs one operator product; memory is
    ``max_iter`` vectors. A NaN/inf operator product raises a ValueError.
    """
    op = as_operator(op)
    which = WHICH.get(which)
    P = op.size
    if not (isinstance(k, int) and not isinstance(k, bool) and 1 <= k <= P):
        raise ValueError(f"k must be an integer in [1, {P}] (the operator size), got {k!r}")
    tol = check_positive("tol", tol)
    if max_iter is not None:
        check_int("max_iter", max_iter)
    m_max = min(P, max(60, 20 * k)) if max_iter is None else min(P, int(max_iter))
    if m_max < k:
        raise ValueError(f"max_iter={max_iter} is below k={k}; need at least k Lanczos steps")
    gen = _generator(seed)
    device = getattr(op, "device", torch.device("cpu"))
    start = (_random_unit(P, gen, op.dtype, device) if v0 is None
             else v0.detach().to(dtype=op.dtype, device=device).reshape(-1))
    if start.shape[0] != P or not torch.isfinite(start).all() or float(torch.linalg.vector_norm(start)) == 0:
        raise ValueError(f"v0 must be a finite nonzero vector of length {P}")
    n0 = getattr(op, "n_products", 0)
    t0 = time.perf_counter()
    state: dict = {"prev": None, "ok": False, "moved": float("inf"), "scale": 1.0, "tests": 0}

    def stop(alphas, betas, beta):
        m = len(alphas)
        if m < k:
            return False
        theta, Y = np.linalg.eigh(_tridiag_np(alphas, betas))
        idx = _wanted(m, k, which)
        wanted = theta[idx]
        scale = float(np.abs(theta).max()) or 1.0
        if m == P:  # the whole space: Ritz values are the eigenvalues
            state["ok"] = True
            return True
        # (an invariant Krylov space gives beta = 0, bounds 0; the iteration then restarts
        # orthogonally, which is how repeated eigenvalues are found)
        _, bnd = _bounds(theta, Y, beta, idx)
        prev = state["prev"]
        moved = float("inf") if prev is None else float(np.abs(wanted - prev).max())
        state["prev"] = wanted
        state.update(moved=moved, scale=scale, tests=state["tests"] + 1)
        state["ok"] = max(bnd) <= tol * scale and moved <= tol * scale
        return state["ok"]

    Q, alphas, betas, beta = lanczos_iterate(op, start, m_max, gen=gen, stop=stop)
    theta, Y = np.linalg.eigh(_tridiag_np(alphas, betas))
    kk = min(k, theta.shape[0])
    idx = _wanted(theta.shape[0], kk, which)
    res, bnd = _bounds(theta, Y, beta, idx)
    converged = bool(state["ok"])
    vals = torch.from_numpy(np.ascontiguousarray(theta[idx])).to(op.dtype)
    vecs = (Q @ torch.from_numpy(np.ascontiguousarray(Y[:, idx])).to(dtype=Q.dtype, device=Q.device)) if vectors else None
    msg = "converged" if converged else _why_not(len(alphas), m_max, max_iter, k, tol, bnd, state)
    report = ConvergenceReport("lanczos", converged, len(alphas), getattr(op, "n_products", 0) - n0, tol,
                               tuple(float(r) for r in res), tuple(float(b) for b in bnd),
                               time.perf_counter() - t0, msg)
    if not converged and warn:
        warnings.warn(f"lanczos: {msg}", ConvergenceWarning, stacklevel=2)
    return Eigen(vals, vecs, which, report)


def _why_not(n: int, m_max: int, max_iter, k: int, tol: float, bnd, state: dict) -> str:
    """The real reason Lanczos stopped unconverged (the budget ran out in every case)."""
    budget = f"max_iter={max_iter}" if max_iter is not None else f"the default max_iter={m_max}"
    thr = tol * state["scale"]
    if state["tests"] < 2:  # the Ritz values were never compared across two steps
        return (f"not converged: {budget} reached after {n} Lanczos step(s), too few to test convergence (the Ritz "
                f"values must settle over at least {k + 1} steps for k={k}); raise max_iter")
    if max(bnd, default=0.0) > thr:
        return (f"not converged: {budget} reached after {n} Lanczos steps with error bounds "
                f"{[f'{b:.2e}' for b in bnd]} above tol x scale = {thr:.2e}; raise max_iter or tol")
    return (f"not converged: {budget} reached after {n} Lanczos steps; the error bounds are met but the Ritz values "
            f"still moved by {state['moved']:.2e} (> tol x scale = {thr:.2e}) in the last step; raise max_iter or tol")


def power_iteration(op, k: int = 1, *, tol: float = 1e-3, max_iter: int = 100,
                    seed: int | torch.Generator = 0, warn: bool = True) -> Eigen:
    """The k largest-magnitude eigenpairs by power iteration with deflation (Gram-Schmidt
    against the pairs already found), stopping when the Rayleigh quotient's relative change
    is below ``tol`` (> 0, the rule PyHessian uses) within ``max_iter`` (>= 1) products per
    eigenvalue. For comparison with :func:`lanczos`."""
    op = as_operator(op)
    P = op.size
    if not (isinstance(k, int) and not isinstance(k, bool) and 1 <= k <= P):
        raise ValueError(f"k must be an integer in [1, {P}], got {k!r}")
    tol = check_positive("tol", tol)
    max_iter = check_int("max_iter", max_iter)
    gen = _generator(seed)
    device = getattr(op, "device", torch.device("cpu"))
    n0 = getattr(op, "n_products", 0)
    t0 = time.perf_counter()
    vals, vecs, res, iters, all_ok = [], [], [], 0, True
    for _ in range(k):
        V = torch.stack(vecs, 1) if vecs else None
        v = _random_unit(P, gen, op.dtype, device)
        lam_prev, ok = None, False
        for _it in range(max_iter):
            if V is not None:
                v = v - V @ (V.T @ v)
                v = v / torch.linalg.vector_norm(v)
            Hv = op.matvec(v)
            if V is not None:
                Hv = Hv - V @ (V.T @ Hv)
            iters += 1
            lam = float(torch.dot(v, Hv))
            r = float(torch.linalg.vector_norm(Hv - lam * v))
            if not (math.isfinite(lam) and math.isfinite(r)):
                raise _not_finite(f"power iteration step {_it + 1}: the operator product")
            if lam_prev is not None and abs(lam - lam_prev) <= tol * (abs(lam_prev) + 1e-12):
                ok = True
                break
            lam_prev = lam
            nrm = torch.linalg.vector_norm(Hv)
            if float(nrm) == 0:
                ok = True
                break
            v = Hv / nrm
        all_ok &= ok
        vals.append(lam)
        vecs.append(v)
        res.append(r)
    report = ConvergenceReport("power_iteration", all_ok, iters, getattr(op, "n_products", 0) - n0, tol,
                               tuple(res), tuple(res), time.perf_counter() - t0,
                               "converged (relative change of the Rayleigh quotient below tol)" if all_ok
                               else f"not converged in max_iter={max_iter} per eigenvalue")
    if not all_ok and warn:
        warnings.warn(f"power_iteration: {report.message}", ConvergenceWarning, stacklevel=2)
    return Eigen(torch.tensor(vals, dtype=op.dtype), torch.stack(vecs, 1), "magnitude", report)
