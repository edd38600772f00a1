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
    checks: int = 0  # Lanczos: restarts from a fresh random vector run to look for missed eigenvalues


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


class _Krylov:
    """An orthonormal basis Q (stored row-wise) grown one operator product at a time with full
    reorthogonalization (classical Gram-Schmidt twice), and the *full* projected matrix
    M = Q^T H Q assembled from the Gram-Schmidt coefficients (Arnoldi's Hessenberg matrix, which
    is symmetric and tridiagonal for plain Lanczos steps). A *restart* makes the next basis vector
    a fresh random one orthogonal to Q instead of the normalized residual w; Rayleigh-Ritz on M
    stays exact, with

        H Q = Q M + sum_c u_c e_c^T + w e_m^T,    u_c = (I - QQ^T) w_c,

    where w_c is the residual a restart at column c set aside (u_c is kept up to date as Q
    grows). So the residual of a Ritz pair (theta, Q y) is || sum_c y_c u_c + y_m w ||, computed
    from the small Gram matrix of the u_c and w (GVL eq. 10.1.8 when there is no restart)."""

    def __init__(self, op, cap: int, gen: torch.Generator, device, locked=None):
        self.op, self.gen, self.device, self.cap = op, gen, device, cap
        self.P = op.size
        self.rows = torch.empty(min(cap, 32), self.P, dtype=op.dtype, device=device)  # grown by doubling
        self.M = np.zeros((cap, cap))
        self.m = 0
        self.dropped: list[tuple[int, torch.Tensor]] = []  # (column c, u_c)
        self.w: torch.Tensor | None = None
        self.beta = 0.0
        if locked is not None:  # Ritz pairs (x_i, theta_i) kept as the first basis vectors, with H x_i = theta_i x_i + r_i
            X, theta, R = locked
            for i in range(X.shape[0]):
                self.append(X[i])
                self.M[i, i] = theta[i]
            self.dropped = [(i, R[i].clone()) for i in range(X.shape[0])]

    def lock(self, theta: np.ndarray, Y: np.ndarray, idx: np.ndarray):
        """The Ritz pairs ``idx`` as (X rows, theta, residual vectors R = H X - X diag(theta)),
        R from the residual decomposition (no operator product)."""
        m = self.m
        Yk = torch.from_numpy(np.ascontiguousarray(Y[:, idx])).to(dtype=self.rows.dtype, device=self.device)
        X = Yk.T @ self.rows[:m]
        V = torch.stack([u for _, u in self.dropped] + [self.w])
        Z = torch.from_numpy(np.ascontiguousarray(Y[[c for c, _ in self.dropped] + [m - 1]][:, idx]))
        R = Z.T.to(dtype=V.dtype, device=self.device) @ V
        return X, theta[idx], R

    def append(self, q: torch.Tensor) -> None:
        if self.m == self.rows.shape[0]:
            more = torch.empty(min(self.cap, 2 * self.m) - self.m, self.P, dtype=self.rows.dtype, device=self.device)
            self.rows = torch.cat([self.rows, more])
        self.rows[self.m] = q
        for _, u in self.dropped:  # u_c <- (I - q q^T) u_c: stays (I - QQ^T) w_c
            u.add_(q, alpha=-float(torch.dot(q, u)))
        self.m += 1

    def step(self) -> None:
        """H q_m, orthogonalized against Q twice; column m of M and the residual w."""
        j = self.m - 1
        Qj = self.rows[: j + 1]
        w = self.op.matvec(self.rows[j])
        # addmv returns a new tensor, so an operator output that aliases its input is never overwritten
        h = Qj @ w
        w = torch.addmv(w, Qj.T, h, alpha=-1)
        h2 = Qj @ w
        w = torch.addmv(w, Qj.T, h2, alpha=-1)
        col = (h + h2).to(device="cpu", dtype=torch.float64).numpy()
        beta = float(torch.linalg.vector_norm(w))
        if not (bool(np.isfinite(col).all()) and math.isfinite(beta)):  # any operator (a HessianOperator raises first)
            raise _not_finite(f"Lanczos step {j + 1}: the operator product")
        self.M[: j + 1, j] = col
        self.M[j, : j + 1] = col
        self.w, self.beta = w, beta

    def extend(self) -> None:
        """A Lanczos step: the next basis vector is w / ||w||."""
        self.append(self.w / self.beta)

    def restart(self, fresh: bool = False) -> None:
        """The next basis vector is a fresh random one orthogonal to Q; w is set aside as u_c
        (``fresh``: after locking, there is no w yet)."""
        if not fresh:
            self.dropped.append((self.m - 1, self.w.clone()))
        v = torch.randn(self.P, generator=self.gen, dtype=self.rows.dtype).to(self.device)
        Q = self.rows[: self.m]
        for _ in range(2):
            v = torch.addmv(v, Q.T, Q @ v, alpha=-1)
        self.append(v / torch.linalg.vector_norm(v))

    def ritz(self):
        """Ritz values (ascending), vectors Y of M and the residual norm of every Ritz pair."""
        m = self.m
        theta, Y = np.linalg.eigh(self.M[:m, :m])
        V = torch.stack([u for _, u in self.dropped] + [self.w])
        G = (V @ V.T).to(device="cpu", dtype=torch.float64).numpy()
        Z = Y[[c for c, _ in self.dropped] + [m - 1]]
        res = np.sqrt(np.maximum(np.einsum("im,ij,jm->m", Z, G, Z), 0.0))
        return theta, Y, res


def _gap_bounds(theta: np.ndarray, res: np.ndarray, thr: float = 0.0) -> np.ndarray:
    """Error bounds per Ritz pair (ascending ``theta``, residual norms ``res``), cluster-robust.

    Ritz values closer than ``thr`` (tol x scale) to a neighbour, or whose intervals theta +- r
    overlap, form a cluster C (the grouping only trades r_C against the gap: the bound holds for
    any); with R_C its residual block, ||R_C||_2 <= r_C =
    sqrt(sum_C r_i^2). The |C| eigenvalues nearest the cluster are within min(r_C, r_C^2 / gap)
    of its Ritz values, sorted to sorted (linear: Kahan, Parlett Thm 11.5.1; quadratic: Mathias
    1998, "Quadratic residual bounds for the Hermitian eigenvalue problem", SIMAX 19; for |C| = 1
    the Kahan-Parlett-Jiang bound, Parlett Thm 11.7.1), gap the distance from C to the nearest
    Ritz value outside it. r alone where there is no other Ritz value (no gap estimate)."""
    out = res.astype(float).copy()
    m = theta.shape[0]
    for i, j in _clusters(theta, res, thr):
        r = float(np.sqrt(np.sum(res[i : j + 1] ** 2)))
        gap = min(theta[i] - theta[i - 1] if i > 0 else np.inf, theta[j + 1] - theta[j] if j + 1 < m else np.inf)
        out[i : j + 1] = min(r, r * r / gap) if 0 < gap < np.inf else r
    return out


def _clusters(theta: np.ndarray, res: np.ndarray, thr: float) -> list[tuple[int, int]]:
    """Runs [i, j] of ascending Ritz values, neighbours closer than max(thr, r_i + r_{i+1})."""
    out, i, m = [], 0, theta.shape[0]
    while i < m:
        j = i
        while j + 1 < m and theta[j + 1] - theta[j] <= max(thr, res[j] + res[j + 1]):
            j += 1
        out.append((i, j))
        i = j + 1
    return out


def _wanted_clusters(theta: np.ndarray, res: np.ndarray, thr: float, order: np.ndarray, sgn: float) -> np.ndarray:
    """The wanted Ritz pairs ``order`` and their cluster mates beyond the k-th: the Ritz values no
    further than max(thr, r_k + r_t) inside the k-th wanted value, from the wanted end inwards. Not
    chained transitively (as ``_clusters`` is): at a loose tol, chains of neighbours closer than thr
    spanned the whole spectrum, every check then found 'new' members and none could certify."""
    kth, want = order[-1], order.tolist()
    near = [t for t in range(theta.shape[0]) if t not in want
            and 0 <= sgn * (theta[kth] - theta[t]) <= max(thr, res[kth] + res[t])]
    idx = want + near
    return np.array(sorted(idx, key=lambda t: -sgn * theta[t]), dtype=int)


def _top_of(M: np.ndarray, sgn: float, beta: float, thr: float):
    """The wanted-end Ritz value of a (tridiagonal) block, in the sign-flipped frame, with its
    error bound (residual beta |e_m^T y|, Lanczos on the deflated operator)."""
    theta, Y = np.linalg.eigh(M)
    i = int(np.argmax(sgn * theta))
    bnd = _gap_bounds(theta, beta * np.abs(Y[-1]), thr)
    return float(sgn * theta[i]), float(bnd[i])


def lanczos(op, k: int = 1, *, which: str = "largest", tol: float = 1e-6, max_iter: int | None = None,
            seed: int | torch.Generator = 0, v0: torch.Tensor | None = None, vectors: bool = True,
            warn: bool = True, check: bool = True) -> Eigen:
    """The k eigenvalues at one end of the spectrum (and eigenvectors) by Lanczos.

    ``op``: a :class:`HessianOperator`, a square tensor, or any operator with ``matvec``.
    ``which``: ``largest`` (top-k, largest first) or ``smallest`` (bottom-k, smallest first).
    ``tol``: stop when every wanted Ritz value's error bound min(r, r^2/gap) and its last
    change are below ``tol * max|theta|`` (so at least two steps are needed unless the Krylov
    space is the whole space) *and* a check from a fresh random vector (Lanczos on the operator
    deflated by the wanted pairs and their mates within tol of the k-th) left the k wanted values
    where they were, to within tol and their bounds: nothing the first Krylov space missed lies
    beyond the k-th value. ``check=False`` skips the check (fewer products, no
    defence against a missed cluster member). ``max_iter``: Lanczos steps, checks included
    (default max(120, 40 k); may exceed P, as each check starts a new basis). ``seed``: an int or a ``torch.Generator`` (the random start
    and the check vectors). ``v0``: starting vector (e.g. the previous top eigenvector). Each step
    costs one operator product; memory is one vector per step. A NaN/inf operator product raises
    a ValueError.
    """
    op = as_operator(op)
    which = WHICH.get(which)
    P = op.size
    if not (isinstance(k, int) and not isinstance(k, bool) and 1 <= k <= P):
        raise ValueError(f"k must be an integer in [1, {P}] (the operator size), got {k!r}")
    tol = check_positive("tol", tol)
    if max_iter is not None:
        check_int("max_iter", max_iter)
    if not isinstance(check, bool):
        raise TypeError(f"check must be True or False, got {check!r}")
    # the budget counts products over all phases, so it may exceed P (each phase's basis is <= P)
    m_max = max(120, 40 * k) if max_iter is None else int(max_iter)
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
    sgn = 1.0 if which == "largest" else -1.0  # work on sgn * theta: the wanted end is the top
    K = _Krylov(op, min(P, m_max) + 1, gen, device)
    K.append(start / torch.linalg.vector_norm(start))
    # phase 0 runs from the start vector. Phase p >= 1 is a check: the k wanted Ritz pairs are
    # locked (kept as the first k basis vectors, with their residual vectors) and Lanczos restarts
    # from a fresh random vector orthogonal to them, i.e. runs on the deflated operator
    # (I - XX^T) H (I - XX^T), with Rayleigh-Ritz on the union (Parlett ch. 13 on why one Krylov
    # space sees a (near-)repeated eigenvalue once; locking + a new random start: Lehoucq &
    # Sorensen 1996, sec. 4). Its top Ritz value mu is the deflated block's (from index k on).
    st = {"which": which, "phase": 0, "tests": 0, "moved": float("inf"), "scale": 1.0, "found": False,
          "ok": False, "certified": False, "locked": 0}
    prev = before = prev_mu = None
    n = 0  # Lanczos steps = operator products
    while True:
        K.step()
        n += 1
        m = K.m
        theta, Y, res = K.ritz()
        order = np.argsort(-sgn * theta, kind="stable")[: min(k, m)]  # from the wanted end inwards
        scale = float(np.abs(theta).max()) or 1.0
        thr = tol * scale
        bnd_all = _gap_bounds(theta, res, thr)
        st["scale"] = scale
        if m == P:  # the whole space: the Ritz values are the eigenvalues
            st["ok"] = st["certified"] = True
            break
        ok = False
        if m >= k:
            top = sgn * theta[order]
            moved = float("inf") if prev is None else float(np.abs(top - prev).max())
            prev = top
            st.update(moved=moved, tests=st["tests"] + 1)
            ok = float(bnd_all[order].max()) <= thr and moved <= thr
            if ok and st["phase"] > 0:
                # the check has settled once the deflated operator's top Ritz value mu has: its
                # bound and last change small against its distance below the k-th value
                L = st["locked"]
                mu, bmu = _top_of(K.M[L:m, L:m], sgn, K.beta, thr) if m - L >= 2 else (float("inf"), float("inf"))
                moved_mu = float("inf") if prev_mu is None else abs(mu - prev_mu)
                prev_mu = mu
                slack = max(thr, 0.1 * (float(top[-1]) - mu))
                ok = m - L >= 2 and bmu <= slack and moved_mu <= slack
        if ok:
            st["ok"] = True
            lock = _wanted_clusters(theta, res, thr, order, sgn)  # the wanted pairs and their cluster mates
            if st["phase"] > 0:
                if bool(np.all(np.abs(top - before) <= thr + bnd_all[order])):
                    # the check found nothing above the k-th value: the wanted values did not move. Mates it
                    # found within thr below the k-th (a dense spectrum) do not change which k are the largest
                    # to within tol; requiring none, the check never ended on dense spectra (120 products)
                    st["certified"] = True
                    break
                st["found"] = True  # it found what the earlier Krylov space missed: check again
            if not check or n >= m_max:
                break
            before, prev_mu, prev = top, None, None
            st.update(phase=st["phase"] + 1, locked=int(lock.shape[0]))
            K = _Krylov(op, min(P, lock.shape[0] + m_max - n) + 1, gen, device, locked=K.lock(theta, Y, lock))
            K.restart(fresh=True)
            continue
        if n >= m_max:
            break
        if K.beta <= 1e-12 * scale:  # invariant subspace: continue from a fresh orthogonal vector
            K.restart()
        else:
            K.extend()
    converged = bool(st["certified"] or (st["ok"] and not check))
    vals = torch.from_numpy(np.ascontiguousarray(theta[order])).to(op.dtype)
    Yk = torch.from_numpy(np.ascontiguousarray(Y[:, order])).to(dtype=op.dtype, device=device)
    vecs = K.rows[:m].T @ Yk if vectors else None
    res_k, bnd_k = res[order], bnd_all[order]
    if converged:
        msg = "converged" if check or st["certified"] else "converged (check=False: not checked for missed eigenvalues)"
    else:
        msg = _why_not(n, m_max, max_iter, k, tol, bnd_k, st)
    report = ConvergenceReport("lanczos", converged, n, getattr(op, "n_products", 0) - n0, tol,
                               tuple(float(r) for r in res_k), tuple(float(b) for b in bnd_k),
                               time.perf_counter() - t0, msg, st["phase"] if check else 0)
    if not converged and warn:
        warnings.warn(f"lanczos: {msg}", ConvergenceWarning, stacklevel=2)
    return Eigen(vals, vecs, which, report)


def _why_not(n: int, m_max: int, max_iter, k: int, tol: float, bnd, st: dict) -> str:
    """The real reason Lanczos stopped unconverged (the budget ran out in every case)."""
    budget = f"max_iter={max_iter}" if max_iter is not None else f"the default max_iter={m_max}"
    thr = tol * st["scale"]
    if st["ok"] or st["phase"] > 0:  # the tolerance was met; the check for missed eigenvalues could not finish
        what = ("found eigenvalue(s) the first Krylov space had missed (a near-degenerate cluster, or a start "
                "nearly orthogonal to an eigenvector) and could not confirm the new set" if st["found"] else
                "could not finish")
        return (f"not certified: the {k} {st['which']} Ritz values met tol x scale = {thr:.2e}, but {budget} was reached "
                f"after {n} Lanczos steps while the check from a fresh random vector {what}; these may not be the "
                f"{k} {st['which']} eigenvalues; raise max_iter")
    if st["tests"] < 2:  # the Ritz values were never compared across two steps
        return (f"not converged: {budget} reached after {n} Lanczos step(s), too few to test convergence (the Ritz "
                f"values must settle over at least {k + 1} steps for k={k}); raise max_iter")
    if max(bnd, default=0.0) > thr:
        return (f"not converged: {budget} reached after {n} Lanczos steps with error bounds "
                f"{[f'{b:.2e}' for b in bnd]} above tol x scale = {thr:.2e}; raise max_iter or tol")
    return (f"not converged: {budget} reached after {n} Lanczos steps; the error bounds are met but the Ritz values "
            f"still moved by {st['moved']:.2e} (> tol x scale = {thr:.2e}) in the last step; raise max_iter or tol")


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
