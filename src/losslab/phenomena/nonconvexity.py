"""Experiment ``nonconvexity``: the curse of nonlinearity (book chapter, "The curse of nonlinearity").

The chapter: linear regression's mean squared error is a bowl (convex), found analytically by
ordinary least squares; a sigmoid neuron sigma(w x + b) makes the loss non-convex ("bumpy"), and
the weights are interdependent, so they cannot be optimised one at a time. Measured here:

1. Convexity of the line fit on the seven points. For f(x) = w x + b and
   L(w, b) = (1/N) sum_n (w x_n + b - y_n)^2 the Hessian is the constant H = (2/N) A^T A with
   A = [x, 1] (N, 2); it is compared with ``losslab.hessian.exact_hessian`` at random points, and
   for any a, b the midpoint gap L((a+b)/2) - (L(a) + L(b))/2 = -(1/8) (a-b)^T H (a-b) <= 0 (an
   identity for quadratics) is checked on random pairs.
2. Non-convexity of a sigmoid neuron. The seven points' targets (1.7..2.7) lie outside a
   sigmoid's range (0, 1), so the neuron fits the 1-D binary task made from them: t_n = 1 if
   y_n > mean(y) else 0 (labels 0 0 0 0 1 0 1: not separable, so the MSE minimum is finite).
   On a grid over (w, b) the exact 2x2 Hessian (``exact_hessian``, float64) gives lambda_min;
   it is checked against the closed form
       H = (2/N) sum_n [s'_n^2 + (s_n - t_n) s''_n] [x_n, 1]^T [x_n, 1],
       s = sigma(w x + b), s' = s (1 - s), s'' = s' (1 - 2 s),
   at every grid point, and at the most negative grid point against central finite differences
   of the loss. A convexity violation L((a+b)/2) > (L(a) + L(b))/2 is found along that point's
   lambda_min eigenvector (for small t the gap with a, b = p -/+ t v is -t^2 lambda_min / 2 + O(t^4),
   checked too) and the pair with the largest gap is reported.
3. Interdependent weights: exact coordinate-wise minimisation (one weight at a time, repeated
   sweeps; Gauss-Seidel) on the seven-point bowl. For a 2x2 quadratic, with error e = theta - theta*,
   a sweep (w then b) maps e_b -> (H12^2 / (H11 H22)) e_b and e_w -> -(H12 / H11) e_b, so after the
   first sweep the whole error shrinks by rho^2 per sweep, rho = |H12| / sqrt(H11 H22) (the
   correlation of the two weights), and the excess loss by rho^4. With centred inputs (x - mean x)
   H12 = 0 and one sweep is exact: the slowness comes from the interdependence. Joint methods that
   use H12 (OLS, one Newton step, L-BFGS) reach the optimum in one or a few steps; plain gradient
   descent (lr = 1/lambda_max) is reported too -- on this bowl (condition number ~300) it is slower
   than coordinate descent, and the experiment says so.
4. The chapter's three candidate lines (MSE 0.17, 0.08, 0.02): their parameters are not in the
   text, so they are not reproduced. Shown instead: the OLS line (checked against ``np.polyfit``)
   and two lines *constructed here* to have the chapter's MSEs 0.17 and 0.08 (OLS shifted up by
   c, MSE = L* + c^2; OLS rotated about the centroid by slope d, MSE = L* + d^2 var(x)), each with
   its residual bars.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..figures import Figure, Grid, Path, Series
from .base import ExperimentResult, measured, register

TITLE = "The curse of nonlinearity: a convex bowl for the line, a non-convex surface for a sigmoid neuron"
CLAIM = ("linear regression's MSE is convex (constant PSD Hessian); a sigmoid neuron's is not (lambda_min < 0 on a "
         "region of its plane, checked against finite differences, with a measured midpoint violation); "
         "interdependent weights make one-at-a-time "
         "minimisation contract only by rho^2 per sweep while joint methods solve the bowl in a step or a few")


# ---- pieces ---------------------------------------------------------------------------------------
def seven_points(*, centered: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """The chapter's seven points as float64 (X (7, 1), y (7, 1)); ``centered`` subtracts mean(x)."""
    from ..data import load

    d = load("seven_points").train
    X, y = d.X.double(), d.y.double()
    return (X - X.mean() if centered else X), y


def binary_seven_points() -> tuple[torch.Tensor, torch.Tensor]:
    """The seven x values with labels t_n = 1 if y_n > mean(y) else 0 (float64, shapes (7, 1))."""
    X, y = seven_points()
    return X, (y > y.mean()).double()


def linear_bowl_hessian(x: torch.Tensor) -> torch.Tensor:
    """H = (2/N) A^T A, A = [x, 1]: the constant Hessian of the line fit's mse in (w, b)."""
    x = torch.as_tensor(x, dtype=torch.float64).reshape(-1)
    A = torch.stack([x, torch.ones_like(x)], 1)  # (N, 2)
    return 2.0 / len(x) * A.T @ A


def sigmoid_mse_hessian(w, b, x, t) -> np.ndarray:
    """Closed-form Hessian in (w, b) of L = (1/N) sum_n (sigma(w x_n + b) - t_n)^2 at any shape of w, b.

    Returns (..., 2, 2): (2/N) sum_n [s'^2 + (s - t) s''] [x_n, 1]^T [x_n, 1] with s' = s(1-s), s'' = s'(1-2s)."""
    w, b = np.asarray(w, dtype=float), np.asarray(b, dtype=float)
    x, t = np.asarray(x, dtype=float).reshape(-1), np.asarray(t, dtype=float).reshape(-1)
    s = 1.0 / (1.0 + np.exp(-(w[..., None] * x + b[..., None])))  # (..., N)
    d1 = s * (1 - s)
    c = 2.0 * (d1 ** 2 + (s - t) * d1 * (1 - 2 * s))  # (..., N): second derivative of the n-th term in z
    h11, h12, h22 = (c * x * x).mean(-1), (c * x).mean(-1), c.mean(-1)
    return np.stack([np.stack([h11, h12], -1), np.stack([h12, h22], -1)], -2)


def central_fd_hessian(f, theta: torch.Tensor, h: float) -> torch.Tensor:
    """Hessian of a scalar f at theta by central differences of f only:
    H_ij ~ [f(+h e_i +h e_j) - f(+h e_i -h e_j) - f(-h e_i +h e_j) + f(-h e_i -h e_j)] / (4 h^2)
    (error O(h^2) + O(eps |f| / h^2))."""
    theta = torch.as_tensor(theta, dtype=torch.float64)
    P = theta.numel()
    E = torch.eye(P, dtype=torch.float64) * h
    H = torch.zeros(P, P, dtype=torch.float64)
    for i in range(P):
        for j in range(P):
            H[i, j] = (f(theta + E[i] + E[j]) - f(theta + E[i] - E[j]) - f(theta - E[i] + E[j])
                       + f(theta - E[i] - E[j])) / (4 * h * h)
    return (H + H.T) / 2


def midpoint_gap(f, a: torch.Tensor, b: torch.Tensor) -> float:
    """L((a+b)/2) - (L(a) + L(b))/2: <= 0 for every pair iff L is convex (midpoint convexity, L continuous)."""
    return float(f((a + b) / 2) - (f(a) + f(b)) / 2)


def gauss_seidel_rate(H) -> float:
    """rho^2 = H12^2 / (H11 H22): the per-sweep contraction of the error of exact coordinate descent on a
    2x2 positive-definite quadratic (after the first sweep)."""
    H = np.asarray(H, dtype=float)
    if H.shape != (2, 2) or not np.allclose(H, H.T) or H[0, 0] <= 0 or H[1, 1] <= 0:
        raise ValueError(f"gauss_seidel_rate needs a symmetric 2x2 matrix with positive diagonal, got {H.tolist()}")
    return float(H[0, 1] ** 2 / (H[0, 0] * H[1, 1]))


@dataclass(frozen=True)
class CoordinatePath:
    """Exact coordinate descent: ``points`` (S*P+1, P) after every single-coordinate update (the
    staircase), ``sweep_points`` (S+1, P) after every sweep, ``values`` (S+1,) f after every sweep."""

    points: np.ndarray
    sweep_points: np.ndarray
    values: np.ndarray


def coordinate_descent(f, theta0, *, sweeps: int, max_inner: int = 30) -> CoordinatePath:
    """Minimise f exactly along one coordinate at a time (cyclic order), ``sweeps`` times.

    Each 1-D minimisation runs Newton's method on phi(s) = f(theta + s e_i) (phi', phi'' by autograd)
    until the Newton step is below 1e-14 (1 + |s|) or ``max_inner`` iterations; for f quadratic in each
    coordinate (any least-squares fit of a linear model) the first step is exact and the second confirms
    it. Raises if phi'' <= 0 (no 1-D minimum to move to)."""
    if not (isinstance(sweeps, int) and sweeps >= 1):
        raise ValueError(f"sweeps must be a positive integer, got {sweeps!r}")
    if not (isinstance(max_inner, int) and max_inner >= 1):
        raise ValueError(f"max_inner must be a positive integer, got {max_inner!r}")
    th = torch.as_tensor(theta0, dtype=torch.float64).detach().clone().reshape(-1)
    P = th.numel()
    pts, sweep_pts = [th.clone()], [th.clone()]
    with torch.no_grad():
        vals = [float(f(th))]
    for _ in range(sweeps):
        for i in range(P):
            e = torch.zeros(P, dtype=torch.float64)
            e[i] = 1.0
            s = 0.0
            for _ in range(max_inner):
                sv = torch.tensor(s, dtype=torch.float64, requires_grad=True)
                (d1,) = torch.autograd.grad(f(th + sv * e), sv, create_graph=True)
                (d2,) = torch.autograd.grad(d1, sv)
                g, c = float(d1.detach()), float(d2)
                if not c > 0:
                    raise ValueError(f"coordinate {i}: f is not convex along it here (phi'' = {c:.3g}); exact "
                                     "coordinate minimisation is undefined")
                step = g / c
                s -= step
                if abs(step) <= 1e-14 * (1 + abs(s)):
                    break
            th = th + s * e
            pts.append(th.clone())
        sweep_pts.append(th.clone())
        with torch.no_grad():
            vals.append(float(f(th)))
    return CoordinatePath(torch.stack(pts).numpy(), torch.stack(sweep_pts).numpy(), np.asarray(vals))


def _zero_contour(gx: np.ndarray, gy: np.ndarray, z: np.ndarray, name: str) -> Path | None:
    """The level-0 lines of z (ny, nx) as one Path, pieces separated by NaN (contourpy, the contour
    engine matplotlib uses); None if z does not cross 0."""
    import contourpy

    lines = [seg for seg in contourpy.contour_generator(gx, gy, z).lines(0.0) if len(seg) >= 2]
    if not lines:
        return None
    gap = np.full((1, 2), np.nan)
    xy = np.concatenate([np.concatenate([seg, gap]) for seg in lines])[:-1]
    return Path(name, xy[:, 0], xy[:, 1])


def _linear_model(theta, dtype=torch.float64):
    from ..models import build
    from ..params import load_flat

    return load_flat(build("linear", in_dim=1, out_dim=1, dtype=dtype), torch.as_tensor(theta, dtype=dtype))


# ---- the experiment ---------------------------------------------------------------------------------
@register("nonconvexity", title=TITLE, claim=CLAIM)
def run(*, quick: bool = False, seed: int = 0, resolution: int | None = None, w_range: tuple[float, float] = (0.0, 6.0),
        b_range: tuple[float, float] = (-25.0, 0.0), n_points: int | None = None, fd_step: float = 1e-4,
        sweeps: int | None = None, target: float | None = None) -> ExperimentResult:
    """Convex line fit vs non-convex sigmoid neuron; coordinate descent vs joint methods; the chapter's lines.

    ``resolution``: exact-Hessian grid of the sigmoid neuron over ``w_range`` x ``b_range`` (quick 21,
    full 51); the loss surfaces are drawn on a 3x finer grid. ``n_points``: random points / pairs for the
    linear checks (quick 5, full 20). ``sweeps``: coordinate-descent sweeps (quick 200, full 400).
    ``target``: excess loss L - L* <= target * (L0 - L*) that every method on the bowl must reach
    (quick 1e-6, full 1e-10).
    """
    from ..closed_form import ols
    from ..hessian import exact_hessian
    from ..models import build
    from ..optim.second_order import gradient, minimize, model_loss_fn
    from ..params import load_flat
    from ..train import train
    from .curves import single_thread

    resolution = int(resolution or (21 if quick else 51))
    n_points = int(n_points or (5 if quick else 20))
    sweeps = int(sweeps or (200 if quick else 400))
    target = float(target or (1e-6 if quick else 1e-10))
    if resolution < 5:
        raise ValueError(f"resolution must be >= 5 grid points per axis, got {resolution}")
    if n_points < 2:
        raise ValueError(f"n_points must be >= 2, got {n_points}")
    if not (w_range[0] < w_range[1] and b_range[0] < b_range[1]):
        raise ValueError(f"w_range and b_range must be (low, high) with low < high, got {w_range}, {b_range}")
    if not (0 < fd_step < 0.1):
        raise ValueError(f"fd_step must be in (0, 0.1), got {fd_step}")
    if not (0 < target < 1):
        raise ValueError(f"target must be a relative excess loss in (0, 1), got {target}")
    settings = dict(quick=quick, seed=seed, resolution=resolution, w_range=list(w_range), b_range=list(b_range),
                    n_points=n_points, fd_step=fd_step, sweeps=sweeps, target=target)
    g = torch.Generator().manual_seed(seed)
    figs: list[Figure] = []
    arrays: dict[str, np.ndarray] = {}
    summary: dict = {}
    checks: dict[str, bool] = {}

    with single_thread():
        # ---- 1a. the line fit: constant PSD Hessian, midpoint gaps <= 0 ------------------------------
        X, y = seven_points()
        x = X.reshape(-1)
        H_lin = linear_bowl_hessian(x)  # (2, 2), parameters (weight, bias)
        lin_model = build("linear", in_dim=1, out_dim=1, dtype=torch.float64, seed=seed)
        f_lin, _ = model_loss_fn(lin_model, (X, y), "mse")
        o = ols(X, y)
        theta_star = torch.tensor([float(o.weight), float(o.bias)], dtype=torch.float64)
        l_star = o.mse
        pts = theta_star + torch.randn(n_points, 2, generator=g, dtype=torch.float64) * torch.tensor([1.0, 4.0],
                                                                                                   dtype=torch.float64)
        H_pts = torch.stack([exact_hessian(load_flat(lin_model, p), (X, y), "mse") for p in pts])
        lin_h_err = float((H_pts - H_lin).abs().max())
        lam_lin = torch.linalg.eigvalsh(H_lin)
        lam_pts = torch.linalg.eigvalsh(H_pts)  # (n_points, 2)
        A = pts
        B = theta_star + torch.randn(n_points, 2, generator=g, dtype=torch.float64) * torch.tensor([1.0, 4.0],
                                                                                                 dtype=torch.float64)
        gaps_lin = np.array([midpoint_gap(f_lin, a, b) for a, b in zip(A, B)])
        gaps_ref = np.array([float(-(a - b) @ H_lin @ (a - b) / 8) for a, b in zip(A, B)])
        gap_rel = float(np.max(np.abs(gaps_lin - gaps_ref) / np.maximum(np.abs(gaps_ref), 1e-300)))
        summary.update({"linear_hessian": H_lin.tolist(), "linear_lambda_min": float(lam_lin[0]),
                        "linear_lambda_max": float(lam_lin[1]), "linear_condition_number": float(lam_lin[1] / lam_lin[0]),
                        "linear_exact_vs_closed_form_max_abs_err": lin_h_err,
                        "linear_max_midpoint_gap": float(gaps_lin.max()),
                        "linear_midpoint_gap_max_rel_err_vs_-dHd/8": gap_rel})
        checks[f"line fit: exact Hessian (losslab.hessian) equals 2/N X^T X at {n_points} random points to 1e-10"] = lin_h_err <= 1e-10
        checks[f"line fit: Hessian is PSD everywhere (lambda_min = {float(lam_lin[0]):.4g} > 0 at every point)"] = bool(
            (lam_pts[:, 0] > 0).all() and float(lam_lin[0]) > 0)
        checks[f"line fit: midpoint gaps L((a+b)/2) - (L(a)+L(b))/2 are <= 0 and equal -(a-b)^T H (a-b)/8 to 1e-8 "
               f"relative on {n_points} random pairs"] = bool(
            (gaps_lin <= 1e-12).all() and gap_rel <= 1e-8)
        arrays.update({"linear/hessian": H_lin.numpy(), "linear/points": pts.numpy(),
                       "linear/hessians_at_points": H_pts.numpy(), "linear/midpoint_gaps": gaps_lin})

        # ---- 1b. the sigmoid neuron: exact Hessian on a grid ---------------------------------------
        Xb, t = binary_seven_points()
        sig_model = build("sigmoid_neuron", in_dim=1, dtype=torch.float64, seed=seed)
        f_sig, _ = model_loss_fn(sig_model, (Xb, t), "mse")
        gw = np.linspace(w_range[0], w_range[1], resolution)
        gb = np.linspace(b_range[0], b_range[1], resolution)
        Hg = np.zeros((resolution, resolution, 2, 2))  # (ny=b, nx=w, 2, 2)
        for j, bj in enumerate(gb):
            for i, wi in enumerate(gw):
                th = torch.tensor([wi, bj], dtype=torch.float64)
                Hg[j, i] = exact_hessian(load_flat(sig_model, th), (Xb, t), "mse").numpy()
        H_cf = sigmoid_mse_hessian(gw[None, :], gb[:, None], x.numpy(), t.numpy())
        sig_cf_err = float(np.max(np.abs(Hg - H_cf)))
        eig = np.linalg.eigh(Hg)
        lam_min = eig.eigenvalues[..., 0]  # (ny, nx)
        # "negative" = below -1e-12, far beyond the 1e-16-level agreement of exact and closed-form Hessians; the
        # saturated plateaus are nearly flat, so the fraction below -0.01 is reported beside it
        neg_frac = float((lam_min < -1e-12).mean())
        strong_frac = float((lam_min < -0.01).mean())
        # the most negative interior grid point (one cell in from the edges, so the violation segment can be drawn)
        jj, ii = np.unravel_index(int(np.argmin(lam_min[1:-1, 1:-1])), (resolution - 2, resolution - 2))
        j0, i0 = int(jj) + 1, int(ii) + 1
        p0 = torch.tensor([gw[i0], gb[j0]], dtype=torch.float64)
        H0 = torch.as_tensor(Hg[j0, i0])
        H0_fd = central_fd_hessian(f_sig, p0, fd_step)
        fd_err = float((H0 - H0_fd).abs().max())
        # the FD error budget: truncation ~ h^2 |f''''| (x up to 5 -> |f''''| <~ 5^4/8) plus rounding ~ eps / h^2
        fd_tol = 1e-6
        summary.update({"sigmoid_task": "t = 1 if y > mean(y) (labels " + " ".join(str(int(v)) for v in t.reshape(-1)) + ")",
                        "sigmoid_grid": f"{resolution}x{resolution}, w in {list(w_range)}, b in {list(b_range)}",
                        "sigmoid_fraction_lambda_min_negative": neg_frac,
                        "sigmoid_fraction_lambda_min_below_-0.01": strong_frac,
                        "sigmoid_most_negative_lambda_min_interior": float(lam_min[j0, i0]),
                        "sigmoid_most_negative_at_(w,b)": [float(gw[i0]), float(gb[j0])],
                        "sigmoid_min_lambda_min_on_grid": float(lam_min.min()),
                        "sigmoid_exact_vs_closed_form_max_abs_err": sig_cf_err,
                        "sigmoid_exact_vs_central_fd_max_abs_err": fd_err})
        checks[f"sigmoid neuron: exact Hessian equals the closed form at all {resolution * resolution} grid points "
               "to 1e-10"] = sig_cf_err <= 1e-10
        checks[f"sigmoid neuron: lambda_min < -1e-12 on part of the plane ({neg_frac:.1%} of the grid, {strong_frac:.1%} "
               f"below -0.01; most negative {lam_min.min():.4g})"] = bool(0 < neg_frac)
        checks[f"sigmoid neuron: at (w, b) = ({gw[i0]:.3g}, {gb[j0]:.3g}) the exact Hessian matches central finite "
               f"differences of the loss (h = {fd_step:g}) to {fd_tol:g}, and the FD "
               f"Hessian's lambda_min is negative too"] = bool(
            fd_err <= fd_tol and float(torch.linalg.eigvalsh(H0_fd)[0]) < 0)

        # the sigmoid minimum (saddle-free Newton escapes the non-convex regions), and its curvature
        sfn = minimize(f_sig, torch.tensor([1.0, -4.0], dtype=torch.float64), method="saddle_free", steps=200,
                       tol=1e-12)
        th_min = torch.as_tensor(sfn.final_point)
        lam_at_min = torch.linalg.eigvalsh(exact_hessian(load_flat(sig_model, th_min), (Xb, t), "mse"))
        summary.update({"sigmoid_minimum_(w,b)": th_min.tolist(), "sigmoid_minimum_loss": sfn.final_value,
                        "sigmoid_minimum_grad_norm": float(torch.linalg.vector_norm(gradient(f_sig, th_min))),
                        "sigmoid_lambda_at_minimum": lam_at_min.tolist()})

        checks[f"sigmoid neuron: saddle-free Newton finds a minimum (||grad|| = {summary['sigmoid_minimum_grad_norm']:.1e} "
               f"<= 1e-10) whose exact Hessian is positive definite (lambda = {float(lam_at_min[0]):.3g}, "
               f"{float(lam_at_min[1]):.3g}): the minimum lies in the thin convex band"] = bool(
            summary["sigmoid_minimum_grad_norm"] <= 1e-10 and float(lam_at_min[0]) > 0)

        # a direct convexity violation along the most negative eigenvector
        v = torch.as_tensor(eig.eigenvectors[j0, i0][:, 0])
        t_small = 1e-2
        gap_small = midpoint_gap(f_sig, p0 - t_small * v, p0 + t_small * v)
        gap_small_ref = -t_small ** 2 * float(lam_min[j0, i0]) / 2
        small_rel = abs(gap_small / gap_small_ref - 1)
        lo = torch.tensor([w_range[0], b_range[0]], dtype=torch.float64)
        hi = torch.tensor([w_range[1], b_range[1]], dtype=torch.float64)
        room = torch.minimum(p0 - lo, hi - p0)  # a, b = p0 -/+ t v stay in the window for t <= t_max
        t_max = float((room / v.abs().clamp_min(1e-300)).min())
        ts = np.geomspace(min(1e-3, t_max / 10), t_max, 61)
        gaps_v = np.array([midpoint_gap(f_sig, p0 - tt * v, p0 + tt * v) for tt in ts])
        k = int(np.argmax(gaps_v))
        a_v, b_v = p0 - ts[k] * v, p0 + ts[k] * v
        La, Lb, Lm = float(f_sig(a_v)), float(f_sig(b_v)), float(f_sig(p0))
        summary.update({"violation_a": a_v.tolist(), "violation_b": b_v.tolist(), "violation_L(a)": La,
                        "violation_L(b)": Lb, "violation_L(mid)": Lm, "violation_gap": Lm - (La + Lb) / 2,
                        "small_t_gap_rel_err_vs_-t^2_lambda_min/2": small_rel})
        checks[f"sigmoid neuron: convexity fails: L((a+b)/2) = {Lm:.4f} > (L(a)+L(b))/2 = {(La + Lb) / 2:.4f} for "
               f"a = ({a_v[0]:.3g}, {a_v[1]:.3g}), b = ({b_v[0]:.3g}, {b_v[1]:.3g})"] = bool(Lm - (La + Lb) / 2 > 1e-8)
        checks[f"sigmoid neuron: the midpoint gap at t = {t_small:g} along the lambda_min eigenvector equals "
               f"-t^2 lambda_min / 2 to 1e-3 relative"] = small_rel <= 1e-3
        arrays.update({"sigmoid/grid_w": gw, "sigmoid/grid_b": gb, "sigmoid/hessians": Hg, "sigmoid/lambda_min": lam_min,
                       "sigmoid/fd_hessian": H0_fd.numpy(), "sigmoid/violation_t": ts, "sigmoid/violation_gaps": gaps_v})

        # loss surfaces (3x finer grid, loss evaluated through the models)
        from torch.func import vmap

        fine = 3 * resolution
        fw = np.linspace(w_range[0], w_range[1], fine)
        fb = np.linspace(b_range[0], b_range[1], fine)
        TH = torch.tensor(np.stack(np.meshgrid(fw, fb), -1).reshape(-1, 2), dtype=torch.float64)
        Zs = vmap(f_sig)(TH).reshape(fine, fine).numpy()
        zc = _zero_contour(gw, gb, lam_min, "lambda_min = 0 (exact-Hessian grid)")
        zero = (zc,) if zc is not None else ()
        neg_mask = lam_min < -1e-12
        figs.append(Figure(
            key="sigmoid_surface", title="Sigmoid neuron sigma(w x + b), mse: loss over (w, b) with the lambda_min = 0 line",
            kind="contour", x_label="w", y_label="b", grid=Grid(fw, fb, Zs, "mse"),
            paths=zero + (Path("sigmoid minimum", np.array([float(th_min[0])]), np.array([float(th_min[1])])),
                          Path("convexity violation: a, (a+b)/2, b",
                               np.array([float(a_v[0]), float(p0[0]), float(b_v[0])]),
                               np.array([float(a_v[1]), float(p0[1]), float(b_v[1])]))),
            caption=(f"Loss of a single sigmoid neuron on the seven x values with labels t = [y > mean(y)]. The exact "
                     f"Hessian (losslab.hessian.exact_hessian, float64) on a {resolution}x{resolution} grid has "
                     f"lambda_min < 0 on {neg_frac:.0%} of it ({strong_frac:.0%} below -0.01; the saturated plateaus "
                     f"are nearly flat); the lines are lambda_min = 0, so the convex part is the thin band between "
                     f"them along the valley. The segment is the measured midpoint violation "
                     f"L(mid) = {Lm:.4f} > ({La:.4f} + {Lb:.4f})/2."),
            table={"fraction lambda_min < 0": neg_frac, "fraction lambda_min < -0.01": strong_frac,
                   "most negative lambda_min": float(lam_min.min()),
                   "minimum (w, b)": [round(float(v_), 4) for v_ in th_min], "minimum loss": sfn.final_value},
            settings={"labels": t.reshape(-1).tolist(), "hessian grid": resolution, "loss grid": fine}))
        figs.append(Figure(
            key="sigmoid_lambda_min", title="Sigmoid neuron: smallest Hessian eigenvalue over (w, b)", kind="heatmap",
            x_label="w", y_label="b", grid=Grid(gw, gb, lam_min, "lambda_min"), paths=zero,
            caption=(f"lambda_min of the exact 2x2 Hessian at each grid point (checked against the closed form to "
                     f"{sig_cf_err:.1e}); negative (< -1e-12) on {int(neg_mask.sum())} of {neg_mask.size} points, "
                     f"below -0.01 on {strong_frac:.0%}."),
            table={"negative points": int(neg_mask.sum()), "grid points": int(neg_mask.size)}))

        # linear bowl surface in its own plane (around the OLS minimum)
        lw = np.linspace(float(theta_star[0]) - 1.5, float(theta_star[0]) + 1.5, fine)
        lb = np.linspace(float(theta_star[1]) - 6.0, float(theta_star[1]) + 6.0, fine)
        TL = torch.tensor(np.stack(np.meshgrid(lw, lb), -1).reshape(-1, 2), dtype=torch.float64)
        Zl = vmap(f_lin)(TL).reshape(fine, fine).numpy()
        arrays.update({"surfaces/sigmoid_w": fw, "surfaces/sigmoid_b": fb, "surfaces/sigmoid_loss": Zs,
                       "surfaces/linear_w": lw, "surfaces/linear_b": lb, "surfaces/linear_loss": Zl})

        # ---- 2. coordinate descent on the seven-point bowl vs joint methods ------------------------
        start = theta_star + torch.tensor([-0.2, 1.3], dtype=torch.float64)  # up the long valley, as in the tour
        e0 = float(f_lin(start)) - l_star
        tgt = target * e0
        rho2 = gauss_seidel_rate(H_lin.numpy())
        cd = coordinate_descent(f_lin, start, sweeps=sweeps)
        err = np.linalg.norm(cd.sweep_points - theta_star.numpy(), axis=1)
        ex = cd.values - l_star
        valid = err[1:] > 1e-7 * err[0]  # ratios above rounding (err ~1e-16 relative to |theta*|)
        ratios = err[2:][valid[1:]] / err[1:-1][valid[1:]]  # sweeps 2.. (the first sweep maps e onto the e_b axis)
        ratio_err = float(np.max(np.abs(ratios / rho2 - 1))) if len(ratios) else math.nan
        reached = np.flatnonzero(ex <= tgt)
        cd_sweeps = int(reached[0]) if len(reached) else None
        # prediction: E_k = rho^{4(k-1)} E_1 for k >= 1
        cd_pred = 1 + int(math.ceil(math.log(max(ex[1], tgt) / tgt) / (-2 * math.log(rho2)))) if ex[1] > tgt else 1
        Xc, _ = seven_points(centered=True)
        lin_c = build("linear", in_dim=1, out_dim=1, dtype=torch.float64, seed=seed)
        f_c, _ = model_loss_fn(lin_c, (Xc, y), "mse")
        Hc = linear_bowl_hessian(Xc.reshape(-1))
        oc = ols(Xc, y)
        cdc = coordinate_descent(f_c, torch.tensor([float(oc.weight) - 0.2, float(oc.bias) + 1.3], dtype=torch.float64),
                                 sweeps=2)
        # excess loss of a quadratic as (1/2) e^T H e (exact, no cancellation of L - L* at rounding level)
        th_c = torch.tensor([float(oc.weight), float(oc.bias)], dtype=torch.float64)
        e_c = torch.as_tensor(cdc.sweep_points[1]) - th_c
        cdc_ex = float(e_c @ Hc @ e_c / 2)
        # joint methods
        newton = minimize(f_lin, start, method="newton", steps=1)
        e_n = torch.as_tensor(newton.final_point) - theta_star
        newton_ex = float(e_n @ H_lin @ e_n / 2)
        lam_lin_max = float(lam_lin[1])
        kappa = float(lam_lin[1] / lam_lin[0])
        # GD, lr = 1/lambda_max: each eigen-error shrinks by (1 - lambda_i/lambda_max) per step, the excess loss
        # by at most (1 - 1/kappa)^2: steps <= ln(E0/target) / (-2 ln(1 - 1/kappa))
        gd_bound = int(math.ceil(math.log(e0 / tgt) / (-2 * math.log1p(-1 / kappa))))
        gd_budget = int(1.1 * gd_bound) + 10
        m0 = _linear_model(start)
        tr_gd = train(m0, (X, y), optimizer="gd", lr=1.0 / lam_lin_max, steps=gd_budget, eval_every=gd_budget,
                      snapshot_every=1, max_snapshots=gd_budget + 1, seed=seed)
        with torch.no_grad():  # the loss at every snapshot (eval every step would cost a full pass per step)
            gd_ex = vmap(f_lin)(torch.as_tensor(tr_gd.snapshots, dtype=torch.float64)).numpy() - l_star
        gd_hit = np.flatnonzero(gd_ex <= tgt)
        gd_steps = int(tr_gd.snapshot_steps[gd_hit[0]]) if len(gd_hit) else None
        tr_lb = train(m0, (X, y), optimizer="lbfgs", lr=1.0, steps=20, eval_every=1, snapshot_every=1, max_snapshots=21,
                      optimizer_options={"line_search_fn": "strong_wolfe"}, seed=seed)
        lb_ex = tr_lb.train_eval_loss - l_star
        lb_hit = np.flatnonzero(lb_ex <= tgt)
        lb_steps = int(tr_lb.eval_steps[lb_hit[0]]) if len(lb_hit) else None
        summary.update({"bowl_H12_correlation_rho": math.sqrt(rho2), "bowl_rho^2_per_sweep": rho2,
                        "bowl_measured_error_ratio_per_sweep": float(np.median(ratios)) if len(ratios) else math.nan,
                        "bowl_ratio_max_rel_err_vs_rho^2": ratio_err,
                        "bowl_target_excess": tgt, "bowl_initial_excess": e0,
                        "coordinate_descent_sweeps": cd_sweeps, "coordinate_descent_sweeps_predicted": cd_pred,
                        "centered_x_rho": math.sqrt(gauss_seidel_rate(Hc.numpy())),
                        "centered_x_excess_after_1_sweep": cdc_ex,
                        "newton_excess_after_1_step": newton_ex, "ols_mse": l_star,
                        "gd_lr": 1.0 / lam_lin_max, "gd_steps": gd_steps, "gd_steps_bound": gd_bound,
                        "bowl_condition_number": kappa, "lbfgs_steps": lb_steps})
        checks[f"coordinate descent: the error shrinks by rho^2 = H12^2/(H11 H22) = {rho2:.6f} per sweep (Gauss-Seidel "
               "closed form) to 1e-6 relative at every sweep"] = bool(
            len(ratios) >= 5 and ratio_err <= 1e-6)
        checks[f"coordinate descent needs the predicted 1 + ln(E1/target)/(-4 ln rho) sweeps ({cd_sweeps} measured vs "
               f"{cd_pred} predicted, +-1)"] = cd_sweeps is not None and abs(cd_sweeps - cd_pred) <= 1
        checks[f"with centred x (rho = {math.sqrt(gauss_seidel_rate(Hc.numpy())):.1e}) one sweep reaches the optimum "
               f"(excess <= 1e-12): independent weights can be optimised one at a time"] = bool(
            abs(cdc_ex) <= 1e-12)
        checks[f"joint methods: one Newton step reaches the OLS minimum (excess <= 1e-12) and L-BFGS "
               f"reaches the target in {lb_steps} steps, vs {cd_sweeps} coordinate-descent sweeps"] = bool(
            abs(newton_ex) <= 1e-12 and lb_steps is not None and cd_sweeps is not None and 10 * lb_steps <= cd_sweeps)
        checks[f"gradient descent (lr = 1/lambda_max) reaches the target within its bound ({gd_steps} <= {gd_bound} "
               f"steps, kappa = {kappa:.0f})"] = bool(gd_steps is not None and gd_steps <= gd_bound)
        summary["gd_steps_over_cd_sweeps"] = (float(gd_steps) / cd_sweeps) if gd_steps and cd_sweeps else float("nan")
        arrays.update({"bowl/cd_points": cd.points, "bowl/cd_sweep_excess": ex, "bowl/cd_error_norm": err,
                       "bowl/gd_excess": gd_ex, "bowl/lbfgs_excess": lb_ex, "bowl/centered_cd_values": cdc.values})
        n_show = 2 * (cd_sweeps if cd_sweeps is not None else sweeps) + 1  # the staircase up to the target
        gd_upto = (gd_steps if gd_steps is not None else len(tr_gd.snapshots) - 1) + 1
        gd_pts = tr_gd.snapshots[:gd_upto]
        zw = np.concatenate([cd.points[:n_show, 0], [float(start[0])]])
        zb = np.concatenate([cd.points[:n_show, 1], [float(start[1])]])
        hw = 1.3 * np.abs(zw - float(theta_star[0])).max() + 0.02
        hb = 1.3 * np.abs(zb - float(theta_star[1])).max() + 0.05
        bw = np.linspace(float(theta_star[0]) - hw, float(theta_star[0]) + hw, fine)
        bb = np.linspace(float(theta_star[1]) - hb, float(theta_star[1]) + hb, fine)
        TB = torch.tensor(np.stack(np.meshgrid(bw, bb), -1).reshape(-1, 2), dtype=torch.float64)
        Zb = vmap(f_lin)(TB).reshape(fine, fine).numpy()
        gd_show = gd_pts[:: max(1, len(gd_pts) // 300)]  # at most ~300 points drawn
        figs.append(Figure(
            key="linear_bowl", title="Line fit on the seven points: a convex bowl (lambda_min > 0 everywhere)",
            kind="contour", x_label="slope w", y_label="intercept b", grid=Grid(lw, lb, np.log10(Zl), "log10 mse"),
            paths=(Path("OLS minimum", np.array([float(theta_star[0])]), np.array([float(theta_star[1])])),),
            caption=(f"log10 of the mse over (w, b). The Hessian is the constant 2/N X^T X with eigenvalues "
                     f"{float(lam_lin[0]):.4g} and {float(lam_lin[1]):.4g} (exact Hessian at {n_points} random points "
                     f"agrees to {lin_h_err:.0e}); lambda_min > 0 everywhere, so there is no lambda_min = 0 line to "
                     f"draw. Condition number {kappa:.0f}: the elongated bowl."),
            table={"lambda_min": float(lam_lin[0]), "lambda_max": float(lam_lin[1]), "OLS (w, b)": theta_star.tolist(),
                   "OLS mse": l_star}))
        figs.append(Figure(
            key="coordinate_descent_path", title="One weight at a time: coordinate descent zig-zags down the valley",
            kind="contour", x_label="slope w", y_label="intercept b", grid=Grid(bw, bb, np.log10(Zb), "log10 mse"),
            paths=(Path(f"coordinate descent ({(n_show - 1) // 2} sweeps)", cd.points[:n_show, 0], cd.points[:n_show, 1]),
                   Path(f"gradient descent, lr = 1/lambda_max ({gd_upto - 1} steps)", gd_show[:, 0], gd_show[:, 1]),
                   Path("Newton / OLS (one step)", np.array([float(start[0]), float(theta_star[0])]),
                        np.array([float(start[1]), float(theta_star[1])]))),
            caption=(f"Exact minimisation along w, then b, repeated. The weights are correlated "
                     f"(rho = |H12|/sqrt(H11 H22) = {math.sqrt(rho2):.4f}), so each sweep only removes a fraction "
                     f"1 - rho^2 = {1 - rho2:.4f} of the error. Newton's step (the OLS solution) uses H12 and lands on "
                     f"the minimum at once."),
            table={"rho": math.sqrt(rho2), "rho^2": rho2, "coordinate-descent sweeps to target": cd_sweeps}))
        sw = np.arange(len(ex), dtype=float)
        pred_curve = np.where(sw >= 1, ex[1] * rho2 ** (2 * (sw - 1)), ex[0])
        # under ~eps L* an excess loss is float64 rounding, not progress: drawn at that floor (a log axis
        # down to 1e-300 hid every curve; the stored arrays keep the raw values)
        floor = 8 * np.finfo(np.float64).eps * max(abs(l_star), abs(oc.mse), 1e-300)

        def clip(a):
            return np.maximum(np.asarray(a, dtype=float), floor)
        figs.append(Figure(
            key="bowl_convergence", title="Excess loss on the seven-point bowl: per sweep / per step", kind="lines",
            x_label="sweep (coordinate descent) or step (joint methods)", y_label="L - L*", log_y=True,
            series=(Series("coordinate descent (per sweep)", sw, clip(ex), mode="lines+markers"),
                    Series("closed form E_1 rho^(4(k-1))", sw, clip(pred_curve), dash=True),
                    Series("coordinate descent, centred x (rho = 0)", np.arange(len(cdc.values), dtype=float),
                           clip(cdc.values - oc.mse), mode="lines+markers"),
                    Series("gradient descent, lr = 1/lambda_max", tr_gd.snapshot_steps.astype(float), clip(gd_ex)),
                    Series("L-BFGS (strong Wolfe)", tr_lb.eval_steps.astype(float), clip(lb_ex), mode="lines+markers")),
            hlines=(("target", tgt),),
            caption=(f"Target: excess loss <= {target:g} x the start's. Coordinate descent: {cd_sweeps} sweeps "
                     f"(predicted {cd_pred}); centred x: one sweep; Newton/OLS: one step; L-BFGS: {lb_steps} steps; "
                     f"gradient descent: {gd_steps} steps (bound {gd_bound}; kappa = {kappa:.0f}). Values under the "
                     f"float64 rounding floor {floor:.1e} (8 eps L*) are drawn at it."),
            table={"rounding floor": floor, "coordinate descent sweeps": cd_sweeps, "predicted": cd_pred, "L-BFGS steps": lb_steps,
                   "GD steps": gd_steps, "Newton steps": 1}))

        # ---- 3. the chapter's candidate lines: data-space view ------------------------------------
        xn, yn = x.numpy(), y.reshape(-1).numpy()
        pf = np.polyfit(xn, yn, 1)  # (slope, intercept), an independent least-squares solver
        pf_mse = float(np.mean((np.polyval(pf, xn) - yn) ** 2))
        ols_vs_pf = float(max(abs(pf[0] - float(theta_star[0])), abs(pf[1] - float(theta_star[1]))))
        var_x = float(np.mean((xn - xn.mean()) ** 2))
        ws, bs = float(theta_star[0]), float(theta_star[1])
        c_up = math.sqrt(0.17 - l_star)  # shift: residuals r + c, mean(r) = 0 at OLS -> L* + c^2
        d_rot = math.sqrt((0.08 - l_star) / var_x)  # rotate about (mean x, mean y): L* + d^2 var(x) (r orthogonal to x)
        lines = {  # short label -> (description, w, b, the mse it must have)
            "OLS": ("OLS line (best)", ws, bs, l_star),
            "shifted": (f"constructed: OLS shifted up by {c_up:.4f}", ws, bs + c_up, 0.17),
            "rotated": (f"constructed: OLS rotated about the centroid, slope +{d_rot:.4f}", ws + d_rot,
                        bs - d_rot * xn.mean(), 0.08),
        }
        series = [Series("the seven points", xn, yn, mode="markers")]
        xs = np.linspace(2.2, 5.2, 2)
        line_mse, line_err = {}, 0.0
        for short, (name, wl, bl, mse_ref) in lines.items():
            mdl = _linear_model([wl, bl])
            with torch.no_grad():
                pred = mdl(X).reshape(-1)
            mse_meas = float(((pred - y.reshape(-1)) ** 2).mean())
            line_mse[name] = mse_meas
            line_err = max(line_err, abs(mse_meas - mse_ref))
            series.append(Series(f"{name}: y = {wl:.4f} x + {bl:.4f}, mse {mse_meas:.4f}", xs, wl * xs + bl))
            bx = np.stack([xn, xn, np.full_like(xn, np.nan)], 1).reshape(-1)  # NaN breaks the bars apart
            by = np.stack([yn, pred.numpy(), np.full_like(xn, np.nan)], 1).reshape(-1)
            series.append(Series(f"residuals ({short})", bx, by, dash=True))
        summary.update({"ols_slope": ws, "ols_intercept": bs, "ols_vs_polyfit_max_abs_err": ols_vs_pf,
                        "polyfit_mse": pf_mse, "line_mses": line_mse, "constructed_lines_max_mse_err": line_err, "chapter_best_line_mse": 0.02})
        checks[f"OLS on the seven points equals np.polyfit to 1e-10 (mse {l_star:.5f})"] = bool(
            ols_vs_pf <= 1e-10 and abs(pf_mse - l_star) <= 1e-12)
        checks[f"the chapter's best line (mse 0.02) is consistent with OLS: L* = {l_star:.5f} rounds to 0.02"] = bool(round(l_star, 2) == 0.02)
        checks["the constructed lines have the chapter's mses 0.17 and 0.08 (closed forms L* + c^2, L* + d^2 var x; "
               "to 1e-12)"] = line_err <= 1e-12
        figs.append(Figure(
            key="candidate_lines", title="Three lines through the seven points, with their residuals", kind="lines",
            x_label="x", y_label="y", series=tuple(series),
            caption=("The chapter's three guessed lines (mse 0.17, 0.08, 0.02) are not given in the text. Shown: the "
                     f"OLS line (mse {l_star:.5f}, checked against np.polyfit) and two lines constructed here to have "
                     "mse 0.17 (OLS shifted up) and 0.08 (OLS rotated about the centroid). Dashed bars: residuals."),
            table={k: v for k, v in line_mse.items()}))

    # figure order: surfaces first
    order = ["linear_bowl", "sigmoid_surface", "sigmoid_lambda_min", "coordinate_descent_path", "bowl_convergence",
             "candidate_lines"]
    figs.sort(key=lambda fg: order.index(fg.key))
    text = (f"The line fit's Hessian is the constant 2/N X^T X (eigenvalues {float(lam_lin[0]):.4g}, {float(lam_lin[1]):.4g}; "
            f"exact Hessian agrees to {lin_h_err:.0e}): convex. A sigmoid neuron on the seven x values (labels y > mean y) "
            f"has lambda_min < 0 on {neg_frac:.0%} of the plotted (w, b) plane ({strong_frac:.0%} below -0.01; most "
            f"negative {lam_min.min():.3g}; at the interior point checked {lam_min[j0, i0]:.3g}, "
            f"confirmed by finite differences to {fd_err:.0e}), and L((a+b)/2) = {Lm:.4f} > (L(a)+L(b))/2 = "
            f"{(La + Lb) / 2:.4f} for a measured pair. Coordinate-wise minimisation of the seven-point bowl shrinks "
            f"the error by rho^2 = {rho2:.4f} per sweep (measured, as the Gauss-Seidel closed form says) and needs "
            f"{cd_sweeps} sweeps to reach {target:g} of the initial excess loss; Newton/OLS needs one step, L-BFGS "
            f"{lb_steps}; plain gradient descent needs {gd_steps} (kappa = {kappa:.0f}). With centred x the weights "
            f"decouple (rho = 0) and one sweep is exact. OLS mse {l_star:.5f} (the chapter's '0.02').")
    return measured("nonconvexity", summary=summary, checks=checks,
                    figures=tuple(figs), arrays=arrays, settings=settings, text=text)
