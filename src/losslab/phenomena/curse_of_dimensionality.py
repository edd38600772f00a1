"""Experiment ``curse_of_dimensionality``: n-dimensional space is a lonely place (seed 002).

Three measurements of the chapter's section "n-dimensional space is a lonely place":

(a) The chapter's count. A grid with 10 values per weight has 10^d points; for its networks with
    d = 2, 3, 44 and 11,935 weights (the last one the 784-15-10 MNIST net, built and counted) the
    counts are exact Python integers, reported as the strings "10^d" and checked by the number of
    digits of the integer itself (no floating point).

(b) Random search vs gradient descent at an equal budget of B model evaluations, on networks from
    2 weights (a line through the seven points) to about 12,000 (a 40-234-10 tanh MLP on MNIST-1D,
    11,944 parameters, the size of the chapter's handwriting net). Random search draws B guesses
    from PyTorch's default initialisation box (each weight and bias U[-1/sqrt(fan_in), 1/sqrt(fan_in)])
    and keeps the best on the training set; each guess costs one forward pass over the training set.
    All guesses are evaluated batched (torch.func.vmap over functional_call of the model itself).
    Gradient descent (heavy-ball momentum) gets B/3 steps from one guess: one step costs a forward
    and a backward pass, about three forward passes (the usual accounting; Baydin et al. 2018).
    The score is accuracy for classification (chance = the majority-class share of the data) and
    R^2 for the regression (chance = 0, the constant predictor); the "share of GD's gain" is
    (score_random - chance) / (score_GD - chance).

(c) The eggshell. The fraction of a d-ball's volume within eps of its surface is 1 - (1 - eps)^d.
    Measured by Monte Carlo with points drawn uniformly in the ball without using the radial law:
    for d <= 8 by rejection from the cube, for every d as the first d coordinates of a uniform
    point on the sphere S^{d+1} (Voelker, Gosmann, Stewart 2017); standard error sqrt(p(1-p)/n).
    And the concentration of distances: for n points uniform in [0, 1]^d the ratio of the largest
    to the smallest pairwise distance falls toward 1; the squared distance has mean d/6 and relative
    standard deviation sqrt(7/5 / d) (a coordinate difference D has E D^2 = 1/6, E D^4 = 1/15).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..figures import Figure, Series
from .base import ExperimentResult, measured, register

TITLE = "n-dimensional space is a lonely place: grid counts, random search vs gradient descent, the eggshell"
CLAIM = ("the guesses needed grow as 10^d; at an equal budget of model evaluations the best random guess falls toward "
         "chance as the weights grow while gradient descent does not; a high-dimensional ball's volume lies in a thin "
         "shell and all pairwise distances become alike")

CHAPTER_NETS = {"2 weights": 2, "3 weights": 3, "the network drawn with 44 weights": 44}


# -- (a) the chapter's count ---------------------------------------------------------------------
def grid_count(d: int, bins: int = 10) -> int:
    """bins^d, exactly (a Python integer)."""
    if not (isinstance(d, int) and d >= 0 and isinstance(bins, int) and bins >= 2):
        raise ValueError(f"need integers d >= 0 and bins >= 2, got d={d!r}, bins={bins!r}")
    return bins ** d


def decimal_digits(n: int) -> int:
    """The number of decimal digits of a non-negative integer, exactly (its string; Python >= 3.11 caps
    int-to-str conversion at 4300 digits by default, lifted here for the call)."""
    import sys

    get, set_ = getattr(sys, "get_int_max_str_digits", None), getattr(sys, "set_int_max_str_digits", None)
    old = get() if get else None
    try:
        if set_:
            set_(0)  # 0 = no limit
        return len(str(n))
    finally:
        if set_:
            set_(old)


def chapter_counts(seed: int = 0) -> dict[str, dict]:
    """{net: {"weights": d, "grid": "10^d", "digits": number of decimal digits of 10^d}} for the chapter's nets."""
    from ..models import build

    mnist = build("mlp", in_dim=784, hidden=[15], out_dim=10, seed=seed)
    nets = dict(CHAPTER_NETS)
    nets["MNIST net 784-15-10 (built, parameters counted)"] = sum(p.numel() for p in mnist.parameters())
    out = {}
    for name, d in nets.items():
        n = grid_count(int(d))
        out[name] = {"weights": int(d), "grid": f"10^{d}", "digits": decimal_digits(n)}
    return out


# -- (b) random search vs gradient descent ---------------------------------------------------------
def _sample_guesses(model: torch.nn.Module, m: int, g: torch.Generator) -> dict[str, torch.Tensor]:
    """m guesses from PyTorch's default init box: each entry U[-1/sqrt(fan_in), 1/sqrt(fan_in)].
    Returns {name: (m, *shape)}."""
    out = {}
    for name, p in model.named_parameters():
        if name.endswith("bias"):
            w = dict(model.named_parameters())[name[: -len("bias")] + "weight"]
            fan_in = w.shape[1]
        else:
            fan_in = p.shape[1] if p.dim() > 1 else 1
        bound = 1.0 / math.sqrt(fan_in)
        out[name] = (torch.rand((m, *p.shape), generator=g, dtype=p.dtype) * 2 - 1) * bound
    return out


def batched_scores(model: torch.nn.Module, params: dict[str, torch.Tensor], X: torch.Tensor, y: torch.Tensor,
                   task: str) -> torch.Tensor:
    """The score of every guess (leading dim of each params tensor): accuracy or R^2. (M,)"""
    from torch.func import functional_call, vmap

    out = vmap(lambda p: functional_call(model, p, (X,)))(params)  # (M, N, C)
    if task == "classification":
        return (out.argmax(-1) == y).to(X.dtype).mean(-1)
    resid = ((out.squeeze(-1) - y.reshape(-1)) ** 2).mean(-1)
    return 1 - resid / y.reshape(-1).var(unbiased=False)


def score_of(model: torch.nn.Module, X: torch.Tensor, y: torch.Tensor, task: str) -> float:
    """The same score for one model (the per-point reference of :func:`batched_scores`)."""
    with torch.no_grad():
        out = model(X)
    if task == "classification":
        return float((out.argmax(-1) == y).double().mean())
    return float(1 - ((out.reshape(-1) - y.reshape(-1)) ** 2).mean() / y.reshape(-1).var(unbiased=False))


def random_search_best(model, X, y, task, *, budget: int, chunk: int, seed: int):
    """Best score of ``budget`` random guesses and the guess itself ({name: tensor})."""
    g = torch.Generator().manual_seed(seed)
    best, best_p = -math.inf, None
    done = 0
    while done < budget:
        m = min(chunk, budget - done)
        P = _sample_guesses(model, m, g)
        s = batched_scores(model, P, X, y, task)
        i = int(torch.argmax(s))
        if float(s[i]) > best:
            best, best_p = float(s[i]), {k: v[i].clone() for k, v in P.items()}
        done += m
    return best, best_p


def _problems(quick: bool, seed: int, hidden: tuple[int, ...] | None, n_train: int):
    from ..data import load
    from ..models import build

    seven = load("seven_points")
    X7, y7 = seven.train.X.double(), seven.train.y.double()
    yield ("seven points, line (w, b)", build("linear", in_dim=1, out_dim=1, seed=seed).double(), X7, y7, X7, y7,
           "regression")
    m1 = load("mnist1d", seed=seed)
    Xtr, ytr = m1.train.X[:n_train], m1.train.y[:n_train]
    Xte, yte = m1.test.X, m1.test.y
    for h in hidden or ((4, 32, 234) if quick else (2, 8, 32, 96, 234)):
        model = build("mlp", in_dim=40, hidden=[h], out_dim=10, activation="tanh", seed=seed)
        yield (f"MNIST-1D, MLP 40-{h}-10", model, Xtr, ytr, Xte, yte, "classification")


def heavy_ball(model: torch.nn.Module, X, y, task: str, *, lr: float, steps: int, beta: float = 0.9):
    """Full-batch gradient descent with heavy-ball momentum (torch.optim.SGD) on a copy of ``model``:
    cross-entropy or mse. A plain loop (losslab.train records a trajectory; its per-step bookkeeping
    cost more than these small nets' steps). Returns (trained copy, "completed" | "diverged")."""
    import copy

    m = copy.deepcopy(model)
    opt = torch.optim.SGD(m.parameters(), lr=lr, momentum=beta)
    f = torch.nn.functional.cross_entropy if task == "classification" else torch.nn.functional.mse_loss
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        loss = f(m(X), y)
        if not torch.isfinite(loss):
            return m, "diverged"
        loss.backward()
        opt.step()
    return m, "completed"


def measure_search_vs_gd(*, quick: bool, seed: int, budget: int, hidden=None, n_train: int, lr: float, chunk: int):
    rows = []
    for label, model, Xtr, ytr, Xte, yte, task in _problems(quick, seed, hidden, n_train):
        P = sum(p.numel() for p in model.parameters())
        if task == "classification":
            chance = float(torch.bincount(ytr).max()) / len(ytr)
            chance_test = float(torch.bincount(yte).max()) / len(yte)
        else:
            chance = chance_test = 0.0
        # memory: a chunk's outputs and hidden activations are chunk * N * width floats
        width = max(p.shape[0] for p in model.parameters())
        ck = max(1, min(chunk, int(4e7 // max(1, len(Xtr) * width))))
        rs, best_p = random_search_best(model, Xtr, ytr, task, budget=budget, chunk=ck, seed=seed + 17 * P)
        rs_test = float(batched_scores(model, {k: v[None] for k, v in best_p.items()}, Xte, yte, task)[0])
        steps = max(1, budget // 3)
        g_lr = lr if task == "classification" else 0.05  # the seven points' bowl: 2/lambda_max ~ 0.069
        trained, status = heavy_ball(model, Xtr, ytr, task, lr=g_lr, steps=steps)
        gd_score, gd_test = score_of(trained, Xtr, ytr, task), score_of(trained, Xte, yte, task)
        rows.append(dict(net=label, params=int(P), task=task, chance=chance, chance_test=chance_test,
                         random_train=rs, random_test=rs_test, gd_train=gd_score, gd_test=gd_test, gd_steps=steps,
                         gd_status=status, share=(rs - chance) / (gd_score - chance) if gd_score > chance else math.nan))
    return rows


# -- (c) the eggshell and the concentration of distances -------------------------------------------
def ball_points(d: int, n: int, g: torch.Generator, *, method: str) -> torch.Tensor:
    """n points uniform in the unit d-ball, (n, d), float64, without the radial law U^(1/d):
    'sphere': the first d coordinates of a uniform point on S^{d+1} (normalised Gaussian in d + 2 dims);
    'rejection': uniform in [-1, 1]^d, keep those inside (only sensible for small d)."""
    if method == "sphere":
        z = torch.randn(n, d + 2, generator=g, dtype=torch.float64)
        return (z / z.norm(dim=1, keepdim=True))[:, :d]
    if method == "rejection":
        acc = math.pi ** (d / 2) / math.gamma(d / 2 + 1) / 2 ** d
        if acc < 1e-3:
            raise ValueError(f"rejection sampling of a {d}-ball keeps {acc:.1e} of the cube; use method='sphere'")
        pts, got = [], 0
        while got < n:
            u = torch.rand(int(1.2 * (n - got) / acc) + 16, d, generator=g, dtype=torch.float64) * 2 - 1
            u = u[(u * u).sum(1) <= 1]
            pts.append(u)
            got += len(u)
        return torch.cat(pts)[:n]
    raise ValueError(f"unknown method {method!r}; valid: 'sphere', 'rejection'")


def shell_fraction(d: int, eps: float, n: int, g: torch.Generator, method: str) -> tuple[float, float]:
    """Monte Carlo fraction of the d-ball's volume with |x| > 1 - eps, and its standard error."""
    r = ball_points(d, n, g, method=method).norm(dim=1)
    p = float((r > 1 - eps).double().mean())
    return p, math.sqrt(max(p * (1 - p), 1.0 / n) / n)  # floor 1/n: a standard error never exactly 0


def distance_concentration(d: int, n: int, g: torch.Generator) -> dict[str, float]:
    """Pairwise distances of n points uniform in [0, 1]^d: max/min ratio, mean squared distance,
    relative std of the squared distance (formulas: d/6 and sqrt(7/5 / d))."""
    x = torch.rand(n, d, generator=g, dtype=torch.float64)
    D2 = torch.cdist(x, x).pow(2)
    iu = torch.triu_indices(n, n, 1)
    v = D2[iu[0], iu[1]].clamp_min(0)
    dist = v.sqrt()
    return {"max_over_min": float(dist.max() / dist.min()), "mean_sq": float(v.mean()),
            "rel_std_sq": float(v.std() / v.mean())}


@register("curse_of_dimensionality", title=TITLE, claim=CLAIM)
def run(*, quick: bool = False, seed: int = 0, budget: int | None = None, hidden: list[int] | None = None,
        n_train: int | None = None, lr: float = 0.1, eps: float = 0.01, chunk: int = 256) -> ExperimentResult:
    """Quick: budget 1,000 evaluations, MLPs 40-{4,32,234}-10 on 500 MNIST-1D examples. Full: budget
    6,000, MLPs 40-{2,8,32,96,234}-10 on 2,000 examples, more Monte Carlo points."""
    budget = int(budget or (1000 if quick else 6000))
    n_train = int(n_train or (500 if quick else 2000))
    if budget < 3:
        raise ValueError(f"budget must be >= 3 model evaluations (one GD step costs ~3), got {budget}")
    if not 0 < eps < 1:
        raise ValueError(f"eps must be in (0, 1), got {eps}")
    counts = chapter_counts(seed)
    rows = measure_search_vs_gd(quick=quick, seed=seed, budget=budget, hidden=hidden, n_train=n_train, lr=lr,
                                chunk=chunk)

    g = torch.Generator().manual_seed(seed)
    n_mc = 10_000 if quick else 100_000
    shell_rows = []
    for d in (1, 2, 3, 5, 8, 20, 100, 1000):
        formula = 1 - (1 - eps) ** d
        for method in (("rejection", "sphere") if d <= 8 else ("sphere",)):
            p, se = shell_fraction(d, eps, n_mc, g, method)
            shell_rows.append(dict(d=d, method=method, mc=p, se=se, formula=formula, z=(p - formula) / se))
    n_pts = 100 if quick else 200
    dist_rows = []
    for d in (2, 10, 100, 1000, 12000):
        c = distance_concentration(d, n_pts, g)
        dist_rows.append(dict(d=d, **c, mean_sq_formula=d / 6, rel_std_formula=math.sqrt(1.4 / d)))

    params = np.array([r["params"] for r in rows], dtype=float)
    rs_tr = np.array([r["random_train"] for r in rows])
    gd_tr = np.array([r["gd_train"] for r in rows])
    share = np.array([r["share"] for r in rows])
    cls = [r for r in rows if r["task"] == "classification"]
    big = cls[-1]
    zs = np.array([r["z"] for r in shell_rows])
    ratios = np.array([r["max_over_min"] for r in dist_rows])
    mnist_key = next(k for k in counts if k.startswith("MNIST"))
    summary = {"budget_model_evaluations": budget, "gd_steps": budget // 3, "n_train_mnist1d": n_train, "eps": eps,
               "grid_10_per_axis_11935": counts[mnist_key]["grid"], "mnist_784_15_10_weights": counts[mnist_key]["weights"]}
    for r in rows:
        k = f"d={r['params']}"
        summary.update({f"{k}: random best train score": r["random_train"], f"{k}: random best test score": r["random_test"],
                        f"{k}: gd train score": r["gd_train"], f"{k}: gd test score": r["gd_test"],
                        f"{k}: share of gd's gain": r["share"]})
    summary["max |z| shell fraction (MC vs formula)"] = float(np.abs(zs).max())
    summary.update({f"max/min distance d={r['d']}": r["max_over_min"] for r in dist_rows})

    checks = {
        f"the chapter's counts are exact powers of ten: 10^d has d + 1 digits for d = "
        f"{', '.join(str(v['weights']) for v in counts.values())}":
            all(v["digits"] == v["weights"] + 1 for v in counts.values()),
        f"the 784-15-10 net has 784*15 + 15*10 + 25 biases = 11,935 weights (counted {counts[mnist_key]['weights']:,})":
            counts[mnist_key]["weights"] == 784 * 15 + 15 * 10 + 25 == 11935,
        f"at 2 weights the best of {budget} random guesses gets >= 90% of GD's R^2 gain (share {share[0]:.2f})":
            bool(share[0] >= 0.9),
        f"the share of GD's gain reached by random search falls as the weights grow "
        f"({', '.join(f'{s:.2f}' for s in share)} at d = {', '.join(str(int(p)) for p in params)})":
            bool(share[0] > share[-1] and share[-1] <= 0.5 * share[0]),
        f"at {big['params']:,} weights the best random guess is within 0.15 of chance on the test set "
        f"({big['random_test']:.3f} vs chance {big['chance_test']:.3f}) while GD beats chance by >= 0.2 "
        f"({big['gd_test']:.3f})":
            bool(big["random_test"] - big["chance_test"] <= 0.15 and big["gd_test"] - big["chance_test"] >= 0.2),
        f"the shell fraction 1-(1-eps)^d matches Monte Carlo within 4 standard errors at every d and method "
        f"(max |z| {np.abs(zs).max():.2f})": bool(np.abs(zs).max() <= 4),
        f"the max/min pairwise distance ratio falls toward 1 ({', '.join(f'{v:.2f}' for v in ratios)} at d = "
        f"{', '.join(str(r['d']) for r in dist_rows)})": bool(np.all(np.diff(ratios) < 0) and ratios[-1] < 1.2),
        # the mean over pairs is a U-statistic of n points: its standard error is <= sigma sqrt(2/n)
        # (Hoeffding 1948: Var U ~ 4 zeta_1 / n, zeta_1 <= sigma^2 / 2), sigma = sqrt(1.4/d) relative
        "the squared distance's mean is d/6 within 4 standard errors (4 sqrt(1.4/d) sqrt(2/n) relative) and its "
        "relative spread is sqrt(1.4/d) within 25% at every d":
            all(abs(r["mean_sq"] / r["mean_sq_formula"] - 1) <= 4 * r["rel_std_formula"] * math.sqrt(2 / n_pts)
                and abs(r["rel_std_sq"] / r["rel_std_formula"] - 1) <= 0.25 for r in dist_rows),
    }
    figs = (
        Figure("search_vs_gd", f"Best of {budget} random guesses vs gradient descent ({budget // 3} steps): train score",
               "lines", "number of weights d", "score (R^2 for the seven points, accuracy for MNIST-1D)",
               (Series("best random guess (train)", params, rs_tr, mode="lines+markers"),
                Series("best random guess (test)", params, np.array([r["random_test"] for r in rows]), mode="lines+markers", dash=True),
                Series("gradient descent (train)", params, gd_tr, mode="lines+markers"),
                Series("gradient descent (test)", params, np.array([r["gd_test"] for r in rows]), mode="lines+markers", dash=True),
                Series("chance", params, np.array([r["chance"] for r in rows]), dash=True)),
               log_x=True,
               caption=("Equal budget of model evaluations: random search scores each guess by one forward pass over "
                        "the training set; a gradient step costs about three. Guesses come from PyTorch's default "
                        "initialisation box. d = 2 is the line through the seven points (score R^2); the rest are "
                        "one-hidden-layer tanh MLPs on MNIST-1D (score accuracy, chance 10%)."),
               table={r["net"]: {k: v for k, v in r.items() if k != "net"} for r in rows}),
        Figure("eggshell", f"Share of a d-ball's volume within eps = {eps:g} of its surface", "lines", "dimension d",
               "fraction of volume in the shell",
               (Series("formula 1 - (1 - eps)^d", np.array([1, 2, 3, 5, 8, 20, 100, 1000], float),
                       1 - (1 - eps) ** np.array([1, 2, 3, 5, 8, 20, 100, 1000], float), dash=True),
                Series("Monte Carlo (first d coords on S^{d+1}), band = 2 s.e.",
                       np.array([r["d"] for r in shell_rows if r["method"] == "sphere"], float),
                       np.array([r["mc"] for r in shell_rows if r["method"] == "sphere"]),
                       np.array([r["mc"] - 2 * r["se"] for r in shell_rows if r["method"] == "sphere"]),
                       np.array([r["mc"] + 2 * r["se"] for r in shell_rows if r["method"] == "sphere"]), mode="markers")),
               log_x=True, caption=f"{n_mc:,} uniform points in the ball per d and method.",
               table={f"d={r['d']} ({r['method']})": {"MC": r["mc"], "s.e.": r["se"], "formula": r["formula"], "z": r["z"]}
                      for r in shell_rows}),
        Figure("distances", f"Pairwise distances of {n_pts} random points in [0, 1]^d: max / min", "lines", "dimension d",
               "max distance / min distance",
               (Series("measured", np.array([r["d"] for r in dist_rows], float), ratios, mode="lines+markers"),),
               log_x=True, log_y=True, hlines=(("1", 1.0),),
               table={f"d={r['d']}": r for r in dist_rows}),
    )
    text = ("Grid counts (exact): " + ", ".join(f"{v['weights']:,} weights -> {v['grid']}" for v in counts.values())
            + f". At {budget} model evaluations the best random guess reaches "
            + ", ".join(f"{r['random_train']:.3f}" for r in rows) + " (train) against gradient descent's "
            + ", ".join(f"{r['gd_train']:.3f}" for r in rows) + f" at d = {', '.join(str(int(p)) for p in params)}: "
            f"the share of GD's gain falls from {share[0]:.2f} to {share[-1]:.2f}. Volume within {eps:g} of the surface: "
            f"{shell_rows[0]['mc']:.3f} at d = 1, {shell_rows[-1]['mc']:.5f} at d = 1000 (formula "
            f"{shell_rows[-1]['formula']:.5f}); the max/min distance ratio falls from {ratios[0]:.1f} to {ratios[-1]:.3f}.")
    arrays = {"params": params, "random_train": rs_tr, "gd_train": gd_tr, "share": share,
              "shell_d": np.array([r["d"] for r in shell_rows], float), "shell_mc": np.array([r["mc"] for r in shell_rows]),
              "shell_se": np.array([r["se"] for r in shell_rows]), "shell_formula": np.array([r["formula"] for r in shell_rows]),
              "dist_d": np.array([r["d"] for r in dist_rows], float), "dist_ratio": ratios}
    settings = {"quick": quick, "seed": seed, "budget": budget, "n_train": n_train, "lr": lr, "eps": eps,
                "optimizer": "full-batch heavy ball (torch.optim.SGD, momentum 0.9)", "monte_carlo_points": n_mc, "distance_points": n_pts,
                "hidden": [r["params"] for r in rows]}
    return measured("curse_of_dimensionality", summary=summary, checks=checks,
                            figures=figs, arrays=arrays, settings=settings, text=text)
