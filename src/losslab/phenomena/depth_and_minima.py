"""Experiment ``depth_and_minima``: do deeper nets end in fewer suboptimal minima than shallow ones at
the same parameter count? (seed 002: "neural nets w/ hidden layers are non-convex so they have local
minima, but deep ones have less suboptimal (better) local minima than shallow ones"; seed 001: "different
training runs -- even with the same data and model -- end up with very different results").

One task: least-squares regression of y = sin(3 pi x) on N evenly spaced points of [-1, 1] (the target has
three periods, so a small net must place its units carefully and poor arrangements are local traps).
Tanh MLPs with 1, 2, 3 and 4 hidden layers of equal width, the width chosen per depth so that every net has
about the same number of parameters (``widths_for_budget``). Each depth is trained from ``n_seeds``
initializations (``losslab.models.build("mlp", seed=...)``: PyTorch's default init) by full-batch Adam for
the same number of steps; all seeds of one depth are trained at once as a batch of independent nets
(stacked weights and ``torch.bmm``; Adam is elementwise, so the stacked run is exactly the per-seed runs,
which the tests check against ``losslab.train``).

Measured per depth: the distribution of final training losses (median, min, max, max/min, the interquartile
range of log10 loss), the share of runs "near the best" (final loss <= ``near`` x the best final loss of
*all* runs of all depths, and <= ``near`` x the best of the same depth), and the final gradient norm (a run
whose gradient has not vanished has not reached a minimum: the comparison is of where a fixed budget of
Adam ends, which mixes "stuck in a poor minimum" with "still descending"; both are reported).

The test: a one-sided Mann-Whitney U test (``scipy.stats.mannwhitneyu``, alternative "greater") of the
final losses at depth 1 against the deepest. H0: the two samples come from one distribution; H1: depth-1
losses are stochastically larger, P(L_1 > L_D) > 1/2 (the deep net ends lower). U / (n_1 n_D) estimates
P(L_1 > L_D) (the common-language effect size). The p-value is cross-checked by a permutation test of the
same statistic (labels shuffled over the pooled ranks). The seed's claim counts as supported at level
``alpha`` when p < alpha; the result is reported whichever way it comes out.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..figures import Figure, Series
from .base import ExperimentResult, measured, register

TITLE = "Depth and minima: many seeds per depth at equal parameter count"
CLAIM = ("deep nets have fewer suboptimal local minima than shallow ones (seed 002), and different runs of the "
         "same model end with very different results (seed 001): at about equal parameter count, the final "
         "training losses of many seeds per depth are compared by a one-sided Mann-Whitney U test")


def mlp_param_count(depth: int, width: int, in_dim: int = 1, out_dim: int = 1) -> int:
    """Weights and biases of an MLP with ``depth`` hidden layers of ``width`` units."""
    return (in_dim + 1) * width + (depth - 1) * (width + 1) * width + (width + 1) * out_dim


def widths_for_budget(depths, params: int, in_dim: int = 1, out_dim: int = 1) -> dict[int, tuple[int, int]]:
    """{depth: (width, parameter count)} with the count closest to ``params`` (ties: the smaller width)."""
    out = {}
    for d in depths:
        if d < 1:
            raise ValueError(f"depths must be >= 1, got {d}")
        best = min(range(1, max(2, params) + 1), key=lambda w: (abs(mlp_param_count(d, w, in_dim, out_dim) - params), w))
        out[d] = (best, mlp_param_count(d, best, in_dim, out_dim))
    return out


def stacked_mlps(depth: int, width: int, seeds, *, in_dim: int = 1, out_dim: int = 1, activation: str = "tanh",
                 dtype=torch.float32) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The layers of losslab's ``mlp`` built once per seed, stacked: [(W (S, in, out), b (S, 1, out)), ...]
    (W transposed, so that h_next = h @ W + b). New tensors: the built models are not kept."""
    from ..models import build

    mods = [build("mlp", in_dim=in_dim, hidden=[width] * depth, out_dim=out_dim, activation=activation, seed=int(s),
                  dtype=dtype) for s in seeds]
    lins = [[m for m in mod.modules() if isinstance(m, torch.nn.Linear)] for mod in mods]
    return [(torch.stack([L[k].weight.detach().T for L in lins]).clone(),
             torch.stack([L[k].bias.detach() for L in lins])[:, None, :].clone()) for k in range(depth + 1)]


def batched_forward(layers, X: torch.Tensor, activation=torch.tanh) -> torch.Tensor:
    """Outputs (S, N, out) of S independent MLPs on the same inputs X (N, in)."""
    h = X.expand(layers[0][0].shape[0], *X.shape)
    for k, (W, b) in enumerate(layers):
        h = torch.baddbmm(b, h, W)
        if k < len(layers) - 1:
            h = activation(h)
    return h


def train_batched(layers, X: torch.Tensor, Y: torch.Tensor, *, steps: int, lr: float, record_every: int = 10):
    """Full-batch Adam (torch.optim.Adam, default betas) on each net's own mean squared error.

    The summed loss sum_s L_s has gradient dL_s/dtheta_s in seed s's slice, and Adam acts elementwise, so
    this is S independent runs. Returns (final losses (S,), recorded steps (K,), losses (K, S), final
    gradient norms (S,), trained layers)."""
    params = [t.clone().requires_grad_(True) for pair in layers for t in pair]
    pairs = [(params[2 * k], params[2 * k + 1]) for k in range(len(layers))]
    opt = torch.optim.Adam(params, lr=lr, foreach=True)

    def losses():
        return ((batched_forward(pairs, X) - Y) ** 2).mean(dim=(1, 2))  # (S,)

    rec_steps, rec = [], []
    for k in range(steps + 1):
        opt.zero_grad(set_to_none=True)
        L = losses()
        if k % record_every == 0 or k == steps:
            rec_steps.append(k)
            rec.append(L.detach().clone())
        L.sum().backward()
        if k == steps:  # the gradient at the final point, not stepped on
            gn = torch.sqrt(sum((p.grad.detach() ** 2).flatten(1).sum(1) for p in params))
            break
        opt.step()
    final = rec[-1].double().numpy()
    return final, np.array(rec_steps), torch.stack(rec).double().numpy(), gn.double().numpy(), \
        [(w.detach(), b.detach()) for w, b in pairs]


def mann_whitney_greater(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(U, p) of scipy's one-sided Mann-Whitney U test, H1: a stochastically larger than b.
    U counts the pairs (i, j) with a_i > b_j (ties count 1/2)."""
    from scipy.stats import mannwhitneyu

    r = mannwhitneyu(a, b, alternative="greater")
    return float(r.statistic), float(r.pvalue)


def permutation_p_greater(a: np.ndarray, b: np.ndarray, *, resamples: int, seed: int) -> float:
    """Permutation p-value of the same U statistic: the group labels are shuffled over the pooled ranks
    (U = rank sum of the first group - n_a (n_a + 1) / 2); p = (1 + #{U_perm >= U_obs}) / (1 + resamples)."""
    from scipy.stats import rankdata

    na = len(a)
    ranks = rankdata(np.concatenate([a, b]))
    u_obs = ranks[:na].sum() - na * (na + 1) / 2
    rng = np.random.default_rng(seed)
    perm = rng.permuted(np.broadcast_to(ranks, (resamples, len(ranks))).copy(), axis=1)
    u = perm[:, :na].sum(1) - na * (na + 1) / 2
    return float((1 + np.sum(u >= u_obs - 1e-9)) / (1 + resamples))


def sine_task(n_points: int, periods: float = 1.5, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """x evenly in [-1, 1] (n_points, 1), y = sin(2 pi periods x): the regression target."""
    X = torch.linspace(-1.0, 1.0, n_points, dtype=dtype)[:, None]
    return X, torch.sin(2 * math.pi * periods * X)


@register("depth_and_minima", title=TITLE, claim=CLAIM)
def run(*, quick: bool = False, seed: int = 0, params: int = 100, depths=(1, 2, 3, 4), n_seeds: int | None = None,
        steps: int | None = None, lr: float = 0.01, n_points: int = 48, near: float = 3.0, alpha: float = 0.05,
        resamples: int = 20000) -> ExperimentResult:
    """Quick: 24 seeds per depth, 600 Adam steps. Full: 64 seeds, 2,000 steps. ``params``: the parameter
    budget every depth is matched to; ``near``: a run is near the best when its final loss is at most
    ``near`` times the best; ``alpha``: the test's level; ``resamples``: of the permutation cross-check."""
    n_seeds = int(n_seeds or (24 if quick else 64))
    steps = int(steps or (600 if quick else 2000))
    depths = tuple(int(d) for d in depths)
    if len(depths) < 2 or sorted(depths) != list(depths) or depths[0] < 1 or len(set(depths)) != len(depths):
        raise ValueError(f"depths must be at least two increasing values >= 1, got {depths}")
    if n_seeds < 4 or steps < 1 or not lr > 0 or not near > 1 or not 0 < alpha < 1 or params < 10 or n_points < 4:
        raise ValueError(f"need n_seeds >= 4, steps >= 1, lr > 0, near > 1, 0 < alpha < 1, params >= 10, n_points >= 4; "
                         f"got n_seeds={n_seeds}, steps={steps}, lr={lr}, near={near}, alpha={alpha}, params={params}, "
                         f"n_points={n_points}")
    X, Y = sine_task(n_points)
    arch = widths_for_budget(depths, params)
    seeds = [seed * 1000 + s for s in range(n_seeds)]
    rec_every = max(1, steps // 100)
    res = {}
    for d in depths:
        w, p = arch[d]
        layers = stacked_mlps(d, w, seeds)
        final, rsteps, curves, gn, _ = train_batched(layers, X, Y, steps=steps, lr=lr, record_every=rec_every)
        res[d] = dict(width=w, params=p, final=final, curves=curves, grad=gn)
    best_all = min(float(r["final"].min()) for r in res.values())
    rows = {}
    for d, r in res.items():
        L = r["final"]
        lg = np.log10(L)
        tail = r["curves"][int(0.8 * (len(rsteps) - 1))]
        rows[d] = {"width": r["width"], "parameters": r["params"], "median": float(np.median(L)), "min": float(L.min()),
                   "max": float(L.max()), "max / min": float(L.max() / L.min()),
                   "IQR of log10 loss": float(np.subtract(*np.quantile(lg, [0.75, 0.25]))),
                   "share near the overall best": float(np.mean(L <= near * best_all)),
                   "share near its depth's best": float(np.mean(L <= near * L.min())),
                   "median final gradient norm": float(np.median(r["grad"])),
                   "median loss ratio last 20% of steps": float(np.median(L / tail))}
    d1, dD = depths[0], depths[-1]
    U, p_mw = mann_whitney_greater(res[d1]["final"], res[dD]["final"])
    p_perm = permutation_p_greater(res[d1]["final"], res[dD]["final"], resamples=resamples, seed=seed)
    se_perm = math.sqrt(max(p_perm * (1 - p_perm), 1.0 / resamples) / resamples)
    cl = U / (n_seeds * n_seeds)  # P(L_1 > L_D)
    pairwise = {d: mann_whitney_greater(res[d1]["final"], res[d]["final"])[1] for d in depths[1:]}
    supported = p_mw < alpha
    counts = [r["params"] for r in res.values()]
    spread_ratio = min(rows[d]["max / min"] for d in depths)
    share_near = {d: rows[d]["share near the overall best"] for d in depths}
    share_own = {d: rows[d]["share near its depth's best"] for d in depths}
    med = {d: rows[d]["median"] for d in depths}
    best_med = min(depths, key=lambda d: med[d])

    summary = {"task": f"y = sin(3 pi x), {n_points} points in [-1, 1], mse", "parameter budget": params,
               "seeds per depth": n_seeds, "Adam steps": steps, "lr": lr, "near factor": near,
               "best final loss over all runs": best_all,
               **{f"depth {d}: {k}": v for d in depths for k, v in rows[d].items()},
               f"Mann-Whitney U (depth {d1} > depth {dD})": U,
               f"one-sided p (depth {d1} losses larger than depth {dD})": p_mw,
               "permutation p of the same U": p_perm,
               f"P(L_{d1} > L_{dD}) = U / n^2": cl,
               **{f"one-sided p, depth {d1} vs depth {d}": v for d, v in pairwise.items()},
               "claim supported at alpha (p < alpha)": bool(supported), "alpha": alpha}
    verdict = (f"supported: depth {dD} ends lower than depth {d1} (p = {p_mw:.3g} < {alpha:g})" if supported else
               f"not supported: p = {p_mw:.3g} >= {alpha:g}")
    checks = {
        f"the depths have about equal parameter counts ({', '.join(f'{d}: {c}' for d, c in zip(depths, counts))}; "
        f"max/min <= 1.15)": bool(max(counts) / min(counts) <= 1.15),
        f"different seeds of the same net end with very different losses (seed 001): at every depth the worst "
        f"final loss is >= 10x the best (smallest ratio {spread_ratio:.3g})": bool(spread_ratio >= 10),
        f"the Mann-Whitney p-value ({p_mw:.4f}, normal approximation) agrees with a permutation test of the same U "
        f"({p_perm:.4f} +- {se_perm:.4f}; within 4 SE + 0.01)": bool(abs(p_mw - p_perm) <= 4 * se_perm + 0.01),
        f"deep nets end lower than shallow ones at equal size (seed 002): one-sided Mann-Whitney U test of the final "
        f"losses, H1: depth {d1} stochastically larger than depth {dD}; P(L_{d1} > L_{dD}) = {cl:.2f}, p = {p_mw:.3g} "
        f"(< {alpha:g} to count as supported)": bool(supported),
        f"but depth helps unevenly: fewer depth-{d1} runs end near the best of all runs than at some deeper depth (within "
        f"{near:g}x of {best_all:.2e}: {', '.join(f'{share_near[d]:.0%}' for d in depths)} for depths "
        f"{', '.join(map(str, depths))}), and the lowest median final loss is at depth {best_med}, not at the deepest "
        f"({', '.join(f'{med[d]:.2e}' for d in depths)})":
            bool(share_near[d1] < max(share_near[d] for d in depths[1:]) and best_med != dD),
    }
    st = rsteps.astype(float)
    figs = (
        Figure("final_losses", f"Final training loss of {n_seeds} seeds per depth (sorted)", "scatter",
               "quantile over seeds", "final mse",
               tuple(Series(f"{d} hidden layer{'s' if d > 1 else ''} x {res[d]['width']} ({res[d]['params']} parameters)",
                            (np.arange(n_seeds) + 0.5) / n_seeds, np.sort(res[d]["final"]), mode="markers")
                     for d in depths),
               log_y=True, hlines=((f"{near:g} x best of all runs", near * best_all),),
               caption=(f"Each point is one seed's final mse after {steps} full-batch Adam steps (lr {lr:g}), sorted: the "
                        f"empirical quantile function per depth. Points below the dotted line are 'near the best'. "
                        f"One-sided Mann-Whitney, depth {d1} > depth {dD}: U = {U:.0f}, p = {p_mw:.3g} (permutation "
                        f"{p_perm:.3g})."),
               table={k: v for k, v in summary.items() if "share" in k or "median" in k or " p" in k},
               settings={"params": params, "steps": steps, "lr": lr, "seeds": n_seeds}),
        Figure("loss_curves", "Training loss per step: median over seeds, 10%-90% band", "lines", "step", "mse",
               tuple(Series(f"depth {d} (width {res[d]['width']})", st, np.median(res[d]["curves"], 1),
                            band_lo=np.quantile(res[d]["curves"], 0.1, 1), band_hi=np.quantile(res[d]["curves"], 0.9, 1))
                     for d in depths),
               log_y=True, caption="The median run per depth and the band holding the middle 80% of seeds."),
    )
    text = (f"y = sin(3 pi x) on {n_points} points, tanh MLPs of about {params} parameters ("
            + ", ".join(f"depth {d}: width {res[d]['width']}, {res[d]['params']}" for d in depths)
            + f"), {n_seeds} seeds each, {steps} Adam steps. Median final loss per depth: "
            + ", ".join(f"{med[d]:.2e}" for d in depths) + f"; best of all runs {best_all:.2e}. Share of runs within "
            f"{near:g}x of that best: " + ", ".join(f"{share_near[d]:.0%}" for d in depths)
            + f". One-sided Mann-Whitney U test, H1: depth-{d1} losses stochastically larger than depth-{dD}: U = {U:.0f}, "
            f"p = {p_mw:.3g} (permutation {p_perm:.3g}), P(L_{d1} > L_{dD}) = {cl:.2f}. The seed's claim is {verdict}. "
            f"Seed 001's 'very different results' holds at every depth (worst/best >= {spread_ratio:.3g}). Median final "
            f"gradient norms " + ", ".join(f"{rows[d]['median final gradient norm']:.1e}" for d in depths)
            + ": not every run has stopped at a minimum, so this compares where a fixed budget of Adam ends.")
    arrays = {"steps": rsteps, **{f"depth{d}/final": res[d]["final"] for d in depths},
              **{f"depth{d}/curves": res[d]["curves"] for d in depths}, **{f"depth{d}/grad_norm": res[d]["grad"] for d in depths},
              "X": X.double().numpy().ravel(), "Y": Y.double().numpy().ravel()}
    return measured("depth_and_minima", summary=summary, checks=checks, figures=figs, arrays=arrays,
                    settings={"quick": quick, "seed": seed, "params": params, "depths": list(depths), "seeds": n_seeds,
                              "steps": steps, "lr": lr, "n_points": n_points, "near": near, "alpha": alpha,
                              "resamples": resamples, "widths": {d: res[d]["width"] for d in depths}}, text=text)
