"""The Boltzmann entropy of the deep linear network: the log-volume of the fiber over ``X``.

Setting (Menon 2024, Sec. 5): all widths equal, ``d_0 = ... = d_N = d``. The balanced manifold
``{W : G_p = 0}`` maps onto the full-rank matrices; the fiber over an ``X`` with distinct singular
values is the orbit of ``O(d)^{N-1}`` acting on the hidden spaces,
``W_p -> Q_p W_p Q_{p-1}^T`` (``Q_0 = Q_N = I``), with a finite stabilizer (sign matrices).
The group acts by isometries of the Frobenius metric, so the orbit's volume is
``vol(O(d)^{N-1}) / |stabilizer| * sqrt(det Gram)``, where ``Gram`` is the Gram matrix of the
orbit generators ``delta W_p = A_p W_p - W_p A_{p-1}`` (``A_0 = A_N = 0``) for an orthonormal
basis ``(E_ij - E_ji)/sqrt(2)`` of each ``so(d)``. Hence the entropy (log-volume) is

    S(X) = const + 0.5 log det Gram = const + 0.5 log[ van(s^2) / van(s^{2/N}) ],

``van(l) = prod_{i<j} |l_i - l_j|`` (Menon 2024, Thm. on the Boltzmann entropy). Derivation of the
last equality (checked numerically in the tests): in the SVD frame each pair ``i<j`` decouples;
with ``a = s_i^{1/N}``, ``b = s_j^{1/N}`` the pair's ``(N-1) x (N-1)`` Gram block is tridiagonal
with ``a^2 + b^2`` on the diagonal and ``-ab`` beside it, whose determinant is
``(a^{2N} - b^{2N})/(a^2 - b^2) = (s_i^2 - s_j^2)/(s_i^{2/N} - s_j^{2/N})``: the eigenvalue
``lambda_ij`` of ``A_{N,X}``. With this basis the constant is exactly ``log vol(O(d)^{N-1}) -
log|stabilizer|``, i.e. ``entropy`` below and ``0.5 * gram_logdet`` agree with no offset.
"""
from __future__ import annotations

import numpy as np

from .core import as_weights, balanced_factorization, end_to_end, widths_of
from .operator import PSD_RTOL


def _log_van(l: np.ndarray) -> float:
    i, j = np.triu_indices(l.size, k=1)
    diff = np.abs(l[i] - l[j])
    if np.any(diff == 0):
        return -np.inf
    return float(np.sum(np.log(diff)))


def entropy(X: np.ndarray, N: int) -> float:
    """``S(X) = 0.5 log[ van(s^2) / van(s^{2/N}) ]`` (the additive constant set to 0; Menon 2024,
    Sec. 5, Boltzmann entropy of the fiber over ``X``). ``X`` square. For ``N = 1`` the fiber is a
    point: ``S = 0``.

    Evaluated as ``0.5 sum_{i<j} log lambda_ij`` with ``lambda_ij`` the geometric sum
    ``sum_{p=1}^N a^{N-p} b^{p-1}`` (``a, b = s_i^{2/N}, s_j^{2/N}``), which equals the ratio
    ``(s_i^2 - s_j^2)/(s_i^{2/N} - s_j^{2/N})`` without its cancellation for close values and is
    its continuous extension to repeated singular values (``N s^{2-2/N}``), where the literal
    Vandermonde ratio is 0/0 but the orbit's Gram determinant stays positive (checked in the
    tests). Singular values with ``s^2 < 1e-12 max s^2`` count as 0; two zero singular values give ``lambda_ij = 0``: ``-inf`` (the orbit degenerates).
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] != X.shape[1]:
        raise ValueError(f"the entropy formula is for square X (all widths equal), got shape {X.shape}")
    if int(N) != N or N < 1:
        raise ValueError(f"depth N must be a positive integer, got {N}")
    s = np.linalg.svd(X, compute_uv=False)
    # the PSD rule of psd_power: eigenvalues s^2 of X^T X below 1e-12 * max are round-off zeros
    s = np.where(s ** 2 < PSD_RTOL * np.max(s ** 2, initial=0.0), 0.0, s)
    return entropy_from_singular_values(s, N)


def entropy_from_singular_values(s: np.ndarray, N: int) -> float:
    """``0.5 log[van(s^2)/van(s^{2/N})]`` from the singular values ``s`` (see ``entropy``)."""
    s = np.asarray(s, dtype=np.float64)
    if N == 1 or s.size < 2:
        return 0.0
    a = s ** (2.0 / N)
    i, j = np.triu_indices(s.size, k=1)
    lam = sum(a[i] ** (N - p) * a[j] ** (p - 1) for p in range(1, N + 1))
    if np.any(lam <= 0):
        return -np.inf
    return 0.5 * float(np.sum(np.log(lam)))


def entropy_vandermonde(X: np.ndarray, N: int) -> float:
    """The literal formula ``0.5 (log van(s^2) - log van(s^{2/N}))`` (for cross-checking ``entropy``)."""
    s = np.linalg.svd(np.asarray(X, dtype=np.float64), compute_uv=False)
    if N == 1:
        return 0.0
    return 0.5 * (_log_van(s ** 2) - _log_van(s ** (2.0 / N)))


def orbit_generators(weights) -> np.ndarray:
    """Tangent vectors of the ``O(d_1) x ... x O(d_{N-1})`` orbit through ``weights``: for each hidden
    layer ``q`` and each basis element ``A = (E_ij - E_ji)/sqrt(2)`` (``i<j``) of ``so(d_q)``,
    the flattened ``delta W`` with ``delta W_q = A W_q``, ``delta W_{q+1} = -W_{q+1} A`` (the
    derivative of ``W_q -> Q W_q``, ``W_{q+1} -> W_{q+1} Q^T`` at ``Q = I``). Shape ``(K, P)``
    with ``K = sum_q d_q(d_q-1)/2``, ``P`` the number of weights."""
    ws = as_weights(weights)
    if ws[0].ndim != 2:
        raise ValueError("orbit_generators takes unbatched weights")
    widths = widths_of(ws)
    N = len(ws)
    rows = []
    for q in range(1, N):  # hidden layer q sits between W_q (output side) and W_{q+1} (input side)
        d = widths[q]
        for i in range(d):
            for j in range(i + 1, d):
                A = np.zeros((d, d))
                A[i, j], A[j, i] = 1 / np.sqrt(2), -1 / np.sqrt(2)
                dW = [np.zeros_like(w) for w in ws]
                dW[q - 1] = A @ ws[q - 1]
                dW[q] = -ws[q] @ A
                rows.append(np.concatenate([x.ravel() for x in dW]))
    if not rows:
        return np.zeros((0, sum(w.size for w in ws)))
    return np.stack(rows)


def gram_logdet(weights) -> float:
    """``log det`` of the Gram matrix ``J J^T`` of ``orbit_generators`` (``-inf`` when singular:
    the orbit is lower-dimensional, e.g. repeated singular values or unequal widths)."""
    J = orbit_generators(weights)
    if J.shape[0] == 0:
        return 0.0
    sign, logdet = np.linalg.slogdet(J @ J.T)
    return float(logdet) if sign > 0 else -np.inf


def entropy_by_gram(X: np.ndarray, N: int, *, seed: int | None = 0) -> float:
    """``0.5 log det Gram`` of the orbit generators at a (randomly rotated) balanced factorization of
    the square ``X``: the numerical counterpart of ``entropy`` (the volume density of the fiber;
    independent of the point on the fiber since the group acts by isometries)."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] != X.shape[1]:
        raise ValueError(f"entropy_by_gram is for square X (all widths equal), got shape {X.shape}")
    d = X.shape[0]
    ws = balanced_factorization(X, [d] * (N + 1), rotate=True, seed=seed)
    return 0.5 * gram_logdet(ws)


def free_energy(X: np.ndarray, energy, N: int, beta: float) -> float:
    """``F(X) = E(X) - S(X)/beta`` (Menon 2024, Sec. 6: the free energy whose Riemannian gradient
    drives the Langevin equation on the balanced manifold)."""
    if not beta > 0:
        raise ValueError(f"beta (inverse temperature) must be > 0, got {beta}")
    return float(energy(X)) - entropy(X, N) / beta


def fiber_check(weights) -> dict:
    """At balanced square weights: ``{'entropy': S(X), 'gram': 0.5 logdet Gram, 'X': X}``."""
    ws = as_weights(weights)
    X = end_to_end(ws)
    return {"entropy": entropy(X, len(ws)), "gram": 0.5 * gram_logdet(ws), "X": X}
