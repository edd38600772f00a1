"""The tour: the seeds' story end to end, as one report with a section per chapter.

Why random guessing fails; the seven-point bowl and gradient descent at three learning rates;
a nonconvex surface; the optimizers racing on one landscape; flat vs sharp minima with their
spectra; overfitting and validation; saddles and saddle-free Newton; the deep linear
network's invariants and acceleration by depth; RNN vs LSTM gradients; gradient check.

Each chapter is a :class:`Chapter` whose ``run(quick, seed)`` returns a :class:`ChapterResult`.
Most chapters run registered experiments (``losslab.phenomena.EXPERIMENTS``); the bowl and
the nonconvex surface are computed here. A chapter that fails, or whose experiment is not
registered, does not stop the tour: its error is shown (in red) in its section and the tour
goes on. Every chapter is stored in the run store (one run per chapter, all in one study
``tour-<time>``), and the report is written to ``<store>/reports/tour.html``.

    >>> from losslab.tour import run_tour
    >>> res = run_tour(quick=True, store="losslab-runs")
    >>> print(res.report)
"""
from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .figures import ROLE_COLORS, Figure, Grid, Path as FigPath, Series
from .registry import Registry


@dataclass(frozen=True)
class ChapterResult:
    """What a chapter measured: figures, scalar summary, claims checked, settings, a paragraph
    on what was measured, the arrays behind the figures, and a (partial-failure) error."""

    figures: tuple[Figure, ...] = ()
    summary: dict[str, Any] = field(default_factory=dict)
    checks: dict[str, bool] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    text: str = ""
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    error: str | None = None


@dataclass(frozen=True)
class Chapter:
    """``run(quick, seed) -> ChapterResult``; ``text`` says what the chapter's plots show."""

    key: str
    title: str
    text: str
    run: Callable[[bool, int], ChapterResult]
    full_only: bool = False  # left out of the --quick tour (time budget)


CHAPTERS: Registry = Registry("tour chapter")
ORDER: list[str] = []


def chapter(key: str, title: str, text: str, *, full_only: bool = False):
    """Register a chapter function ``fn(quick: bool, seed: int) -> ChapterResult`` (tour order =
    registration order); ``full_only`` chapters are left out of the quick tour."""

    def deco(fn):
        CHAPTERS.register(key, Chapter(key, title, text, fn, full_only), doc=title)
        ORDER.append(key)
        return fn

    return deco


def tour_order(quick: bool = False) -> list[str]:
    """The chapter keys the tour runs by default (the quick tour leaves out ``full_only`` ones)."""
    return [k for k in ORDER if not (quick and CHAPTERS.get(k).full_only)]


class ChapterUnavailable(RuntimeError):
    """The experiment a chapter needs is not registered (yet)."""


# -- experiments as chapters ---------------------------------------------------------------
def _prefixed(d: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    return {f"{prefix}{k}": v for k, v in d.items()}


def run_experiments(names: Sequence[str], *, quick: bool, seed: int, optional: Sequence[str] = (),
                    options: Mapping[str, Mapping[str, Any]] | None = None) -> ChapterResult:
    """Run registered experiments and merge their results into one chapter.

    ``names`` are required (a missing one raises :class:`ChapterUnavailable` listing what is
    registered); ``optional`` ones run when registered. A failing experiment does not stop the
    others: its traceback goes to the result's ``error``. With several experiments, summary keys
    are prefixed ``<experiment>: ``.
    """
    from .phenomena import EXPERIMENTS, run_experiment

    missing = [n for n in names if n not in EXPERIMENTS]
    if missing:
        raise ChapterUnavailable(f"experiment(s) {', '.join(missing)} not registered in losslab.phenomena.EXPERIMENTS "
                                 f"(registered: {', '.join(EXPERIMENTS.names()) or 'none'})")
    todo = list(names) + [n for n in optional if n in EXPERIMENTS]
    figs, summary, checks, settings, texts, arrays, errors = [], {}, {}, {}, [], {}, []
    multi = len(todo) > 1
    for name in todo:
        try:
            res = run_experiment(name, quick=quick, seed=seed, **dict((options or {}).get(name, {})))
        except Exception as e:
            errors.append(f"experiment {name!r} failed:\n" + "".join(traceback.format_exception(type(e), e, e.__traceback__))[-3000:])
            continue
        pre = f"{name}: " if multi else ""
        figs.extend(res.figures)
        summary.update(_prefixed(res.summary, pre))
        summary[f"{pre}wall time (s)"] = round(float(res.wall_time), 3)
        checks.update(res.checks)
        settings.update(_prefixed(res.settings, pre))
        arrays.update(_prefixed(res.arrays, f"{name}/"))
        texts.append((f"{res.title}. " if multi else "") + (res.text or ""))
    return ChapterResult(tuple(figs), summary, checks, settings, "\n\n".join(t for t in texts if t.strip()), arrays,
                         "\n\n".join(errors) or None)


def find_experiments(*fragments: str) -> list[str]:
    """Registered experiment names containing any of ``fragments`` (e.g. the DLN experiments)."""
    from .phenomena import EXPERIMENTS

    return [n for n in EXPERIMENTS.names() if any(f in n for f in fragments)]


# -- chapters --------------------------------------------------------------------------------

def experiment_chapter(key: str, title: str, text: str, *, experiment: str | None = None, full_size: bool = False,
                       full_only: bool = False) -> None:
    """Register a chapter that runs one registered experiment (``experiment``, default ``key``): at
    its quick size always, or at its full size in the full tour when ``full_size``."""

    def run(quick: bool, seed: int) -> ChapterResult:
        return run_experiments([experiment or key], quick=quick or not full_size, seed=seed)

    chapter(key, title, text, full_only=full_only)(run)


experiment_chapter(
    "random_guessing", "Why random guessing fails",
    "Guessing parameters at random and keeping the best works for one or two parameters, but the number of "
    "guesses needed to land near the minimum grows exponentially with the number of parameters (the curse of "
    "dimensionality), while gradient descent's step count hardly changes.", experiment="random_search")


experiment_chapter(
    "curse_of_dimensionality", "n-dimensional space is a lonely place",
    "The chapter's grid of 10 values per weight has exactly 10^d points: 10^2, 10^3, 10^44 and 10^11935 for its "
    "networks. At an equal budget of model evaluations the best random guess matches gradient descent on the "
    "seven points' line but falls toward chance on MNIST-1D networks of up to ~12,000 weights, while gradient "
    "descent does not. A high-dimensional ball's volume lies in a thin shell (1 - (1 - eps)^d, checked by Monte "
    "Carlo) and random points' distances become all alike.")


experiment_chapter(
    "cost_functions", "Cost functions: L1, L2 and Huber",
    "The seven points' L2 cost is a smooth bowl with the OLS line at its bottom; the L1 cost is a creased cone "
    "whose minimum is the least-absolute-deviations line (checked by linear programming). Gradient descent on L1 "
    "keeps jumping across a crease at a constant learning rate and converges under lr0 / (1 + decay t).")


def _bowl_loss(w: np.ndarray, b: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """L(w, b) = (1/N) sum_n (w x_n + b - y_n)^2 (the ``mse`` loss) at any shape of w, b."""
    r = w[..., None] * x + b[..., None] - y  # (..., N)
    return (r ** 2).mean(-1)


@chapter("seven_point_bowl", "The seven-point bowl and gradient descent at three learning rates",
         "The book's seven points fitted by a line y = w x + b with the mean squared error. The loss over "
         "(slope, intercept) is a bowl: a quadratic whose Hessian H = (2/N) X^T X is the same everywhere. Gradient "
         "descent multiplies the error along each eigenvector of H by (1 - lr lambda) per step: a small rate crawls, "
         "a rate near 2/lambda_max zig-zags across the narrow valley, and a rate above 2/lambda_max diverges. Move "
         "the step slider (or press play) to walk the three paths together.")
def _seven_point_bowl(quick: bool, seed: int) -> ChapterResult:
    import torch

    from .data import load
    from .models import build
    from .params import load_flat
    from .train import train

    data = load("seven_points")
    x = data.train.X.double().numpy().reshape(-1)
    y = data.train.y.double().numpy().reshape(-1)
    N = len(x)
    X = np.stack([x, np.ones_like(x)], 1)  # (N, 2): columns slope, intercept
    H = 2.0 / N * X.T @ X
    lam = np.linalg.eigvalsh(H)  # ascending
    lam_min, lam_max = float(lam[0]), float(lam[-1])
    theta_star, *_ = np.linalg.lstsq(X, y, rcond=None)  # OLS (w*, b*), the bottom of the bowl
    l_star = float(_bowl_loss(theta_star[0], theta_star[1], x, y))
    # start up the long valley (along the eigenvector of lambda_min, b ~ -mean(x) w) and a little off its floor
    start = np.array([theta_star[0] - 0.2, theta_star[1] + 1.3])
    steps = 60 if quick else 150
    rates = {"small: 0.1/lambda_max": 0.1 / lam_max, "good: 1/lambda_max": 1.0 / lam_max,
             "too large: 2.1/lambda_max": 2.1 / lam_max}
    model = build("linear", in_dim=1, out_dim=1, seed=seed, dtype=torch.float64)
    model = load_flat(model, torch.tensor(start, dtype=torch.float64))
    paths, loss_series, table, arrays, statuses = [], [], {}, {}, {}
    for label, lr in rates.items():
        tr = train(model, data, optimizer="gd", lr=lr, steps=steps, eval_every=1, snapshot_every=1,
                   max_snapshots=steps + 1, divergence_factor=1e8, seed=seed)
        names = list(tr.param_names)
        iw, ib = names.index("weight"), names.index("bias")
        S = tr.snapshots  # (K, 2)
        w, b = S[:, iw], S[:, ib]
        z = _bowl_loss(w, b, x, y)
        role = label.split(":")[0]  # one colour per role in every figure of the chapter
        name = f"{label} (lr={lr:.4g})"  # the same legend name in every figure of the chapter (one colour per role)
        paths.append(FigPath(name, w, b, z, tr.snapshot_steps, None, color=ROLE_COLORS[role]))
        excess = np.maximum(z - l_star, 1e-300)
        loss_series.append(Series(name, tr.snapshot_steps.astype(float), excess,
                                  color=ROLE_COLORS[role]))
        key = label.split(":")[0].replace(" ", "_")
        arrays.update({f"{key}/steps": tr.snapshot_steps, f"{key}/w": w, f"{key}/b": b, f"{key}/loss": z})
        statuses[label] = tr.status
        table[f"{label}: lr"] = lr
        table[f"{label}: status"] = tr.status
        table[f"{label}: final excess loss"] = float(excess[-1])
    # the grid: centred on the minimum, wide enough for the start and the converging paths (the
    # diverging one leaves it)
    pw = np.concatenate([p.x for p in paths[:2]] + [[start[0]]])
    pb = np.concatenate([p.y for p in paths[:2]] + [[start[1]]])
    hw = 1.25 * np.abs(pw - theta_star[0]).max() + 0.05
    hb = 1.25 * np.abs(pb - theta_star[1]).max() + 0.05
    res = 41 if quick else 61
    gw = np.linspace(theta_star[0] - hw, theta_star[0] + hw, res)
    gb = np.linspace(theta_star[1] - hb, theta_star[1] + hb, res)
    Z = _bowl_loss(gw[None, :], gb[:, None], x, y)  # (ny, nx)
    grid = Grid(gw, gb, Z, "mse")
    # the diverging path is drawn until it leaves the window (its full record is in the stored arrays)
    p3 = paths[2]
    out_of_window = np.flatnonzero((p3.x < gw[0]) | (p3.x > gw[-1]) | (p3.y < gb[0]) | (p3.y > gb[-1]))
    shown = len(p3.x) if not len(out_of_window) else int(out_of_window[0]) + 1
    paths[2] = FigPath(p3.name, p3.x[:shown], p3.y[:shown], p3.z[:shown], p3.steps[:shown], None, color=p3.color)
    table["too large: steps drawn before leaving the window"] = shown - 1
    summary = {"lambda_max": lam_max, "lambda_min": lam_min, "condition number": lam_max / lam_min,
               "2/lambda_max": 2 / lam_max, "OLS slope w*": float(theta_star[0]), "OLS intercept b*": float(theta_star[1]),
               "OLS mse L*": l_star, "steps": steps}
    settings = {"data": "seven_points", "model": "linear (w, b)", "loss": "mse", "optimizer": "gd", "steps": steps,
                "start (w, b)": start.tolist(), "learning rates": {k: v for k, v in rates.items()}}
    checks = {"lr below 2/lambda_max converges toward the OLS minimum":
                  statuses["good: 1/lambda_max"] == "completed" and float(loss_series[1].y[-1]) < float(loss_series[1].y[0]),
              "lr above 2/lambda_max diverges": statuses["too large: 2.1/lambda_max"] == "diverged"
                  or float(loss_series[2].y[-1]) > float(loss_series[2].y[0])}
    cap = ("Loss over (slope w, intercept b) of the seven points, computed on the grid from the closed form; the "
           "paths are the parameter snapshots of losslab.train with plain gradient descent from one start. The "
           "diverging path leaves the plotted window.")
    figs = (
        Figure("bowl-contour", "Seven-point bowl: gradient descent at three learning rates", "contour",
               "slope w", "intercept b", grid=Grid(gw, gb, np.log10(Z), "log10 mse"), paths=tuple(paths), slider=True,
               caption=cap + " Colours and contours show log10 of the loss, so the narrow valley's ellipses are visible.",
               table={**summary, **table}, settings=settings),
        Figure("bowl-surface", "Seven-point bowl in 3D", "surface", "slope w", "intercept b", grid=grid,
               paths=tuple(paths), slider=True, caption=cap + " Drag to rotate.", table=summary, settings=settings),
        Figure("bowl-loss", "Excess loss L - L* per step", "lines", "step", "L - L*", tuple(loss_series), log_y=True,
               caption="Excess loss over the OLS minimum along each path (log scale): geometric decrease at rate "
                       "max_i |1 - lr lambda_i| per step, growth when lr > 2/lambda_max.",
               table=table, settings=settings),
    )
    text = (f"Measured: lambda_max = {lam_max:.4g}, lambda_min = {lam_min:.4g} (condition number "
            f"{lam_max / lam_min:.3g}); divergence threshold 2/lambda_max = {2 / lam_max:.4g}. Statuses: "
            + ", ".join(f"{k} -> {v}" for k, v in statuses.items()) + ".")
    arrays.update({"grid/w": gw, "grid/b": gb, "grid/loss": Z})
    return ChapterResult(figs, summary, checks, settings, text, arrays)


experiment_chapter(
    "learning_rate", "The learning rate: crawl, converge, overshoot",
    "Gradient descent on a quadratic converges for learning rates below 2/lambda_max and diverges above it; "
    "heavy-ball momentum moves the threshold to 2(1 + beta)/lambda_max. The thresholds are found by bisection "
    "and checked against these closed forms, and the loss curves show the three regimes.")


experiment_chapter(
    "schedules_and_momentum", "Momentum's square-root speed-up and learning-rate schedules",
    "On the seven-point bowl (condition number about 316) gradient descent at its best learning rate shrinks "
    "the error by (kappa - 1)/(kappa + 1) per step, Polyak's heavy ball by (sqrt(kappa) - 1)/(sqrt(kappa) + 1): "
    "each further factor of 100 costs heavy ball about sqrt(kappa) times fewer steps. With noisy gradients, "
    "constant-lr SGD settles at the variance lr s^2 / (l (2 - lr l)), measured within Monte Carlo error; step, "
    "exponential, cosine and warmup+cosine schedules end below that floor, as the exact mean/variance "
    "recursion predicts.")


experiment_chapter(
    "nonconvexity", "The curse of nonlinearity",
    "Fitting a line to the seven points gives a convex bowl: its Hessian is the same everywhere and every "
    "midpoint lies below the chord. Put a sigmoid in front and the exact Hessian has a negative eigenvalue on "
    "most of the (w, b) plane; only a band along the valley is convex, and a measured midpoint sits above the "
    "chord. Because slope and intercept are correlated, minimising one weight at a time removes only 1 - rho^2 of "
    "the error per sweep (the Gauss-Seidel rate, checked), while one Newton (OLS) step lands on the minimum.", full_size=True)


experiment_chapter(
    "perceptron", "The perceptron, backpropagation and the vanishing gradient",
    "Rosenblatt's perceptron thresholds w.x + b with a step function: its loss is a staircase whose gradient is "
    "exactly zero almost everywhere (autograd and finite differences agree), so gradient descent has nothing to "
    "follow. Rosenblatt's mistake-driven rule learns linearly separable data anyway, within Novikoff's (R/gamma)^2 "
    "updates, and never stops on XOR. A sigmoid makes the unit differentiable and backpropagation (Rumelhart, Hinton "
    "and Williams 1986) trains it, its gradient matching the chain rule and finite differences. Stack ten sigmoid "
    "layers and the gradient shrinks geometrically toward the input, by the mean-field factor sqrt(chi) per layer; "
    "tanh and ReLU with matched initializations keep it alive.")


experiment_chapter(
    "edge_of_stability", "Sharpness against 2/lr: the edge of stability",
    "Full-batch gradient descent on a network: the top Hessian eigenvalue (sharpness) rises during training "
    "until it reaches the stability threshold 2/lr and then hovers there (Cohen et al. 2021). Left out of the "
    "quick tour.", full_only=True, full_size=True)


@chapter("nonconvex_surface", "A nonconvex surface",
         "A small tanh network classifying two moons. Its loss surface is drawn on the plane of the training "
         "trajectory's top two principal directions (Li et al. 2018, Sec. 7), anchored at the final parameters, "
         "with the Adam path (which lies close to that plane) and an SGD-with-momentum path from the same start "
         "(which need not: its distance off the plane is plotted). Random one-dimensional slices through the "
         "minimum along filter-normalized directions show the spread of the landscape around it.")
def _nonconvex_surface(quick: bool, seed: int) -> ChapterResult:
    from .data import load
    from .landscape import pca_directions, project_trajectory, random_curves, surface
    from .models import build
    from .report.builders import surface_figures
    from .train import train

    data = load("moons", seed=seed, n=300 if quick else 500)
    model = build("mlp", in_dim=2, hidden=[12, 12], out_dim=2, activation="tanh", seed=seed)
    steps = 150 if quick else 400
    t_adam = train(model, data, loss="cross_entropy", optimizer="adam", lr=0.03, steps=steps, eval_every=10,
                   snapshot_every=5, seed=seed)
    t_sgd = train(model, data, loss="cross_entropy", optimizer="momentum", lr=0.1, steps=steps, eval_every=10,
                  snapshot_every=5, optimizer_options={"momentum": 0.9}, seed=seed)
    pca = pca_directions(t_adam.snapshots, 2, base="last", model=model)
    proj = project_trajectory(pca, t_adam.snapshots)
    lo, hi = proj.coords.min(0), proj.coords.max(0)
    pad = 0.3 * (hi - lo) + 0.1
    res = 25 if quick else 41
    surf = surface(t_adam.model, data.train, loss="cross_entropy", directions=pca, resolution=res,
                   span=((float(lo[0] - pad[0]), float(hi[0] + pad[0])), (float(lo[1] - pad[1]), float(hi[1] + pad[1]))),
                   seed=seed)
    figs = surface_figures(surf, trajectories={"adam": t_adam, "sgd+momentum": t_sgd}, name="moons MLP")
    curves = random_curves(t_adam.model, data.train, loss="cross_entropy", n=6 if quick else 12, kind="filter",
                           resolution=25 if quick else 41, span=1.0, seed=seed)
    figs.append(Figure("moons-random-curves", "Random 1D slices through the minimum (spread band: 10%-90%)", "lines",
                       "alpha (filter-normalized direction)", "loss",
                       (Series(f"mean of {len(curves.curves)} directions", curves.alphas, curves.mean,
                               band_lo=curves.lo, band_hi=curves.hi),
                        Series("min", curves.alphas, curves.min, dash=True),
                        Series("max", curves.alphas, curves.max, dash=True)),
                       caption="Loss along random filter-normalized directions through the trained parameters: the mean "
                               "over directions, a 10%-90% quantile band, and the extremes.",
                       table={"directions": len(curves.curves), "loss at alpha=0": float(np.interp(0.0, curves.alphas, curves.mean)),
                              "mean loss at alpha=+-1": float(0.5 * (curves.mean[0] + curves.mean[-1]))},
                       settings={"kind": "filter", "span": 1.0, "n": len(curves.curves)}))
    evr = [float(v) for v in np.asarray(pca.explained_variance_ratio)]
    t2 = project_trajectory(pca, t_sgd.snapshots)
    summary = {"final train loss (adam)": t_adam.final_loss, "final train loss (sgd+momentum)": t_sgd.final_loss,
               "final val accuracy (adam)": t_adam.summary()["final_val_acc"],
               "PCA explained variance (2 directions)": float(sum(evr)),
               "max off-plane distance (adam)": float(proj.off_plane.max()),
               "max off-plane distance (sgd+momentum)": float(t2.off_plane.max()),
               "min loss on grid": surf.min()["loss"]}
    reach = float(np.linalg.norm(t_adam.snapshots - t_adam.snapshots[-1], axis=1).max())
    checks = {"the Adam path stays near its PCA plane (max off-plane distance < 0.5 x its largest distance from "
              "the final point)": bool(proj.off_plane.max() < 0.5 * reach)}
    settings = {"data": "moons", "model": "mlp 2-12-12-2 tanh", "steps": steps, "grid": f"{res}x{res}",
                "directions": "PCA of the adam trajectory (base: final point)"}
    text = (f"Measured: the two PCA directions explain {sum(evr):.1%} of the Adam path's variance; its largest "
            f"distance off the plane is {proj.off_plane.max():.3g} (relative {np.max(proj.relative_off_plane):.2g}); "
            f"the SGD+momentum path from the same start ends {t2.off_plane[-1]:.3g} off the plane.")
    arrays = {"surface/axis0": surf.axes[0], "surface/axis1": surf.axes[1], "surface/loss": surf.loss,
              "curves/alphas": curves.alphas, "curves/loss": curves.curves}
    return ChapterResult(tuple(figs), summary, checks, settings, text, arrays)


experiment_chapter(
    "optimizers", "The optimizers racing on one landscape",
    "Gradient descent, momentum, Nesterov, RMSprop, Adam and friends from the same start on the same "
    "landscape: their paths and their loss per step.", full_size=True)


# quick sizes in the full tour too (its full size, ~30 s more, is `losslab experiments run escape`)
experiment_chapter(
    "escape", "Escaping a poor minimum: momentum and noise",
    "On a tilted double well plain gradient descent stops in the shallow basin. Heavy-ball momentum carries "
    "it over the barrier above a threshold beta (checked against a plain numpy run of the same update and the "
    "continuous heavy-ball equation). With Langevin noise the mean escape time grows like exp(dU/T), as "
    "Kramers' law predicts, and agrees with the exact first-passage time of the discrete process. Mini-batch "
    "gradient noise on a real network falls exactly as (N - B) / (B (N - 1)) sigma^2, and smaller batches "
    "(more noise) escape the poor minimum sooner.")


@chapter("flat_vs_sharp", "Flat vs sharp minima and their spectra",
         "Small batches and large learning rates reach flatter minima: at the same train loss and learning rate, "
         "small-batch SGD's top Hessian eigenvalue is lower than full-batch GD's at every seed, with a lower trace "
         "and a spectral density shifted toward zero; full-batch GD at a larger learning rate ends below its "
         "stability bound 2/lr. Whether flatter means better is measured, not assumed: at this size test accuracy "
         "is a tie over seeds. Random filter-normalized slices and epsilon-sharpness are shown beside them and do "
         "not see the difference. With the full tour, many seeds of a wide net land at different parameter vectors, "
         "separated by a loss barrier, that compute the same function.")
def _flat_vs_sharp(quick: bool, seed: int) -> ChapterResult:
    return run_experiments(["flat_vs_sharp"], quick=True, seed=seed, optional=[] if quick else ["minima"])


experiment_chapter(
    "depth_and_minima", "Depth and minima: many seeds per depth",
    "The seeds say different runs of one model end with very different results, and that deep nets have fewer "
    "suboptimal minima than shallow ones. Tanh nets with 1 to 4 hidden layers and about 100 parameters each fit "
    "sin(3 pi x) from many seeds; the final training losses per depth are compared by a one-sided Mann-Whitney U "
    "test (depth 1 against the deepest), cross-checked by a permutation test, with the share of runs near the best.")


experiment_chapter(
    "mode_connectivity", "Mode connectivity: minima joined by a low-loss curve",
    "Two minima separated by a high barrier on the straight line between them are joined by a quadratic "
    "Bezier curve along which the loss stays low (Garipov et al. 2018; Draxler et al. 2018): the barrier on "
    "each path is measured, on a toy ring-shaped valley and on two trained networks.")


experiment_chapter(
    "overfitting", "Overfitting, validation and regularization",
    "A model with many parameters fitted to few noisy points: the training loss keeps falling while the "
    "validation loss turns up; early stopping and regularization are measured against it. Penalising large "
    "coefficients (ridge, lambda chosen on the validation points) tames the interpolating polynomial; along "
    "the ridge path the coefficient norm only falls and the training error only rises, as the theorems say, "
    "and training with weight decay lands on the closed-form solution. Noise of size sigma on the inputs of a "
    "linear model is exactly the penalty lambda = sigma^2 (Bishop 1995): the identity is checked by Monte "
    "Carlo, and averaged gradient descent on noisy inputs ends at the ridge solution, not at least squares.", full_size=True)


experiment_chapter(
    "gradient_scale", "Scale: conditioning, initialization and exploding gradients",
    "Scale decides how fast, and whether, gradients train. Standardising the inputs collapses the Hessian's "
    "condition number and gradient descent's step count, which matches the eigenmode prediction. In a deep tanh "
    "net the gradient changes by sqrt(chi) per layer, chi from the mean-field recursion, so it vanishes below "
    "the critical gain and grows above it. A tanh RNN whose recurrent matrix has spectral radius above 1 has "
    "gradients growing geometrically back in time; unclipped SGD diverges, gradient clipping keeps it finite.")


experiment_chapter(
    "saddles", "Saddles, saddle-free Newton and the optimizers' race",
    "Critical points of a small tanh network, found by minimising ||grad L||^2, are mostly saddles, and saddles "
    "with few downward directions (index below half the parameters, by a sign test against a random-matrix "
    "index of 1/2). Near a saddle gradient descent slows down and Newton's method is attracted to it; "
    "saddle-free Newton (|H|^-1 g) escapes. At the saddle of x^2 - y^2 + y^4/4 gradient descent leaves at the "
    "rate (1 + 2 lr)^t and heavy-ball momentum at the larger root of z^2 - (1 + beta + 2 lr) z + beta, both "
    "matching their closed forms to the step; Newton jumps onto the saddle and stays; Adam and RMSprop take "
    "steps of about lr whatever the gradient, so they escape in a few steps from almost any start.")


@chapter("deep_linear", "The deep linear network: invariants and acceleration by depth",
         "A product of matrices X = W_N ... W_1 trained by gradient flow keeps the quantities "
         "G_p = W_{p+1}^T W_{p+1} - W_p W_p^T fixed; on the balanced manifold the end-to-end matrix follows its own "
         "flow, and depth acts like a preconditioner (Arora, Cohen, Hazan 2018; Menon 2024).")
def _deep_linear(quick: bool, seed: int) -> ChapterResult:
    names = [n for n in ("dln_conservation", "dln_end_to_end", "dln_depth", "dln_saxe", "dln_langevin")
             if n in find_experiments("dln_")]
    if not names:
        raise ChapterUnavailable("no deep-linear-network experiments are registered (losslab.phenomena.dln_experiments)")
    return run_experiments(names, quick=True, seed=seed)


experiment_chapter(
    "dln_balance", "Balanced vs unbalanced deep linear networks",
    "Two deep linear networks with the same end-to-end matrix X(0), one balanced (all G_p = 0), one not. The "
    "conserved invariants G_p make the unbalanced network's minimum sharper, so it converges over a narrower "
    "range of learning rates; measured, it is not slower per step: balance buys stability, not speed.")


experiment_chapter(
    "rnn_vs_lstm", "RNN vs LSTM gradients",
    "The gradient that reaches early time steps of a plain RNN shrinks geometrically with the distance; the "
    "LSTM's additive cell path keeps it alive.", full_size=True)


experiment_chapter(
    "gradient_check", "Gradient check",
    "Backpropagation's gradients against finite differences: the relative error of central differences "
    "falls as h^2 until rounding error takes over.", full_size=True)


# -- running the tour -------------------------------------------------------------------------
@dataclass(frozen=True)
class ChapterRecord:
    key: str
    title: str
    status: str  # "ok", "partial" (some parts failed), "failed", "unavailable"
    wall_time: float
    cpu_time: float  # process CPU seconds (independent of other load on the machine)
    run_id: str | None
    error: str | None
    n_figures: int
    checks_passed: int
    checks_total: int


@dataclass(frozen=True)
class TourResult:
    report: Path
    study: str
    chapters: tuple[ChapterRecord, ...]
    wall_time: float
    quick: bool

    def to_dict(self) -> dict:
        return {"report": str(self.report), "study": self.study, "quick": self.quick,
                "wall_time": round(self.wall_time, 3), "chapters": [c.__dict__ for c in self.chapters]}


def run_chapter(ch: Chapter, *, quick: bool, seed: int):
    """Run one chapter; never raises. Returns (Section, ChapterResult | None, status)."""
    from .report.html import Section

    t0 = time.perf_counter()
    try:
        res = ch.run(quick, seed)
        status = "partial" if res.error else "ok"
    except ChapterUnavailable as e:
        res, status = None, "unavailable"
        err = f"not available yet: {e}"
    except Exception as e:
        res, status = None, "failed"
        err = "".join(traceback.format_exception(type(e), e, e.__traceback__))[-4000:]
    dt = time.perf_counter() - t0
    if res is None:
        return Section(ch.key, ch.title, ch.text, error=err, wall_time=dt), None, status
    text = ch.text + (f"\n\n{res.text}" if res.text else "")
    return Section(ch.key, ch.title, text, figures=tuple(res.figures), summary=dict(res.summary),
                   checks=dict(res.checks), settings=dict(res.settings), error=res.error, wall_time=dt), res, status


def run_tour(*, quick: bool = False, seed: int = 0, store=None, out: str | Path | None = None,
             chapters: Sequence[str] | None = None, standalone: bool = False, threads: int | None = 1,
             progress: Callable[[str, int, int], None] | None = None) -> TourResult:
    """Run the tour's chapters, store each, and write one report.

    ``quick``: CI sizes (< 60 s on 2 cores); otherwise < 3 min. ``chapters``: keys to run (default
    :func:`tour_order`: all, in order, less the ``full_only`` ones when quick). ``store``: a RunStore or path (default
    ``$LOSSLAB_STORE`` or ``./losslab-runs``). ``out``: the report path (default
    ``<store>/reports/tour.html``). ``progress(title, done, total)`` is called before each chapter
    and once at the end. ``threads``: torch intra-op threads while the tour runs (restored after;
    ``None`` keeps the current setting). The tour's models are tiny, and on a busy 2-core machine
    one thread was measured 7x faster than two (a 150-step MLP run: 4 s vs 30 s).
    """
    import torch

    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise ValueError(f"threads must be a positive integer or None, got {threads!r}")
    prev = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _run_tour(quick=quick, seed=seed, store=store, out=out, chapters=chapters, standalone=standalone,
                         progress=progress)
    finally:
        torch.set_num_threads(prev)


def _run_tour(*, quick, seed, store, out, chapters, standalone, progress) -> TourResult:
    from .report.builders import save_section
    from .report.html import Page, write_html
    from .report.reports import reports_dir
    from .store import open_store

    keys = tour_order(quick) if chapters is None else [CHAPTERS.get(k).key for k in chapters]
    st = store if hasattr(store, "list") else open_store(store)
    study = f"tour-{time.strftime('%Y%m%d-%H%M%S')}-{'quick' if quick else 'full'}"
    t0 = time.perf_counter()
    sections, records = [], []
    for i, key in enumerate(keys):
        ch = CHAPTERS.get(key)
        if progress:
            progress(ch.title, i, len(keys))
        c0 = time.process_time()
        sec, res, status = run_chapter(ch, quick=quick, seed=seed)
        cpu = time.process_time() - c0
        run_id = None
        try:
            run_id = save_section(st, sec, study=study, kind="tour_chapter", arrays=res.arrays if res else None,
                                  status="completed" if status == "ok" else "failed")
            sec = replace(sec, note=f"stored as run {run_id}")
        except Exception as e:  # a store problem must not lose the report
            sec = replace(sec, error=(sec.error + "\n\n" if sec.error else "") + f"could not store this chapter: {e}")
        sections.append(sec)
        records.append(ChapterRecord(key, ch.title, status, round(sec.wall_time or 0.0, 3), round(cpu, 3), run_id,
                                     sec.error,
                                     len(sec.figures), sum(bool(v) for v in sec.checks.values()), len(sec.checks)))
    if progress:
        progress("writing the report", len(keys), len(keys))
    total = time.perf_counter() - t0
    n_ok = sum(r.status == "ok" for r in records)
    intro = (f"The losslab tour ({'quick' if quick else 'full'} sizes, seed {seed}): {len(records)} chapters, "
             f"{n_ok} complete, in {total:.1f} s. Each chapter says what its plots show and what was measured; "
             f"every figure has the numbers it shows beside it and buttons to download its data. All chapters are "
             f"stored in the run store as study {study}.")
    path = Path(out) if out else reports_dir(st) / "tour.html"
    write_html(Page("losslab tour: how neural networks are trained", tuple(sections), intro), path,
               standalone=standalone)
    return TourResult(path, study, tuple(records), total, quick)


def chapter_names() -> list[str]:
    return list(ORDER)


__all__ = ["tour_order", "Chapter", "ChapterResult", "ChapterRecord", "ChapterUnavailable", "CHAPTERS", "TourResult", "chapter",
           "chapter_names", "find_experiments", "run_chapter", "run_experiments", "run_tour"]
