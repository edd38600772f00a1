"""Deep linear networks as data: weights, the end-to-end matrix, energies, invariants, inits.

Notation (Menon, "The geometry of the deep linear network", arXiv 2411.09004, Sec. 2):
weights ``W_1..W_N`` with ``W_p`` of shape ``(d_p, d_{p-1})``, end-to-end matrix
``X = W_N ... W_1`` of shape ``(d_N, d_0)``, energy ``E(X)`` and loss ``L(W) = E(X)``.

Everything here is float64 numpy: the formulas are checked to 1e-10 and beyond, which torch's
default float32 cannot do. Weights are a ``list`` of arrays; functions never modify their inputs.
Where it helps (learning-rate grids, many seeds), arrays may carry leading batch dimensions:
``W_p`` of shape ``(..., d_p, d_{p-1})``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ..registry import Registry

Weights = list  # list[np.ndarray], W_p = weights[p-1] of shape (..., d_p, d_{p-1})


# ----------------------------------------------------------------------------------------------
# weights and the end-to-end matrix


def as_weights(weights: Sequence) -> list[np.ndarray]:
    """Validate and copy a sequence of weight matrices to float64 numpy (torch tensors accepted).

    Checks that consecutive shapes chain: ``W_{p+1}`` has ``d_p`` columns where ``W_p`` has ``d_p`` rows.
    """
    if isinstance(weights, np.ndarray) or not isinstance(weights, (list, tuple)):
        raise TypeError(f"weights must be a list of matrices W_1..W_N, got {type(weights).__name__}; "
                        "pass [W_1, ..., W_N] or use weights_from_model(model)")
    if len(weights) == 0:
        raise ValueError("weights must contain at least one matrix W_1, got an empty list")
    out = []
    for p, w in enumerate(weights, start=1):
        if hasattr(w, "detach"):
            w = w.detach().cpu().double().numpy()
        a = np.array(w, dtype=np.float64, copy=True)
        if a.ndim < 2:
            raise ValueError(f"W_{p} must be a matrix of shape (d_{p}, d_{p - 1}), got shape {a.shape}")
        out.append(a)
    for p in range(1, len(out)):
        if out[p].shape[-1] != out[p - 1].shape[-2]:
            raise ValueError(f"W_{p + 1} has {out[p].shape[-1]} columns but W_{p} has {out[p - 1].shape[-2]} rows; "
                             f"shapes must chain (W_p is d_p x d_(p-1)): got {[w.shape for w in out]}")
    return out


def widths_of(weights: Sequence[np.ndarray]) -> list[int]:
    """``[d_0, d_1, ..., d_N]`` of a weight list."""
    return [int(weights[0].shape[-1])] + [int(w.shape[-2]) for w in weights]


def weights_from_model(model) -> list[np.ndarray]:
    """Float64 copies of ``W_1..W_N`` from a ``models.build("deep_linear", ...)`` module (or any
    module with ``.layers`` of bias-free ``nn.Linear``). The module is not changed."""
    layers = getattr(model, "layers", None)
    if layers is None:
        raise TypeError(f"expected a DeepLinear module (from models.build('deep_linear', widths=...)) with .layers, "
                        f"got {type(model).__name__}")
    ws = []
    for p, layer in enumerate(layers, start=1):
        if getattr(layer, "bias", None) is not None:
            raise ValueError(f"layer {p} has a bias; a deep linear network has none (build it with models.build('deep_linear'))")
        ws.append(layer.weight.detach().cpu().double().numpy().copy())
    return as_weights(ws)


def model_from_weights(weights: Sequence[np.ndarray], *, dtype=None):
    """A new ``DeepLinear`` module holding ``weights`` (float64 unless ``dtype`` is given)."""
    import torch

    from ..models import DeepLinear

    ws = as_weights(weights)
    if ws[0].ndim != 2:
        raise ValueError("model_from_weights takes unbatched weights (each W_p 2-D)")
    model = DeepLinear(widths_of(ws)).to(dtype or torch.float64)
    with torch.no_grad():
        for layer, w in zip(model.layers, ws):
            layer.weight.copy_(torch.as_tensor(w))
    return model


def end_to_end(weights: Sequence[np.ndarray]) -> np.ndarray:
    """``X = W_N ... W_1`` (shape ``(..., d_N, d_0)``)."""
    X = weights[0]
    for w in weights[1:]:
        X = w @ X
    return X


def _prefix_suffix(weights):
    """prefix[p] = W_p ... W_1 (prefix[0] = I), suffix[p] = W_N ... W_{p+1} (suffix[N] = I)."""
    N = len(weights)
    batch = weights[0].shape[:-2]
    d0, dN = weights[0].shape[-1], weights[-1].shape[-2]
    prefix = [np.broadcast_to(np.eye(d0), batch + (d0, d0))]
    for w in weights:
        prefix.append(w @ prefix[-1])
    suffix = [None] * (N + 1)
    suffix[N] = np.broadcast_to(np.eye(dN), batch + (dN, dN))
    for p in range(N, 0, -1):
        suffix[p - 1] = suffix[p] @ weights[p - 1]
    return prefix, suffix


def weight_gradients(weights: Sequence[np.ndarray], grad_X: np.ndarray) -> list[np.ndarray]:
    """Chain rule for ``L(W) = E(W_N...W_1)``: ``dL/dW_p = (W_N..W_{p+1})^T grad E(X) (W_{p-1}..W_1)^T``
    (Arora, Cohen, Hazan 2018, Eq. (5); Menon 2024, Sec. 2)."""
    prefix, suffix = _prefix_suffix(weights)
    T = lambda a: np.swapaxes(a, -1, -2)  # noqa: E731
    return [T(suffix[p]) @ grad_X @ T(prefix[p - 1]) for p in range(1, len(weights) + 1)]


# ----------------------------------------------------------------------------------------------
# energies E(X)

ENERGIES: Registry = Registry("dln energy")


class Energy:
    """An energy ``E(X)`` on end-to-end matrices, with its Euclidean gradient. Both accept leading
    batch dims: ``X`` of shape ``(..., d_N, d_0)`` -> ``E`` of shape ``(...)``."""

    shape: tuple[int, int]

    def __call__(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def grad(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _check(self, X):
        X = np.asarray(X, dtype=np.float64)
        if X.shape[-2:] != tuple(self.shape):
            raise ValueError(f"{type(self).__name__} expects end-to-end matrices of shape (d_N, d_0) = {tuple(self.shape)}, "
                             f"got {X.shape[-2:]}; check the network's widths d_0 and d_N")
        return X

    def loss(self, weights: Sequence[np.ndarray]) -> np.ndarray:
        """``L(W) = E(W_N ... W_1)``."""
        return self(end_to_end(weights))


@ENERGIES.register("frobenius")
@dataclass(frozen=True, eq=False)
class Frobenius(Energy):
    """``E(X) = 0.5 ||X - Phi||_F^2`` (Menon 2024, Sec. 2, the simplest energy); grad = X - Phi."""

    target: np.ndarray

    def __post_init__(self):
        t = np.array(self.target, dtype=np.float64)
        if t.ndim != 2:
            raise ValueError(f"target Phi must be a matrix (d_N, d_0), got shape {t.shape}")
        object.__setattr__(self, "target", t)

    @property
    def shape(self):
        return self.target.shape

    def __call__(self, X):
        R = self._check(X) - self.target
        return 0.5 * np.sum(R * R, axis=(-2, -1))

    def grad(self, X):
        return self._check(X) - self.target


def _data_matrices(inputs, targets):
    x = np.array(inputs, dtype=np.float64)
    y = np.array(targets, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if y.ndim == 1:
        y = y[:, None]
    if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ValueError(f"inputs (n, d_0) and targets (n, d_N) must have the same number n of rows, "
                         f"got {x.shape} and {y.shape}")
    return x, y


def whiten(inputs: np.ndarray, *, rtol: float = 1e-12) -> np.ndarray:
    """Inputs times ``Sigma_xx^{-1/2}`` with ``Sigma_xx = x^T x / n`` (no centering), so that the
    whitened inputs have ``Sigma_xx = I`` (Saxe, McClelland, Ganguli 2014, Sec. 2)."""
    x = np.asarray(inputs, dtype=np.float64)
    cov = x.T @ x / x.shape[0]
    evals, evecs = np.linalg.eigh(cov)
    if evals.min() <= rtol * evals.max():
        raise ValueError("cannot whiten: the input covariance is singular (fewer independent samples than features?)")
    return x @ (evecs / np.sqrt(evals)) @ evecs.T


@ENERGIES.register("regression")
@dataclass(frozen=True, eq=False)
class Regression(Energy):
    """Least squares on data: ``E(X) = (1/2n) sum_i ||X x_i - y_i||^2``
    ``= 0.5 tr(X S_xx X^T) - tr(X S_yx^T) + const`` with ``S_xx = x^T x/n``, ``S_yx = y^T x/n``;
    grad = ``X S_xx - S_yx`` (Saxe et al. 2014, Eq. (2)-(3); Arora et al. 2018, Sec. 3).
    ``whiten=True`` replaces the inputs by ``whiten(inputs)`` so ``S_xx = I``."""

    inputs: np.ndarray   # (n, d_0)
    targets: np.ndarray  # (n, d_N)
    whiten: bool = False

    def __post_init__(self):
        x, y = _data_matrices(self.inputs, self.targets)
        if self.whiten:
            x = whiten(x)
        n = x.shape[0]
        object.__setattr__(self, "inputs", x)
        object.__setattr__(self, "targets", y)
        object.__setattr__(self, "sigma_xx", x.T @ x / n)
        object.__setattr__(self, "sigma_yx", y.T @ x / n)
        object.__setattr__(self, "_c", 0.5 * float(np.sum(y * y)) / n)

    @property
    def shape(self):
        return (self.targets.shape[1], self.inputs.shape[1])

    def __call__(self, X):
        X = self._check(X)
        quad = 0.5 * np.sum((X @ self.sigma_xx) * X, axis=(-2, -1))
        return quad - np.sum(X * self.sigma_yx, axis=(-2, -1)) + self._c

    def grad(self, X):
        return self._check(X) @ self.sigma_xx - self.sigma_yx


@ENERGIES.register("lp")
@dataclass(frozen=True, eq=False)
class LpRegression(Energy):
    """lp regression: ``E(X) = (1/(p n)) sum_i sum_k |(X x_i - y_i)_k|^p``, grad =
    ``(1/n) sum_i (r_i |r_i|^{p-2}) x_i^T`` (Arora, Cohen, Hazan 2018, Sec. 7, p = 4)."""

    inputs: np.ndarray   # (n, d_0)
    targets: np.ndarray  # (n, d_N)
    p: float = 4.0

    def __post_init__(self):
        if not self.p >= 2:
            raise ValueError(f"lp regression needs p >= 2 (a smooth energy), got p={self.p}")
        x, y = _data_matrices(self.inputs, self.targets)
        object.__setattr__(self, "inputs", x)
        object.__setattr__(self, "targets", y)

    @property
    def shape(self):
        return (self.targets.shape[1], self.inputs.shape[1])

    def _residual(self, X):  # (..., d_N, n)
        return self._check(X) @ self.inputs.T - self.targets.T

    def __call__(self, X):
        R = self._residual(X)
        return np.sum(np.abs(R) ** self.p, axis=(-2, -1)) / (self.p * self.inputs.shape[0])

    def grad(self, X):
        R = self._residual(X)
        return (R * np.abs(R) ** (self.p - 2)) @ self.inputs / self.inputs.shape[0]


def get_energy(name: str | Energy, **options) -> Energy:
    """An energy by name (``frobenius``, ``regression``, ``lp``) or pass one through."""
    if isinstance(name, Energy):
        if options:
            raise TypeError("options given together with an Energy instance; pass one or the other")
        return name
    from ..registry import call_with_options

    return call_with_options("dln energy", name, ENERGIES.get(name), options)


# ----------------------------------------------------------------------------------------------
# invariants


def invariants(weights: Sequence[np.ndarray]) -> list[np.ndarray]:
    """``G_p = W_{p+1}^T W_{p+1} - W_p W_p^T`` for ``p = 1..N-1`` (each ``d_p x d_p``), conserved
    by the gradient flow of any ``E(X)`` (Arora, Cohen, Hazan 2018, Thm. 1; Menon 2024, Sec. 3)."""
    T = lambda a: np.swapaxes(a, -1, -2)  # noqa: E731
    return [T(weights[p]) @ weights[p] - weights[p - 1] @ T(weights[p - 1]) for p in range(1, len(weights))]


def balancedness(weights: Sequence[np.ndarray]) -> np.ndarray:
    """Distance to the balanced manifold ``max_p ||G_p||_F`` (0 for N = 1)."""
    G = invariants(weights)
    if not G:
        return np.zeros(weights[0].shape[:-2])
    return np.max(np.stack([np.linalg.norm(g, axis=(-2, -1)) for g in G]), axis=0)


# ----------------------------------------------------------------------------------------------
# initializations


def random_orthogonal(d: int, rng: np.random.Generator) -> np.ndarray:
    """A Haar-distributed orthogonal ``d x d`` matrix (QR of a Gaussian with sign fix)."""
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))


def balanced_factorization(target: np.ndarray, widths: Sequence[int], *, rotate: bool = False,
                           seed: int | None = 0) -> list[np.ndarray]:
    """Balanced weights with ``W_N ... W_1 = target``: with ``target = U S V^T`` (top ``k`` singular
    triples, ``k = min(widths)``), ``W_N = U S^{1/N}``, ``W_p = S^{1/N}`` (middle), ``W_1 = S^{1/N} V^T``,
    zero-padded to the widths (Arora, Cohen, Hazan 2018, Sec. 3.3; Menon 2024, Sec. 3.2).
    All ``G_p = 0``. If ``min(widths)`` is below the target's rank, the product is the best
    rank-``k`` approximation (Eckart-Young) and a ``ValueError`` is raised instead: pass a
    low-rank target explicitly.

    ``rotate=True`` applies random hidden rotations ``W_p -> Q_p W_p Q_{p-1}^T`` (``Q_0 = Q_N = I``),
    which keep both ``X`` and balancedness: a generic point of the fiber over ``X``.
    """
    Phi = np.array(target, dtype=np.float64)
    widths = [int(w) for w in widths]
    if Phi.ndim != 2 or len(widths) < 2 or Phi.shape != (widths[-1], widths[0]):
        raise ValueError(f"target must have shape (d_N, d_0) = ({widths[-1]}, {widths[0]}) for widths {widths}, got {Phi.shape}")
    N = len(widths) - 1
    U, s, Vt = np.linalg.svd(Phi, full_matrices=False)
    k = min(widths)
    # round-off singular values (s^2 < 1e-12 max s^2, the rule of operator.psd_power) are exact zeros:
    # their N-th roots (1e-16 -> 5e-6 for N = 3) would otherwise be spurious directions
    s = np.where(s ** 2 < 1e-12 * np.max(s ** 2, initial=0.0), 0.0, s)
    rank = int(np.sum(s > 0))
    if rank > k:
        raise ValueError(f"target has rank {rank} but the narrowest width is {k}; the network cannot represent it. "
                         "Widen the network or pass a rank-truncated target.")
    r = min(k, s.size)
    sig = s[:r] ** (1.0 / N)
    Ws = []
    for p in range(1, N + 1):
        W = np.zeros((widths[p], widths[p - 1]))
        if N == 1:
            W = Phi.copy()
        elif p == 1:
            W[:r, :] = sig[:, None] * Vt[:r]
        elif p == N:
            W[:, :r] = U[:, :r] * sig
        else:
            W[np.arange(r), np.arange(r)] = sig
        Ws.append(W)
    if rotate and N > 1:
        rng = np.random.default_rng(seed)
        Q = [np.eye(widths[0])] + [random_orthogonal(widths[p], rng) for p in range(1, N)] + [np.eye(widths[-1])]
        Ws = [Q[p] @ Ws[p - 1] @ Q[p - 1].T for p in range(1, N + 1)]
    return Ws


def saxe_init(target_corr: np.ndarray, widths: Sequence[int], *, u0: float = 1e-3, rotate: bool = True,
              seed: int | None = 0) -> list[np.ndarray]:
    """Saxe's aligned small init: with ``Sigma_yx = U S V^T``, weights whose product is
    ``U diag(u0) V^T`` and balanced (each mode strength starts at ``u0``), so each mode follows
    ``u(t) = s e^{2st/tau} / (e^{2st/tau} - 1 + s/u0)`` for N = 2 and whitened inputs
    (Saxe, McClelland, Ganguli 2014, Eq. (7) and the decoupled initial conditions above it)."""
    C = np.array(target_corr, dtype=np.float64)
    if not u0 > 0:
        raise ValueError(f"u0 must be > 0, got {u0}")
    U, s, Vt = np.linalg.svd(C, full_matrices=False)
    r = min(min(widths), s.size)
    X0 = (U[:, :r] * u0) @ Vt[:r]
    return balanced_factorization(X0, widths, rotate=rotate, seed=seed)


def random_init(widths: Sequence[int], *, scale: float = 1e-2, seed: int | None = 0) -> list[np.ndarray]:
    """Random small init: i.i.d. ``N(0, scale^2)`` entries (not balanced: ``G_p = O(scale^2)``)."""
    rng = np.random.default_rng(seed)
    widths = [int(w) for w in widths]
    if len(widths) < 2 or min(widths) < 1:
        raise ValueError(f"widths must be at least two positive integers (d_0, ..., d_N), got {widths}")
    return [scale * rng.standard_normal((widths[p], widths[p - 1])) for p in range(1, len(widths))]


INITS: Registry = Registry("dln init")
INITS.register("balanced", balanced_factorization)
INITS.register("saxe", saxe_init)
INITS.register("random", random_init)


@dataclass(frozen=True)
class DLN:
    """A deep linear network with an energy: the weights (float64 copies) and ``E``.

    Convenience holder; every method is a thin call to a module-level function.
    """

    weights: list = field(repr=False)
    energy: Energy | None = None

    def __post_init__(self):
        object.__setattr__(self, "weights", as_weights(self.weights))

    @classmethod
    def from_model(cls, model, energy: Energy | None = None) -> "DLN":
        return cls(weights_from_model(model), energy)

    @property
    def depth(self) -> int:
        return len(self.weights)

    @property
    def widths(self) -> list[int]:
        return widths_of(self.weights)

    def end_to_end(self) -> np.ndarray:
        return end_to_end(self.weights)

    def invariants(self) -> list[np.ndarray]:
        return invariants(self.weights)

    def balancedness(self) -> float:
        return float(balancedness(self.weights))

    def loss(self) -> float:
        if self.energy is None:
            raise ValueError("this DLN has no energy; construct it with DLN(weights, energy)")
        return float(self.energy.loss(self.weights))

    def gradients(self) -> list[np.ndarray]:
        if self.energy is None:
            raise ValueError("this DLN has no energy; construct it with DLN(weights, energy)")
        return weight_gradients(self.weights, self.energy.grad(self.end_to_end()))

    def to_model(self, dtype=None):
        return model_from_weights(self.weights, dtype=dtype)


def whitened_data(M: np.ndarray, n: int, *, seed: int | None = 0):
    """Inputs ``x`` (n, d_0) with ``x^T x / n = I`` exactly and targets ``y = x M^T`` (so ``Sigma_yx = M``)."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((n, M.shape[1])))
    x = np.sqrt(n) * q
    return x, x @ M.T
