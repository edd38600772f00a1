"""Experiment ``minima``: many seeds of one model land in different minima of similar loss.

The same MLP (tanh, one hidden layer) is trained from many random initializations (seeds) on
the same data with the same optimizer (full-batch Adam) and step budget, once narrow and
once wide. Measured: the distribution of final train and test losses over seeds (mean,
standard deviation, min, max) and how far apart the final parameter vectors are (mean pairwise
distance relative to their mean norm). Choromanska et al. 2015 ("The loss surfaces of
multilayer networks", Sec. 5 and Fig. 2-3) find that the spread of the losses of the minima
reached from different starts shrinks as the network grows: large nets land in many
different minima of nearly equal (test) loss, small nets in minima of widely varying loss.
"""
from __future__ import annotations

import numpy as np

from ..figures import Figure, Series
from .base import ExperimentResult, register

TITLE = "Minima: many seeds land in different minima; the spread of their losses shrinks with width"
CLAIM = ("runs from different seeds land in different minima of similar loss, and the spread of the final losses "
         "shrinks as the network gets wider (Choromanska et al. 2015)")


def _final_losses(splits, *, hidden: int, seeds: list[int], steps: int, lr: float):
    from ..losses import get_loss
    from ..models import build
    from ..train import full_loss, train

    loss = get_loss("cross_entropy")
    train_l, test_l, params = [], [], []
    for s in seeds:
        model = build("mlp", in_dim=splits.in_dim, hidden=[hidden], out_dim=splits.out_dim, activation="tanh", seed=s)
        tr = train(model, splits, optimizer="adam", lr=lr, steps=steps, seed=s, eval_every=steps, snapshot_every=steps,
                   max_snapshots=2)
        train_l.append(tr.final_loss)
        test_l.append(full_loss(tr.model, splits.test, loss)[0])
        params.append(tr.final_params)
    return np.array(train_l), np.array(test_l), np.stack(params)


def _pairwise_rel_distance(P: np.ndarray) -> float:
    """Mean over pairs i<j of ||p_i - p_j|| / mean_k ||p_k||."""
    D = np.linalg.norm(P[:, None, :] - P[None, :, :], axis=-1)
    iu = np.triu_indices(len(P), 1)
    return float(D[iu].mean() / np.linalg.norm(P, axis=1).mean())


@register("minima", title=TITLE, claim=CLAIM)
def run(*, quick: bool = False, seed: int = 0, n_seeds: int | None = None, narrow: int = 3, wide: int = 64,
        steps: int = 400, lr: float = 0.03, dataset: str = "moons", n: int = 400) -> ExperimentResult:
    """Final train/test loss distributions over seeds for a narrow and a wide net.

    Quick: 8 seeds x 2 widths; full: 40 seeds; 400 full-batch Adam steps each. Data: ``moons``
    (n = 400, noise 0.2, 2 classes), one split shared by all runs (its seed is ``seed``); run k
    uses seed ``seed + 1 + k`` for its initialization.
    """
    from ..data import load

    n_seeds = n_seeds or (8 if quick else 40)
    if n_seeds < 3:
        raise ValueError(f"need at least 3 seeds to measure a spread, got n_seeds={n_seeds}")
    splits = load(dataset, seed=seed, n=n)
    if splits.task != "classification":
        raise ValueError(f"minima uses cross-entropy on a classification dataset; {dataset!r} is {splits.task}")
    seeds = [seed + 1 + k for k in range(n_seeds)]
    res = {}
    for label, h in (("narrow", narrow), ("wide", wide)):
        res[label] = _final_losses(splits, hidden=h, seeds=seeds, steps=steps, lr=lr)
    stats = {}
    for label, (tr_l, te_l, P) in res.items():
        stats[label] = {"train_mean": float(tr_l.mean()), "train_std": float(tr_l.std(ddof=1)),
                        "train_min": float(tr_l.min()), "train_max": float(tr_l.max()),
                        "test_mean": float(te_l.mean()), "test_std": float(te_l.std(ddof=1)),
                        "test_min": float(te_l.min()), "test_max": float(te_l.max()),
                        "pairwise_rel_distance": _pairwise_rel_distance(P), "n_params": int(P.shape[1])}
    nw, wd = stats["narrow"], stats["wide"]
    summary = {"n_seeds": n_seeds, "steps": steps, "narrow_hidden": narrow, "wide_hidden": wide,
               **{f"{lab}_{k}": v for lab, st in stats.items() for k, v in st.items()}}
    checks = {
        f"the spread of final train losses shrinks with width: std {nw['train_std']:.3g} (hidden {narrow}) -> "
        f"{wd['train_std']:.3g} (hidden {wide}), >= 2x": 2 * wd["train_std"] <= nw["train_std"],
        f"the spread of final test losses shrinks with width: std {nw['test_std']:.3g} -> {wd['test_std']:.3g}, >= 2x":
            2 * wd["test_std"] <= nw["test_std"],
        f"wide runs land in different minima: mean pairwise parameter distance {wd['pairwise_rel_distance']:.2f} "
        f"x the mean parameter norm (>= 0.3)": wd["pairwise_rel_distance"] >= 0.3,
        f"... of similar loss: wide train-loss range {wd['train_max'] - wd['train_min']:.3g} < narrow range "
        f"{nw['train_max'] - nw['train_min']:.3g}": (wd["train_max"] - wd["train_min"]) < (nw["train_max"] - nw["train_min"]),
    }
    arrays = {}
    for label, (tr_l, te_l, P) in res.items():
        arrays[f"{label}/train_loss"] = tr_l
        arrays[f"{label}/test_loss"] = te_l
        arrays[f"{label}/final_params"] = P
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
    )
    text = (f"{n_seeds} seeds, hidden {narrow} vs {wide}: final train loss {nw['train_mean']:.3g} +- {nw['train_std']:.3g} "
            f"vs {wd['train_mean']:.3g} +- {wd['train_std']:.3g}; test {nw['test_mean']:.3g} +- {nw['test_std']:.3g} vs "
            f"{wd['test_mean']:.3g} +- {wd['test_std']:.3g}. Wide final parameters are {wd['pairwise_rel_distance']:.2f} "
            f"mean norms apart: different minima, similar loss.")
    return ExperimentResult(name="minima", title=TITLE, claim=CLAIM, summary=summary, checks=checks, figures=figs,
                            arrays=arrays, settings={"quick": quick, "seed": seed, "n_seeds": n_seeds, "narrow": narrow,
                                                     "wide": wide, "steps": steps, "lr": lr, "dataset": dataset, "n": n},
                            text=text)
