"""Experiment ``minima``: many seeds of one model land in different minima of similar loss.

The same MLP (tanh, one hidden layer) is trained from many random initializations (seeds) on
the same data with the same optimizer (full-batch Adam) and step budget, once narrow and
once wide. Measured:

- the distribution of final train and test losses over seeds (mean, standard deviation, min,
  max). Choromanska et al. 2015 ("The loss surfaces of multilayer networks", Sec. 5 and
  Fig. 2-3) find that the spread of the losses of the minima reached from different starts
  shrinks as the network grows;
- whether the runs land in *different* minima, three ways: the mean pairwise parameter
  distance relative to the mean parameter norm; the pairwise *function* disagreement (the
  fraction of test points, and of a grid covering the inputs, where two runs predict different
  classes); and the linear-interpolation loss barrier between every pair
  (``losslab.landscape.barrier``: max_{a in [0,1]} L((1-a) theta_i + a theta_j) - (L_i + L_j)/2,
  Frankle et al. 2020). Different parameter vectors computing the same function, separated by
  a barrier on the straight line, are distinct minima of one function class (hidden-unit
  permutations and the like), not distinct solutions;
- the sharpness at each seed's final point: lambda_max by Lanczos
  (``losslab.hessian.lambda_max``) and the exact Hessian spectrum (``exact_spectrum``; the nets
  have at most a few hundred parameters, where the dense Hessian is cheaper than Hutchinson and
  exact); its trace and trace / P (the mean eigenvalue). The Hutchinson trace
  (``hessian_trace``) is checked against the exact trace at one seed per width.

Why trace / P: lambda_max and tr H are not invariant under reparametrization (Dinh et al. 2017,
"Sharp minima can generalize for deep nets"). In the standard parametrization used here the
output layer's Hessian block is a sum over hidden units (its Gauss-Newton part is
(1/N) sum_n phi_n phi_n^T (x) H_out,n with phi the hidden activations), so its scale grows with
the width even for the same function; the mean eigenvalue tr H / P says how curved a typical
parameter direction is. Neither is a width-free "flatness"; both are reported, and only what
they show is checked.
"""
from __future__ import annotations

import itertools

import numpy as np
import torch

from ..figures import Figure, Series
from .base import ExperimentResult, measured, register

TITLE = "Minima: many seeds land in different minima; the spread of their losses shrinks with width"
CLAIM = ("runs from different seeds land in different minima of similar loss, and the spread of the final losses "
         "shrinks as the network gets wider (Choromanska et al. 2015); the wide runs are distinct parameter "
         "vectors separated by a loss barrier that compute (nearly) the same function; their sharpness "
         "(lambda_max, trace, trace per parameter) is measured against width")


def _runs(splits, *, hidden: int, seeds: list[int], steps: int, lr: float):
    """Train one net per seed; returns (train losses, test losses, final params (S, P), models)."""
    from ..losses import get_loss
    from ..models import build
    from ..train import full_loss, train

    loss = get_loss("cross_entropy")
    train_l, test_l, params, models = [], [], [], []
    for s in seeds:
        model = build("mlp", in_dim=splits.in_dim, hidden=[hidden], out_dim=splits.out_dim, activation="tanh", seed=s)
        tr = train(model, splits, optimizer="adam", lr=lr, steps=steps, seed=s, eval_every=steps, snapshot_every=steps,
                   max_snapshots=2)
        train_l.append(tr.final_loss)
        test_l.append(full_loss(tr.model, splits.test, loss)[0])
        params.append(tr.final_params)
        models.append(tr.model)
    return np.array(train_l), np.array(test_l), np.stack(params), models


def _pairwise_rel_distance(P: np.ndarray) -> float:
    """Mean over pairs i<j of ||p_i - p_j|| / mean_k ||p_k||."""
    D = np.linalg.norm(P[:, None, :] - P[None, :, :], axis=-1)
    iu = np.triu_indices(len(P), 1)
    return float(D[iu].mean() / np.linalg.norm(P, axis=1).mean())


def input_grid(X: torch.Tensor, *, points: int = 50, margin: float = 0.5) -> torch.Tensor:
    """A (points**2, 2) grid over the bounding box of 2-D inputs X, widened by ``margin``."""
    if X.ndim != 2 or X.shape[1] != 2:
        raise ValueError(f"input_grid needs 2-D inputs (N, 2), got shape {tuple(X.shape)}")
    lo, hi = X.min(0).values - margin, X.max(0).values + margin
    a = torch.linspace(float(lo[0]), float(hi[0]), points)
    b = torch.linspace(float(lo[1]), float(hi[1]), points)
    return torch.stack(torch.meshgrid(a, b, indexing="xy"), -1).reshape(-1, 2).to(X.dtype)


def pairwise_disagreement(models, X: torch.Tensor) -> np.ndarray:
    """Fraction of rows of X on which each pair (i<j) of classifiers predicts different classes (n_pairs,)."""
    with torch.no_grad():
        pred = [m(X).argmax(-1) for m in models]
    return np.array([float((pred[i] != pred[j]).double().mean()) for i, j in itertools.combinations(range(len(models)), 2)])


def _sharpness(models, data, loss, *, seed: int, check_trace: bool = True):
    """Per model: Lanczos lambda_max, exact spectrum (lambda_max, trace); Hutchinson at model 0."""
    from ..hessian import exact_spectrum, hessian_trace, lambda_max

    lam_l, lam_x, tr_x, neg = [], [], [], []
    for m in models:
        lam_l.append(float(lambda_max(m, data, loss, tol=1e-7, seed=seed).eigenvalues[0]))
        ev = exact_spectrum(m, data, loss).eigenvalues  # float64, ascending
        lam_x.append(float(ev[-1]))
        tr_x.append(float(ev.sum()))
        neg.append(float(ev.min()))
    hut = hessian_trace(models[0], data, loss, seed=seed, rtol=0.05) if check_trace else None
    return np.array(lam_l), np.array(lam_x), np.array(tr_x), np.array(neg), hut


@register("minima", title=TITLE, claim=CLAIM)
def run(*, quick: bool = False, seed: int = 0, n_seeds: int | None = None, narrow: int = 3, wide: int = 64,
        steps: int = 400, lr: float = 0.03, dataset: str = "moons", n: int = 400,
        grid_points: int = 50, barrier_resolution: int = 21) -> ExperimentResult:
    """Final losses, function disagreement, barriers and sharpness over seeds for a narrow and a wide net.

    Quick: 8 seeds x 2 widths; full: 40 seeds; 400 full-batch Adam steps each. Data: ``moons``
    (n = 400, noise 0.2, 2 classes), one split shared by all runs (its seed is ``seed``); run k
    uses seed ``seed + 1 + k`` for its initialization.
    """
    from ..data import load
    from ..landscape import barrier
    from ..losses import get_loss
    from .curves import single_thread

    n_seeds = n_seeds or (8 if quick else 40)
    if n_seeds < 3:
        raise ValueError(f"need at least 3 seeds to measure a spread, got n_seeds={n_seeds}")
    if narrow >= wide:
        raise ValueError(f"narrow must be smaller than wide, got narrow={narrow}, wide={wide}")
    splits = load(dataset, seed=seed, n=n)
    if splits.task != "classification":
        raise ValueError(f"minima uses cross-entropy on a classification dataset; {dataset!r} is {splits.task}")
    loss = get_loss("cross_entropy")
    seeds = [seed + 1 + k for k in range(n_seeds)]
    grid = input_grid(splits.train.X, points=grid_points) if splits.in_dim == 2 else None
    res, stats, per_seed = {}, {}, {}
    # one intra-op thread: these nets are tiny, and thread hand-offs cost more than they save on a shared CPU
    with single_thread():
        for label, h in (("narrow", narrow), ("wide", wide)):
            tr_l, te_l, P, models = _runs(splits, hidden=h, seeds=seeds, steps=steps, lr=lr)
            res[label] = (tr_l, te_l, P)
            dis_test = pairwise_disagreement(models, splits.test.X)
            dis_grid = pairwise_disagreement(models, grid) if grid is not None else np.full_like(dis_test, np.nan)
            bars = np.array([barrier(models[i], models[j], splits.train, loss=loss, resolution=barrier_resolution).height
                             for i, j in itertools.combinations(range(n_seeds), 2)])
            lam_l, lam_x, tr_x, neg, hut = _sharpness(models, splits.train, loss, seed=seed)
            per_seed[label] = dict(test_disagreement=dis_test, grid_disagreement=dis_grid, barrier=bars,
                                   lambda_max=lam_l, lambda_max_exact=lam_x, trace=tr_x, min_eigenvalue=neg)
            n_par = int(P.shape[1])
            stats[label] = {"train_mean": float(tr_l.mean()), "train_std": float(tr_l.std(ddof=1)),
                            "train_min": float(tr_l.min()), "train_max": float(tr_l.max()),
                            "test_mean": float(te_l.mean()), "test_std": float(te_l.std(ddof=1)),
                            "test_min": float(te_l.min()), "test_max": float(te_l.max()),
                            "pairwise_rel_distance": _pairwise_rel_distance(P), "n_params": n_par,
                            "test_disagreement_mean": float(dis_test.mean()), "test_disagreement_max": float(dis_test.max()),
                            "grid_disagreement_mean": float(dis_grid.mean()), "grid_disagreement_max": float(dis_grid.max()),
                            "barrier_mean": float(bars.mean()), "barrier_median": float(np.median(bars)),
                            "barrier_min": float(bars.min()), "barrier_max": float(bars.max()),
                            "lambda_max_mean": float(lam_l.mean()), "lambda_max_std": float(lam_l.std(ddof=1)),
                            "lambda_max_min": float(lam_l.min()), "lambda_max_max": float(lam_l.max()),
                            "lambda_max_lanczos_rel_err": float(np.max(np.abs(lam_l - lam_x) / np.abs(lam_x))),
                            "trace_mean": float(tr_x.mean()), "trace_std": float(tr_x.std(ddof=1)),
                            "trace_per_param_mean": float(tr_x.mean() / n_par),
                            "min_eigenvalue_min": float(neg.min()),
                            "hutchinson_trace_seed0": float(hut.estimate), "hutchinson_stderr_seed0": float(hut.stderr),
                            "exact_trace_seed0": float(tr_x[0])}
    nw, wd = stats["narrow"], stats["wide"]
    summary = {"n_seeds": n_seeds, "steps": steps, "narrow_hidden": narrow, "wide_hidden": wide,
               **{f"{lab}_{k}": v for lab, st in stats.items() for k, v in st.items()}}

    def se(label, key):  # standard error of a per-seed mean
        return float(per_seed[label][key].std(ddof=1) / np.sqrt(n_seeds))

    lam_gap = wd["lambda_max_mean"] - nw["lambda_max_mean"]
    lam_se = float(np.hypot(se("narrow", "lambda_max"), se("wide", "lambda_max")))
    summary.update({"lambda_max_wide_minus_narrow": lam_gap, "lambda_max_wide_minus_narrow_se": lam_se,
                    "trace_per_param_ratio_narrow_over_wide": nw["trace_per_param_mean"] / wd["trace_per_param_mean"]})
    # the seed text's "wider models find flatter minima": measured by lambda_max (raw) and by tr H / P
    if lam_gap < -2 * lam_se:
        lam_verdict = "wider -> lower lambda_max (flatter), > 2 SE"
    elif lam_gap > 2 * lam_se:
        lam_verdict = "wider -> HIGHER lambda_max (sharper by this measure), > 2 SE; 'wider -> flatter' not supported"
    else:
        lam_verdict = "no lambda_max difference beyond 2 SE"
    summary["lambda_max_width_trend"] = -1 if lam_gap < -2 * lam_se else (1 if lam_gap > 2 * lam_se else 0)
    hut_ok = all(abs(st["hutchinson_trace_seed0"] - st["exact_trace_seed0"]) <= 3 * st["hutchinson_stderr_seed0"]
                 # + rounding: on a small net the estimate is exact (s.e. 0) up to the float32 operator's 1e-7 rel.
                 + 1e-5 * abs(st["exact_trace_seed0"])
                 for st in stats.values())
    checks = {
        f"the spread of final train losses shrinks with width: std {nw['train_std']:.3g} (hidden {narrow}) -> "
        f"{wd['train_std']:.3g} (hidden {wide}), >= 2x": 2 * wd["train_std"] <= nw["train_std"],
        f"the spread of final test losses shrinks with width: std {nw['test_std']:.3g} -> {wd['test_std']:.3g}, >= 2x":
            2 * wd["test_std"] <= nw["test_std"],
        f"wide runs end at different parameter vectors: mean pairwise distance {wd['pairwise_rel_distance']:.2f} "
        f"x the mean parameter norm (>= 0.3)": wd["pairwise_rel_distance"] >= 0.3,
        f"... separated by a loss barrier: median straight-line barrier between wide runs "
        f"{wd['barrier_median']:.3g} >= their mean final train loss {wd['train_mean']:.3g} (distinct basins, "
        f"not one flat valley)": wd["barrier_median"] >= wd["train_mean"],
        f"... yet computing nearly the same function: mean pairwise test-prediction disagreement of wide runs "
        f"{wd['test_disagreement_mean']:.3f} <= 0.02 (narrow runs: {nw['test_disagreement_mean']:.3f})":
            wd["test_disagreement_mean"] <= 0.02,
        f"... of similar loss: wide train-loss range {wd['train_max'] - wd['train_min']:.3g} < narrow range "
        f"{nw['train_max'] - nw['train_min']:.3g}": (wd["train_max"] - wd["train_min"]) < (nw["train_max"] - nw["train_min"]),
        f"Lanczos lambda_max equals the exact Hessian's top eigenvalue at every seed (max rel. error "
        f"{max(nw['lambda_max_lanczos_rel_err'], wd['lambda_max_lanczos_rel_err']):.1e} <= 1e-4)":
            max(nw["lambda_max_lanczos_rel_err"], wd["lambda_max_lanczos_rel_err"]) <= 1e-4,
        "Hutchinson trace within 3 standard errors of the exact trace (first seed, both widths)": hut_ok,
        # 'wider -> flatter' by raw lambda_max is a measured verdict (summary lambda_max_width_trend), not a
        # check: across seeds the wide net's lambda_max is higher by 0.4-2.7 SE (a reviewer ran seeds 0-6)
        "'wider -> flatter' by raw lambda_max is not supported: the wide net's mean lambda_max is not lower "
        "by more than 2 standard errors (standard parametrization; see tr H / P)": lam_gap >= -2 * lam_se,
        f"mean curvature per parameter tr H / P is >= 3x lower for the wide net: {nw['trace_per_param_mean']:.3g} "
        f"-> {wd['trace_per_param_mean']:.3g}": nw["trace_per_param_mean"] >= 3 * wd["trace_per_param_mean"],
    }
    arrays = {}
    for label, (tr_l, te_l, P) in res.items():
        arrays[f"{label}/train_loss"] = tr_l
        arrays[f"{label}/test_loss"] = te_l
        arrays[f"{label}/final_params"] = P
        for k, v in per_seed[label].items():
            arrays[f"{label}/{k}"] = v
    arrays["seeds"] = np.array(seeds)
    allv = np.concatenate([np.concatenate([r[0], r[1]]) for r in res.values()])
    edges = np.linspace(float(allv.min()), float(allv.max()), 21)
    centers = 0.5 * (edges[1:] + edges[:-1])

    def hist(v):
        return np.histogram(v, bins=edges)[0].astype(float)

    figs = (
        Figure(key="loss_distribution", title="Final losses over seeds: narrow vs wide net", kind="histogram",
               x_label="final loss (cross-entropy)", y_label="number of seeds",
               series=(Series(f"train, hidden {narrow}", centers, hist(res['narrow'][0])),
                       Series(f"test, hidden {narrow}", centers, hist(res['narrow'][1])),
                       Series(f"train, hidden {wide}", centers, hist(res['wide'][0])),
                       Series(f"test, hidden {wide}", centers, hist(res['wide'][1]))),
               caption=(f"{n_seeds} initializations of a tanh MLP on {dataset} (n={n}), full-batch Adam lr={lr} for "
                        f"{steps} steps. Std of final train loss: {nw['train_std']:.3g} (hidden {narrow}) vs "
                        f"{wd['train_std']:.3g} (hidden {wide}); test: {nw['test_std']:.3g} vs {wd['test_std']:.3g}."),
               table=stats, settings={"bin_edges": edges.tolist()}),
        Figure(key="train_vs_test", title="Each seed's final train vs test loss", kind="scatter",
               x_label="final train loss", y_label="final test loss",
               series=(Series(f"hidden {narrow}", res["narrow"][0], res["narrow"][1], mode="markers"),
                       Series(f"hidden {wide}", res["wide"][0], res["wide"][1], mode="markers")),
               caption="One point per seed. Wide nets cluster; narrow nets scatter over minima of very different loss."),
        Figure(key="sharpness_vs_width", title="Sharpness at each seed's final point: lambda_max vs test loss",
               kind="scatter", x_label="lambda_max of the training-loss Hessian", y_label="final test loss",
               series=(Series(f"hidden {narrow} (P={nw['n_params']})", per_seed["narrow"]["lambda_max"], res["narrow"][1],
                              mode="markers"),
                       Series(f"hidden {wide} (P={wd['n_params']})", per_seed["wide"]["lambda_max"], res["wide"][1],
                              mode="markers")),
               caption=(f"lambda_max (Lanczos, equal to the exact Hessian's to {max(nw['lambda_max_lanczos_rel_err'], wd['lambda_max_lanczos_rel_err']):.0e}) "
                        f"mean {nw['lambda_max_mean']:.3g} (hidden {narrow}) vs {wd['lambda_max_mean']:.3g} (hidden {wide}): "
                        f"{lam_verdict}. tr H: {nw['trace_mean']:.3g} vs {wd['trace_mean']:.3g}; tr H / P: "
                        f"{nw['trace_per_param_mean']:.3g} vs {wd['trace_per_param_mean']:.3g}. lambda_max and tr H depend "
                        "on the parametrization (standard parametrization: the output block scales with width)."),
               table={f"{lab}_{k}": stats[lab][k] for lab in stats for k in
                      ("lambda_max_mean", "lambda_max_std", "trace_mean", "trace_per_param_mean", "test_mean")}),
        Figure(key="same_function", title="Different parameters, same function? Pairwise disagreement and barrier",
               kind="scatter", x_label="linear-interpolation train-loss barrier", y_label="test-prediction disagreement",
               series=(Series(f"hidden {narrow} pairs", per_seed["narrow"]["barrier"],
                              per_seed["narrow"]["test_disagreement"], mode="markers"),
                       Series(f"hidden {wide} pairs", per_seed["wide"]["barrier"],
                              per_seed["wide"]["test_disagreement"], mode="markers")),
               caption=(f"One point per pair of seeds. Barrier: max_a L((1-a) theta_i + a theta_j) - (L_i + L_j)/2 over "
                        f"{barrier_resolution} points of [0, 1]. Wide pairs: disagreement {wd['test_disagreement_mean']:.3f} "
                        f"on the test set ({wd['grid_disagreement_mean']:.3f} on a {grid_points}x{grid_points} grid "
                        f"over the inputs), barrier median {wd['barrier_median']:.3g}; narrow pairs: "
                        f"{nw['test_disagreement_mean']:.3f} ({nw['grid_disagreement_mean']:.3f}), "
                        f"{nw['barrier_median']:.3g}."),
               table={f"{lab}_{k}": stats[lab][k] for lab in stats for k in
                      ("test_disagreement_mean", "grid_disagreement_mean", "barrier_median", "barrier_min", "barrier_max")}),
    )
    if (wd["lambda_max_mean"] > nw["lambda_max_mean"]) == (wd["test_mean"] < nw["test_mean"]):
        gen_text = (f"The net with the larger mean lambda_max ({'wide' if lam_gap > 0 else 'narrow'}) has the lower mean "
                    f"test loss, so here a larger lambda_max does not come with worse generalization.")
    else:
        gen_text = "The net with the smaller mean lambda_max also has the lower mean test loss."
    text = (f"{n_seeds} seeds, hidden {narrow} vs {wide}: final train loss {nw['train_mean']:.3g} +- {nw['train_std']:.3g} "
            f"vs {wd['train_mean']:.3g} +- {wd['train_std']:.3g}; test {nw['test_mean']:.3g} +- {nw['test_std']:.3g} vs "
            f"{wd['test_mean']:.3g} +- {wd['test_std']:.3g}. The wide runs end {wd['pairwise_rel_distance']:.2f} mean "
            f"norms apart with a median straight-line barrier of {wd['barrier_median']:.3g} between them, yet they "
            f"disagree on {wd['test_disagreement_mean']:.1%} of test points ({wd['grid_disagreement_mean']:.1%} of a grid "
            f"over the inputs): different parameter vectors, (nearly) the same function. Narrow runs disagree on "
            f"{nw['test_disagreement_mean']:.1%}. Sharpness: lambda_max {nw['lambda_max_mean']:.3g} +- "
            f"{nw['lambda_max_std']:.2g} (narrow) vs {wd['lambda_max_mean']:.3g} +- {wd['lambda_max_std']:.2g} (wide): "
            f"{lam_verdict}; tr H / P {nw['trace_per_param_mean']:.3g} vs {wd['trace_per_param_mean']:.3g} (the wide "
            f"net's mean eigenvalue is lower). " + gen_text)
    return measured("minima", summary=summary, checks=checks, figures=figs,
                    arrays=arrays, settings={"quick": quick, "seed": seed, "n_seeds": n_seeds, "narrow": narrow,
                                             "wide": wide, "steps": steps, "lr": lr, "dataset": dataset, "n": n,
                                             "grid_points": grid_points,
                                             "barrier_resolution": barrier_resolution},
                    text=text)
