"""The Riemannian Langevin equation of the deep linear network.

Scalar case ``d = 1`` (Menon 2024, Sec. 6): on the balanced manifold the metric ``g_N`` reduces to
``D(x) = N |x|^{2-2/N}`` (the only eigenvalue of ``A_{N,x}``), and the Riemannian Langevin equation
(Ito) is

    dx = ( -D(x) E'(x) + D'(x) / (2 beta) ) dt + sqrt(2 D(x) / beta) dB,

whose stationary density is ``rho(x) ∝ D(x)^{-1/2} e^{-beta E(x)}`` (zero probability flux:
``b rho = (D rho)'/beta``), *not* the Gibbs density ``e^{-beta E}``: the factor ``D^{-1/2}`` is the
Riemannian volume ``e^{S}`` of the one-dimensional fiber.

Two schemes simulate it:
- ``"isometric"`` (default): Euler-Maruyama in the arc-length coordinate of the balanced manifold
  ``y = sqrt(N) sign(x) |x|^{1/N}`` (``dy/dx = D^{-1/2}``, so ``y = sqrt(N) w`` with ``w`` the common
  weight of the balanced scalar network). By Ito's formula the equation becomes the Euclidean
  Langevin equation ``dy = -d/dy E(x(y)) dt + sqrt(2/beta) dB`` (the ``D'/(2 beta)`` drift is exactly
  the Ito correction), with Lipschitz coefficients near ``x = 0``.
- ``"euler"``: Euler-Maruyama on the equation in ``x`` as written (non-Lipschitz noise at ``x = 0``;
  converges more slowly there).

For matrices, ``noisy_gradient_descent`` runs ``W <- W - lr grad L + sqrt(2 lr/beta) xi`` on the
weights and reports ``E``, ``S`` and the free energy ``F = E - S/beta`` along the way.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.integrate import quad

from ..registry import Registry
from .core import as_weights
from .entropy import entropy
from .flow import gradient_descent


def diffusion(x, N: int) -> np.ndarray:
    """``D(x) = N |x|^{2-2/N}`` (Menon 2024, Sec. 6; the ``1 x 1`` case of ``A_{N,X}``)."""
    return N * np.abs(np.asarray(x, dtype=np.float64)) ** (2.0 - 2.0 / N)


def diffusion_prime(x, N: int) -> np.ndarray:
    """``D'(x) = N (2 - 2/N) sign(x) |x|^{1-2/N}`` (``0`` at ``x = 0`` for ``N != 2``; ``N = 2`` has the
    jump ``2 sign(x)``, and ``sign(0) = 0``)."""
    x = np.asarray(x, dtype=np.float64)
    if N == 1:
        return np.zeros_like(x)
    with np.errstate(divide="ignore"):
        mag = np.where(x == 0, 0.0, np.abs(x) ** (1.0 - 2.0 / N)) if N > 2 else np.ones_like(x)
    return N * (2.0 - 2.0 / N) * np.sign(x) * mag


def to_arclength(x, N: int) -> np.ndarray:
    """``y = sqrt(N) sign(x) |x|^{1/N}``, the arc length on the balanced scalar manifold."""
    x = np.asarray(x, dtype=np.float64)
    return np.sqrt(N) * np.sign(x) * np.abs(x) ** (1.0 / N)


def from_arclength(y, N: int) -> np.ndarray:
    """Inverse of ``to_arclength``: ``x = sign(y) |y/sqrt(N)|^N``."""
    y = np.asarray(y, dtype=np.float64)
    return np.sign(y) * np.abs(y / np.sqrt(N)) ** N


@dataclass(frozen=True)
class ScalarEnergy:
    """A scalar energy ``E(x)`` with derivative ``E'(x)`` (vectorized)."""

    name: str
    E: object
    dE: object
    params: dict

    def __call__(self, x):
        return self.E(np.asarray(x, dtype=np.float64))

    def grad(self, x):
        return self.dE(np.asarray(x, dtype=np.float64))


SCALAR_ENERGIES: Registry = Registry("scalar energy")


@SCALAR_ENERGIES.register("quadratic")
def quadratic(a: float = 1.0) -> ScalarEnergy:
    """``E(x) = 0.5 (x - a)^2`` (the ``1 x 1`` Frobenius energy with target ``a``)."""
    return ScalarEnergy("quadratic", lambda x: 0.5 * (x - a) ** 2, lambda x: x - a, {"a": a})


def _scalar_energy(energy) -> ScalarEnergy:
    if isinstance(energy, ScalarEnergy):
        return energy
    if isinstance(energy, str):
        return SCALAR_ENERGIES.get(energy)()
    raise TypeError(f"energy must be a ScalarEnergy (e.g. langevin.quadratic(a=1.0)) or a name in "
                    f"{SCALAR_ENERGIES.names()}, got {type(energy).__name__}")


def langevin_drift(x, energy, N: int, beta: float) -> np.ndarray:
    """``-D E' + D'/(2 beta)``."""
    e = _scalar_energy(energy)
    return -diffusion(x, N) * e.grad(x) + diffusion_prime(x, N) / (2.0 * beta)


SCHEMES = ("isometric", "euler")


def langevin_scalar(energy, *, N: int, beta: float, dt: float = 1e-3, steps: int = 10_000, n_chains: int = 10_000,
                    x0: float | np.ndarray = 1.0, burn_in: int | None = None, record_every: int = 1000,
                    scheme: str = "isometric", seed: int | None = 0) -> np.ndarray:
    """Simulate ``n_chains`` independent copies of the scalar Riemannian Langevin equation (Menon 2024,
    Sec. 6) for ``steps`` steps of size ``dt`` and return the samples recorded every
    ``record_every`` steps after ``burn_in`` steps (default ``steps // 2``), shape ``(n_records, n_chains)``.
    See the module docstring for the two schemes."""
    e = _scalar_energy(energy)
    if scheme not in SCHEMES:
        raise ValueError(f"unknown scheme {scheme!r}; valid: {', '.join(SCHEMES)}")
    if not (beta > 0 and dt > 0 and steps > 0 and n_chains > 0 and record_every > 0) or int(N) != N or N < 1:
        raise ValueError(f"need beta > 0, dt > 0, steps, n_chains, record_every > 0 and integer N >= 1; got "
                         f"beta={beta}, dt={dt}, steps={steps}, n_chains={n_chains}, record_every={record_every}, N={N}")
    burn_in = steps // 2 if burn_in is None else burn_in
    rng = np.random.default_rng(seed)
    x = np.broadcast_to(np.asarray(x0, dtype=np.float64), (n_chains,)).copy()
    y = to_arclength(x, N)
    noise = np.sqrt(2.0 * dt / beta)
    out = []
    for k in range(1, steps + 1):
        xi = rng.standard_normal(n_chains)
        if scheme == "isometric":
            x = from_arclength(y, N)
            dxdy = np.sqrt(diffusion(x, N))  # dx/dy = D^{1/2}
            y = y - dt * e.grad(x) * dxdy + noise * xi
        else:
            x = x + dt * langevin_drift(x, e, N, beta) + noise * np.sqrt(diffusion(x, N)) * xi
        if k > burn_in and (k - burn_in) % record_every == 0:
            out.append(from_arclength(y, N) if scheme == "isometric" else x.copy())
    if not out:
        raise ValueError(f"no samples recorded: steps={steps}, burn_in={burn_in}, record_every={record_every}")
    samples = np.stack(out)
    if not np.all(np.isfinite(samples)):
        raise FloatingPointError("Langevin simulation produced non-finite values; reduce dt")
    return samples


def stationary_bin_probabilities(edges, energy, *, N: int, beta: float, density: str = "riemannian") -> np.ndarray:
    """Probabilities of the bins ``[edges[k], edges[k+1]]`` under the density restricted (and
    normalized) to ``[edges[0], edges[-1]]``:
    ``"riemannian"``: ``∝ D^{-1/2} e^{-beta E}`` (Menon 2024, Sec. 6), integrated in the arc length
    ``y`` where it is the smooth ``e^{-beta E(x(y))} dy`` (no singularity at ``x = 0``);
    ``"gibbs"``: ``∝ e^{-beta E}`` (what a Euclidean Langevin equation in ``x`` would give)."""
    e = _scalar_energy(energy)
    edges = np.asarray(edges, dtype=np.float64)
    if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0):
        raise ValueError("edges must be an increasing 1-D array with at least two entries")
    ref = float(np.min(e(np.linspace(edges[0], edges[-1], 2001))))  # avoid overflow in exp
    if density == "riemannian":
        f = lambda y: np.exp(-beta * (e(from_arclength(y, N)) - ref))  # noqa: E731
        lims = to_arclength(edges, N)
    elif density == "gibbs":
        f = lambda x: np.exp(-beta * (e(x) - ref))  # noqa: E731
        lims = edges
    else:
        raise ValueError(f"density must be 'riemannian' or 'gibbs', got {density!r}")
    mass = np.array([quad(f, lims[k], lims[k + 1], epsabs=0, epsrel=1e-12, limit=200)[0] for k in range(edges.size - 1)])
    return mass / mass.sum()


def stationary_density(x, energy, *, N: int, beta: float, lo: float, hi: float) -> np.ndarray:
    """The normalized density ``D^{-1/2} e^{-beta E} / Z`` on ``[lo, hi]`` (for plotting; infinite at
    ``x = 0`` but integrable)."""
    e = _scalar_energy(energy)
    x = np.asarray(x, dtype=np.float64)
    xs = np.linspace(lo, hi, 2001)
    ref = float(np.min(e(xs)))
    Z = quad(lambda y: np.exp(-beta * (e(from_arclength(y, N)) - ref)), to_arclength(lo, N), to_arclength(hi, N),
             epsabs=0, epsrel=1e-12, limit=200)[0]
    with np.errstate(divide="ignore"):
        return diffusion(x, N) ** -0.5 * np.exp(-beta * (e(x) - ref)) / Z


def total_variation(p: np.ndarray, q: np.ndarray) -> float:
    """``0.5 sum |p - q|`` between two probability vectors."""
    return 0.5 * float(np.sum(np.abs(np.asarray(p) - np.asarray(q))))


@dataclass(frozen=True)
class NoisyPath:
    """Noisy gradient descent on the weights, with ``E``, ``S`` and ``F = E - S/beta`` at recorded steps."""

    times: np.ndarray
    energy: np.ndarray
    entropy: np.ndarray
    free_energy: np.ndarray
    balancedness: np.ndarray
    singular_values: np.ndarray  # (T, min(d_N, d_0))
    settings: dict


def noisy_gradient_descent(weights, energy, *, beta: float, lr: float, steps: int, record_every: int = 10,
                           seed: int | None = 0) -> NoisyPath:
    """``W <- W - lr grad L + sqrt(2 lr / beta) xi`` (Euler-Maruyama of ``dW = -grad L dt + sqrt(2/beta) dB``;
    Menon 2024, Sec. 6), reporting the free energy ``F = E(X) - S(X)/beta`` along the way. ``S`` needs
    a square ``X`` (equal ``d_0``, ``d_N``); otherwise it is NaN."""
    ws = as_weights(weights)
    tr = gradient_descent(ws, energy, lr=lr, steps=steps, record_every=record_every, noise_beta=beta, seed=seed)
    N = len(ws)
    X = tr.X
    square = X.shape[-1] == X.shape[-2]
    S = np.array([entropy(x, N) if square and np.all(np.isfinite(x)) else np.nan for x in X])
    E = np.asarray(tr.loss, dtype=np.float64)
    return NoisyPath(times=tr.times, energy=E, entropy=S, free_energy=E - S / beta, balancedness=tr.balancedness,
                     singular_values=np.linalg.svd(np.nan_to_num(X), compute_uv=False),
                     settings=dict(beta=beta, lr=lr, steps=steps, record_every=record_every, seed=seed, N=N))


__all__ = ["diffusion", "diffusion_prime", "to_arclength", "from_arclength", "ScalarEnergy", "SCALAR_ENERGIES",
           "quadratic", "langevin_drift", "langevin_scalar", "stationary_bin_probabilities", "stationary_density",
           "total_variation", "NoisyPath", "noisy_gradient_descent"]


def tv_noise_floor(p: np.ndarray, n: int) -> float:
    """Expected TV of an ``n``-sample histogram from its true ``p`` (independent samples, normal
    approximation): ``0.5 sum_k sqrt(2 p_k (1-p_k) / (pi n))``."""
    p = np.asarray(p)
    return float(0.5 * np.sum(np.sqrt(2 * p * (1 - p) / (np.pi * n))))
