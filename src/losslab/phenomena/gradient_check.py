"""Experiment ``gradient_check``: backprop vs finite differences on every model kind.

The chapter's "gradient check vs backprop": for every model of the registry
(``losslab.models.MODELS``) on a small matching dataset, ``losslab.gradcheck.gradcheck``
compares the backprop gradient with central differences (L(theta + eps e_i) -
L(theta - eps e_i)) / (2 eps) in float64 (its module docstring gives the error measure and
the error budget behind tol = 1e-6). Three more measurements make the check meaningful:

* a negative control: a tanh whose hand-written backward uses 1 - y instead of 1 - y^2 must
  be caught (relative error >> tol);
* the eps trade-off: the error against eps is V-shaped, truncation O(eps^2) on the right,
  round-off O(u/eps) on the left;
* the cost: finite differences need 2P loss evaluations, backprop one forward and one
  backward pass; the wall times are measured for growing P.
"""
from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn

from ..figures import Figure, Series
from ..rng import seeded
from .base import ExperimentResult, measured, register

TITLE = "Gradient check: backprop agrees with finite differences on every model kind"
CLAIM = "backprop computes the gradient exactly (to round-off) on every model kind; a wrong backward is caught"


class _WrongTanhFn(torch.autograd.Function):
    """tanh with a deliberately wrong backward: grad * (1 - y) instead of grad * (1 - y^2)."""

    @staticmethod
    def forward(ctx, x):
        y = torch.tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return g * (1 - y)


class WrongTanhNet(nn.Module):
    """A 2-8-2 net whose hidden activation has a wrong backward (the negative control)."""

    def __init__(self, seed: int = 0):
        super().__init__()
        with seeded(seed):
            self.a, self.b = nn.Linear(2, 8), nn.Linear(8, 2)

    def forward(self, x):
        return self.b(_WrongTanhFn.apply(self.a(x)))


def model_cases(seed: int) -> dict[str, tuple]:
    """(model, data, loss, train_mode) for every model kind in the registry, plus variants."""
    from ..data import load
    from ..models import MODELS, build

    lin = load("linear", seed=seed, n=40, dim=3).train
    poly = load("polynomial", seed=seed, n=16).train
    moons = load("moons", seed=seed, n=60).train
    seq = load("adding", seed=seed, n=24, length=6).train
    sig = (moons.X, moons.y.float().unsqueeze(1))
    cases = {
        "linear": (build("linear", in_dim=3, seed=seed), lin, "mse", False),
        "sigmoid_neuron": (build("sigmoid_neuron", in_dim=2, seed=seed), sig, "mse", False),
        "polynomial": (build("polynomial", degree=4, seed=seed), poly, "mse", False),
        "mlp": (build("mlp", in_dim=2, hidden=[8, 8], out_dim=2, activation="tanh", seed=seed), moons, "cross_entropy", False),
        "mlp (relu, batch norm, dropout, train mode)": (
            build("mlp", in_dim=2, hidden=[8], out_dim=2, activation="relu", batch_norm=True, dropout=0.2, seed=seed),
            moons, "cross_entropy", True),
        "deep_linear": (build("deep_linear", widths=[3, 4, 4, 1], seed=seed), lin, "mse", False),
        "rnn": (build("rnn", in_dim=2, hidden=6, seed=seed), seq, "mse", False),
        "lstm": (build("lstm", in_dim=2, hidden=5, forget_bias=1.0, seed=seed), seq, "mse", False),
    }
    missing = set(MODELS.names()) - {k.split(" ")[0] for k in cases}
    if missing:  # a new model kind must get a case here; say so rather than skip it silently
        raise RuntimeError(f"gradient_check has no case for model kind(s) {sorted(missing)}; add them to model_cases()")
    return cases


def _fd_vs_bp_time(hidden: int, data, seed: int) -> tuple[int, float, float]:
    """(P, seconds for one backprop gradient, seconds for the full finite-difference gradient)."""
    from ..gradcheck import gradcheck
    from ..models import build

    m = build("mlp", in_dim=2, hidden=[hidden], out_dim=2, activation="tanh", seed=seed).double()
    X, y = data
    t_bp = float("inf")
    for _ in range(5):  # best of 5: the first call pays autograd's warm-up
        t0 = time.perf_counter()
        loss = nn.functional.cross_entropy(m(X.double()), y)
        torch.autograd.grad(loss, list(m.parameters()))
        t_bp = min(t_bp, time.perf_counter() - t0)
    t0 = time.perf_counter()
    gradcheck(m, data, "cross_entropy")
    t_fd = time.perf_counter() - t0  # includes its own single backprop and a shape probe, negligible beside 2P evaluations
    return sum(p.numel() for p in m.parameters()), t_bp, t_fd


@register("gradient_check", title=TITLE, claim=CLAIM)
def run(*, quick: bool = False, seed: int = 0, tol: float = 1e-6, eps: float = 1e-6) -> ExperimentResult:
    """Gradient check of every model kind, a wrong-backward control, an eps sweep and a cost comparison.

    Quick: eps sweep 1e-1..1e-10 (10 points), hidden sizes (4, 16, 32) for timing. Full: 19
    eps points, hidden sizes (4, 16, 64, 128).
    """
    from ..data import load
    from ..gradcheck import gradcheck

    cases = model_cases(seed)
    rows = {}
    for name, (model, data, loss, train_mode) in cases.items():
        r = gradcheck(model, data, loss, eps=eps, tol=tol, seed=seed, train=train_mode)
        rows[name] = r
    bad = gradcheck(WrongTanhNet(seed), load("moons", seed=seed, n=40).train, "cross_entropy", eps=eps, tol=tol, seed=seed)

    # eps sweep on the tanh MLP (float64): V-shaped error
    eps_grid = np.logspace(-1, -10, 10 if quick else 19)
    mlp, mdata, mloss, _ = cases["mlp"]
    sweep = np.array([gradcheck(mlp, mdata, mloss, eps=float(e), tol=tol, seed=seed).max_rel_err for e in eps_grid])
    i_best = int(np.argmin(sweep))

    # cost: backprop vs finite differences
    moons = load("moons", seed=seed, n=60).train
    timing = [_fd_vs_bp_time(h, (moons.X, moons.y), seed) for h in ((4, 16, 32) if quick else (4, 16, 64, 128))]
    P = np.array([t[0] for t in timing], dtype=float)
    t_bp = np.array([t[1] for t in timing])
    t_fd = np.array([t[2] for t in timing])

    names = list(rows)
    errs = np.array([rows[n].max_rel_err for n in names])
    summary = {"tol": tol, "eps": eps, "max_rel_err_all_models": float(errs.max()),
               "wrong_backward_rel_err": bad.max_rel_err, "best_eps": float(eps_grid[i_best]),
               "err_at_best_eps": float(sweep[i_best]), "err_at_eps_1e-1": float(sweep[0]),
               "err_at_smallest_eps": float(sweep[-1]),
               **{f"max_rel_err[{n}]": rows[n].max_rel_err for n in names},
               **{f"fd_over_bp_time[P={int(p)}]": float(f / b) for p, b, f in zip(P, t_bp, t_fd)}}
    checks = {
        f"backprop matches finite differences on all {len(names)} model kinds (max rel. error {errs.max():.1e} "
        f"<= {tol:g})": bool((errs <= tol).all()),
        f"a wrong backward (tanh' = 1 - y) is caught: rel. error {bad.max_rel_err:.2g} >= 1e-2":
            bool(bad.max_rel_err >= 1e-2),
        f"the finite-difference error is V-shaped in eps: {sweep[0]:.1e} at eps=1e-1 and {sweep[-1]:.1e} at "
        f"eps={eps_grid[-1]:.0e} are both >= 100x the best {sweep[i_best]:.1e} (eps={eps_grid[i_best]:.0e})":
            bool(sweep[0] >= 100 * sweep[i_best] and sweep[-1] >= 100 * sweep[i_best] and 0 < i_best < len(sweep) - 1),
        f"finite differences (2P = {2 * int(P[-1])} loss evaluations) take >= 10x the time of one backprop at "
        f"P={int(P[-1])} (measured {t_fd[-1] / t_bp[-1]:.0f}x)": bool(t_fd[-1] >= 10 * t_bp[-1]),
    }
    arrays = {"max_rel_err": errs, "eps_grid": eps_grid, "eps_sweep_rel_err": sweep, "timing/n_params": P,
              "timing/backprop_s": t_bp, "timing/finite_diff_s": t_fd}
    figs = (
        Figure(key="per_model", title="Backprop vs central differences: max relative error per model kind", kind="bars",
               x_label="model", y_label="max relative error", log_y=True,
               series=(Series("max relative error", np.arange(len(names), dtype=float), errs),),
               hlines=(("tol", tol),),
               caption=(f"float64, eps = {eps:g}, all entries of every tensor; error per tensor = max |g_bp - g_fd| / "
                        f"gradient scale (see losslab.gradcheck). A deliberately wrong tanh backward scores "
                        f"{bad.max_rel_err:.2g}."),
               table={n: {"max_rel_err": rows[n].max_rel_err, "max_abs_err": rows[n].max_abs_err,
                          "n_params": sum(t.n_total for t in rows[n].tensors), "loss": rows[n].loss_value,
                          "train_mode": rows[n].train} for n in names},
               settings={"labels": names}),
        Figure(key="eps_sweep", title="Finite-difference error vs step eps (tanh MLP, float64)", kind="lines",
               x_label="eps", y_label="max relative error", log_x=True, log_y=True,
               series=(Series("measured", eps_grid, sweep, mode="lines+markers"),),
               caption=(f"Truncation error ~ eps^2 on the right, round-off ~ u/eps on the left; best eps "
                        f"{eps_grid[i_best]:.0e} ({sweep[i_best]:.1e}).")),
        Figure(key="cost", title="Cost of a gradient: backprop vs finite differences", kind="lines",
               x_label="number of parameters P", y_label="seconds", log_x=True, log_y=True,
               series=(Series("backprop (1 forward + 1 backward)", P, t_bp, mode="lines+markers"),
                       Series("finite differences (2P forwards)", P, t_fd, mode="lines+markers")),
               caption="Measured wall time on this machine for tanh MLPs of growing width on 60 moons points."),
    )
    text = (f"Backprop agrees with central differences to {errs.max():.1e} (relative) on {len(names)} model kinds; "
            f"a wrong backward scores {bad.max_rel_err:.2g}. Finite differences take {t_fd[-1] / t_bp[-1]:.0f}x the time "
            f"of backprop at P = {int(P[-1])}.")
    return measured("gradient_check", summary=summary, checks=checks,
                    figures=figs, arrays=arrays, settings={"quick": quick, "seed": seed, "tol": tol, "eps": eps},
                    text=text)
