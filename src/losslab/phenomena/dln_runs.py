"""The numerics of the five deep-linear-network experiments (the geometry itself is ``losslab.dln``;
``dln_experiments.py`` beside this file turns these results into registered phenomena and stores
them). Each returns a frozen dataclass of plain numpy arrays
and floats (for plotting), the settings that made it, and a ``summary()`` dict of headline numbers.

``quick=True`` sizes each to run in seconds (CI and the tour); ``quick=False`` is the fuller run.
``losslab.phenomena.dln_experiments.save_result`` (the one place results are written) stores a
result in the run store as an experiment run.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize

from ..registry import Registry
from ..dln.core import (Frobenius, LpRegression, Regression, balanced_factorization, end_to_end, random_init,
                        saxe_init, weight_gradients, whitened_data)
from ..dln.flow import end_to_end_flow, gradient_descent, gradient_flow, saxe_curve, saxe_learning_time  # noqa: F401
from ..dln.langevin import (langevin_scalar, noisy_gradient_descent, quadratic, stationary_bin_probabilities,
                            total_variation, tv_noise_floor)

EXPERIMENTS: Registry = Registry("dln experiment")


class _Result:
    def arrays(self) -> dict[str, np.ndarray]:
        """The array fields (what ``save_result`` writes to NPZ)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if isinstance(getattr(self, f.name), np.ndarray)}

    def scalars(self) -> dict:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if not isinstance(getattr(self, f.name), np.ndarray)}

    def summary(self) -> dict:  # pragma: no cover - overridden
        raise NotImplementedError


def _rng_matrix(rng, m, n, scale=1.0):
    return scale * rng.standard_normal((m, n))


# ----------------------------------------------------------------------------------------------
# 1. conservation of the invariants


@dataclass(frozen=True)
class ConservationResult(_Result):
    """``G_p`` along gradient flow (conserved) and along gradient descent (drift ~ lr)."""

    times: np.ndarray          # (T,) flow times of the ODE records
    flow_drift: np.ndarray     # (T,) max_p ||G_p(t) - G_p(0)||_F along the flow
    flow_loss: np.ndarray      # (T,)
    lrs: np.ndarray            # (L,) gradient-descent step sizes, each half the previous
    gd_times: np.ndarray       # (K,) common record times t = lr * step
    gd_drift: np.ndarray       # (L, K) invariant drift along GD for each lr
    gd_loss: np.ndarray        # (L, K)
    gd_final_drift: np.ndarray  # (L,) drift at the final time
    halving_ratios: np.ndarray  # (L-1,) drift(lr) / drift(lr/2): ~2 for a first-order effect
    settings: dict = field(default_factory=dict)

    def summary(self) -> dict:
        return {"flow_max_drift": float(np.max(self.flow_drift)),
                "gd_final_drift": {f"{lr:g}": float(d) for lr, d in zip(self.lrs, self.gd_final_drift)},
                "halving_ratios": [float(r) for r in self.halving_ratios],
                "final_loss_flow": float(self.flow_loss[-1])}


@EXPERIMENTS.register("conservation")
def conservation(*, quick: bool = True, seed: int = 0, widths=None, T: float = 2.0, lr0: float = 0.02,
                 n_lrs: int | None = None, n_records: int = 20, init_scale: float = 0.6) -> ConservationResult:
    """Invariants ``G_p = W_{p+1}^T W_{p+1} - W_p W_p^T`` along the flow and along GD (Arora, Cohen,
    Hazan 2018, Thm. 1; Menon 2024, Sec. 3). One GD step changes ``G_p`` by exactly
    ``lr^2 (g_{p+1}^T g_{p+1} - g_p g_p^T)`` (the first-order terms cancel), so over a fixed time
    ``T`` (``T/lr`` steps) the drift is ``O(lr)``: halving the step halves it."""
    widths = list(widths or ((3, 4, 4, 2) if quick else (5, 8, 8, 8, 4)))
    # full size needs six halvings before the drift enters its O(lr) regime (ratios 4.6, 4.0, 2.6, 2.2, 2.1)
    n_lrs = n_lrs if n_lrs is not None else (4 if quick else 6)
    rng = np.random.default_rng(seed)
    target = _rng_matrix(rng, widths[-1], widths[0])
    energy = Frobenius(target)
    w0 = random_init(widths, scale=init_scale, seed=seed + 1)
    times = np.linspace(0, T, 41 if quick else 201)
    flow = gradient_flow(w0, energy, times)
    lrs = lr0 / 2.0 ** np.arange(n_lrs)
    gd_times = np.linspace(0, T, n_records + 1)
    drifts, losses = [], []
    for lr in lrs:
        steps = int(round(T / lr))
        if steps % n_records:
            raise ValueError(f"T/lr = {T / lr} must be a multiple of n_records={n_records}; choose T, lr0 accordingly")
        tr = gradient_descent(w0, energy, lr=float(lr), steps=steps, record_every=steps // n_records)
        drifts.append(tr.invariant_drift())
        losses.append(tr.loss)
    gd_drift = np.stack(drifts)
    final = gd_drift[:, -1]
    return ConservationResult(times=times, flow_drift=flow.invariant_drift(), flow_loss=flow.loss, lrs=lrs,
                              gd_times=gd_times, gd_drift=gd_drift, gd_loss=np.stack(losses), gd_final_drift=final,
                              halving_ratios=final[:-1] / final[1:],
                              settings=dict(quick=quick, seed=seed, widths=widths, T=T, lr0=lr0, n_lrs=n_lrs,
                                            init_scale=init_scale, energy="frobenius", flow_rtol=1e-10))


# ----------------------------------------------------------------------------------------------
# 2. layer-wise training vs the end-to-end ODE


@dataclass(frozen=True)
class EndToEndResult(_Result):
    """Layer-wise gradient flow vs ``dX/dt = -A_{N,X}(grad E)`` from a balanced start (and from an
    unbalanced start with the same ``X(0)``, for contrast)."""

    times: np.ndarray            # (T,)
    X_layers: np.ndarray         # (T, d_N, d_0) from the weights' flow (balanced start)
    X_end_to_end: np.ndarray     # (T, d_N, d_0) from the end-to-end ODE
    X_unbalanced: np.ndarray     # (T, d_N, d_0) weights' flow from an unbalanced start, same X(0)
    loss_layers: np.ndarray      # (T,)
    loss_end_to_end: np.ndarray  # (T,)
    loss_unbalanced: np.ndarray  # (T,)
    rel_diff: np.ndarray         # (T,) ||X_layers - X_e2e||_F / ||X_e2e||_F
    rel_diff_unbalanced: np.ndarray  # (T,) same for the unbalanced start
    balancedness: np.ndarray     # (T,) max_p ||G_p|| along the balanced-start flow
    settings: dict = field(default_factory=dict)

    def summary(self) -> dict:
        return {"max_rel_diff_balanced": float(np.max(self.rel_diff)),
                "max_rel_diff_unbalanced": float(np.max(self.rel_diff_unbalanced)),
                "final_loss": float(self.loss_layers[-1]), "initial_loss": float(self.loss_layers[0]),
                "max_balancedness": float(np.max(self.balancedness))}


@EXPERIMENTS.register("end_to_end")
def end_to_end_experiment(*, quick: bool = True, seed: int = 0, widths=None, T: float = 3.0,
                          x0_scale: float = 0.3, unbalance: float = 1.5) -> EndToEndResult:
    """Menon 2024, Sec. 4 / Arora, Cohen, Hazan 2018, Thm. 1: from a balanced start the weights'
    gradient flow moves ``X`` exactly by the end-to-end ODE. The unbalanced start multiplies ``W_1`` by
    ``unbalance`` and ``W_2`` by ``1/unbalance`` (same ``X(0)``, ``G_1 != 0``)."""
    widths = list(widths or ((3, 4, 4, 3) if quick else (5, 6, 6, 6, 5)))
    N = len(widths) - 1
    if N < 2:
        raise ValueError(f"end-to-end experiment needs depth N >= 2 (at least 3 widths), got widths {widths}")
    rng = np.random.default_rng(seed)
    target = _rng_matrix(rng, widths[-1], widths[0])
    X0 = _rng_matrix(rng, widths[-1], widths[0], x0_scale)
    energy = Frobenius(target)
    times = np.linspace(0, T, 61 if quick else 301)
    w0 = balanced_factorization(X0, widths, rotate=True, seed=seed + 1)
    lay = gradient_flow(w0, energy, times)
    e2e = end_to_end_flow(X0, energy, N, times)
    wu = [w.copy() for w in w0]
    wu[0] = wu[0] * unbalance
    wu[1] = wu[1] / unbalance
    unb = gradient_flow(wu, energy, times)
    nrm = np.linalg.norm(e2e.X, axis=(-2, -1))
    return EndToEndResult(times=times, X_layers=lay.X, X_end_to_end=e2e.X, X_unbalanced=unb.X, loss_layers=lay.loss,
                          loss_end_to_end=e2e.loss, loss_unbalanced=unb.loss,
                          rel_diff=np.linalg.norm(lay.X - e2e.X, axis=(-2, -1)) / nrm,
                          rel_diff_unbalanced=np.linalg.norm(unb.X - e2e.X, axis=(-2, -1)) / nrm,
                          balancedness=lay.balancedness,
                          settings=dict(quick=quick, seed=seed, widths=widths, T=T, x0_scale=x0_scale,
                                        unbalance=unbalance, energy="frobenius", N=N))


# ----------------------------------------------------------------------------------------------
# 3. acceleration by depth (lp regression)


@dataclass(frozen=True)
class DepthResult(_Result):
    """Loss vs steps for depths ``depths`` at the grid-searched best lr per depth, for ``p`` and ``p = 2``.

    ``curves[k, i, :]``: mean over seeds of ``(loss - E*) / E*`` (relative excess loss) for
    exponent ``ps[k]``, depth ``depths[i]``; ``steps_to_target[k, i, s]``: first step with
    ``loss <= 1.01 E*`` (``max_steps + 1`` if never) for seed ``s``; ``best_lr[k, i]``."""

    ps: np.ndarray
    depths: np.ndarray
    lr_grid: np.ndarray
    steps: np.ndarray            # (S+1,)
    curves: np.ndarray           # (P, D, S+1)
    steps_to_target: np.ndarray  # (P, D, n_seeds)
    best_lr: np.ndarray          # (P, D)
    mean_steps_to_target: np.ndarray  # (P, D)
    optimum: np.ndarray          # (P, n_seeds) E* per seed
    settings: dict = field(default_factory=dict)

    def summary(self) -> dict:
        out = {}
        for k, p in enumerate(self.ps):
            out[f"p={p:g}"] = {f"depth {int(n)}": {"mean_steps_to_1.01_opt": float(self.mean_steps_to_target[k, i]),
                                                    "best_lr": float(self.best_lr[k, i])}
                               for i, n in enumerate(self.depths)}
            out[f"p={p:g}"]["speedup_depth2_vs_1"] = float(self.mean_steps_to_target[k, 0] / self.mean_steps_to_target[k, 1]) \
                if len(self.depths) > 1 else None
        return out


def _lp_problem(p, seed, d, n, noise):
    """Synthetic regression: anisotropic Gaussian inputs (scales 1 .. 0.2), y = x.w + noise."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)) * np.geomspace(1.0, 0.2, d)
    w = rng.standard_normal(d)
    y = x @ w + noise * rng.standard_normal(n)
    energy = LpRegression(x, y[:, None], p=p)
    # E* by a convex solver to high accuracy (the target is 1.01 E*, so 1e-10 relative is plenty)
    res = minimize(lambda v: float(energy(v[None])), np.linalg.lstsq(x, y, rcond=None)[0],
                   jac=lambda v: energy.grad(v[None])[0], method="BFGS", options=dict(gtol=1e-12, maxiter=10_000))
    X0 = rng.standard_normal((1, d)) / np.sqrt(d)
    return energy, float(res.fun), X0


def _gd_batched(weights, energy, lrs, steps):
    """GD for a batch of learning rates at once: weights (B, d_p, d_{p-1}); returns losses (B, steps+1)."""
    W = [np.broadcast_to(w, (lrs.size,) + w.shape).copy() for w in weights]
    lr = lrs[:, None, None]
    out = np.empty((lrs.size, steps + 1))
    alive = np.ones(lrs.size, bool)
    with np.errstate(all="ignore"):
        for k in range(steps + 1):
            X = end_to_end(W)
            L = energy(X)
            alive &= np.isfinite(L) & (L < 1e12)
            out[:, k] = np.where(alive, L, np.nan)
            if k == steps:
                break
            g = weight_gradients(W, energy.grad(X))
            W = [np.where(alive[:, None, None], w - lr * gw, w) for w, gw in zip(W, g)]
    return out


@EXPERIMENTS.register("depth")
def depth(*, quick: bool = True, seed: int = 0, p: float = 4.0, depths=None, n_seeds: int | None = None,
          max_steps: int | None = None, lr_grid=None, d: int = 10, n: int = 200, noise: float = 0.5,
          x0_scale: float = 0.1, control: bool = True) -> DepthResult:
    """Implicit acceleration by overparametrization (Arora, Cohen, Hazan 2018, Sec. 7-8): lp
    regression ``E(w) = (1/(p n)) sum |w.x_i - y_i|^p`` with ``w`` replaced by ``w_N...w_2 W_1``
    (widths ``(d, 1, ..., 1)``; a scalar multiplier per extra layer), balanced start with the same
    end-to-end ``X(0)`` (``x0_scale`` times a random unit-variance row / sqrt(d)) for every depth.
    The learning rate is grid-searched per depth (smallest mean steps to ``1.01 E*`` over seeds);
    the same is done for ``p = 2`` (no acceleration expected there) unless ``control=False``.
    A run that never reaches the target counts as ``max_steps + 1`` steps."""
    depths = np.array(depths or ((1, 2, 3) if quick else (1, 2, 3, 4)))
    n_seeds = n_seeds or (2 if quick else 10)
    max_steps = max_steps or (1000 if quick else 5000)
    lr_grid = np.asarray(lr_grid if lr_grid is not None else np.geomspace(2e-2, 2.0, 9) if quick else np.geomspace(1e-2, 3.0, 25),
                         dtype=np.float64)
    ps = np.array([p, 2.0]) if (p != 2 and control) else np.array([float(p)])
    P, D = ps.size, depths.size
    curves = np.zeros((P, D, max_steps + 1))
    stt = np.zeros((P, D, n_seeds))
    best_lr = np.zeros((P, D))
    opt = np.zeros((P, n_seeds))
    for k, pk in enumerate(ps):
        probs = [_lp_problem(pk, seed + s, d, n, noise) for s in range(n_seeds)]
        opt[k] = [pr[1] for pr in probs]
        for i, N in enumerate(depths):
            runs = []  # (n_seeds, L, S+1)
            for energy, Es, X0 in probs:
                ws = balanced_factorization(x0_scale * X0, [d] + [1] * int(N))
                runs.append(_gd_batched(ws, energy, lr_grid, max_steps))
            runs = np.stack(runs)
            hit = runs <= 1.01 * opt[k][:, None, None]
            first = np.where(hit.any(-1), hit.argmax(-1), max_steps + 1)  # (n_seeds, L)
            j = int(np.argmin(first.mean(0)))
            best_lr[k, i] = lr_grid[j]
            stt[k, i] = first[:, j]
            curves[k, i] = np.mean((runs[:, j] - opt[k][:, None]) / opt[k][:, None], axis=0)
    return DepthResult(ps=ps, depths=depths, lr_grid=lr_grid, steps=np.arange(max_steps + 1), curves=curves,
                       steps_to_target=stt, best_lr=best_lr, mean_steps_to_target=stt.mean(-1), optimum=opt,
                       settings=dict(quick=quick, seed=seed, p=p, n_seeds=n_seeds, max_steps=max_steps, d=d, n=n,
                                     noise=noise, x0_scale=x0_scale, widths="(d, 1, ..., 1)", target="1.01 * E*"))


# ----------------------------------------------------------------------------------------------
# 4. Saxe's learning curves


@dataclass(frozen=True)
class SaxeResult(_Result):
    """Mode strengths ``u_a(t) = u_a^T X(t) v_a`` from the weights' flow vs Saxe's closed form."""

    times: np.ndarray           # (T,)
    s: np.ndarray               # (R,) singular values of Sigma_yx
    u_flow: np.ndarray          # (T, R) aligned init, integrated
    u_closed_form: np.ndarray   # (T, R)
    u_random_init: np.ndarray   # (T, R) random small init (approximately Saxe's curves)
    max_abs_error: float
    t_half_flow: np.ndarray     # (R,) time to reach s/2 (interpolated)
    t_half_closed_form: np.ndarray  # (R,)
    settings: dict = field(default_factory=dict)

    def summary(self) -> dict:
        return {"max_abs_error_aligned": self.max_abs_error,
                "s": [float(v) for v in self.s],
                "t_half_flow": [float(v) for v in self.t_half_flow],
                "t_half_closed_form": [float(v) for v in self.t_half_closed_form],
                "t_half_times_s": [float(v) for v in self.t_half_flow * self.s]}


@EXPERIMENTS.register("saxe")
def saxe(*, quick: bool = True, seed: int = 0, s=None, u0: float = 1e-3, hidden: int | None = None,
         T: float | None = None, n: int = 64) -> SaxeResult:
    """Saxe, McClelland, Ganguli 2014 (Sec. 2, Eq. (7)-(8)): whitened inputs, ``Sigma_yx = U S V^T``,
    a three-layer (``N = 2``) linear net from the aligned small init; each mode strength is a logistic
    curve ``u(t)`` with learning time ``~ ln(s/u0)/(2s)``. Time unit ``tau = 1`` (gradient flow; GD at
    rate ``lr`` has ``t = lr * step``)."""
    s = np.asarray(s if s is not None else ((3.0, 2.0, 1.0, 0.5) if quick else (4.0, 3.0, 2.0, 1.5, 1.0, 0.5, 0.25)),
                   dtype=np.float64)
    R = s.size
    hidden = hidden or R
    rng = np.random.default_rng(seed)
    from ..dln.core import random_orthogonal

    U, V = random_orthogonal(R, rng), random_orthogonal(R, rng)
    M = (U * s) @ V.T
    x, y = whitened_data(M, max(n, R), seed=seed + 1)
    energy = Regression(x, y)
    T = T or 1.6 * float(saxe_learning_time(s.min(), u0, 0.99))
    times = np.linspace(0, T, 201 if quick else 1001)
    widths = [R, hidden, R]
    tr = gradient_flow(saxe_init(M, widths, u0=u0, seed=seed + 2), energy, times, rtol=1e-11, atol=1e-14)
    Us, _, Vts = np.linalg.svd(energy.sigma_yx)
    u_flow = np.einsum("ia,tij,ja->ta", Us, tr.X, Vts.T)  # u_a^T X v_a
    u_cf = saxe_curve(times[:, None], s[None, :], u0)
    rnd = gradient_flow(random_init(widths, scale=np.sqrt(u0), seed=seed + 3), energy, times)
    u_rnd = np.einsum("ia,tij,ja->ta", Us, rnd.X, Vts.T)
    t_half = np.array([np.interp(0.5 * s[a], u_flow[:, a], times) for a in range(R)])
    return SaxeResult(times=times, s=s, u_flow=u_flow, u_closed_form=u_cf, u_random_init=u_rnd,
                      max_abs_error=float(np.max(np.abs(u_flow - u_cf))), t_half_flow=t_half,
                      t_half_closed_form=saxe_learning_time(s, u0),
                      settings=dict(quick=quick, seed=seed, u0=u0, hidden=hidden, T=T, n=n, N=2, tau=1.0,
                                    flow_rtol=1e-11))


# ----------------------------------------------------------------------------------------------
# 5. Riemannian Langevin


@dataclass(frozen=True)
class LangevinResult(_Result):
    """Scalar Riemannian Langevin histogram vs ``D^{-1/2} e^{-beta E}`` (and vs Gibbs ``e^{-beta E}``),
    plus noisy GD on matrix weights with ``E``, ``S``, ``F = E - S/beta`` along the way."""

    edges: np.ndarray              # (K+1,)
    empirical: np.ndarray          # (K,) bin probabilities of the samples (within the edges)
    predicted: np.ndarray          # (K,) from D^{-1/2} e^{-beta E}
    gibbs: np.ndarray              # (K,) from e^{-beta E}
    tv_predicted: float            # total variation empirical vs predicted
    tv_gibbs: float                # total variation empirical vs Gibbs
    tv_noise_floor: float          # expected TV from sampling alone (see settings)
    fraction_outside: float        # samples outside [edges[0], edges[-1]]
    noisy_times: np.ndarray        # (R,)
    noisy_energy: np.ndarray       # (R,)
    noisy_entropy: np.ndarray      # (R,)
    noisy_free_energy: np.ndarray  # (R,)
    noisy_balancedness: np.ndarray  # (R,)
    settings: dict = field(default_factory=dict)

    def summary(self) -> dict:
        return {"tv_vs_predicted": self.tv_predicted, "tv_vs_gibbs": self.tv_gibbs,
                "tv_noise_floor": self.tv_noise_floor, "fraction_outside": self.fraction_outside,
                "noisy_final_free_energy": float(self.noisy_free_energy[-1]),
                "noisy_final_balancedness": float(self.noisy_balancedness[-1])}


@EXPERIMENTS.register("langevin")
def langevin(*, quick: bool = True, seed: int = 0, N: int = 2, beta: float = 4.0, a: float = 1.0,
             dt: float | None = None, n_chains: int | None = None, scheme: str = "isometric",
             bins: int = 20, lo: float = -1.0, hi: float = 2.5) -> LangevinResult:
    """Menon 2024, Sec. 6: the scalar Riemannian Langevin equation with ``E(x) = 0.5 (x - a)^2``;
    histogram of ``n_chains`` independent chains recorded once per time unit after a burn-in of 10
    time units, vs the predicted stationary density. Then noisy GD on 3x3 weights (depth ``N``)."""
    dt = dt or (4e-3 if quick else 1e-3)
    n_chains = n_chains or (4000 if quick else 40_000)
    burn, horizon = 10.0, (20.0 if quick else 40.0)
    e = quadratic(a=a)
    samples = langevin_scalar(e, N=N, beta=beta, dt=dt, steps=int(round(horizon / dt)), n_chains=n_chains,
                              x0=a, burn_in=int(round(burn / dt)), record_every=int(round(1.0 / dt)), scheme=scheme,
                              seed=seed).ravel()
    edges = np.linspace(lo, hi, bins + 1)
    inside = (samples >= lo) & (samples <= hi)
    h, _ = np.histogram(samples[inside], edges)
    emp = h / max(h.sum(), 1)
    pred = stationary_bin_probabilities(edges, e, N=N, beta=beta)
    gib = stationary_bin_probabilities(edges, e, N=N, beta=beta, density="gibbs")
    # matrix part: noisy GD from a balanced start at a 3x3 target
    rng = np.random.default_rng(seed + 1)
    target = np.diag([2.0, 1.0, 0.5]) + 0.1 * rng.standard_normal((3, 3))
    ws = balanced_factorization(target, [3] * (N + 1), rotate=True, seed=seed + 2)
    path = noisy_gradient_descent(ws, Frobenius(target), beta=beta * 25, lr=1e-3, steps=2000 if quick else 20000,
                                  record_every=20 if quick else 100, seed=seed + 3)
    return LangevinResult(edges=edges, empirical=emp, predicted=pred, gibbs=gib, tv_predicted=total_variation(emp, pred),
                          tv_gibbs=total_variation(emp, gib), tv_noise_floor=tv_noise_floor(pred, int(inside.sum())),
                          fraction_outside=float(1 - inside.mean()), noisy_times=path.times, noisy_energy=path.energy,
                          noisy_entropy=path.entropy, noisy_free_energy=path.free_energy,
                          noisy_balancedness=path.balancedness,
                          settings=dict(quick=quick, seed=seed, N=N, beta=beta, a=a, dt=dt, n_chains=n_chains,
                                        scheme=scheme, burn_in_time=burn, horizon=horizon, record_interval=1.0,
                                        n_samples=int(samples.size), matrix_beta=beta * 25, matrix_lr=1e-3))


# ----------------------------------------------------------------------------------------------
# storage (the one place results are written): the run store, as an experiment run


def run_experiment(name: str, **options) -> _Result:
    """Run a registered experiment by name (``conservation``, ``end-to-end``, ``depth``, ``saxe``, ``langevin``)."""
    from ..registry import call_with_options

    return call_with_options("dln experiment", name, EXPERIMENTS.get(name), options)


__all__ = ["EXPERIMENTS", "ConservationResult", "EndToEndResult", "DepthResult", "SaxeResult", "LangevinResult",
           "conservation", "end_to_end_experiment", "depth", "saxe", "langevin", "run_experiment"]
