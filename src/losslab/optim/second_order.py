"""Second-order steps over a loss of a flat parameter vector: Newton, saddle-free Newton
(exact |H|) and saddle-free Newton in a Krylov subspace with damping.

All functions are pure: they take ``f: (P,) tensor -> scalar tensor`` (differentiable with
``torch.func``) and a starting point, and never touch any module.

- Newton: d = -(H + lambda I)^{-1} g. Near a saddle it is *attracted* to it (it rescales
  every eigen-direction by 1/lambda_i, so along a negative-curvature direction it moves
  *towards* the critical point).
- Saddle-free Newton (Dauphin et al. 2014, "Identifying and attacking the saddle point
  problem in high-dimensional non-convex optimization", eq. (10) and Algorithm 1):
  d = -|H|^{-1} g with |H| = V |Lambda| V^T, the matrix absolute value, so negative-curvature
  directions are followed *downhill* with step g_i / |lambda_i|. We add a damping lambda:
  d = -(|H| + lambda I)^{-1} g (Dauphin et al. damp the same way and pick the damping by a
  line search; here the damping is a fixed option and a backtracking search scales the step).
- Krylov saddle-free Newton (Dauphin et al. 2014, Algorithm 1): k Lanczos vectors Q (P, k)
  span a Krylov subspace of H (started from the gradient); there H_k = Q^T H Q = T (the
  Lanczos tridiagonal matrix), |T| = U |Theta| U^T, and
  d = -Q U (|Theta| + lambda I)^{-1} U^T Q^T g. With k = P and lambda = 0 it equals the exact
  saddle-free step (tested). Each Lanczos step costs one Hessian-vector product
  (forward-over-reverse ``jvp(grad(f))``), so it scales to networks.
- Gradient descent (``gd``) is registered beside them for comparison.

``minimize(f, x0, method=...)`` runs any of them and returns a :class:`SecondOrderPath`.
These are not ``torch.optim`` optimizers (they need the loss as a function, not a closure of
a module); wrap a model with :func:`model_loss_fn`.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from ..registry import Registry

LossFn = Callable[[torch.Tensor], torch.Tensor]


# --------------------------------------------------------------------------------------------
# derivatives of f at a point
# --------------------------------------------------------------------------------------------
def gradient(f: LossFn, x: torch.Tensor) -> torch.Tensor:
    """grad f(x), shape (P,)."""
    from torch.func import grad

    return grad(f)(x).detach()


def hessian(f: LossFn, x: torch.Tensor) -> torch.Tensor:
    """The dense Hessian (P, P) of f at x, symmetrized (for small problems)."""
    from torch.func import hessian as _h

    from ..hessian.operator import _quiet_torch_jit

    with _quiet_torch_jit():  # torch.func.hessian is forward-over-reverse: same torch.jit.script warnings
        H = _h(f)(x).detach()
    return (H + H.T) / 2


def hvp_fn(f: LossFn, x: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """v -> H(x) v by forward-over-reverse differentiation (Pearlmutter 1994)."""
    from torch.func import grad, jvp

    g = grad(f)

    def hvp(v: torch.Tensor) -> torch.Tensor:
        from ..hessian.operator import _quiet_torch_jit

        with _quiet_torch_jit():  # torch's forward-mode rules warn about torch.jit.script on first use
            return jvp(g, (x,), (v.to(x.dtype),))[1].detach()

    return hvp


def _check_vec(x, name: str = "x0") -> torch.Tensor:
    x = torch.as_tensor(x)
    if x.dim() != 1:
        raise ValueError(f"{name} must be a flat parameter vector of shape (P,), got shape {tuple(x.shape)}; "
                         "flatten it (losslab.params.flatten_params) first")
    if not x.is_floating_point():
        x = x.to(torch.get_default_dtype())
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or inf")
    return x.detach().clone()


def _check_damping(damping: float) -> float:
    if not (isinstance(damping, (int, float)) and math.isfinite(damping) and damping >= 0):
        raise ValueError(f"damping must be a finite number >= 0, got {damping!r}")
    return float(damping)


# --------------------------------------------------------------------------------------------
# one step
# --------------------------------------------------------------------------------------------
def newton_direction(g: torch.Tensor, H: torch.Tensor, *, damping: float = 0.0) -> torch.Tensor:
    """d = -(H + damping I)^{-1} g (plain Newton; solved by eigendecomposition so a singular
    matrix gives a clear error instead of inf)."""
    damping = _check_damping(damping)
    w, V = torch.linalg.eigh((H + H.T) / 2)
    w = w + damping
    scale = float(w.abs().max()) if w.numel() else 1.0
    if float(w.abs().min()) <= 1e-14 * max(scale, 1e-300):
        raise ValueError("Newton step undefined: H + damping I is singular (an eigenvalue is ~0); "
                         "pass damping > 0")
    return -(V @ ((V.T @ g) / w))


def saddle_free_direction(g: torch.Tensor, H: torch.Tensor, *, damping: float = 0.0) -> torch.Tensor:
    """d = -(|H| + damping I)^{-1} g with |H| = V |Lambda| V^T (Dauphin et al. 2014, eq. 10)."""
    damping = _check_damping(damping)
    w, V = torch.linalg.eigh((H + H.T) / 2)
    a = w.abs() + damping
    scale = float(a.max()) if a.numel() else 1.0
    if float(a.min()) <= 1e-14 * max(scale, 1e-300):
        raise ValueError("saddle-free Newton step undefined: |H| + damping I is singular (an eigenvalue is ~0); "
                         "pass damping > 0")
    return -(V @ ((V.T @ g) / a))


@dataclass(frozen=True)
class KrylovStep:
    """A Krylov saddle-free step: the direction (P,), the Ritz values (k,) of H in the subspace
    (the eigenvalues of T = Q^T H Q), and the number of Hessian-vector products used."""

    direction: torch.Tensor
    ritz_values: torch.Tensor
    n_products: int


def krylov_saddle_free_direction(g: torch.Tensor, hvp: Callable[[torch.Tensor], torch.Tensor], *, k: int = 20,
                                 damping: float = 1e-3, seed: int | torch.Generator = 0,
                                 start: str = "gradient") -> KrylovStep:
    """Saddle-free Newton restricted to a k-dimensional Krylov subspace (Dauphin et al. 2014,
    Algorithm 1): d = -Q U (|Theta| + damping I)^{-1} U^T Q^T g, with Q from k Lanczos steps
    (full reorthogonalization, ``losslab.hessian.lanczos``) started from ``g`` (``start=
    "gradient"``) or a seeded random vector (``start="random"``)."""
    from ..hessian.lanczos import _generator, _tridiag, lanczos_iterate
    from ..hessian.operator import FunctionOperator

    damping = _check_damping(damping)
    P = int(g.shape[0])
    if not (isinstance(k, int) and 1 <= k):
        raise ValueError(f"krylov dimension k must be a positive integer, got {k!r}")
    if start not in ("gradient", "random"):
        raise ValueError(f"start must be 'gradient' or 'random', got {start!r}")
    k = min(k, P)
    gen = _generator(seed)
    op = FunctionOperator(hvp, P, dtype=g.dtype, device=g.device)
    gn = float(torch.linalg.vector_norm(g))
    if start == "gradient" and gn > 0:
        v0 = g
    else:
        v0 = torch.randn(P, generator=gen, dtype=g.dtype).to(g.device)
    Q, alphas, betas, _ = lanczos_iterate(op, v0, k, gen=gen)
    T = _tridiag(alphas, betas).to(g.dtype)
    theta, U = torch.linalg.eigh(T)
    a = theta.abs() + damping
    if float(a.min()) <= 1e-14 * max(float(a.max()), 1e-300):
        raise ValueError("Krylov saddle-free step undefined: a Ritz value is ~0 and damping is 0; pass damping > 0")
    coef = U @ ((U.T @ (Q.T @ g)) / a)
    return KrylovStep(-(Q @ coef), theta, op.n_products)


# --------------------------------------------------------------------------------------------
# methods and the driver
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MethodInfo:
    name: str
    doc: str
    direction: Callable[..., tuple[torch.Tensor, dict]]
    descent: bool  # the direction is a descent direction whenever g != 0 (line search allowed)


METHODS: Registry = Registry("second-order method")


def _gd(f, x, g, *, damping, krylov_dim, seed, start):
    return -g, {}


def _newton(f, x, g, *, damping, krylov_dim, seed, start):
    H = hessian(f, x)
    w = torch.linalg.eigvalsh(H)
    return newton_direction(g, H, damping=damping), {"min_eig": float(w[0]), "max_eig": float(w[-1])}


def _sfn(f, x, g, *, damping, krylov_dim, seed, start):
    H = hessian(f, x)
    w = torch.linalg.eigvalsh(H)
    return saddle_free_direction(g, H, damping=damping), {"min_eig": float(w[0]), "max_eig": float(w[-1])}


def _sfn_krylov(f, x, g, *, damping, krylov_dim, seed, start):
    st = krylov_saddle_free_direction(g, hvp_fn(f, x), k=krylov_dim, damping=damping, seed=seed, start=start)
    return st.direction, {"min_eig": float(st.ritz_values[0]), "max_eig": float(st.ritz_values[-1]),
                          "n_products": st.n_products}


for _name, _fn, _desc, _doc in (
    ("gd", _gd, True, "gradient descent: d = -g"),
    ("newton", _newton, False, "Newton: d = -(H + damping I)^{-1} g (exact Hessian)"),
    ("saddle_free", _sfn, True, "saddle-free Newton: d = -(|H| + damping I)^{-1} g (exact |H|, Dauphin et al. 2014)"),
    ("saddle_free_krylov", _sfn_krylov, True,
     "saddle-free Newton in a k-dim Krylov subspace of Hessian-vector products (Dauphin et al. 2014, Alg. 1)"),
):
    METHODS.register(_name, MethodInfo(_name, _doc, _fn, _desc), doc=_doc)


@dataclass(frozen=True)
class SecondOrderPath:
    """Where a second-order method went: ``points`` (K+1, P) including the start, ``values``
    f at each, ``grad_norms`` ||g|| at each, per-step ``min_eig``/``max_eig`` of the (exact or
    subspace) Hessian used, ``step_scales`` (the accepted line-search factor), and how it
    ended (``status`` in converged/max_steps/diverged)."""

    method: str
    points: np.ndarray
    values: np.ndarray
    grad_norms: np.ndarray
    min_eig: np.ndarray
    max_eig: np.ndarray
    step_scales: np.ndarray
    status: str
    message: str
    settings: dict[str, Any] = field(default_factory=dict)
    n_products: int = 0

    @property
    def final_value(self) -> float:
        return float(self.values[-1])

    @property
    def final_point(self) -> np.ndarray:
        return self.points[-1]

    def steps_to(self, value: float) -> int | None:
        """First step index at which f <= value (None if never)."""
        idx = np.nonzero(self.values <= value)[0]
        return int(idx[0]) if len(idx) else None


def minimize(f: LossFn, x0, *, method: str = "saddle_free", steps: int = 50, lr: float = 1.0, damping: float = 0.0,
             krylov_dim: int = 20, line_search: bool | None = None, max_halvings: int = 30, tol: float = 1e-10,
             seed: int | torch.Generator = 0, start: str = "gradient") -> SecondOrderPath:
    """Run ``method`` (one of ``METHODS``: gd, newton, saddle_free, saddle_free_krylov) on f from x0.

    x_{t+1} = x_t + s_t * lr * d_t with d_t the method's direction. ``line_search`` (default on
    for the descent methods saddle_free and saddle_free_krylov, off for gd and newton) halves
    s_t from 1 until f decreases (at most ``max_halvings`` times; if none decreases, the step
    is not taken and the run stops). Stops when ||g|| <= ``tol`` (status ``converged``).
    Computation runs in the dtype of ``x0`` (use float64 for curvature work).
    """
    info = METHODS.get(method)
    x = _check_vec(x0)
    if not (isinstance(steps, int) and steps >= 0):
        raise ValueError(f"steps must be a non-negative integer, got {steps!r}")
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive finite number, got {lr!r}")
    damping = _check_damping(damping)
    if line_search is None:
        line_search = info.name in ("saddle_free", "saddle_free_krylov")
    if line_search and not info.descent:
        warnings.warn(f"line search with {info.name!r}: its direction need not descend; steps may be rejected",
                      stacklevel=2)
    f0 = f(x)
    if not (isinstance(f0, torch.Tensor) and f0.numel() == 1):
        raise TypeError(f"f must return a scalar tensor, got {type(f0).__name__} "
                        f"{tuple(f0.shape) if isinstance(f0, torch.Tensor) else ''}")
    pts, vals, gns, mins, maxs, scales = [x.clone()], [float(f0)], [], [], [], []
    status, message, n_products = "max_steps", f"ran {steps} steps", 0
    for t in range(steps):
        g = gradient(f, x)
        gns.append(float(torch.linalg.vector_norm(g)))
        if gns[-1] <= tol:
            status, message = "converged", f"||grad|| = {gns[-1]:.3g} <= tol at step {t}"
            break
        d, extra = info.direction(f, x, g, damping=damping, krylov_dim=krylov_dim, seed=seed, start=start)
        n_products += int(extra.get("n_products", 0))
        mins.append(extra.get("min_eig", float("nan")))
        maxs.append(extra.get("max_eig", float("nan")))
        s = 1.0
        x_new = x + lr * d
        f_new = float(f(x_new))
        if line_search:
            h = 0
            while not (math.isfinite(f_new) and f_new < vals[-1]) and h < max_halvings:
                s *= 0.5
                h += 1
                x_new = x + s * lr * d
                f_new = float(f(x_new))
            if not (math.isfinite(f_new) and f_new < vals[-1]):
                status, message = "converged", f"no decrease along the direction after {max_halvings} halvings at step {t}"
                mins.pop(), maxs.pop()
                break
        scales.append(s)
        if not math.isfinite(f_new):
            status, message = "diverged", f"f is not finite after step {t}"
            pts.append(x_new.clone())
            vals.append(f_new)
            break
        x = x_new
        pts.append(x.clone())
        vals.append(f_new)
    else:
        t = steps
    if len(gns) < len(vals):
        gns.append(float(torch.linalg.vector_norm(gradient(f, x))) if math.isfinite(vals[-1]) else float("nan"))
    nan_pad = lambda a: np.asarray(a + [float("nan")] * (len(vals) - len(a)), dtype=np.float64)  # noqa: E731
    return SecondOrderPath(
        method=info.name, points=torch.stack(pts).cpu().numpy(), values=np.asarray(vals, dtype=np.float64),
        grad_norms=np.asarray(gns, dtype=np.float64), min_eig=nan_pad(mins), max_eig=nan_pad(maxs),
        step_scales=nan_pad(scales), status=status, message=message, n_products=n_products,
        settings={"method": info.name, "steps": steps, "lr": lr, "damping": damping, "krylov_dim": krylov_dim,
                  "line_search": line_search, "tol": tol, "start": start,
                  "seed": seed if isinstance(seed, int) else None})


@dataclass(frozen=True)
class CriticalPoints:
    """Critical points found from K starts: ``points`` (K, P), ``values`` f, ``grad_sq``
    ||grad f||^2 at each, ``iterations`` used, and ``converged`` (grad_sq <= tol)."""

    points: np.ndarray
    values: np.ndarray
    grad_sq: np.ndarray
    iterations: np.ndarray
    converged: np.ndarray
    settings: dict[str, Any] = field(default_factory=dict)


def find_critical_points(f: LossFn, starts, *, steps: int = 200, tol: float = 1e-20, mu: float = 1e-2,
                         mu_min: float = 1e-12, mu_max: float = 1e10) -> CriticalPoints:
    """Minimize ||grad f(x)||^2 from each row of ``starts`` (K, P) to find critical points of any
    index (minima, saddles, maxima), as in the critical-point studies cited by Dauphin et al.
    (2014, sec. 3; Pennington & Bahri 2017 minimize the same objective).

    The objective is a least-squares problem with residual r(x) = g(x) whose Jacobian is the
    Hessian H, so each iteration is a Levenberg-Marquardt step d = -(H^2 + mu I)^{-1} H g
    (exact Gauss-Newton for ||g||^2, damped by mu): accepted if ||g||^2 falls (mu /= 3), else
    mu *= 4 and retried next iteration. All K starts run together under ``torch.func.vmap``
    (f must be vmappable, e.g. from :func:`model_loss_fn`). A start stops when
    ||g||^2 <= ``tol`` or mu exceeds ``mu_max`` (stuck at a non-critical minimum of ||g||^2).
    """
    from torch.func import grad, jacfwd, vmap

    X = torch.as_tensor(starts)
    if X.dim() == 1:
        X = X.unsqueeze(0)
    if X.dim() != 2:
        raise ValueError(f"starts must have shape (K, P), got {tuple(X.shape)}")
    if not X.is_floating_point():
        X = X.to(torch.float64)
    X = X.detach().clone()
    K, P = X.shape
    from ..hessian.operator import _quiet_torch_jit

    gfn = vmap(grad(f))
    _hfn = vmap(jacfwd(grad(f)))

    def hfn(Y):
        with _quiet_torch_jit():  # torch's forward-mode rules warn about torch.jit.script on first use
            return _hfn(Y)
    eye = torch.eye(P, dtype=X.dtype, device=X.device)
    mus = torch.full((K,), float(mu), dtype=X.dtype, device=X.device)
    G = gfn(X).detach()
    r = (G * G).sum(1)
    active = r > tol
    iters = torch.zeros(K, dtype=torch.long)
    for _ in range(steps):
        if not bool(active.any()):
            break
        idx = torch.nonzero(active).squeeze(1)
        H = hfn(X[idx]).detach()
        H = (H + H.transpose(1, 2)) / 2
        A = H @ H + mus[idx, None, None] * eye
        d = -torch.linalg.solve(A, (H @ G[idx].unsqueeze(2))).squeeze(2)
        Xn = X[idx] + d
        Gn = gfn(Xn).detach()
        rn = (Gn * Gn).sum(1)
        ok = torch.isfinite(rn) & (rn < r[idx])
        acc = idx[ok]
        X[acc], G[acc], r[acc] = Xn[ok], Gn[ok], rn[ok]
        mus[acc] = torch.clamp(mus[acc] / 3, min=mu_min)
        mus[idx[~ok]] *= 4
        iters[idx] += 1
        active = (r > tol) & (mus <= mu_max)
    vals = vmap(f)(X).detach()
    return CriticalPoints(points=X.cpu().numpy(), values=vals.cpu().numpy().astype(np.float64),
                          grad_sq=r.cpu().numpy().astype(np.float64), iterations=iters.numpy(),
                          converged=(r <= tol).cpu().numpy(),
                          settings={"steps": steps, "tol": tol, "mu": mu, "mu_min": mu_min, "mu_max": mu_max})


def model_loss_fn(model: torch.nn.Module, data, loss, *, dtype: torch.dtype = torch.float64
                  ) -> tuple[LossFn, torch.Tensor]:
    """(f, theta0): the full-data mean loss of ``model`` on ``data`` as a function of the flat
    trainable-parameter vector, and the model's current vector (both in ``dtype``). The model is
    not changed (evaluated functionally, in eval mode, on copies of the buffers)."""
    import copy

    from ..data.types import as_data
    from ..losses import get_loss
    from ..params import call, eval_mode, param_spec, trainable_params

    net = copy.deepcopy(model).to(dtype)
    spec = param_spec(net)
    d = as_data(data)
    X = d.X.to(dtype) if d.X.is_floating_point() else d.X
    y = d.y.to(dtype) if d.y.is_floating_point() else d.y
    L = get_loss(loss)

    def f(theta: torch.Tensor) -> torch.Tensor:
        with eval_mode(net):
            return L(call(net, spec.unflatten(theta), X), y)

    return f, spec.flatten(trainable_params(net)).clone()


__all__ = ["METHODS", "CriticalPoints", "find_critical_points", "KrylovStep", "SecondOrderPath", "gradient", "hessian", "hvp_fn", "krylov_saddle_free_direction",
           "minimize", "model_loss_fn", "newton_direction", "saddle_free_direction"]
