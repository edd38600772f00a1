"""Mode connectivity: minima found from different seeds are joined by low-loss curves
(Garipov, Izmailov, Podoprikhin, Vetrov, Wilson 2018, "Loss Surfaces, Mode Connectivity, and
Fast Ensembling of DNNs"; Draxler et al. 2018), although the straight line between them
crosses a barrier.

Barrier of a path phi: B = max_t L(phi(t)) - (L(phi(0)) + L(phi(1))) / 2 (the definition of
``losslab.landscape.interpolation``). Measured:

1. The toy L(w) = (||w||^2 - 1)^2 on R^2, ends w_0 = (1, 0), w_1 = (-1, 0) (both minima,
   L = 0): the line passes through w = 0 where L = 1, so its barrier is exactly 1; a trained
   quadratic Bezier curve (``curves.train_bezier``) bends around the ring of minima.
2. Two MLPs trained from different seeds on two moons (cross-entropy): the linear barrier
   (``losslab.landscape.interpolate``) and the barrier along a Bezier curve trained between
   them, both on the training loss.
"""
from __future__ import annotations

import numpy as np
import torch

from ..figures import Figure, Series
from .base import ExperimentResult, measured, register

TITLE = "Mode connectivity"
CLAIM = "two minima separated by a barrier on the straight line are joined by a low-loss quadratic Bezier curve"


def ring_loss(w: torch.Tensor) -> torch.Tensor:
    """L(w) = (||w||^2 - 1)^2: a ring of minima (the toy of the mode-connectivity experiment)."""
    return ((w * w).sum(-1) - 1) ** 2


@register("mode_connectivity", title=TITLE, claim=CLAIM)
def run(*, quick: bool = False, seed: int = 0, toy_steps: int | None = None, curve_lr: float = 0.05,
        samples: int = 8, hidden: int | None = None, n: int | None = None, train_steps: int | None = None,
        train_lr: float = 0.05, curve_steps: int | None = None, resolution: int | None = None) -> ExperimentResult:
    from ..data import load
    from ..landscape import interpolate
    from ..losses import get_loss
    from ..models import build
    from ..optim.second_order import model_loss_fn
    from ..train import train
    from .curves import curve_barrier, losses_along, single_thread, train_bezier

    toy_steps = toy_steps or (200 if quick else 1000)
    hidden = hidden or (16 if quick else 32)
    n = n or (200 if quick else 1000)
    train_steps = train_steps or (1500 if quick else 5000)
    curve_steps = curve_steps or (300 if quick else 2000)
    resolution = resolution or (51 if quick else 101)
    settings = dict(quick=quick, seed=seed, toy_steps=toy_steps, curve_lr=curve_lr, samples=samples, hidden=hidden,
                    n=n, train_steps=train_steps, train_lr=train_lr, curve_steps=curve_steps, resolution=resolution,
                    data="moons", loss="cross_entropy", model=f"mlp 2-{hidden}-{hidden}-2 tanh", train_optimizer="adam")
    ts = np.linspace(0, 1, resolution)
    summary, arrays, checks, figs = {}, {"t": ts}, {}, []
    with single_thread():
        # ---- toy ring ---------------------------------------------------------------------
        w0 = torch.tensor([1.0, 0.0], dtype=torch.float64)
        w1 = torch.tensor([-1.0, 0.0], dtype=torch.float64)
        line = losses_along(ring_loss, (1 - torch.as_tensor(ts)[:, None]) * w0 + torch.as_tensor(ts)[:, None] * w1)
        curve = train_bezier(ring_loss, w0, w1, steps=toy_steps, lr=curve_lr, samples=samples, seed=seed)
        along = losses_along(ring_loss, curve.points(ts))
        bl, bc = curve_barrier(ts, line), curve_barrier(ts, along)
        summary.update({"toy_linear_barrier": bl.height, "toy_curve_barrier": bc.height,
                        "toy_bend": curve.theta.tolist()})
        arrays.update({"toy/line_loss": line, "toy/curve_loss": along, "toy/theta": curve.theta,
                       "toy/history": curve.history})
        checks["toy: the linear barrier is 1 (to 1e-9)"] = bool(abs(bl.height - 1.0) < 1e-9)
        checks["toy: the Bezier curve's barrier is below 0.1"] = bool(bc.height < 0.1)
        figs.append(Figure(
            key="toy", title="L = (||w||^2 - 1)^2 between (1, 0) and (-1, 0)", kind="lines", x_label="t", y_label="loss",
            series=(Series("line", ts, line), Series("Bezier curve", ts, along)),
            caption=(f"Loss along the straight line (barrier {bl.height:.4g}) and along the trained quadratic Bezier "
                     f"curve (bend theta = ({curve.theta[0]:.3f}, {curve.theta[1]:.3f}), barrier {bc.height:.4g}); "
                     f"{toy_steps} Adam steps, lr {curve_lr}, {samples} t-samples per step."),
            table={"linear_barrier": bl.height, "curve_barrier": bc.height}))

        # ---- two networks ----------------------------------------------------------------
        sp = load("moons", seed=seed, n=n)
        loss = get_loss("cross_entropy")
        ends = []
        for s in (seed, seed + 1):
            net = build("mlp", in_dim=2, hidden=[hidden, hidden], out_dim=2, activation="tanh", seed=1000 + s)
            tr = train(net, sp, loss=loss, optimizer="adam", lr=train_lr, steps=train_steps, seed=s,
                       eval_every=train_steps, snapshot_every=train_steps)
            ends.append(tr.model)
            summary[f"net_end{len(ends) - 1}_train_loss"] = tr.final_loss
        lin = interpolate(ends[0], ends[1], sp.train, loss=loss, alphas=ts, dtype=torch.float64)
        f, v0 = model_loss_fn(ends[0], sp.train, loss)
        _, v1 = model_loss_fn(ends[1], sp.train, loss)
        nc = train_bezier(f, v0, v1, steps=curve_steps, lr=curve_lr * 0.2, samples=samples, seed=seed)
        nalong = losses_along(f, nc.points(ts))
        # the linear path evaluated by the same function, as a cross-check of the two evaluators
        nline = losses_along(f, (1 - torch.as_tensor(ts)[:, None]) * v0 + torch.as_tensor(ts)[:, None] * v1)
        lin_loss = lin.loss[np.isin(lin.alphas, ts)]
        nb = curve_barrier(ts, nalong)
        summary.update({"net_linear_barrier": lin.barrier.height, "net_curve_barrier": nb.height,
                        "net_curve_max_loss": float(nalong.max()), "net_linear_max_loss": float(lin_loss.max()),
                        "net_evaluators_max_abs_diff": float(np.max(np.abs(nline - lin_loss)))})
        arrays.update({"net/line_loss": lin_loss, "net/curve_loss": nalong, "net/history": nc.history})
        checks["net: the straight line crosses a barrier (> 0.05)"] = bool(lin.barrier.height > 0.05)
        checks["net: the Bezier curve's barrier is below a quarter of the line's"] = bool(
            nb.height < 0.25 * lin.barrier.height)
        figs.append(Figure(
            key="net", title="Training loss between two seeds' minima (two moons MLP)", kind="lines", x_label="t",
            y_label="cross-entropy", log_y=True,
            series=(Series("line", ts, lin_loss), Series("Bezier curve", ts, nalong)),
            caption=(f"Two 2-{hidden}-{hidden}-2 tanh MLPs trained from different seeds ({train_steps} Adam steps, lr "
                     f"{train_lr}); end losses {summary['net_end0_train_loss']:.4g}, {summary['net_end1_train_loss']:.4g}. "
                     f"Linear barrier {lin.barrier.height:.4g}; Bezier curve ({curve_steps} Adam steps) barrier "
                     f"{nb.height:.4g}."),
            table={"linear_barrier": lin.barrier.height, "curve_barrier": nb.height}))
    text = (f"Toy ring: linear barrier {bl.height:.4g}, Bezier barrier {bc.height:.4g}. Two moons MLPs: linear barrier "
            f"{lin.barrier.height:.4g}, Bezier barrier {nb.height:.4g}.")
    return measured("mode_connectivity", summary=summary, checks=checks,
                    figures=tuple(figs), arrays=arrays, settings=settings, text=text)
