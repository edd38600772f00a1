"""Experiment ``cost_functions``: L1, L2 and Huber costs of the seven points (seed 002 "Sum(L1 / L2
error)"; seed 001 "different types of loss functions").

The line y = m x + b through the chapter's seven points, scored by three costs over the (m, b) plane:
L2 = mean r^2 (a smooth bowl), L1 = mean |r| (a polyhedral cone, creased along the seven lines
m x_i + b = y_i) and Huber_delta (quadratic for |r| <= delta, linear beyond; torch's ``huber_loss``).
Each minimum is checked against an independent solver:

- L2 against ordinary least squares (``losslab.closed_form.ols``);
- L1 against the exact least-absolute-deviations line by linear programming (``scipy.optimize.linprog``:
  minimise sum t_i subject to -t_i <= y_i - m x_i - b <= t_i), and against the best of the 21 lines
  through two of the points (an L1 optimum can always be taken through two data points, since the
  LP's optimum is attained at a vertex: Barrodale & Roberts 1973);
- Huber against scipy's L-BFGS-B on the same (C^1, convex) function.

Then gradient descent on L1: its (sub)gradient has constant size away from the creases, so at a
constant learning rate the iterate never settles; it keeps jumping across the crease near the
minimum and its excess loss stalls at a floor of order G^2 lr / 2 (the subgradient-method bound
f_best - f* <= (R^2 + G^2 lr^2 T) / (2 lr T); Boyd, "Subgradient methods", 2003). Under the
``inverse_time`` schedule lr_t = lr0 / (1 + decay t) (sum lr_t = inf, sum lr_t^2 < inf) it converges.
"""
from __future__ import annotations

import itertools
import math

import numpy as np
import torch

from ..figures import Figure, Grid, Path as FigPath, Series
from .base import ExperimentResult, measured, register

TITLE = "Cost functions: L1, L2 and Huber surfaces of the seven points, and gradient descent on L1"
CLAIM = ("L2 is a smooth bowl with the OLS line at its bottom; L1 is a creased cone whose minimum is the "
         "least-absolute-deviations line; gradient descent on L1 oscillates at a constant learning rate and "
         "converges under a decaying 1/t schedule")


def costs(m: np.ndarray, b: np.ndarray, x: np.ndarray, y: np.ndarray, delta: float) -> dict[str, np.ndarray]:
    """{"l2", "l1", "huber"}: the mean cost of the line (m, b) at any broadcastable shape of m, b."""
    r = m[..., None] * x + b[..., None] - y  # (..., N)
    a = np.abs(r)
    hub = np.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))  # torch.nn.functional.huber_loss
    return {"l2": (r * r).mean(-1), "l1": a.mean(-1), "huber": hub.mean(-1)}


def lad_linprog(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """The exact least-absolute-deviations line by LP: variables (m, b, t_1..t_N),
    minimise sum t subject to  m x_i + b - t_i <= y_i  and  -m x_i - b - t_i <= -y_i.
    Returns ((m, b), mean |r|)."""
    from scipy.optimize import linprog

    N = len(x)
    c = np.concatenate([[0.0, 0.0], np.ones(N)])
    A = np.block([[x[:, None], np.ones((N, 1)), -np.eye(N)], [-x[:, None], -np.ones((N, 1)), -np.eye(N)]])
    ub = np.concatenate([y, -y])
    res = linprog(c, A_ub=A, b_ub=ub, bounds=[(None, None), (None, None)] + [(0, None)] * N, method="highs")
    if not res.success:
        raise RuntimeError(f"linprog did not solve the LAD problem: {res.message}")
    mb = res.x[:2]
    return mb, float(np.abs(mb[0] * x + mb[1] - y).mean())


def lad_two_point_lines(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """The best of the lines through two of the points (an L1 optimum is among them)."""
    best = (None, math.inf)
    for i, j in itertools.combinations(range(len(x)), 2):
        if x[i] == x[j]:
            continue
        m = (y[j] - y[i]) / (x[j] - x[i])
        b = y[i] - m * x[i]
        v = float(np.abs(m * x + b - y).mean())
        if v < best[1]:
            best = (np.array([m, b]), v)
    return best


def gd_path(loss: str, x, y, start, *, lr: float, steps: int, schedule: str = "constant", decay: float = 0.0,
            delta: float = 0.1):
    """Full-batch (sub)gradient descent on the line's ``loss`` (losslab.losses) with the registry's ``gd``
    optimizer and ``schedule``: returns (K, 2) parameters (m, b) per step (K = steps + 1) and the lrs."""
    from ..losses import get_loss
    from ..optim import make_optimizer, make_schedule

    X = torch.tensor(x, dtype=torch.float64)
    Y = torch.tensor(y, dtype=torch.float64)
    theta = torch.tensor(np.asarray(start, dtype=float), dtype=torch.float64, requires_grad=True)
    L = get_loss(loss, **({"delta": delta} if loss == "huber" else {}))
    opt = make_optimizer("gd", [theta], lr=lr)
    sched = make_schedule(schedule, opt, steps=steps, **({"decay": decay} if schedule == "inverse_time" else {}))
    path, lrs = [theta.detach().clone().numpy()], []
    for _ in range(steps):
        opt.zero_grad()
        L((theta[0] * X + theta[1]).unsqueeze(1), Y.unsqueeze(1)).backward()
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
        path.append(theta.detach().clone().numpy())
    return np.array(path), np.array(lrs)


@register("cost_functions", title=TITLE, claim=CLAIM)
def run(*, quick: bool = False, seed: int = 0, delta: float = 0.1, lr: float = 0.05, decay: float = 0.01,
        steps: int | None = None, res: int | None = None) -> ExperimentResult:
    """Quick: 3,000 GD steps per schedule, 61 x 61 grids. Full: 20,000 steps, 101 x 101 grids.
    ``lr``: the constant rate and the 1/t schedule's lr0; ``decay``: the schedule's decay; ``delta``:
    the Huber threshold (the seven points' residuals are ~0.1)."""
    from scipy.optimize import minimize

    from ..closed_form import ols
    from ..data import load

    steps = int(steps or (3000 if quick else 20000))
    res = int(res or (61 if quick else 101))
    if not (delta > 0 and lr > 0 and decay > 0):
        raise ValueError(f"need delta > 0, lr > 0 and decay > 0; got delta={delta}, lr={lr}, decay={decay}")
    d = load("seven_points", seed=seed)
    x = d.train.X.double().numpy().reshape(-1)
    y = d.train.y.double().numpy().reshape(-1)

    o = ols(x, y)
    ols_mb = np.array([float(o.weight[0, 0]), float(o.bias[0])])
    lp_mb, lp_val = lad_linprog(x, y)
    two_mb, two_val = lad_two_point_lines(x, y)
    hub = minimize(lambda t: float(costs(np.array(t[0]), np.array(t[1]), x, y, delta)["huber"]), ols_mb,
                   method="L-BFGS-B", options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 10_000})
    hub_mb = hub.x
    minima = {"l2": ols_mb, "l1": lp_mb, "huber": hub_mb}

    # the surfaces, on one window around the minima
    mc = float(np.mean([v[0] for v in minima.values()]))
    bc = float(np.mean([v[1] for v in minima.values()]))
    gm = np.linspace(mc - 0.5, mc + 0.5, res)
    gb = np.linspace(bc - 2.0, bc + 2.0, res)
    Z = costs(gm[None, :], gb[:, None], x, y, delta)  # (nb, nm) each
    grid_min = {}
    for k, z in Z.items():
        i, j = np.unravel_index(int(np.argmin(z)), z.shape)
        grid_min[k] = np.array([gm[j], gb[i]])

    # gradient descent on L1 and L2 from one start, constant lr vs 1/t
    start = np.array([ols_mb[0] - 0.3, ols_mb[1] + 1.0])
    p_const, lr_const = gd_path("l1", x, y, start, lr=lr, steps=steps)
    p_inv, lr_inv = gd_path("l1", x, y, start, lr=lr, steps=steps, schedule="inverse_time", decay=decay)
    f = lambda P: costs(P[:, 0], P[:, 1], x, y, delta)["l1"]  # noqa: E731
    ex_const, ex_inv = f(p_const) - lp_val, f(p_inv) - lp_val
    tail = slice(int(0.9 * steps), None)
    jump_const = np.linalg.norm(np.diff(p_const, axis=0), axis=1)
    jump_inv = np.linalg.norm(np.diff(p_inv, axis=0), axis=1)
    # subgradient bound: f_best - f* <= (R^2 + G^2 sum lr^2) / (2 sum lr), G = max_i ||(x_i, 1)||
    G = float(np.sqrt(x ** 2 + 1).max())
    R = float(np.linalg.norm(start - lp_mb))
    bound_const = (R ** 2 + G ** 2 * lr ** 2 * steps) / (2 * lr * steps)
    bound_inv = (R ** 2 + G ** 2 * float((lr_inv ** 2).sum())) / (2 * float(lr_inv.sum()))
    best_const = float(np.minimum.accumulate(ex_const)[-1])
    best_inv = float(np.minimum.accumulate(ex_inv)[-1])
    floor_const = float(np.median(ex_const[tail]))
    # the slope's update changes sign again and again at a constant lr (bouncing across a crease)
    dm = np.diff(p_const[:, 0])[tail]
    flips_const = int(np.sum(np.sign(dm[1:]) != np.sign(dm[:-1])))

    # L2 by the same GD (it converges at a constant rate: the bowl is smooth)
    p_l2, _ = gd_path("mse", x, y, start, lr=0.05, steps=3000)  # 2/lambda_max ~ 0.069
    l2_gd_err = float(np.linalg.norm(p_l2[-1] - ols_mb))

    dist_lp_two = float(np.linalg.norm(lp_mb - two_mb))
    summary = {"OLS (m, b)": ols_mb.tolist(), "OLS mse": o.mse, "LAD linprog (m, b)": lp_mb.tolist(),
               "LAD linprog mean |r|": lp_val, "LAD best two-point line mean |r|": two_val,
               "Huber (m, b) (L-BFGS-B)": hub_mb.tolist(), "huber delta": delta,
               "grid argmin l2": grid_min["l2"].tolist(), "grid argmin l1": grid_min["l1"].tolist(),
               "grid argmin huber": grid_min["huber"].tolist(), "grid spacing (m, b)": [gm[1] - gm[0], gb[1] - gb[0]],
               "GD on L2 final distance to OLS": l2_gd_err,
               "L1 constant lr: median excess over the last 10%": floor_const,
               "L1 constant lr: best excess": best_const, "L1 constant lr: subgradient bound": bound_const,
               "L1 constant lr: mean step length over the last 10%": float(jump_const[tail].mean()),
               "L1 constant lr: slope-update sign flips over the last 10%": flips_const,
               "L1 1/t: final excess": float(ex_inv[-1]), "L1 1/t: best excess": best_inv,
               "L1 1/t: subgradient bound": bound_inv,
               "L1 1/t: mean step length over the last 10%": float(jump_inv[tail].mean()),
               "lr": lr, "decay": decay, "steps": steps}
    spacing = np.array([gm[1] - gm[0], gb[1] - gb[0]])
    checks = {
        f"the L2 grid minimum is the OLS line within one grid cell ({grid_min['l2'].round(4).tolist()} vs "
        f"{ols_mb.round(4).tolist()})": bool(np.all(np.abs(grid_min["l2"] - ols_mb) <= spacing)),
        f"gradient descent on L2 converges to the OLS line (distance {l2_gd_err:.1e} <= 1e-3)": l2_gd_err <= 1e-3,
        f"the LP's L1 minimum equals the best two-point line's (mean |r| {lp_val:.8f} vs {two_val:.8f}, to 1e-9)":
            abs(lp_val - two_val) <= 1e-9,
        "the L1 grid minimum is no better than the LP optimum and within one cell's cost of it":
            bool(Z["l1"].min() >= lp_val - 1e-12 and Z["l1"].min() - lp_val <= G * float(np.abs(spacing).sum())),
        f"L1 and L2 minima differ: the LAD line is not the OLS line ((m, b) distance {np.linalg.norm(lp_mb - ols_mb):.3f})":
            bool(np.linalg.norm(lp_mb - ols_mb) > 1e-3),
        f"Huber's minimum (L-BFGS-B) has zero gradient (|grad| {np.linalg.norm(hub.jac):.1e} <= 1e-6)":
            bool(hub.success or np.linalg.norm(hub.jac) <= 1e-6) and float(np.linalg.norm(hub.jac)) <= 1e-6,
        f"GD on L1 at a constant lr keeps oscillating: the slope update flips sign {flips_const} times in the last "
        f"10% of steps and the excess loss stays at {floor_const:.2e} (no lower than 10% of its best, "
        f"{best_const:.2e})": bool(flips_const >= 0.1 * len(dm) and floor_const >= 0.1 * best_const and floor_const > 0),
        f"both runs stay within the subgradient-method bounds (best excess {best_const:.2e} <= {bound_const:.2e}, "
        f"{best_inv:.2e} <= {bound_inv:.2e})": bool(best_const <= bound_const and best_inv <= bound_inv),
        f"under lr0/(1 + {decay:g} t) the final excess loss {ex_inv[-1]:.2e} is < 1/10 of the constant-lr floor "
        f"{floor_const:.2e}, and its steps shrink ({jump_inv[tail].mean():.1e} vs {jump_const[tail].mean():.1e})":
            bool(ex_inv[-1] < 0.1 * floor_const and jump_inv[tail].mean() < 0.5 * jump_const[tail].mean()),
    }
    if dist_lp_two > 1e-6:  # a non-unique L1 optimum would make the two solvers' lines differ, honestly shown
        summary["LAD: distance between the LP's and the two-point line"] = dist_lp_two
    thin = max(1, steps // 400)
    paths = (FigPath(f"GD on L1, constant lr = {lr:g}", p_const[::thin, 0], p_const[::thin, 1]),
             FigPath(f"GD on L1, lr = {lr:g}/(1 + {decay:g} t)", p_inv[::thin, 0], p_inv[::thin, 1]))
    marks = {"l2": "OLS", "l1": "LAD (linprog)", "huber": f"Huber (delta {delta:g})"}
    figs = tuple(
        Figure(f"cost_{k}", f"{k.upper() if k != 'huber' else 'Huber'} cost of the line y = m x + b over (m, b)",
               "contour", "slope m", "intercept b", grid=Grid(gm, gb, Z[k], f"mean {k}"),
               paths=paths if k == "l1" else (),
               caption=(f"The seven points' mean {k} cost. Minimum: {marks[k]} at m = {minima[k][0]:.4f}, b = "
                        f"{minima[k][1]:.4f}." + (" The L1 surface is creased along the lines m x_i + b = y_i; the "
                                                  "paths are subgradient descent from one start." if k == "l1" else "")),
               table={"minimum (m, b)": minima[k].tolist(), "grid argmin (m, b)": grid_min[k].tolist()},
               settings={"delta": delta, "grid": f"{res}x{res}"})
        for k in ("l2", "l1", "huber"))
    st = np.arange(steps + 1, dtype=float)
    figs += (Figure("l1_gd_excess", "Gradient descent on L1: constant lr vs 1/t", "lines", "step",
                    "excess L1 cost over the LAD optimum",
                    (Series(f"constant lr = {lr:g}", st[::thin], np.maximum(ex_const[::thin], 1e-16)),
                     Series(f"inverse_time: {lr:g}/(1 + {decay:g} t)", st[::thin], np.maximum(ex_inv[::thin], 1e-16))),
                    log_y=True, hlines=(("subgradient floor G^2 lr / 2", G ** 2 * lr / 2),),
                    caption="Excess mean |r| over the linprog optimum along each run (floored at 1e-16 for the log axis).",
                    table={k: v for k, v in summary.items() if k.startswith("L1")}),)
    text = (f"OLS: m = {ols_mb[0]:.4f}, b = {ols_mb[1]:.4f}; LAD (linprog): m = {lp_mb[0]:.4f}, b = {lp_mb[1]:.4f}, "
            f"mean |r| = {lp_val:.5f} (best two-point line {two_val:.5f}); Huber (delta {delta:g}): m = {hub_mb[0]:.4f}, "
            f"b = {hub_mb[1]:.4f}. Subgradient descent on L1 at lr {lr:g} stalls at excess {floor_const:.2e} "
            f"(flipping direction {flips_const} times in its last {len(dm) + 1} steps); under lr/(1 + {decay:g} t) it "
            f"ends at {ex_inv[-1]:.2e}.")
    arrays = {"grid/m": gm, "grid/b": gb, **{f"grid/{k}": v for k, v in Z.items()}, "gd_l1_constant": p_const,
              "gd_l1_inverse_time": p_inv, "excess_constant": ex_const, "excess_inverse_time": ex_inv, "lr_inverse_time": lr_inv}
    return measured("cost_functions", summary=summary, checks=checks, figures=figs,
                            arrays=arrays, settings={"quick": quick, "seed": seed, "delta": delta, "lr": lr, "decay": decay,
                                                     "steps": steps, "res": res, "start": start.tolist()}, text=text)
