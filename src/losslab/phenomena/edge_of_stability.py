"""Gradient descent at the edge of stability (Cohen, Kaur, Li, Kolter, Talwalkar 2021,
"Gradient Descent on Neural Networks Typically Occurs at the Edge of Stability").

On a quadratic, gradient descent with step size lr diverges iff lambda_max(H) > 2/lr. On
networks trained with full-batch gradient descent, lambda_max first *rises* (progressive
sharpening, Cohen et al. Sec. 3) until it reaches 2/lr, then hovers just above it while the
loss keeps decreasing non-monotonically (Sec. 4).

Setup: a tanh MLP 64-h-h-10 on the first ``n`` training images of scikit-learn's digits with
one-hot targets and mse loss (``losses.mse``: mean over examples and outputs), full-batch
gradient descent (``train(optimizer="gd")``); lambda_max of the full-data Hessian measured
every ``every`` steps by Lanczos (``losslab.hessian.sharpness_callback``, warm-started).
"""
from __future__ import annotations

import warnings

import numpy as np
import torch

from ..figures import Figure, Series
from .base import ExperimentResult, measured, register

TITLE = "Edge of stability"
CLAIM = "full-batch gradient descent: lambda_max rises (progressive sharpening) and then hovers near 2/lr"


@register("edge_of_stability", title=TITLE, claim=CLAIM)
def run(*, quick: bool = False, seed: int = 0, n: int | None = None, hidden: int = 32, lr: float | None = None,
        steps: int | None = None, every: int = 20, tol: float = 1e-3, early_fraction: float = 0.1,
        late_fraction: float = 0.25, hover_tolerance: float = 0.15) -> ExperimentResult:
    from ..data import load
    from ..hessian import ConvergenceWarning, sharpness_callback
    from ..models import build
    from ..train import train
    from .curves import single_thread

    n = n or (200 if quick else 500)
    lr = lr or (0.8 if quick else 0.6)
    steps = steps or (800 if quick else 2500)
    settings = dict(quick=quick, seed=seed, n=n, hidden=hidden, lr=lr, steps=steps, every=every, tol=tol,
                    early_fraction=early_fraction, late_fraction=late_fraction, hover_tolerance=hover_tolerance,
                    data="digits (first n training images, one-hot targets)", loss="mse", model=f"mlp 64-{hidden}-{hidden}-10 tanh")
    sp = load("digits", seed=seed)
    if n > sp.train.n:
        raise ValueError(f"n={n} exceeds the {sp.train.n} digits training images; pass a smaller n")
    X = sp.train.X[:n]
    y = torch.nn.functional.one_hot(sp.train.y[:n], 10).to(X.dtype)
    net = build("mlp", in_dim=64, hidden=[hidden, hidden], out_dim=10, activation="tanh", seed=seed)
    with single_thread(), warnings.catch_warnings():
        # a measurement whose Lanczos check did not finish is recorded (lambda_max_certified) and counted in the
        # figure's caption and the summary, not printed in the middle of the tour
        warnings.simplefilter("ignore", ConvergenceWarning)
        cb = sharpness_callback(every=every, data=(X, y), loss="mse", lr=lr, tol=tol, seed=seed)
        tr = train(net, (X, y), loss="mse", optimizer="gd", lr=lr, steps=steps, seed=seed,
                   callbacks=[(every, cb)], eval_every=every, snapshot_every=steps)
    st, lam = tr.metrics["lambda_max"]
    certified = np.asarray(tr.metrics["lambda_max_certified"][1], dtype=float)
    thr = 2.0 / lr
    k = len(lam)
    n_early = max(1, int(round(early_fraction * k)))
    n_late = max(1, int(round(late_fraction * k)))
    early, late = lam[:n_early], lam[-n_late:]
    first_cross = int(st[np.argmax(lam >= thr)]) if (lam >= thr).any() else -1
    summary = {"two_over_lr": thr, "lambda_max_initial": float(lam[0]), "lambda_max_early_mean": float(early.mean()),
               "lambda_max_late_mean": float(late.mean()), "lambda_max_late_min": float(late.min()),
               "lambda_max_late_max": float(late.max()), "lambda_max_peak": float(lam.max()),
               "late_mean_over_two_over_lr": float(late.mean() / thr), "first_step_at_2_over_lr": first_cross,
               "final_train_loss": tr.final_loss, "initial_train_loss": float(tr.train_eval_loss[0]),
               "status": tr.status, "n_measurements": k, "n_certified": float(certified.sum())}
    checks = {
        f"early lambda_max (first {early_fraction:.0%} of measurements) below 0.7 x 2/lr": bool(early.mean() < 0.7 * thr),
        f"late lambda_max (last {late_fraction:.0%}) within {hover_tolerance:.0%} of 2/lr":
            bool(abs(late.mean() / thr - 1) <= hover_tolerance),
        "training did not diverge and the loss fell": bool(tr.status == "completed"
                                                           and tr.final_loss < tr.train_eval_loss[0]),
    }
    figs = (
        Figure(key="sharpness", title="lambda_max during full-batch gradient descent", kind="lines", x_label="step",
               y_label="lambda_max", series=(Series("lambda_max (Lanczos)", st, lam, mode="lines+markers"),),
               hlines=(("2/lr", thr),),
               caption=(f"Top Hessian eigenvalue of the full-data mse loss every {every} steps (lr {lr}, 2/lr = "
                        f"{thr:.3g}). Measured: {lam[0]:.3g} at step 0, first >= 2/lr at step {first_cross}, "
                        f"mean over the last {late_fraction:.0%} {late.mean():.3g} ({late.mean() / thr:.2f} x 2/lr). "
                        f"Certified: {certified.sum():.0f} of {k} measurements (Lanczos's check from a second start "
                        f"vector finished within its step budget; the others met the residual tolerance {tol:g} "
                        f"only)."),
               table={k2: summary[k2] for k2 in ("two_over_lr", "lambda_max_initial", "lambda_max_late_mean",
                                                  "first_step_at_2_over_lr", "n_measurements", "n_certified")}),
        Figure(key="loss", title="Training loss (full batch)", kind="lines", x_label="step", y_label="mse",
               series=(Series("train loss", tr.steps, tr.train_loss),), log_y=True,
               caption="Full-batch loss per step: it keeps falling, non-monotonically once lambda_max reaches 2/lr."),
    )
    text = (f"lambda_max rose from {lam[0]:.3g} to 2/lr = {thr:.3g} (first reached at step {first_cross}) and then "
            f"averaged {late.mean():.3g} ({late.mean() / thr:.2f} x 2/lr) over the last {late_fraction:.0%} of training.")
    return measured("edge_of_stability", summary=summary, checks=checks,
                    figures=figs, arrays={"steps": st, "lambda_max": lam, "loss_steps": tr.steps,
                                          "train_loss": tr.train_loss},
                    settings=settings, text=text)
