"""Experiment ``optimizers``: every optimizer of the registry from one initialization.

Two nonconvex problems:

* the Rosenbrock function f(a, b) = (1 - a)^2 + 100 (b - a^2)^2 (Rosenbrock 1960), written as
  a 2-parameter ``nn.Module`` whose two outputs are the residuals (1 - a, 10 (b - a^2)), so
  the ``mse`` loss against zero targets is f / 2. Its parameter plane *is* the surface: the
  loss is evaluated on a grid of (a, b) directly, and every optimizer's path is drawn on it;
* an MLP (64-32-10, tanh) on scikit-learn's 8x8 digits with cross-entropy: the paths of all
  optimizers are projected on one shared plane, the top-2 PCA directions of all their
  parameter snapshots together (Li et al. 2018, "Visualizing the loss landscape of neural
  nets", Sec. 7), anchored at the common initialization, and the loss is evaluated on that
  plane (``losslab.landscape.evaluate_points``). The distance of each snapshot from the plane
  is recorded (a projection hides it).

Loss is recorded against steps and against wall time (a callback stamps the clock at every
evaluation, so the times include the evaluation overhead, the same for every optimizer).
Learning rates come from the tables below (tuned per optimizer by a short sweep on these
problems; they are settings, not results).
"""
from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn

from ..figures import Figure, Grid, Path, Series
from .base import ExperimentResult, measured, register

TITLE = "Optimizers: every optimizer of the registry from one initialization"
CLAIM = ("every optimizer lowers the loss of a nonconvex problem from a shared start; they take different paths "
         "and reach different losses in the same number of steps")

# lr per optimizer on the Rosenbrock module (loss f/2, start (-1.2, 1)); GD is stable for lr < 2/lambda_max
# of the Hessian along the path (lambda_max ~ 1000 near the start, ~500 at the minimum).
ROSENBROCK_LR = {"gd": 2e-3, "sgd": 2e-3, "momentum": 4e-4, "nesterov": 4e-4, "adagrad": 1.0, "adadelta": 1.0,
                 "rmsprop": 1e-2, "adam": 0.1, "adamw": 0.1, "lbfgs": 0.5, "random_search": 0.1, "langevin": 2e-3}
# lr per optimizer on the digits MLP (cross-entropy, batch size 64 for the stochastic ones).
DIGITS_LR = {"gd": 0.5, "sgd": 0.5, "momentum": 0.05, "nesterov": 0.05, "adagrad": 0.05, "adadelta": 1.0,
             "rmsprop": 3e-3, "adam": 1e-2, "adamw": 1e-2, "lbfgs": 0.5, "random_search": 0.01, "langevin": 0.5}
ROSENBROCK_START = (-1.2, 1.0)


class Rosenbrock(nn.Module):
    """theta = (a, b); forward returns the residuals (1 - a, 10 (b - a^2)) as a (2, 1) tensor,
    so mse against zeros = ((1 - a)^2 + 100 (b - a^2)^2) / 2 (minimum 0 at (1, 1)). The input is
    only used for its dtype/device: pass ``rosenbrock_data()``."""

    def __init__(self, start=ROSENBROCK_START, dtype=torch.float64):
        super().__init__()
        self.theta = nn.Parameter(torch.tensor(start, dtype=dtype))

    def forward(self, x):
        a, b = self.theta[0], self.theta[1]
        r = torch.stack([1 - a, 10 * (b - a * a)]).reshape(2, 1)
        if x.shape[0] != 2:
            raise ValueError(f"Rosenbrock takes the 2-row dummy input of rosenbrock_data(), got {x.shape[0]} rows")
        return r.to(x.dtype)

    @staticmethod
    def value(a, b):
        """f(a, b) / 2, the loss the module trains on (numpy or torch, broadcasts)."""
        return ((1 - a) ** 2 + 100 * (b - a * a) ** 2) / 2


class Quadratic(nn.Module):
    """theta in R^2; residuals A^{1/2} (theta - theta*) with A = diag(scales): mse against zeros
    = (theta - theta*)^T A (theta - theta*) / 2. Used by the optimizer contract test."""

    def __init__(self, start=(2.0, -1.5), optimum=(0.5, 0.25), scales=(1.0, 10.0), dtype=torch.float64):
        super().__init__()
        self.theta = nn.Parameter(torch.tensor(start, dtype=dtype))
        self.register_buffer("optimum", torch.tensor(optimum, dtype=dtype))
        self.register_buffer("sqrt_scales", torch.tensor(scales, dtype=dtype).sqrt())

    def forward(self, x):
        return (self.sqrt_scales * (self.theta - self.optimum)).reshape(2, 1).to(x.dtype)


def rosenbrock_data(dtype=torch.float64):
    """The (X, y) pair the 2-parameter modules train on: 2 dummy rows, zero targets."""
    return torch.zeros(2, 1, dtype=dtype), torch.zeros(2, 1, dtype=dtype)


def _clock_callback(t0: list[float]):
    return lambda step, model, ctx: {"wall_time": time.perf_counter() - t0[0]}


def _run_all(model, data, lrs: dict, *, names, steps: int, every: int, seed: int, batch_size=None, loss=None):
    """Train every optimizer in ``names`` from ``model`` (copied by train); returns {name: Trajectory}."""
    from ..train import train

    out = {}
    for name in names:
        if name not in lrs:
            raise ValueError(f"no learning rate for optimizer {name!r} in the table; known: {', '.join(sorted(lrs))}")
        t0 = [time.perf_counter()]
        out[name] = train(model, data, optimizer=name, lr=lrs[name], steps=steps, seed=seed, loss=loss,
                          batch_size=batch_size, eval_every=every, snapshot_every=every, max_snapshots=10_000,
                          callbacks=[(every, _clock_callback(t0))])
    return out


def _times(tr) -> np.ndarray:
    """Wall-clock time at each evaluation (the callback's stamp; the final eval gets the run's total)."""
    st, t = tr.metrics.get("wall_time", (np.zeros(0), np.zeros(0)))
    times = dict(zip(st.tolist(), t.tolist()))
    return np.array([times.get(int(s), tr.wall_time) for s in tr.eval_steps])


@register("optimizers", title=TITLE, claim=CLAIM)
def run(*, quick: bool = False, seed: int = 0, optimizers: list[str] | tuple[str, ...] | None = None,
        rosenbrock_steps: int | None = None, digits_steps: int | None = None, resolution: int | None = None,
        batch_size: int = 64, hidden: int = 32, n_digits: int | None = None) -> ExperimentResult:
    """All optimizers on Rosenbrock (raw plane) and on a digits MLP (shared PCA plane).

    Quick: 300 Rosenbrock steps, 40 digits steps on the first 600 digits, 15x15 plane grid.
    Full: 3000 Rosenbrock steps, 600 digits steps on all 1797 digits, 41x41 grid.
    """
    from ..data import load
    from ..landscape.directions import pca_directions
    from ..landscape.evaluate import evaluate_points
    from ..models import build
    from ..optim import OPTIMIZERS

    names = list(optimizers) if optimizers is not None else OPTIMIZERS.names()
    for nm in names:
        OPTIMIZERS.get(nm)  # unknown names list the valid ones
    r_steps = rosenbrock_steps or (300 if quick else 3000)
    d_steps = digits_steps or (40 if quick else 600)
    n_digits = n_digits if n_digits is not None else (600 if quick else None)
    res = resolution or (15 if quick else 41)
    arrays: dict[str, np.ndarray] = {}

    # --- Rosenbrock: the raw parameter plane -----------------------------------------------
    r_every = max(1, r_steps // 100)
    ros = _run_all(Rosenbrock(), rosenbrock_data(), ROSENBROCK_LR, names=names, steps=r_steps, every=r_every, seed=seed)
    a = np.linspace(-2.0, 2.0, 4 * res)
    b = np.linspace(-1.0, 3.0, 4 * res)
    # the grid is evaluated through the module itself (functional call per point), not the formula
    from ..params import call

    m = Rosenbrock()
    Xd = rosenbrock_data()[0]
    AB = torch.tensor(np.stack(np.meshgrid(a, b), -1).reshape(-1, 2))  # (ny*nx, 2), rows = (a, b)
    with torch.no_grad():
        Z = torch.func.vmap(lambda p: (call(m, {"theta": p}, Xd) ** 2).mean())(AB).reshape(len(b), len(a)).numpy()
    r_paths, r_series_s, r_series_t, r_table = [], [], [], {}
    r0 = float(Rosenbrock.value(*ROSENBROCK_START))
    for nm, tr in ros.items():
        P = tr.snapshots  # (K, 2) = (a, b)
        r_paths.append(Path(nm, P[:, 0], P[:, 1], tr.train_eval_loss, tr.snapshot_steps))
        r_series_s.append(Series(nm, tr.eval_steps.astype(float), tr.train_eval_loss))
        r_series_t.append(Series(nm, _times(tr), tr.train_eval_loss))
        r_table[nm] = {"lr": ROSENBROCK_LR[nm], "final loss": tr.final_loss, "final (a, b)": P[-1].tolist(),
                       "status": tr.status, "wall time s": tr.wall_time}
        arrays[f"rosenbrock/{nm}/params"] = P
        arrays[f"rosenbrock/{nm}/loss"] = tr.train_eval_loss
        arrays[f"rosenbrock/{nm}/time"] = _times(tr)
    arrays.update({"rosenbrock/grid_a": a, "rosenbrock/grid_b": b, "rosenbrock/grid_loss": Z})

    # --- digits MLP: the shared PCA plane ---------------------------------------------------
    data = load("digits", seed=seed, n=n_digits)
    net = build("mlp", in_dim=64, hidden=[hidden], out_dim=10, activation="tanh", seed=seed)
    d_every = max(1, d_steps // (8 if quick else 30))
    dig = _run_all(net, data, DIGITS_LR, names=names, steps=d_steps, every=d_every, seed=seed, batch_size=batch_size)
    S = np.concatenate([tr.snapshots for tr in dig.values()])  # (sum K, P), every run starts at the same init
    pca = pca_directions(S, 2, base=0)
    base, V = pca.directions.base.double(), pca.directions.vectors.double()  # (P,), (2, P) orthonormal
    d_paths, d_series_s, d_series_t, d_table = [], [], [], {}
    coords_all = []
    for nm, tr in dig.items():
        D = torch.tensor(tr.snapshots, dtype=torch.float64) - base  # (K, P)
        c = D @ V.T  # (K, 2)
        off = (D - c @ V).norm(dim=1)  # distance from the plane
        coords_all.append(c)
        d_paths.append(Path(nm, c[:, 0].numpy(), c[:, 1].numpy(), tr.train_eval_loss, tr.snapshot_steps, off.numpy()))
        d_series_s.append(Series(nm, tr.eval_steps.astype(float), tr.train_eval_loss))
        d_series_t.append(Series(nm, _times(tr), tr.train_eval_loss))
        d_table[nm] = {"lr": DIGITS_LR[nm], "final train loss": tr.final_loss,
                       "final val acc": float(tr.val_acc[-1]), "status": tr.status, "wall time s": tr.wall_time,
                       "max distance from plane": float(off.max()), "path length": float(D.diff(dim=0).norm(dim=1).sum())}
        arrays[f"digits/{nm}/coords"] = c.numpy()
        arrays[f"digits/{nm}/off_plane"] = off.numpy()
        arrays[f"digits/{nm}/loss"] = tr.train_eval_loss
        arrays[f"digits/{nm}/val_acc"] = tr.val_acc
        arrays[f"digits/{nm}/time"] = _times(tr)
    C = torch.cat(coords_all)
    lo, hi = C.min(0).values, C.max(0).values
    pad = 0.15 * (hi - lo).clamp_min(1e-3)
    gx = torch.linspace(float(lo[0] - pad[0]), float(hi[0] + pad[0]), res, dtype=torch.float64)
    gy = torch.linspace(float(lo[1] - pad[1]), float(hi[1] + pad[1]), res, dtype=torch.float64)
    GX, GY = torch.meshgrid(gx, gy, indexing="xy")  # (ny, nx)
    pts = torch.stack([GX.reshape(-1), GY.reshape(-1)], 1)
    ev = evaluate_points(net, data.train, "cross_entropy", base.float(), V.float(), pts.float())
    GZ = ev.loss.reshape(res, res).double().numpy()
    evr = [float(v) for v in pca.explained_variance_ratio]
    arrays.update({"digits/grid_x": gx.numpy(), "digits/grid_y": gy.numpy(), "digits/grid_loss": GZ,
                   "digits/pca_explained_variance_ratio": np.array(evr)})
    if "random_search" in dig:
        summary_rs = {"digits_random_search_loss_ratio": dig["random_search"].final_loss / dig["random_search"].train_eval_loss[0]}
    else:
        summary_rs = {}

    # --- claims --------------------------------------------------------------------------------
    ros_ratio = {nm: tr.final_loss / r0 for nm, tr in ros.items()}
    dig_ratio = {nm: tr.final_loss / tr.train_eval_loss[0] for nm, tr in dig.items()}
    gradient_based = [nm for nm in names if nm != "random_search"]
    best_ros = min(ros, key=lambda k: ros[k].final_loss)
    best_dig = min(dig, key=lambda k: dig[k].final_loss)
    checks = {
        f"every optimizer lowers the Rosenbrock loss >= 2x from {r0:.3g} in {r_steps} steps "
        f"(worst ratio {max(ros_ratio.values()):.3g} by {max(ros_ratio, key=ros_ratio.get)})":
            all(v <= 0.5 for v in ros_ratio.values()),
        f"every gradient optimizer lowers the digits train loss >= 1.5x in {d_steps} steps (worst ratio "
        f"{max(dig_ratio[k] for k in gradient_based):.3g} by {max(gradient_based, key=dig_ratio.get)})":
            all(dig_ratio[k] <= 1 / 1.5 for k in gradient_based),
        "on the digits MLP every gradient optimizer beats random search "
        f"(random search {dig['random_search'].final_loss:.3g})" if "random_search" in dig and len(gradient_based) else
        "random search not run":
            ("random_search" not in dig) or all(dig[nm].final_loss < dig["random_search"].final_loss for nm in gradient_based),
        f"the shared PCA plane is a faithful 2-D view: top-2 explained variance {sum(evr):.1%} >= 50%": sum(evr) >= 0.5,
        "all runs completed (none diverged)": all(tr.status == "completed" for tr in [*ros.values(), *dig.values()]),
    }
    summary = {"rosenbrock_steps": r_steps, "digits_steps": d_steps, "best_on_rosenbrock": best_ros,
               "best_on_digits": best_dig, "pca_explained_variance": sum(evr), **summary_rs}
    for nm in names:
        summary[f"rosenbrock_final_{nm}"] = ros[nm].final_loss
        summary[f"digits_final_{nm}"] = dig[nm].final_loss
    figs = (
        Figure(key="rosenbrock_paths", title="Rosenbrock: every optimizer's path on the raw parameter plane",
               kind="contour", x_label="a", y_label="b", grid=Grid(a, b, Z, "f(a,b)/2"), paths=tuple(r_paths),
               slider=True, table=r_table,
               caption=(f"Loss f/2 evaluated through the module on a {len(a)}x{len(b)} grid of (a, b); paths of "
                        f"{len(names)} optimizers for {r_steps} steps from {ROSENBROCK_START} (minimum at (1, 1)). "
                        f"Lowest final loss: {best_ros} ({ros[best_ros].final_loss:.3g}).")),
        Figure(key="rosenbrock_loss_steps", title="Rosenbrock: loss vs steps", kind="lines", x_label="step",
               y_label="f/2", series=tuple(r_series_s), log_y=True,
               caption="Full loss after each recorded step, same start and step budget for every optimizer."),
        Figure(key="rosenbrock_loss_time", title="Rosenbrock: loss vs wall time", kind="lines", x_label="seconds",
               y_label="f/2", series=tuple(r_series_t), log_y=True,
               caption="The same runs against measured wall time (including the same evaluation overhead for all)."),
        Figure(key="digits_paths", title="Digits MLP: all optimizers on one shared PCA plane", kind="contour",
               x_label=f"PC1 ({evr[0]:.0%})", y_label=f"PC2 ({evr[1]:.0%})", grid=Grid(gx.numpy(), gy.numpy(), GZ, "train loss"),
               paths=tuple(d_paths), slider=True, table=d_table,
               caption=(f"Top-2 PCA directions of all {S.shape[0]} snapshots of the {len(names)} runs together "
                        f"(explained variance {sum(evr):.1%}), anchored at the shared initialization; contour = "
                        f"cross-entropy on the training split evaluated on a {res}x{res} grid of the plane. "
                        f"Each path's distance off the plane is stored (max per run in the table).")),
        Figure(key="digits_loss_steps", title="Digits MLP: train loss vs steps", kind="lines", x_label="step",
               y_label="cross-entropy", series=tuple(d_series_s), log_y=True,
               caption=f"Full training-set loss every {d_every} steps; batch size {batch_size} for the stochastic optimizers."),
        Figure(key="digits_loss_time", title="Digits MLP: train loss vs wall time", kind="lines", x_label="seconds",
               y_label="cross-entropy", series=tuple(d_series_t), log_y=True,
               caption="The same runs against measured wall time; L-BFGS and full-batch GD pay per step for the full data."),
    )
    text = (f"{len(names)} optimizers from one initialization. Rosenbrock after {r_steps} steps: best {best_ros} "
            f"({ros[best_ros].final_loss:.3g}). Digits MLP after {d_steps} steps: best {best_dig} "
            f"({dig[best_dig].final_loss:.3g}); the shared PCA plane explains {sum(evr):.1%} of the snapshots' variance.")
    return measured("optimizers", summary=summary, checks=checks, figures=figs,
                    arrays=arrays, settings={"quick": quick, "seed": seed, "optimizers": names,
                                             "rosenbrock_steps": r_steps, "digits_steps": d_steps,
                                             "resolution": res, "batch_size": batch_size, "hidden": hidden,
                                             "rosenbrock_lr": ROSENBROCK_LR, "digits_lr": DIGITS_LR},
                    text=text)
