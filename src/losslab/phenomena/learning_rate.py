"""Experiment ``learning_rate``: crawling, converging and overshooting on the seven points.

Gradient descent on the chapter's seven-point linear regression (model ``linear``, loss
``mse`` = mean over the N = 7 examples). The loss is the quadratic

    L(w, b) = (1/N) ||X theta - y||^2,   X = [x, 1] (N, 2),   H = (2/N) X^T X,

so the Hessian is constant and its top eigenvalue lambda_max is known exactly. Plain
gradient descent theta <- theta - lr grad L multiplies the error along the eigenvector of
lambda by (1 - lr lambda): it converges iff lr < 2 / lambda_max. Heavy-ball momentum
(torch's SGD form v <- beta v + g, theta <- theta - lr v) has the characteristic polynomial
z^2 - (1 + beta - lr lambda) z + beta per mode, stable iff lr < 2 (1 + beta) / lambda_max
(Cohen et al. 2021, "Gradient descent on neural networks typically occurs at the edge of
stability", Sec. 2; Goh 2017, "Why momentum really works").

The *observed* threshold is measured without the formula: bisection on lr over full
``losslab.train`` runs, each classified by its status (``diverged`` or not).
"""
from __future__ import annotations

import numpy as np
import torch

from ..figures import Figure, Series
from .base import ExperimentResult, measured, register

TITLE = "Learning rate: too small crawls, good converges, too large diverges"
CLAIM = ("the learning rate decides between crawling, converging and overshooting; gradient descent on a "
         "quadratic diverges above 2/lambda_max, heavy ball above 2(1+beta)/lambda_max")


def seven_point_hessian() -> tuple[torch.Tensor, torch.Tensor]:
    """H = (2/N) X^T X for X = [x, 1] of the seven points (float64), and its eigenvalues (ascending).

    Parameter order (weight, bias) as in ``nn.Linear(1, 1)``'s flat vector."""
    from ..data import load

    d = load("seven_points").train
    x = d.X.to(torch.float64).reshape(-1)
    X = torch.stack([x, torch.ones_like(x)], dim=1)  # (N, 2)
    H = 2.0 / X.shape[0] * X.T @ X  # (2, 2)
    return H, torch.linalg.eigvalsh(H)


def _diverges(lr: float, *, optimizer: str, beta: float | None, steps: int, seed: int, divergence_factor: float) -> bool:
    from ..data import load
    from ..models import build
    from ..train import train

    model = build("linear", in_dim=1, out_dim=1, seed=seed, dtype=torch.float64)
    opts = {"momentum": beta} if beta is not None else None
    tr = train(model, load("seven_points"), optimizer=optimizer, lr=lr, steps=steps, optimizer_options=opts,
               eval_every=steps, snapshot_every=steps, max_snapshots=2, divergence_factor=divergence_factor, seed=seed)
    return tr.status == "diverged"


def observed_threshold(*, optimizer: str = "gd", beta: float | None = None, lo: float, hi: float, iterations: int = 10,
                       steps: int = 500, seed: int = 0, divergence_factor: float = 1e4) -> tuple[float, float, int]:
    """Bisection for the smallest diverging learning rate in [lo, hi] using ``train`` statuses.

    Requires ``lo`` to converge and ``hi`` to diverge (checked; a ValueError says which failed).
    Returns (lo, hi, runs): the final bracket and the number of training runs used. Runs near
    the threshold diverge slowly (growth |1 - lr lambda|^t), so the bracket is only as fine as
    ``steps`` allows: with ln(divergence_factor)/(4 eps) steps, lr = (1+eps) 2/lambda diverges.
    """
    kw = dict(optimizer=optimizer, beta=beta, steps=steps, seed=seed, divergence_factor=divergence_factor)
    if _diverges(lo, **kw):
        raise ValueError(f"bisection bracket: lower lr {lo:.4g} already diverges; pass a smaller lo")
    if not _diverges(hi, **kw):
        raise ValueError(f"bisection bracket: upper lr {hi:.4g} does not diverge in {steps} steps; pass a larger hi")
    runs = 2
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        runs += 1
        if _diverges(mid, **kw):
            hi = mid
        else:
            lo = mid
    return lo, hi, runs


@register("learning_rate", title=TITLE, claim=CLAIM)
def run(*, quick: bool = False, seed: int = 0, steps: int | None = None, iterations: int | None = None,
        betas: list[float] | tuple[float, ...] | None = None, divergence_factor: float = 1e4) -> ExperimentResult:
    """Gradient descent on ``seven_points`` at too-small, good and too-large rates; measured vs
    predicted divergence thresholds for GD (2/lambda_max) and heavy ball (2(1+beta)/lambda_max).

    Quick: 400 steps per run, 8 bisection steps, beta in (0.9,). Full: 3000 steps, 14 bisection
    steps, beta in (0.5, 0.9, 0.99).
    """
    from ..closed_form import ols
    from ..data import load
    from ..models import build
    from ..train import train

    steps = steps or (400 if quick else 3000)
    iterations = iterations or (8 if quick else 14)
    betas = tuple(betas) if betas is not None else ((0.9,) if quick else (0.5, 0.9, 0.99))
    data = load("seven_points")
    H, eig = seven_point_hessian()
    lam_min, lam_max = float(eig[0]), float(eig[-1])
    l_star = ols(data.train.X.double(), data.train.y.double()).mse  # the minimum of the quadratic

    # --- three regimes, one init (seed) ------------------------------------------------------
    # 1/lambda_max kills the stiff mode in one step; the worst-case optimum 2/(lambda_max+lambda_min)
    # sits at the edge (stiff mode contracts only by (k-1)/(k+1)) and is slower at finite step counts.
    lr_good = 1.0 / lam_max
    regimes = {"too small (0.01/lambda_max)": lr_good / 100, "good (1/lambda_max)": lr_good,
               "overshooting, converging (1.9/lambda_max)": 1.9 / lam_max, "too large (2.1/lambda_max)": 2.1 / lam_max}
    model = build("linear", in_dim=1, out_dim=1, seed=seed, dtype=torch.float64)
    series, table, arrays, runs = [], {}, {}, {}
    for label, lr in regimes.items():
        tr = train(model, data, optimizer="gd", lr=lr, steps=steps, eval_every=1, snapshot_every=max(1, steps // 200),
                   divergence_factor=divergence_factor, seed=seed)
        excess = np.maximum(tr.train_eval_loss - l_star, 1e-300)
        runs[label] = (lr, tr, excess)
        series.append(Series(f"{label}: lr={lr:.4g}", tr.eval_steps.astype(float), excess))
        key = label.split(" (")[0].replace(",", "").replace(" ", "_")
        arrays[f"regime/{key}/steps"] = tr.eval_steps
        arrays[f"regime/{key}/excess_loss"] = excess
        arrays[f"regime/{key}/snapshots"] = tr.snapshots
        table[f"{label} status"] = tr.status
        table[f"{label} final excess loss"] = float(excess[-1])
    initial_excess = float(runs["good (1/lambda_max)"][2][0])
    ex_small = float(runs["too small (0.01/lambda_max)"][2][-1])
    ex_good = float(runs["good (1/lambda_max)"][2][-1])
    st_large = runs["too large (2.1/lambda_max)"][1].status
    st_over = runs["overshooting, converging (1.9/lambda_max)"][1].status

    # --- observed thresholds by bisection ----------------------------------------------------
    pred_gd = 2.0 / lam_max
    lo, hi, n_gd = observed_threshold(optimizer="gd", lo=0.5 * pred_gd, hi=2.0 * pred_gd, iterations=iterations,
                                      steps=steps, seed=seed, divergence_factor=divergence_factor)
    obs_gd = 0.5 * (lo + hi)
    thr_rows = [("gd", 0.0, pred_gd, obs_gd, hi - lo)]
    for beta in betas:
        pred = 2.0 * (1 + beta) / lam_max
        lo_b, hi_b, _ = observed_threshold(optimizer="momentum", beta=beta, lo=0.5 * pred, hi=2.0 * pred,
                                           iterations=iterations, steps=steps, seed=seed,
                                           divergence_factor=divergence_factor)
        thr_rows.append((f"momentum beta={beta}", beta, pred, 0.5 * (lo_b + hi_b), hi_b - lo_b))

    rel = {name: abs(obs / pred - 1) for name, _, pred, obs, _ in thr_rows}
    summary = {"lambda_max": lam_max, "lambda_min": lam_min, "condition_number": lam_max / lam_min, "ols_mse": l_star,
               "lr_good": lr_good, "predicted_gd_threshold": pred_gd, "observed_gd_threshold": obs_gd,
               "gd_threshold_rel_error": rel["gd"], "initial_excess_loss": initial_excess,
               "excess_too_small": ex_small, "excess_good": ex_good, "status_too_large": st_large,
               "status_overshooting": st_over, "steps": steps, "bisection_iterations": iterations}
    for name, beta, pred, obs, width in thr_rows[1:]:
        summary[f"predicted_threshold_beta_{beta}"] = pred
        summary[f"observed_threshold_beta_{beta}"] = obs
        summary[f"threshold_rel_error_beta_{beta}"] = rel[name]
    checks = {
        f"observed GD divergence lr within 5% of 2/lambda_max (rel. error {rel['gd']:.2%})": rel["gd"] <= 0.05,
        **{f"observed heavy-ball (beta={b}) divergence lr within 5% of 2(1+beta)/lambda_max (rel. error {rel[n]:.2%})":
           rel[n] <= 0.05 for n, b, *_ in thr_rows[1:]},
        f"too small a rate crawls: excess loss after {steps} steps >= 10x the good rate's "
        f"({ex_small:.3g} vs {ex_good:.3g})": ex_small >= 10 * ex_good,
        f"the good rate converges: excess loss falls >= 100x ({initial_excess:.3g} -> {ex_good:.3g})":
            ex_good * 100 <= initial_excess,
        f"lr = 1.9/lambda_max overshoots but converges (status {st_over})": st_over == "completed",
        f"lr = 2.1/lambda_max diverges (status {st_large})": st_large == "diverged",
    }
    arrays["hessian"] = H.numpy()
    arrays["threshold/predicted"] = np.array([r[2] for r in thr_rows])
    arrays["threshold/observed"] = np.array([r[3] for r in thr_rows])
    arrays["threshold/bracket_width"] = np.array([r[4] for r in thr_rows])
    arrays["threshold/beta"] = np.array([r[1] for r in thr_rows])

    fig_regimes = Figure(
        key="lr_regimes", title="Excess loss L - L* vs step at four learning rates (seven points, GD)", kind="lines",
        x_label="step", y_label="L(theta_t) - L_OLS", series=tuple(series), log_y=True,
        caption=(f"Gradient descent from one initialization (seed {seed}) on the seven-point regression. "
                 f"lambda_max = {lam_max:.4g}, lambda_min = {lam_min:.4g} (condition number {lam_max / lam_min:.0f}); "
                 f"L* = OLS mse {l_star:.5g}. Too small a rate (0.01/lambda_max) crawls, 1/lambda_max converges, "
                 f"1.9/lambda_max oscillates but converges, 2.1/lambda_max diverges ({st_large})."),
        table=table, settings={"steps": steps, "seed": seed})
    fig_thr = Figure(
        key="thresholds", title="Divergence threshold: observed (bisection on train status) vs predicted", kind="bars",
        x_label="optimizer", y_label="learning rate",
        series=(Series("predicted 2(1+beta)/lambda_max", np.arange(len(thr_rows), dtype=float), arrays["threshold/predicted"]),
                Series("observed (bisection)", np.arange(len(thr_rows), dtype=float), arrays["threshold/observed"])),
        caption=(f"Each observed threshold is the midpoint of the final bisection bracket over {iterations} "
                 f"halvings of [0.5, 2] x predicted, each point a {steps}-step run classified diverged/not "
                 f"(divergence = loss > {divergence_factor:g} x initial)."),
        table={name: {"predicted": pred, "observed": obs, "bracket_width": w, "relative_error": rel[name]}
               for name, _, pred, obs, w in thr_rows},
        settings={"labels": [r[0] for r in thr_rows]})
    text = (f"Gradient descent on the seven points: lambda_max = {lam_max:.4g}, so GD should diverge above "
            f"2/lambda_max = {pred_gd:.4g}; bisection on training runs found {obs_gd:.4g} ({rel['gd']:.2%} off). "
            + " ".join(f"Heavy ball beta={b}: predicted {p:.4g}, observed {o:.4g} ({rel[n]:.2%})."
                       for n, b, p, o, _ in thr_rows[1:]))
    return measured("learning_rate", summary=summary, checks=checks,
                    figures=(fig_regimes, fig_thr), arrays=arrays,
                    settings={"quick": quick, "seed": seed, "steps": steps, "iterations": iterations,
                              "betas": list(betas), "divergence_factor": divergence_factor}, text=text)
