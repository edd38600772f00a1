"""Training dynamics of the deep linear network in float64: gradient flow of the weights (an
adaptive ODE integrator, ``scipy.integrate.solve_ivp``), gradient descent on the weights, and the
end-to-end ODE ``dX/dt = -A_{N,X}(grad E(X))`` (Arora, Cohen, Hazan 2018, Thm. 1)."""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy.integrate import solve_ivp

from .core import Energy, as_weights, balancedness, end_to_end, invariants, weight_gradients, widths_of
from .operator import end_to_end_velocity


@dataclass(frozen=True)
class WeightTrajectory:
    """A recorded path of the weights. ``weights[p-1]`` has shape ``(T, d_p, d_{p-1})``; ``X`` is
    ``(T, d_N, d_0)``; ``loss`` and ``balancedness`` are ``(T,)``; ``times`` are flow times
    (for gradient descent ``t = lr * step``, the time the step approximates)."""

    times: np.ndarray
    weights: list
    X: np.ndarray
    loss: np.ndarray
    balancedness: np.ndarray
    method: str
    settings: dict

    def weights_at(self, k: int) -> list[np.ndarray]:
        return [w[k] for w in self.weights]

    def invariants(self) -> list[np.ndarray]:
        """``G_p(t)``, each of shape ``(T, d_p, d_p)``."""
        return invariants(self.weights)

    def invariant_drift(self) -> np.ndarray:
        """``max_p ||G_p(t) - G_p(0)||_F`` along the path, shape ``(T,)``."""
        G = self.invariants()
        if not G:
            return np.zeros(self.times.shape)
        return np.max(np.stack([np.linalg.norm(g - g[0], axis=(-2, -1)) for g in G]), axis=0)


@dataclass(frozen=True)
class MatrixTrajectory:
    """A recorded path of the end-to-end matrix: ``X`` of shape ``(T, d_N, d_0)``, ``loss`` ``(T,)``."""

    times: np.ndarray
    X: np.ndarray
    loss: np.ndarray
    settings: dict


def _pack(ws):
    return np.concatenate([w.ravel() for w in ws])


def _unpacker(widths):
    shapes = [(widths[p], widths[p - 1]) for p in range(1, len(widths))]
    sizes = [a * b for a, b in shapes]
    offs = np.cumsum([0] + sizes)

    def unpack(v):  # v: (P,) or (P, T)
        if v.ndim == 1:
            return [v[offs[i]:offs[i + 1]].reshape(shapes[i]) for i in range(len(shapes))]
        T = v.shape[1]
        return [np.moveaxis(v[offs[i]:offs[i + 1]].reshape(shapes[i] + (T,)), -1, 0) for i in range(len(shapes))]

    return unpack


def _times(times):
    t = np.asarray(times, dtype=np.float64)
    if t.ndim != 1 or t.size < 1 or np.any(np.diff(t) <= 0):
        raise ValueError(f"times must be a 1-D increasing array of flow times, got {t!r}")
    return t


def gradient_flow(weights, energy: Energy, times, *, rtol: float = 1e-10, atol: float = 1e-12,
                  method: str = "DOP853") -> WeightTrajectory:
    """Gradient flow ``dW_p/dt = -dL/dW_p`` of ``L(W) = E(W_N...W_1)`` (Menon 2024, Sec. 2, Eq. (2.3);
    Arora, Cohen, Hazan 2018, Eq. (5)), integrated in float64 by ``solve_ivp`` (adaptive
    ``DOP853`` by default) and recorded at ``times`` (``times[0]`` is the start).

    Tolerances: ``rtol``/``atol`` are the integrator's local error controls; with the defaults
    the invariants ``G_p`` drift by ~1e-12..1e-10 over O(1)-O(10) times on O(1) weights.
    """
    ws = as_weights(weights)
    if ws[0].ndim != 2:
        raise ValueError("gradient_flow takes unbatched weights (each W_p 2-D)")
    t = _times(times)
    widths = widths_of(ws)
    unpack = _unpacker(widths)

    def rhs(_t, v):
        W = unpack(v)
        return -_pack(weight_gradients(W, energy.grad(end_to_end(W))))

    sol = solve_ivp(rhs, (t[0], t[-1]), _pack(ws), method=method, t_eval=t, rtol=rtol, atol=atol)
    if not sol.success:
        raise RuntimeError(f"gradient flow integration failed: {sol.message} (try a shorter time span or looser rtol)")
    Wt = unpack(sol.y)
    X = end_to_end(Wt)
    return WeightTrajectory(times=t, weights=Wt, X=X, loss=energy(X), balancedness=balancedness(Wt),
                            method=f"flow:{method}", settings=dict(rtol=rtol, atol=atol, method=method, nfev=int(sol.nfev)))


def gradient_descent(weights, energy: Energy, *, lr: float, steps: int, record_every: int = 1,
                     noise_beta: float | None = None, seed: int | None = 0) -> WeightTrajectory:
    """Gradient descent ``W_p <- W_p - lr dL/dW_p`` for ``steps`` steps, recorded every
    ``record_every`` steps (the start and the last step always recorded). Times are ``lr * step``.

    ``noise_beta``: if given, noisy gradient descent (Euler-Maruyama of the Langevin equation
    ``dW = -grad L dt + sqrt(2/beta) dB`` on the weights; Menon 2024, Sec. 6):
    ``W <- W - lr grad + sqrt(2 lr / beta) xi``, ``xi ~ N(0, I)`` drawn from ``seed``.
    A diverging run (non-finite loss) stops early with a warning; the remaining records are NaN.
    """
    ws = as_weights(weights)
    if not lr > 0 or steps < 0 or record_every < 1:
        raise ValueError(f"need lr > 0, steps >= 0, record_every >= 1; got lr={lr}, steps={steps}, record_every={record_every}")
    rng = np.random.default_rng(seed) if noise_beta is not None else None
    if noise_beta is not None and not noise_beta > 0:
        raise ValueError(f"noise_beta (inverse temperature) must be > 0, got {noise_beta}")
    rec_steps = sorted(set(range(0, steps + 1, record_every)) | {steps})
    recs = []
    W = ws
    diverged = False
    for k in range(steps + 1):
        if k == rec_steps[len(recs)]:
            recs.append([w.copy() for w in W])
        if k == steps:
            break
        with np.errstate(over="ignore", invalid="ignore"):
            g = weight_gradients(W, energy.grad(end_to_end(W)))
            W = [w - lr * gw for w, gw in zip(W, g)]
            if rng is not None:
                W = [w + np.sqrt(2 * lr / noise_beta) * rng.standard_normal(w.shape) for w in W]
        if not all(np.all(np.isfinite(w)) for w in W):
            diverged = True
            warnings.warn(f"gradient descent diverged at step {k + 1} (lr={lr}); try a smaller lr", RuntimeWarning, stacklevel=2)
            break
    while len(recs) < len(rec_steps):
        recs.append([np.full_like(w, np.nan) for w in ws])
    Wt = [np.stack([r[p] for r in recs]) for p in range(len(ws))]
    X = end_to_end(Wt)
    with np.errstate(invalid="ignore", over="ignore"):
        loss = energy(X)
        bal = balancedness(Wt)
    return WeightTrajectory(times=lr * np.array(rec_steps, dtype=np.float64), weights=Wt, X=X, loss=loss,
                            balancedness=bal, method="gd" if rng is None else "noisy_gd",
                            settings=dict(lr=lr, steps=steps, record_every=record_every, noise_beta=noise_beta,
                                          seed=seed, diverged=diverged, steps_recorded=np.array(rec_steps)))


def end_to_end_flow(X0, energy: Energy, N: int, times, *, rtol: float = 1e-10, atol: float = 1e-12,
                    method: str = "DOP853") -> MatrixTrajectory:
    """The end-to-end ODE ``dX/dt = -A_{N,X}(grad E(X))`` (Arora, Cohen, Hazan 2018, Thm. 1;
    Menon 2024, Sec. 4: the Riemannian gradient flow of ``E`` for the metric ``g_N``), which the
    weights' gradient flow induces from a balanced start."""
    X0 = np.array(X0, dtype=np.float64)
    if X0.ndim != 2:
        raise ValueError(f"X0 must be a matrix (d_N, d_0), got shape {X0.shape}")
    t = _times(times)
    shape = X0.shape

    def rhs(_t, v):
        X = v.reshape(shape)
        return end_to_end_velocity(X, energy.grad(X), N).ravel()

    sol = solve_ivp(rhs, (t[0], t[-1]), X0.ravel(), method=method, t_eval=t, rtol=rtol, atol=atol)
    if not sol.success:
        raise RuntimeError(f"end-to-end flow integration failed: {sol.message}")
    X = np.moveaxis(sol.y.reshape(shape + (t.size,)), -1, 0)
    return MatrixTrajectory(times=t, X=X, loss=energy(X), settings=dict(N=N, rtol=rtol, atol=atol, method=method,
                                                                        nfev=int(sol.nfev)))


def scalar_flow_closed_form(t, x0: float, a: float) -> np.ndarray:
    """Closed form for ``N = 2``, scalar ``E(x) = 0.5 (x - a)^2``: the end-to-end ODE is
    ``x' = -2|x| (x - a)``, i.e. logistic growth, so for ``x0 > 0``
    ``x(t) = a / (1 + (a/x0 - 1) e^{-2at})`` (Menon 2024, Sec. 4, the scalar example;
    Saxe et al. 2014, Eq. (7) with ``tau = 1``, ``s = a``)."""
    t = np.asarray(t, dtype=np.float64)
    if not x0 > 0:
        raise ValueError(f"the closed form holds for x0 > 0, got {x0}")
    return a / (1.0 + (a / x0 - 1.0) * np.exp(-2.0 * a * t))


def saxe_curve(t, s, u0, tau: float = 1.0):
    """``u(t) = s e^{2st/tau} / (e^{2st/tau} - 1 + s/u0)`` (Saxe, McClelland, Ganguli 2014, Eq. (7));
    written as ``s / (1 + (s/u0 - 1) e^{-2st/tau})`` to avoid overflow."""
    t = np.asarray(t, dtype=np.float64)
    return s / (1.0 + (s / u0 - 1.0) * np.exp(-2.0 * s * t / tau))


def saxe_learning_time(s, u0, fraction: float = 0.5, tau: float = 1.0):
    """Time for ``u`` to go from ``u0`` to ``fraction * s``: ``tau/(2s) ln[(s/u0 - 1) f/(1-f)]``
    (Saxe et al. 2014, Eq. (8): learning time ~ ``(tau/s) ln(s/u0)``, ordered by ``1/s``)."""
    s = np.asarray(s, dtype=np.float64)
    return tau / (2 * s) * np.log((s / u0 - 1.0) * fraction / (1.0 - fraction))
