"""Saddle points rule high-dimensional landscapes; saddle-free Newton escapes them.

Dauphin, Pascanu, Gulcehre, Cho, Ganguli, Bengio (2014), "Identifying and attacking the saddle
point problem in high-dimensional non-convex optimization":

1. The toy f(x, y) = x^2/2 - y^2/2 + y^4/4 has a saddle at (0, 0) (f = 0, eigenvalues 1, -1)
   and minima at (0, +-1) (f = -1/4). From (0.5, 0.01), Newton's method converges to the
   saddle (it divides the negative-curvature component of the gradient by a negative
   eigenvalue, i.e. moves *towards* the saddle), gradient descent leaves it slowly (the
   y-component grows by a factor (1 + lr) per step), and saddle-free Newton
   d = -|H|^{-1} g (exact |H| by eigendecomposition) reaches f = -1/4 in a few steps.
2. On a small tanh network (regression, mse), critical points are found by minimizing
   ||grad L||^2 (Levenberg-Marquardt, :func:`losslab.optim.second_order.find_critical_points`)
   from random starts of several scales and from saddle-free-Newton minima; at each, the
   exact Hessian (``losslab.hessian.exact_spectrum``) gives the index alpha = fraction of
   negative eigenvalues. Dauphin et al. (Fig. 1; after Bray & Dean 2007) report that the loss
   of critical points rises with alpha: minima (alpha = 0) have the lowest loss.
3. From the network's highest-loss saddle (slightly perturbed), gradient descent, Newton,
   exact saddle-free Newton and Krylov saddle-free Newton (k Lanczos vectors, damping) are run
   for the same number of steps.
"""
from __future__ import annotations

import numpy as np
import torch

from ..figures import Figure, Series
from .base import ExperimentResult, register

TITLE = "Saddle points and saddle-free Newton"
CLAIM = ("Newton is attracted to saddles, gradient descent is slow to leave them, saddle-free Newton escapes; "
         "the loss of critical points rises with their index")


def toy_saddle(w: torch.Tensor) -> torch.Tensor:
    """f(x, y) = x^2/2 - y^2/2 + y^4/4 (saddle at 0, minima (0, +-1) with f = -1/4)."""
    return w[..., 0] ** 2 / 2 - w[..., 1] ** 2 / 2 + w[..., 1] ** 4 / 4


def _net_problem(seed: int, n: int, hidden: int, noise: float):
    """A small regression problem: targets from a wider random tanh teacher plus noise, so the
    student's minima have positive loss."""
    from ..models import build

    g = torch.Generator().manual_seed(1000 + seed)
    X = torch.randn(n, 2, generator=g, dtype=torch.float64)
    teacher = build("mlp", in_dim=2, hidden=[2 * hidden], out_dim=1, seed=2000 + seed, init_scale=2.0,
                    dtype=torch.float64)
    with torch.no_grad():
        y = teacher(X) + noise * torch.randn(n, 1, generator=g, dtype=torch.float64)
    student = build("mlp", in_dim=2, hidden=[hidden], out_dim=1, seed=seed, dtype=torch.float64)
    return student, X, y


@register("saddles", title=TITLE, claim=CLAIM)
def run(*, quick: bool = False, seed: int = 0, toy_steps: int | None = None, gd_lr: float = 0.1,
        hidden: int | None = None, n: int | None = None, noise: float = 0.3, n_starts: int | None = None,
        lm_steps: int | None = None, escape_steps: int | None = None, krylov_dim: int = 6,
        krylov_damping: float = 1e-3, grad_tol: float = 1e-12) -> ExperimentResult:
    from ..hessian.exact import exact_spectrum
    from ..optim.second_order import find_critical_points, minimize, model_loss_fn
    from ..params import load_flat
    from .curves import single_thread

    toy_steps = toy_steps or (30 if quick else 50)
    hidden = hidden or (3 if quick else 4)
    n = n or (48 if quick else 96)
    n_starts = n_starts or (40 if quick else 120)
    lm_steps = lm_steps or (150 if quick else 400)
    escape_steps = escape_steps or (30 if quick else 60)
    settings = dict(quick=quick, seed=seed, toy_steps=toy_steps, gd_lr=gd_lr, hidden=hidden, n=n, noise=noise,
                    n_starts=n_starts, lm_steps=lm_steps, escape_steps=escape_steps, krylov_dim=krylov_dim, grad_tol=grad_tol,
                    krylov_damping=krylov_damping)
    figs, arrays, summary, checks = [], {}, {}, {}
    with single_thread():
        # ---- 1. the toy saddle ------------------------------------------------------------
        x0 = torch.tensor([0.5, 0.01], dtype=torch.float64)
        gd_steps = toy_steps * 4  # give gradient descent 4x the steps
        paths = {
            "newton": minimize(toy_saddle, x0, method="newton", steps=toy_steps),
            "gd": minimize(toy_saddle, x0, method="gd", lr=gd_lr, steps=gd_steps),
            "saddle_free": minimize(toy_saddle, x0, method="saddle_free", steps=toy_steps),
            "saddle_free_krylov": minimize(toy_saddle, x0, method="saddle_free_krylov", steps=toy_steps,
                                           krylov_dim=2, damping=0.0),
        }
        for k, p in paths.items():
            arrays[f"toy/{k}/values"] = p.values
            arrays[f"toy/{k}/points"] = p.points
            summary[f"toy_{k}_final_f"] = p.final_value
            s = p.steps_to(-0.24)
            summary[f"toy_{k}_steps_to_f_below_-0.24"] = -1 if s is None else s
        checks["toy: Newton stays at the saddle (final f > -0.01)"] = paths["newton"].final_value > -0.01
        checks["toy: saddle-free Newton reaches f < -0.24"] = paths["saddle_free"].final_value < -0.24
        sg, ss = paths["gd"].steps_to(-0.24), paths["saddle_free"].steps_to(-0.24)
        checks["toy: gradient descent needs >= 3x the steps of saddle-free Newton to reach f < -0.24"] = (
            ss is not None and (sg is None or sg >= 3 * max(ss, 1)))
        figs.append(Figure(
            key="toy_values", title="f = x^2/2 - y^2/2 + y^4/4 from (0.5, 0.01)", kind="lines", x_label="step",
            y_label="f", series=tuple(Series(k, np.arange(len(p.values)), p.values, mode="lines+markers")
                                      for k, p in paths.items()),
            hlines=(("saddle f = 0", 0.0), ("minimum f = -1/4", -0.25)),
            caption=(f"Measured f per step. Newton converges to the saddle (final f = {paths['newton'].final_value:.3g}); "
                     f"gradient descent (lr {gd_lr}) needs {sg} steps to reach f < -0.24, saddle-free Newton {ss}."),
            table={k: paths[k].final_value for k in paths}))

        # ---- 2. critical points of a small network -----------------------------------------
        student, X, y = _net_problem(seed, n, hidden, noise)
        f, th0 = model_loss_fn(student, (X, y), "mse")
        P = th0.numel()
        g = torch.Generator().manual_seed(seed)
        scales = torch.linspace(0.2, 2.0, n_starts, dtype=torch.float64)
        starts = torch.randn(n_starts, P, generator=g, dtype=torch.float64) * scales[:, None]
        # minima via saddle-free Newton from a few random starts (it escapes the saddles)
        n_sfn = max(2, n_starts // 10)
        sfn_ends = [torch.as_tensor(minimize(f, starts[i], method="saddle_free", steps=60, damping=1e-6).final_point)
                    for i in range(n_sfn)]
        starts = torch.cat([starts, torch.stack(sfn_ends)])
        cps = find_critical_points(f, starts, steps=lm_steps, tol=grad_tol)
        idx_list, loss_list, minev, keep_pts = [], [], [], []
        for k in np.nonzero(cps.converged)[0]:
            spec = exact_spectrum(load_flat(student, torch.as_tensor(cps.points[k])), (X, y), "mse")
            w = spec.eigenvalues
            thr = 1e-6 * float(w.abs().max())  # eigenvalues within 1e-6 relative of 0 count as zero (symmetries)
            idx_list.append(float((w < -thr).double().mean()))
            loss_list.append(float(cps.values[k]))
            minev.append(float(w[0]))
            keep_pts.append(cps.points[k])
        idx_a, loss_a = np.asarray(idx_list), np.asarray(loss_list)
        # distinct critical points: the same (loss, index) up to 1e-6 counts once
        _, uniq = np.unique(np.round(np.stack([loss_a, idx_a], 1), 6), axis=0, return_index=True)
        uniq = np.sort(uniq)
        arrays.update({"net/index": idx_a, "net/loss": loss_a, "net/min_eig": np.asarray(minev),
                       "net/distinct": uniq.astype(np.int64), "net/points": np.asarray(keep_pts)})
        from scipy.stats import spearmanr

        di, dl = idx_a[uniq], loss_a[uniq]
        rho = float(spearmanr(di, dl).statistic) if len(uniq) > 2 and np.ptp(di) > 0 else float("nan")
        mins, saddles_ = dl[di == 0], dl[di > 0]
        summary.update({"net_params": P, "net_starts": int(len(starts)), "net_converged": int(cps.converged.sum()),
                        "net_distinct_critical_points": int(len(uniq)), "net_minima": int(len(mins)),
                        "net_spearman_index_loss": rho,
                        "net_best_minimum_loss": float(mins.min()) if len(mins) else float("nan"),
                        "net_lowest_saddle_loss": float(saddles_.min()) if len(saddles_) else float("nan")})
        checks["net: loss rises with the index (Spearman rho > 0 over distinct critical points)"] = bool(rho > 0)
        checks["net: the lowest minimum lies below every saddle found"] = bool(
            len(mins) and len(saddles_) and mins.min() < saddles_.min())
        figs.append(Figure(
            key="index_vs_loss", title="Critical points of a small tanh network: loss vs index", kind="scatter",
            x_label="index alpha (fraction of negative Hessian eigenvalues)", y_label="training loss (mse)",
            series=(Series("critical points (distinct)", di, dl, mode="markers"),),
            caption=(f"{len(uniq)} distinct critical points (||grad||^2 <= {grad_tol:g}) of a 2-{hidden}-1 tanh net "
                     f"(P = {P}) found by Levenberg-Marquardt minimization of ||grad L||^2 from {len(starts)} starts; "
                     f"index from the exact Hessian. Spearman rank correlation of index and loss: {rho:.3f}."),
            table={"spearman": rho, "minima": int(len(mins)), "saddles": int(len(saddles_))}))

        # ---- 3. escaping a network saddle ------------------------------------------------
        if len(saddles_):
            hi = uniq[int(np.argmax(np.where(di > 0, dl, -np.inf)))]
            s0 = torch.as_tensor(keep_pts[hi])
            s0 = s0 + 1e-4 * torch.randn(P, generator=g, dtype=torch.float64)
            esc = {
                "gd": minimize(f, s0, method="gd", lr=gd_lr, steps=escape_steps),
                "newton": minimize(f, s0, method="newton", steps=escape_steps, damping=1e-6),
                "saddle_free": minimize(f, s0, method="saddle_free", steps=escape_steps, damping=1e-6),
                "saddle_free_krylov": minimize(f, s0, method="saddle_free_krylov", steps=escape_steps,
                                               krylov_dim=min(krylov_dim, P), damping=krylov_damping, seed=seed),
            }
            start_loss = float(f(s0))
            for k, p in esc.items():
                arrays[f"escape/{k}/values"] = p.values
                summary[f"escape_{k}_final_loss"] = p.final_value
            summary["escape_start_loss"] = start_loss
            checks["net: saddle-free Newton (exact and Krylov) end below gradient descent and Newton from a saddle"] = bool(
                max(esc["saddle_free"].final_value, esc["saddle_free_krylov"].final_value)
                < min(esc["gd"].final_value, esc["newton"].final_value))
            figs.append(Figure(
                key="escape", title="Leaving a saddle of the network", kind="lines", x_label="step",
                y_label="training loss", series=tuple(Series(k, np.arange(len(p.values)), p.values)
                                                      for k, p in esc.items()), log_y=True,
                caption=(f"Start: the highest-loss saddle found (loss {start_loss:.4g}, index "
                         f"{idx_a[hi]:.3f}) plus 1e-4 Gaussian noise. Krylov saddle-free Newton uses "
                         f"k = {min(krylov_dim, P)} Lanczos vectors and damping {krylov_damping:g}; "
                         f"gradient descent lr {gd_lr}. Measured final losses: "
                         + ", ".join(f"{k} {p.final_value:.4g}" for k, p in esc.items()) + "."),
                table={k: p.final_value for k, p in esc.items()}))
    text = (f"Toy: Newton final f {paths['newton'].final_value:.3g}, saddle-free Newton "
            f"{paths['saddle_free'].final_value:.4g} (f < -0.24 at step {ss}), gradient descent reaches f < -0.24 at "
            f"step {sg}. Network: {len(uniq)} distinct critical points, Spearman(index, loss) = {rho:.3f}.")
    return ExperimentResult(name="saddles", title=TITLE, claim=CLAIM, summary=summary, checks=checks,
                            figures=tuple(figs), arrays=arrays, settings=settings, text=text)
