"""Experiment ``random_search``: guessing fails by the curse of dimensionality.

On linear regression problems with n = 1, 2, ... parameters (``nn.Linear(n, 1, bias=False)``,
loss ``mse``), count how many uniform random guesses in the box [-1, 1]^n are needed before
one lands within epsilon of the optimum (excess loss L(w) - L* <= delta), and how many steps
gradient descent needs from w = (1, ..., 1) (a corner of the box) for the same target.

Each problem is built so that the answer is known in closed form, which the measurement is
checked against. The design X (N, n) has X^T X / N = diag(h_i / 2), so the loss is the
quadratic L(w) = L* + (w - w*)^T (H/2) (w - w*) with H = (2/N) X^T X = diag(h), h_i spaced
geometrically in [2/kappa, 2]. The target set {L - L* <= delta} is an ellipsoid with volume
V_n delta^{n/2} / sqrt(det(H/2)), V_n = pi^{n/2} / Gamma(n/2 + 1), fully inside the box
(w* in [-0.5, 0.5]^n and the longest semi-axis sqrt(2 delta kappa / 2) < 0.5), so a uniform
guess hits it with probability

    p_n = V_n delta^{n/2} / (sqrt(det(H/2)) 2^n),   expected guesses 1/p_n,

which falls exponentially in n; the chapter's grid with 10 bins per axis has 10^n points.
The chapter's own arithmetic is computed too: its MNIST network 784-15-10 (built here with
``build("mlp", in_dim=784, hidden=[15], out_dim=10)`` and its parameters counted) has 11,935
parameters, so the 10-bins-per-axis grid has 10^11935 points, against ~10^80 atoms in the
observable universe (the usual order-of-magnitude estimate; the chapter's number is lost from
its text).
The measurement never uses that formula: it evaluates the model's loss at every guess and
counts the guesses between consecutive hits (independent geometric samples of the number
of guesses needed). Gradient descent (``losslab.train``, optimizer ``gd``, lr = 1/lambda_max)
needs about kappa/2 ln(excess_0/delta) steps, independent of n for fixed kappa.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..figures import Figure, Series
from .base import ExperimentResult, measured, register

TITLE = "Random search vs gradient descent: guesses needed grow exponentially with the number of parameters"
CLAIM = "random guessing fails by the curse of dimensionality, while gradient descent's steps barely grow"


def make_problem(n: int, *, kappa: float, n_examples: int, noise: float, seed: int):
    """A regression problem with H = (2/N) X^T X = diag(h), h geometric in [2/kappa, 2].

    Returns (X (N, n), y (N, 1), w_star (n,), h (n,)) in float64; w_star ~ U[-0.5, 0.5]^n."""
    g = torch.Generator().manual_seed(seed)
    h = torch.tensor(np.geomspace(2.0, 2.0 / kappa, n) if n > 1 else [2.0], dtype=torch.float64)
    Q, _ = torch.linalg.qr(torch.randn(n_examples, n, generator=g, dtype=torch.float64))  # (N, n), Q^T Q = I
    X = Q * torch.sqrt(h / 2 * n_examples)  # X^T X / N = diag(h/2)
    w_star = torch.rand(n, generator=g, dtype=torch.float64) - 0.5
    r = torch.randn(n_examples, generator=g, dtype=torch.float64)
    r = r - Q @ (Q.T @ r)  # residual orthogonal to the columns: w_star stays the exact minimizer
    y = (X @ w_star + noise * r / r.norm() * math.sqrt(n_examples)).unsqueeze(1)
    return X, y, w_star, h


def hit_probability(n: int, h: torch.Tensor, delta: float) -> float:
    """p_n = V_n delta^{n/2} / (sqrt(det(H/2)) 2^n): a uniform guess in [-1, 1]^n lands in {L - L* <= delta}."""
    log_vn = (n / 2) * math.log(math.pi) - math.lgamma(n / 2 + 1)
    return math.exp(log_vn + (n / 2) * math.log(delta) - 0.5 * float(torch.log(h / 2).sum()) - n * math.log(2))


def guess_gaps(X: torch.Tensor, y: torch.Tensor, l_star: float, delta: float, *, max_guesses: int, target_hits: int,
               chunk: int = 200_000, seed: int = 0) -> tuple[np.ndarray, int]:
    """Draw uniform guesses w ~ U[-1, 1]^n in chunks, score each by the mse loss of the linear
    model (1/N) ||X w - y||^2, and return the gaps between hits (the number of guesses each
    success needed) and the number of guesses drawn. Stops after ``target_hits`` hits or
    ``max_guesses`` guesses. The loss is evaluated through the Gram form
    (w^T X^T X w - 2 w^T X^T y + y^T y) / N (an identity, O(n^2) per guess instead of O(N n));
    ``mse_of_guesses`` checks it against the model in the tests."""
    g = torch.Generator().manual_seed(seed)
    n = X.shape[1]
    G, c, yy, N = X.T @ X, (X.T @ y).reshape(-1), float((y * y).sum()), X.shape[0]
    hits: list[np.ndarray] = []
    drawn, n_hits = 0, 0
    while drawn < max_guesses and n_hits < target_hits:
        m = min(chunk, max_guesses - drawn)
        W = torch.rand(m, n, generator=g, dtype=torch.float64) * 2 - 1  # (m, n)
        L = (((W @ G) * W).sum(1) - 2 * W @ c + yy) / N  # (m,)
        idx = torch.nonzero(L - l_star <= delta).reshape(-1).numpy()
        hits.append(idx + drawn + 1)  # 1-based guess count of each hit
        n_hits += len(idx)
        drawn += m
    pos = np.concatenate(hits) if hits else np.zeros(0, dtype=np.int64)
    if len(pos) > target_hits:  # stop the record at the target-th hit
        pos = pos[:target_hits]
        drawn = int(pos[-1])
    gaps = np.diff(np.concatenate([[0], pos])) if len(pos) else np.zeros(0, dtype=np.int64)
    return gaps.astype(np.int64), drawn


LOG10_ATOMS_IN_UNIVERSE = 80  # ~10^80 atoms in the observable universe: an order-of-magnitude estimate


def grid_guesses(model: torch.nn.Module, bins: int = 10) -> tuple[int, float]:
    """(P, log10 of bins^P): the trainable parameters of ``model`` and the number of points of a grid
    with ``bins`` values per parameter, as a base-10 exponent (the number itself overflows a float)."""
    if not (isinstance(bins, int) and bins >= 2):
        raise ValueError(f"bins must be an integer >= 2, got {bins!r}")
    P = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return int(P), P * math.log10(bins)


def mse_of_guesses(X: torch.Tensor, y: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """The model's mse at each guess w (rows of W), via nn.Linear + functional_call (the reference)."""
    from torch.func import functional_call, vmap

    model = torch.nn.Linear(X.shape[1], 1, bias=False).double()
    return vmap(lambda w: ((functional_call(model, {"weight": w.reshape(1, -1)}, (X,)) - y) ** 2).mean())(W)


@register("random_search", title=TITLE, claim=CLAIM)
def run(*, quick: bool = False, seed: int = 0, dims: list[int] | tuple[int, ...] | None = None, delta: float = 0.01,
        kappa: float = 10.0, max_guesses: int | None = None, target_hits: int | None = None, gd_steps: int = 400,
        local_steps: int | None = None) -> ExperimentResult:
    """Guesses to reach excess loss <= ``delta`` vs n for random search, against GD's steps.

    Quick: n = 1..4, 600 hits (at most 4e6 guesses) per n. Full: n = 1..6, 2000 hits (at most
    1e8 guesses) per n. Gradient descent and local random search start at w = (1, ..., 1).
    Also runs the registry's local ``random_search`` optimizer (keep a Gaussian step if the
    loss falls, proposal scale 0.05) for comparison.
    """
    from ..closed_form import ols
    from ..train import train

    dims = tuple(dims) if dims is not None else ((1, 2, 3, 4) if quick else (1, 2, 3, 4, 5, 6))
    max_guesses = int(max_guesses or (4_000_000 if quick else 100_000_000))
    target_hits = int(target_hits or (600 if quick else 2000))
    local_steps = int(local_steps or (600 if quick else 3000))
    if delta <= 0 or kappa < 1:
        raise ValueError(f"need delta > 0 and kappa >= 1, got delta={delta}, kappa={kappa}")
    if math.sqrt(delta * kappa) >= 0.5:
        raise ValueError(f"the target ellipsoid must fit inside the box: need sqrt(delta*kappa) < 0.5, got "
                         f"{math.sqrt(delta * kappa):.3g}; lower delta or kappa")

    rows = []
    arrays: dict[str, np.ndarray] = {}
    for n in dims:
        X, y, w_star, h = make_problem(n, kappa=kappa, n_examples=max(4 * n, 16), noise=0.1, seed=seed + n)
        l_star = ols(X, y, bias=False).mse
        model = torch.nn.Linear(n, 1, bias=False).double()
        with torch.no_grad():
            model.weight.fill_(1.0)  # start at the box corner (1, ..., 1), far from w* in [-0.5, 0.5]^n
        p = hit_probability(n, h, delta)
        gaps, drawn = guess_gaps(X, y, l_star, delta, max_guesses=max_guesses, target_hits=target_hits,
                                 seed=seed * 1000 + n)
        arrays[f"n{n}/guess_gaps"] = gaps
        # gradient descent from w = (1, ..., 1) (the model's weight filled above), lr = 1/lambda_max
        tr = train(model, (X, y), optimizer="gd", lr=1.0 / float(h.max()), steps=gd_steps, eval_every=1,
                   snapshot_every=gd_steps, seed=seed)
        ex = tr.train_eval_loss - l_star
        ok = np.nonzero(ex <= delta)[0]
        gd_steps_needed = int(tr.eval_steps[ok[0]]) if len(ok) else None
        # the registry's local random search (keep a perturbation if the loss falls)
        tl = train(model, (X, y), optimizer="random_search", lr=0.05, steps=local_steps, eval_every=1,
                   snapshot_every=local_steps, seed=seed)
        exl = tl.train_eval_loss - l_star
        okl = np.nonzero(exl <= delta)[0]
        local_needed = int(tl.eval_steps[okl[0]]) if len(okl) else None
        arrays[f"n{n}/gd_excess"] = ex
        arrays[f"n{n}/local_rs_excess"] = exl
        rows.append(dict(n=n, hits=int(len(gaps)), drawn=drawn, measured=float(gaps.mean()) if len(gaps) else math.nan,
                         q25=float(np.percentile(gaps, 25)) if len(gaps) else math.nan,
                         q75=float(np.percentile(gaps, 75)) if len(gaps) else math.nan,
                         predicted=1.0 / p, grid=10.0 ** n, gd=gd_steps_needed, local=local_needed,
                         initial_excess=float(ex[0])))

    # the chapter's arithmetic: its MNIST network 784-15-10 on a 10-bins-per-axis grid
    from ..models import build

    mnist_p, mnist_log10 = grid_guesses(build("mlp", in_dim=784, hidden=[15], out_dim=10, seed=seed), bins=10)
    mnist_formula = 784 * 15 + 15 * 10 + 15 + 10  # weights of both layers + 25 biases

    ns = np.array([r["n"] for r in rows], dtype=float)
    guesses = np.array([r["measured"] for r in rows])
    predicted = np.array([r["predicted"] for r in rows])
    gd = np.array([np.nan if r["gd"] is None else r["gd"] for r in rows], dtype=float)
    local = np.array([np.nan if r["local"] is None else r["local"] for r in rows], dtype=float)
    # GD with lr = 1/h_max shrinks every mode's error by (1 - h_i/h_max) <= 1 - 1/kappa per step, the excess
    # loss by the square of that: steps <= ln(E0/delta) / (-2 ln(1 - 1/kappa)) (for kappa = 1, one step).
    e0 = np.array([r["initial_excess"] for r in rows])
    kap = np.array([kappa if r["n"] > 1 else 1.0 for r in rows])
    gd_bound = np.where(kap > 1, np.ceil(np.log(np.maximum(e0 / delta, 1)) / (-2 * np.log1p(-1 / np.where(kap > 1, kap, 2)))), 1.0)
    enough = np.array([r["hits"] >= 200 for r in rows])  # relative std of the mean gap ~ 1/sqrt(hits) <= 7%
    rel_err = np.abs(guesses / predicted - 1)
    fit_mask = enough & np.isfinite(guesses)
    slope = float(np.polyfit(ns[fit_mask], np.log10(guesses[fit_mask]), 1)[0]) if fit_mask.sum() >= 2 else math.nan
    arrays.update({"n": ns, "guesses_measured": guesses, "guesses_predicted": predicted, "grid_10_per_axis": 10.0 ** ns,
                   "gd_steps": gd, "gd_steps_bound": gd_bound, "local_random_search_steps": local,
                   "hits": np.array([r["hits"] for r in rows]), "guesses_drawn": np.array([r["drawn"] for r in rows])})
    n_hi = int(ns[fit_mask][-1]) if fit_mask.any() else None
    i_hi = int(np.nonzero(ns == n_hi)[0][0]) if n_hi is not None else None
    summary = {"dims": list(dims), "delta": delta, "kappa": kappa, "decades_per_parameter": slope,
               "max_rel_error_vs_volume_formula": float(rel_err[fit_mask].max()) if fit_mask.any() else None,
               "gd_steps_max": float(np.nanmax(gd)) if np.isfinite(gd).any() else None}
    summary.update({"mnist_784_15_10_parameters": mnist_p, "mnist_log10_grid_guesses_10_bins": mnist_log10,
                    "log10_atoms_in_universe": LOG10_ATOMS_IN_UNIVERSE,
                    "mnist_grid_decades_beyond_atoms": mnist_log10 - LOG10_ATOMS_IN_UNIVERSE,
                    "mnist_dims_over_3d": mnist_p / 3})
    for r in rows:
        summary[f"guesses_n{r['n']}"] = r["measured"]
        summary[f"predicted_n{r['n']}"] = r["predicted"]
        summary[f"gd_steps_n{r['n']}"] = r["gd"]
        summary[f"local_rs_steps_n{r['n']}"] = r["local"]
    checks = {
        f"mean guesses match the volume formula 1/p_n within 15% wherever >= 200 hits "
        f"(max rel. error {summary['max_rel_error_vs_volume_formula']:.1%})":
            bool(fit_mask.sum() >= 2 and rel_err[fit_mask].max() <= 0.15),
        f"guesses grow exponentially: >= 0.5 decades per parameter (fit: {slope:.2f})": bool(slope >= 0.5),
        f"gradient descent reaches the target at every n within the bound ln(E0/delta) / (2 ln(kappa/(kappa-1))) "
        f"(steps {gd.tolist()}, bounds {np.round(gd_bound, 1).tolist()})": bool(np.isfinite(gd).all() and (gd <= gd_bound).all()),
        (f"at n={n_hi} gradient descent needs >= 100x fewer steps than random guessing "
         f"({gd[i_hi]:.0f} vs {guesses[i_hi]:.3g})" if i_hi is not None else "guessing measured at some n"):
            bool(i_hi is not None and np.isfinite(gd[i_hi]) and 100 * gd[i_hi] <= guesses[i_hi]),
        f"the chapter's MNIST net 784-15-10 (built) has 784*15 + 15*10 + 25 biases = 11,935 parameters (counted "
        f"{mnist_p:,}), so a 10-bin grid needs 10^{mnist_log10:.0f} guesses vs ~10^{LOG10_ATOMS_IN_UNIVERSE} atoms":
            bool(mnist_p == mnist_formula == 11935 and mnist_log10 > LOG10_ATOMS_IN_UNIVERSE),
    }
    band_lo = np.array([r["q25"] for r in rows])
    band_hi = np.array([r["q75"] for r in rows])
    fig = Figure(
        key="guesses_vs_dimension", title="Guesses (random search) vs steps (gradient descent) to get within delta of the optimum",
        kind="lines", x_label="number of parameters n", y_label="guesses / steps", log_y=True,
        series=(Series("random guessing: mean guesses per hit (measured, band = quartiles)", ns, guesses, band_lo, band_hi,
                       mode="lines+markers"),
                Series("volume formula 1/p_n", ns, predicted, dash=True),
                Series("chapter's grid, 10 bins per axis: 10^n", ns, 10.0 ** ns, dash=True),
                Series("local random search (optimizer 'random_search', scale 0.05): steps", ns, local, mode="lines+markers"),
                Series("gradient descent (lr = 1/lambda_max): steps", ns, gd, mode="lines+markers")),
        caption=(f"Linear regression with n parameters, Hessian eigenvalues geometric in [2/{kappa:g}, 2]; target excess "
                 f"loss <= {delta:g}. Guesses are uniform in [-1, 1]^n, each scored by the model's loss; the measured "
                 f"number is the mean gap between hits ({target_hits} hits or {max_guesses:.0e} guesses per n). "
                 f"GD and local random search start at w = (1, ..., 1). Guessing grows by "
                 f"{slope:.2f} decades per parameter; gradient descent's steps stay flat."),
        table={f"n={r['n']}": {"hits": r["hits"], "guesses drawn": r["drawn"], "mean guesses": r["measured"],
                               "1/p_n": r["predicted"], "10^n": r["grid"], "gd steps": r["gd"],
                               "local random search steps": r["local"]} for r in rows}
              | {"chapter's MNIST net 784-15-10": {"parameters": mnist_p, "10-bin grid": f"10^{mnist_log10:.0f}",
                                                    "atoms in the universe": f"~10^{LOG10_ATOMS_IN_UNIVERSE}"}},
        settings={"delta": delta, "kappa": kappa, "max_guesses": max_guesses, "seed": seed})
    measured_txt = ", ".join(f"n={r['n']}: {r['measured']:.3g}" for r in rows)
    text = (f"Random guessing needs ~10^({slope:.2f} n) guesses to land within excess loss {delta:g} of the optimum of an "
            f"n-parameter linear regression (measured {measured_txt}), "
            f"matching the ellipsoid-volume formula; gradient descent needs {', '.join(f'{v:.0f}' for v in gd)} steps. "
            f"The chapter's MNIST net 784-15-10 has {mnist_p:,} parameters (counted from the built model): a grid "
            f"with 10 bins per parameter has 10^{mnist_log10:.0f} points, {mnist_log10 - LOG10_ATOMS_IN_UNIVERSE:.0f} "
            f"orders of magnitude more than the ~10^{LOG10_ATOMS_IN_UNIVERSE} atoms in the universe; its 11,935 "
            f"dimensions are {mnist_p / 3:,.0f} times the 3 of a haystack, but the grid is 10^{mnist_log10 - 3:.0f} "
            f"times larger.")
    return measured("random_search", summary=summary, checks=checks,
                    figures=(fig,), arrays=arrays,
                    settings={"quick": quick, "seed": seed, "dims": list(dims), "delta": delta, "kappa": kappa,
                              "max_guesses": max_guesses, "target_hits": target_hits, "gd_steps": gd_steps, "local_steps": local_steps},
                    text=text)
