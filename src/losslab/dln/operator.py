"""The end-to-end operator ``A_{N,X}`` of the deep linear network and fractional powers of PSD matrices.

On the balanced manifold, gradient flow of the weights induces on ``X = W_N ... W_1``
``dX/dt = -A_{N,X}(grad E(X))`` with
``A_{N,X}(P) = sum_{p=1}^N (X X^T)^{(N-p)/N} P (X^T X)^{(p-1)/N}``
(Arora, Cohen, Hazan 2018, Thm. 1 / Eq. (7); Menon 2024, Sec. 4, where ``A_{N,X}`` defines the
Riemannian metric ``g_N`` on matrices by ``g_N(X)(Z, Z) = tr(Z^T A_{N,X}^{-1} Z)``).
"""
from __future__ import annotations

import warnings

import numpy as np

PSD_RTOL = 1e-12


def psd_power(M: np.ndarray, alpha: float, *, rtol: float = PSD_RTOL) -> np.ndarray:
    """``M^alpha`` for a symmetric PSD ``M`` (shape ``(..., d, d)``), by eigendecomposition.

    Eigenvalues below ``rtol * max eigenvalue`` (round-off of a singular ``X X^T``, possibly
    slightly negative) are set to zero *before* the power, so a singular matrix gets an exact
    zero eigenvalue instead of ``(1e-17)^{1/3} ~ 2e-6`` garbage. ``alpha = 0`` returns the identity
    (the convention ``(X X^T)^0 = I`` of the operator ``A_{N,X}``). A matrix with eigenvalues
    below ``-sqrt(rtol) * max`` is not PSD and raises a warning.
    """
    M = np.asarray(M, dtype=np.float64)
    if M.shape[-1] != M.shape[-2]:
        raise ValueError(f"psd_power needs square matrices, got shape {M.shape}")
    if alpha < 0:
        raise ValueError(f"psd_power supports alpha >= 0 (singular inputs), got {alpha}")
    d = M.shape[-1]
    if alpha == 0:
        return np.broadcast_to(np.eye(d), M.shape).copy()
    Ms = 0.5 * (M + np.swapaxes(M, -1, -2))
    evals, evecs = np.linalg.eigh(Ms)
    top = np.max(np.abs(evals), axis=-1, keepdims=True)
    if np.any(evals < -np.sqrt(rtol) * top - 1e-300):
        warnings.warn("psd_power: matrix has clearly negative eigenvalues; it is not PSD, they are set to 0",
                      RuntimeWarning, stacklevel=2)
    evals = np.where(evals < rtol * top, 0.0, evals)
    return (evecs * evals[..., None, :] ** alpha) @ np.swapaxes(evecs, -1, -2)


def end_to_end_operator(X: np.ndarray, P: np.ndarray, N: int, *, rtol: float = PSD_RTOL) -> np.ndarray:
    """``A_{N,X}(P) = sum_{p=1}^N (X X^T)^{(N-p)/N} P (X^T X)^{(p-1)/N}``
    (Arora, Cohen, Hazan 2018, Eq. (7); Menon 2024, Eq. for the metric ``g_N``)."""
    X = np.asarray(X, dtype=np.float64)
    P = np.asarray(P, dtype=np.float64)
    _check_N(N)
    if P.shape[-2:] != X.shape[-2:]:
        raise ValueError(f"P must have the shape of X {X.shape[-2:]}, got {P.shape[-2:]}")
    XXt = X @ np.swapaxes(X, -1, -2)
    XtX = np.swapaxes(X, -1, -2) @ X
    out = np.zeros(np.broadcast_shapes(X.shape, P.shape))
    for p in range(1, N + 1):
        out = out + psd_power(XXt, (N - p) / N, rtol=rtol) @ P @ psd_power(XtX, (p - 1) / N, rtol=rtol)
    return out


def _check_N(N):
    if int(N) != N or N < 1:
        raise ValueError(f"depth N must be a positive integer, got {N}")


def operator_matrix(X: np.ndarray, N: int) -> np.ndarray:
    """The ``(mn, mn)`` matrix of ``P -> A_{N,X}(P)`` acting on row-major ``vec(P)`` (a reference
    for small ``X``; symmetric PSD since ``A`` is self-adjoint in the Frobenius inner product)."""
    X = np.asarray(X, dtype=np.float64)
    m, n = X.shape
    cols = []
    for k in range(m * n):
        E = np.zeros(m * n)
        E[k] = 1.0
        cols.append(end_to_end_operator(X, E.reshape(m, n), N).ravel())
    return np.stack(cols, axis=1)


def operator_eigenvalues(X: np.ndarray, N: int) -> np.ndarray:
    """Eigenvalues ``lambda_ij`` of ``A_{N,X}`` with eigenvectors ``u_i v_j^T`` (``X = U S V^T``, full
    SVD, singular values padded with zeros to ``(m,)`` and ``(n,)``):
    ``lambda_ij = (s_i^2 - s_j^2) / (s_i^{2/N} - s_j^{2/N})`` for ``s_i != s_j`` and
    ``N s_i^{2-2/N}`` for ``s_i = s_j`` (the limit; e.g. ``i = j``) (Menon 2024, Sec. 4, the
    eigenvalues of the metric's operator; from the geometric sum ``sum_p a^{N-p} b^{p-1}``).
    Returns an ``(m, n)`` array, entry ``(i, j)`` for the eigenvector ``u_i v_j^T``.
    """
    X = np.asarray(X, dtype=np.float64)
    _check_N(N)
    m, n = X.shape
    s = np.linalg.svd(X, compute_uv=False)
    si = np.zeros(m)
    sj = np.zeros(n)
    si[: s.size] = s
    sj[: s.size] = s
    if N == 1:
        return np.ones((m, n))
    a = si[:, None] ** (2.0 / N)
    b = sj[None, :] ** (2.0 / N)
    # sum_{p=1}^N a^{N-p} b^{p-1}: exact and stable for any a, b >= 0 (no 0/0 for equal values)
    lam = np.zeros((m, n))
    for p in range(1, N + 1):
        lam = lam + a ** (N - p) * b ** (p - 1)
    return lam


def operator_eigenvalues_closed_form(s_i: np.ndarray, s_j: np.ndarray, N: int) -> np.ndarray:
    """The closed form ``(s_i^2 - s_j^2)/(s_i^{2/N} - s_j^{2/N})`` (``N s^{2-2/N}`` on ties), elementwise
    with broadcasting (Menon 2024, Sec. 4). Kept separate from the geometric-sum evaluation in
    ``operator_eigenvalues`` so the two can check each other."""
    s_i = np.asarray(s_i, dtype=np.float64)
    s_j = np.asarray(s_j, dtype=np.float64)
    num = s_i ** 2 - s_j ** 2
    den = s_i ** (2.0 / N) - s_j ** (2.0 / N)
    tie = np.isclose(s_i, s_j, rtol=1e-12, atol=0.0) | (den == 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(tie, N * np.broadcast_to(s_i, np.broadcast_shapes(s_i.shape, s_j.shape)) ** (2.0 - 2.0 / N),
                       num / np.where(tie, 1.0, den))
    return out


def end_to_end_velocity(X: np.ndarray, grad_E: np.ndarray, N: int) -> np.ndarray:
    """The induced dynamics ``dX/dt = -A_{N,X}(grad E(X))`` (Arora, Cohen, Hazan 2018, Thm. 1)."""
    return -end_to_end_operator(X, grad_E, N)


def layerwise_velocity(weights, grad_X: np.ndarray) -> np.ndarray:
    """``dX/dt`` induced by the weights' gradient flow ``dW_p/dt = -dL/dW_p`` (product rule):
    ``sum_p (W_N..W_{p+1}) dW_p/dt (W_{p-1}..W_1)``; equals ``-A_{N,X}(grad E)`` on the balanced
    manifold and differs from it off it."""
    from .core import _prefix_suffix, weight_gradients

    grads = weight_gradients(weights, grad_X)
    prefix, suffix = _prefix_suffix(weights)
    return -sum(suffix[p] @ grads[p - 1] @ prefix[p - 1] for p in range(1, len(weights) + 1))
