"""Experiment ``overfitting``: too complex a model overfits; validation, cross-validation and
regularization catch it.

Four measurements on few noisy points of y = sin(2 pi x) (dataset ``polynomial``):

1. Degree sweep. Polynomials of degree d = 0 .. n_train - 1 fitted by closed-form least
   squares (``losslab.closed_form.ols`` on the features x^1..x^d of
   ``models.build("polynomial")`` plus a bias, float64; gradient descent on a high-degree
   Vandermonde design is hopelessly ill-conditioned). Training error falls monotonically
   (nested models) to ~0 at d = n_train - 1 (interpolation); validation and test error
   are U-shaped (Bishop 2006, PRML Sec. 1.1, Fig. 1.5).
2. k-fold cross-validation (``losslab.data.kfold``) on train + validation picks a degree; its
   test error is compared with the best test error any degree reaches (the oracle).
3. The validation/test discipline: over many datasets, the validation error of the degree that
   validation selected underestimates that model's test error (the minimum of noisy estimates
   is biased low), which is why the error is reported on a test set never used for choosing.
4. An over-large MLP (1-64-64-1, tanh, Adam) on the same kind of data: plain, with L2 weight
   decay, with dropout, and with early stopping on the validation loss; test mse of each. The same
   MLP trained with input noise is reported beside them (not checked).
5. Ridge (L2) on the interpolating polynomial (degree n_train - 1, all of [1, x, .., x^d] penalised):
   minimize (1/N) ||Phi a - y||^2 + lambda ||a||^2, a = (Phi^T Phi + N lambda I)^-1 Phi^T y, over a log
   grid of lambda; train/val/test mse and ||a|| vs lambda. Checks the two ridge theorems (||a|| falls,
   train mse rises with lambda), that losslab training with weight_decay = 2 lambda reaches the closed
   form, and that the lambda validation picks beats the unregularised interpolant on test.
6. Input noise is Tikhonov regularization (Bishop 1995, Neural Computation 7(1):108-116): for a linear
   model, E_eps[(w.(x+eps) + b - y)^2] = (w.x + b - y)^2 + sigma^2 ||w||^2 exactly, so gd on inputs with
   fresh N(0, sigma^2 I) noise converges (in mean) to ridge with lambda = sigma^2 on w, b unpenalised.
   Checked by Monte Carlo and by the Polyak average of gd iterates with ``train(..., input_noise=sigma)``.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..figures import Figure, Series
from .base import ExperimentResult, measured, register

TITLE = "Overfitting: training error falls, validation error turns; validation, CV and regularization catch it"
CLAIM = ("too complex a model overfits (train error -> 0, test error up), and validation, cross-validation "
         "and regularization (L2, dropout, early stopping) catch it")


def poly_features(x: torch.Tensor, degree: int) -> torch.Tensor:
    """x^1..x^degree (N, degree) in float64, from the ``polynomial`` model's feature map (x^0 dropped:
    ``ols`` adds the bias)."""
    from ..models import build

    m = build("polynomial", degree=degree)
    return m.features(x.to(torch.float64))[:, 1:]


def fit_predict(train, X_eval: list[torch.Tensor], degree: int) -> list[torch.Tensor]:
    """Least-squares polynomial of ``degree`` on ``train`` (Data); predictions at each X in X_eval."""
    from ..closed_form import ols

    fit = ols(poly_features(train.X, degree), train.y.double(), bias=True)
    return [fit.predict(poly_features(X, degree)) for X in X_eval]


def _mse(pred: torch.Tensor, y: torch.Tensor) -> float:
    return float(((pred - y.double()) ** 2).mean())


def degree_sweep(splits, degrees) -> dict[str, np.ndarray]:
    tr, va, te = splits.train, splits.val, splits.test
    out = {"train": [], "val": [], "test": []}
    for d in degrees:
        p_tr, p_va, p_te = fit_predict(tr, [tr.X, va.X, te.X], d)
        out["train"].append(_mse(p_tr, tr.y))
        out["val"].append(_mse(p_va, va.y))
        out["test"].append(_mse(p_te, te.y))
    return {k: np.array(v) for k, v in out.items()}


def cv_errors(data, degrees, *, k: int, seed: int) -> np.ndarray:
    """k-fold cross-validation mse per degree (mean over folds of the held-out fold's mse)."""
    from ..data import kfold

    folds = list(kfold(data, k, seed=seed))
    errs = []
    for d in degrees:
        e = []
        for tr_idx, va_idx in folds:
            (p,) = fit_predict(data.subset(tr_idx), [data.X[va_idx]], d)
            e.append(_mse(p, data.y[va_idx]))
        errs.append(np.mean(e))
    return np.array(errs)


# --- 5. L2 (ridge) on the interpolating polynomial ----------------------------------------------
def ridge(X, y, lam: float, *, intercept: bool = False) -> tuple[torch.Tensor, float | None]:
    """Closed-form ridge regression in float64:

        minimize_{w, b} (1/N) sum_n (w . x_n + b - y_n)^2 + lam ||w||^2

    whose minimiser is w = (X^T X + N lam I)^-1 X^T y (X, y centred when ``intercept``; then
    b = mean(y) - mean(x) . w and b is NOT penalised; without ``intercept`` b is None). The
    scaling matches ``train(..., loss="mse", weight_decay=2 * lam)``, whose objective is
    mse + (wd / 2) ||theta||^2. Computed through the SVD X = U S V^T, w = V diag(s / (s^2 + N lam)) U^T y,
    which is the same formula without squaring the condition number of X (a degree-8
    Vandermonde matrix on [0, 1] has cond ~ 1e8). At lam = 0 this is the minimum-norm least-squares
    solution (singular values below 1e-15 s_max dropped).

    X (N, P), y (N,) or (N, 1); returns w (P,) and b.
    """
    X = torch.as_tensor(X).detach().to(torch.float64)
    y = torch.as_tensor(y).detach().to(torch.float64)
    if X.dim() != 2:
        raise ValueError(f"ridge expects X of shape (N, P), got {tuple(X.shape)}")
    y = y.reshape(-1) if (y.dim() == 2 and y.shape[1] == 1) else y
    if y.dim() != 1 or y.shape[0] != X.shape[0]:
        raise ValueError(f"ridge expects y of shape (N,) or (N, 1) with N = {X.shape[0]}, got {tuple(y.shape)}")
    if not (isinstance(lam, (int, float)) and math.isfinite(lam) and lam >= 0):
        raise ValueError(f"lam must be a finite number >= 0, got {lam!r}")
    if not (torch.isfinite(X).all() and torch.isfinite(y).all()):
        raise ValueError("ridge got NaN/inf in X or y")
    n = X.shape[0]
    xm, ym = (X.mean(0), y.mean()) if intercept else (None, None)
    Xc, yc = (X - xm, y - ym) if intercept else (X, y)
    U, s, Vt = torch.linalg.svd(Xc, full_matrices=False)  # (N, r), (r,), (r, P)
    if lam == 0:
        keep = s > 1e-15 * s.max() if s.numel() else s > 0
        filt = torch.where(keep, 1.0 / torch.where(keep, s, torch.ones_like(s)), torch.zeros_like(s))
    else:
        filt = s / (s ** 2 + n * lam)
    w = Vt.T @ (filt * (U.T @ yc))
    b = float(ym - xm @ w) if intercept else None
    return w, b


def ridge_sweep(splits, degree: int, lams) -> dict[str, np.ndarray]:
    """Ridge on the full polynomial features [1, x, ..., x^degree] of the ``polynomial`` model (every
    coefficient penalised, a_0 included, as weight decay on that model does) for each lambda:
    train/val/test mse, ||a|| and the coefficients (L, degree + 1)."""
    from ..models import build

    feats = build("polynomial", degree=degree).features
    F = {k: feats(getattr(splits, k).X.to(torch.float64)) for k in ("train", "val", "test")}
    Y = {k: getattr(splits, k).y.to(torch.float64).reshape(-1) for k in ("train", "val", "test")}
    out = {"train": [], "val": [], "test": [], "norm": [], "coef": []}
    for lam in lams:
        a, _ = ridge(F["train"], Y["train"], float(lam))
        for k in ("train", "val", "test"):
            out[k].append(float(((F[k] @ a - Y[k]) ** 2).mean()))
        out["norm"].append(float(torch.linalg.vector_norm(a)))
        out["coef"].append(a.numpy())
    return {k: np.array(v) for k, v in out.items()}


def ridge_by_training(train_data, degree: int, lam: float, *, seed: int = 0):
    """losslab training of the ``polynomial`` model (float64) with weight_decay = 2 lam (see ``ridge``):
    full-batch gd with torch's weight_decay for lam >= 0.5 (well conditioned: kappa <= ~4), else
    L-BFGS (strong Wolfe) with the penalty added to the loss and its stopping tolerances tightened,
    150 iterations. Returns (coefficients (degree + 1,), Trajectory)."""
    from ..models import build
    from ..train import train

    model = build("polynomial", degree=degree, dtype=torch.float64, seed=seed)
    X = train_data.X.to(torch.float64)
    y = train_data.y.to(torch.float64)
    if lam >= 0.5:
        F = model.features(X)
        # lr = 1 / L with L = lambda_max((2/N) F^T F) + 2 lam, the Hessian of mse + lam ||a||^2
        L = float(2 * torch.linalg.eigvalsh(F.T @ F / F.shape[0]).max()) + 2 * lam
        tr = train(model, (X, y), optimizer="gd", lr=1.0 / L, steps=400, weight_decay=2 * lam, seed=seed,
                   dtype=torch.float64, eval_every=400, snapshot_every=400, max_snapshots=2)
    else:
        tr = train(model, (X, y), optimizer="lbfgs", lr=1.0, steps=150, weight_decay=2 * lam, seed=seed,
                   dtype=torch.float64, eval_every=150, snapshot_every=150, max_snapshots=2,
                   optimizer_options={"tolerance_grad": 1e-15, "tolerance_change": 1e-20})
    return tr.model.linear.weight.detach().reshape(-1).clone(), tr


# --- 6. input noise = Tikhonov (Bishop 1995) ----------------------------------------------------
def noise_penalised_mse(X, y, w, b: float, sigma: float) -> float:
    """(1/N) sum_n (w . x_n + b - y_n)^2 + sigma^2 ||w||^2: the exact expectation of the mse of a
    linear model whose inputs get eps ~ N(0, sigma^2 I) (Bishop 1995, Neural Comput. 7(1), for a
    linear model the expansion has no higher-order terms)."""
    X, y, w = (torch.as_tensor(t).detach().to(torch.float64) for t in (X, y, w))
    r = X @ w.reshape(-1) + b - y.reshape(-1)
    return float((r ** 2).mean() + sigma ** 2 * (w.reshape(-1) @ w.reshape(-1)))


def noisy_mse_monte_carlo(X, y, w, b: float, sigma: float, *, draws: int, seed: int) -> tuple[float, float]:
    """Monte Carlo estimate of E_eps[(1/N) sum_n (w . (x_n + eps_n) + b - y_n)^2], eps_n ~ N(0, sigma^2 I)
    drawn independently per example and draw; returns (mean, standard error) over ``draws``."""
    if draws < 2:
        raise ValueError(f"draws must be >= 2 for a standard error, got {draws}")
    X, y, w = (torch.as_tensor(t).detach().to(torch.float64) for t in (X, y, w))
    g = torch.Generator().manual_seed(int(seed))
    eps = sigma * torch.randn((draws, *X.shape), generator=g, dtype=torch.float64)  # (M, N, D)
    L = (((X + eps) @ w.reshape(-1) + b - y.reshape(-1)) ** 2).mean(1)  # (M,)
    return float(L.mean()), float(L.std() / math.sqrt(draws))


def _input_noise_linear(*, seed: int, sigma: float, steps: int, lr: float, n: int, dim: int, draws: int,
                        n_batches: int = 20):
    """Identity check by Monte Carlo, and gd with input noise on a linear model vs ridge(lambda = sigma^2)."""
    from ..data import load
    from ..models import build
    from ..train import train

    sp = load("linear", seed=seed, n=n, dim=dim, noise=0.5)
    X, y = sp.train.X.to(torch.float64), sp.train.y.to(torch.float64)
    w_r, b_r = ridge(X, y, sigma ** 2, intercept=True)
    w_o, b_o = ridge(X, y, 0.0, intercept=True)
    # identity at three parameter points (OLS, ridge, a random one) over a sigma grid
    g = torch.Generator().manual_seed(int(seed) + 7)
    w_rand = torch.randn(dim, generator=g, dtype=torch.float64)
    sigmas = np.linspace(0.0, 1.0, 6)
    ident = {}
    for pname, (w, b) in {"OLS": (w_o, b_o), "ridge": (w_r, b_r), "random": (w_rand, 0.3)}.items():
        mc, se, ex = [], [], []
        for j, s in enumerate(sigmas):
            m, e = noisy_mse_monte_carlo(X, y, w, b, float(s), draws=draws, seed=seed + 100 + j)
            mc.append(m)
            se.append(e)
            ex.append(noise_penalised_mse(X, y, w, b, float(s)))
        ident[pname] = (np.array(mc), np.array(se), np.array(ex))
    # at sigma = 0 both sides are the plain mse (the MC spread is rounding, ~1e-19): compare to rounding there
    zs = [abs(m - x) / e if s > 0 else (0.0 if abs(m - x) <= 1e-12 * max(1.0, abs(x)) else math.inf)
          for mc, se, ex in ident.values() for s, m, e, x in zip(sigmas, mc, se, ex)]
    # gd on the noisy loss: each step's gradient is an unbiased estimate of the gradient of the
    # expected loss, which is affine in theta, so the mean of the stationary distribution of
    # constant-lr gd is exactly its minimiser (Bach & Moulines 2013); the Polyak average of the
    # iterates after a burn-in of steps/4 estimates it, with a batch-means standard error.
    model = build("linear", in_dim=dim, out_dim=1, dtype=torch.float64, seed=seed)
    every = max(1, steps // 400)
    tr = train(model, (X, y), optimizer="gd", lr=lr, steps=steps, input_noise=sigma, seed=seed, dtype=torch.float64,
               eval_every=max(1, steps // 50), snapshot_every=every, max_snapshots=500)
    st, sn = tr.snapshot_steps, tr.snapshots  # (K,), (K, dim + 1): weight then bias
    tail = sn[st >= steps // 4]
    avg = tail.mean(0)
    bm = np.array([c.mean(0) for c in np.array_split(tail, n_batches)])
    se = bm.std(0, ddof=1) / math.sqrt(n_batches)
    ref = np.r_[w_r.numpy(), b_r]
    ols = np.r_[w_o.numpy(), b_o]
    run_avg = np.cumsum(tail, 0) / np.arange(1, len(tail) + 1)[:, None]
    return {"splits": sp, "sigmas": sigmas, "identity": ident, "identity_max_z": float(max(zs)),
            "w_ridge": ref, "w_ols": ols, "avg": avg, "se": se, "z": (avg - ref) / se, "traj": tr,
            "snap_steps": st, "dist_iter_ridge": np.linalg.norm(sn - ref, axis=1),
            "tail_steps": st[st >= steps // 4], "dist_avg_ridge": np.linalg.norm(run_avg - ref, axis=1),
            "dist_avg_ols": np.linalg.norm(run_avg - ols, axis=1)}


def _mlp_runs(splits, *, steps: int, seed: int, hidden: int, weight_decay: float, dropout: float, patience: int):
    from ..losses import get_loss
    from ..models import build
    from ..train import full_loss, train

    mse = get_loss("mse")
    variants = {"plain": dict(), f"L2 (weight decay {weight_decay:g})": dict(weight_decay=weight_decay),
                f"dropout {dropout:g}": dict(dropout=dropout),
                f"early stopping (patience {patience} evals)": dict(early_stopping=patience)}
    out = {}
    for name, v in variants.items():
        model = build("mlp", in_dim=1, hidden=[hidden, hidden], out_dim=1, activation="tanh",
                      dropout=v.get("dropout", 0.0), seed=seed)
        tr = train(model, splits, optimizer="adam", lr=0.01, steps=steps, seed=seed, eval_every=10,
                   weight_decay=v.get("weight_decay", 0.0), early_stopping=v.get("early_stopping"),
                   snapshot_every=steps, max_snapshots=2)
        test = full_loss(tr.model, splits.test, mse)[0]
        out[name] = (tr, test)
    return out


@register("overfitting", title=TITLE, claim=CLAIM)
def run(*, quick: bool = False, seed: int = 0, n_points: int = 12, noise: float = 0.25, k: int = 4,
        repeats: int | None = None, mlp_points: int = 30, mlp_steps: int | None = None, hidden: int = 64,
        weight_decay: float = 1e-2, dropout: float = 0.1, patience: int = 10, input_noise: float = 0.7,
        noise_steps: int | None = None, mlp_input_noise: float = 0.05) -> ExperimentResult:
    """Degree sweep, k-fold CV, selection bias over ``repeats`` datasets, and an MLP with L2 /
    dropout / early stopping.

    Plus (seed 002's "l2 or other kinds of regularization, dropout, input noise"): the ridge path of the
    interpolating polynomial (closed form vs weight-decay training), and input noise as Tikhonov
    regularization on a linear model (Bishop 1995) and on the MLP.

    Quick: 40 repeats, 1500 MLP steps, 3000 input-noise gd steps. Full: 400 repeats, 4000 MLP steps,
    12000 input-noise gd steps.
    """
    from ..data import load
    from ..data.types import Data

    repeats = repeats or (40 if quick else 400)
    mlp_steps = mlp_steps or (1500 if quick else 4000)
    noise_steps = noise_steps or (3000 if quick else 12000)
    if not (math.isfinite(input_noise) and input_noise > 0 and math.isfinite(mlp_input_noise) and mlp_input_noise > 0):
        raise ValueError(f"input_noise and mlp_input_noise must be positive, got {input_noise}, {mlp_input_noise}")
    splits = load("polynomial", seed=seed, n=n_points, noise=noise)
    n_train = splits.train.n
    degrees = list(range(0, n_train))  # up to interpolation (d + 1 = n_train coefficients)

    # 1. degree sweep
    sw = degree_sweep(splits, degrees)
    d_val = int(degrees[int(np.argmin(sw["val"]))])
    d_oracle = int(degrees[int(np.argmin(sw["test"]))])
    # 2. k-fold CV on train + val (every non-test point)
    both = Data(torch.cat([splits.train.X, splits.val.X]), torch.cat([splits.train.y, splits.val.y]))
    cv_degrees = [d for d in degrees if d + 1 <= both.n - math.ceil(both.n / k)]  # each fold's fit stays determined
    cv = cv_errors(both, cv_degrees, k=k, seed=seed)
    d_cv = int(cv_degrees[int(np.argmin(cv))])
    (p_cv,) = fit_predict(both, [splits.test.X], d_cv)
    test_cv = _mse(p_cv, splits.test.y)
    # 3. selection bias over repeats
    bias_val, bias_test = [], []
    for r in range(repeats):
        s_r = load("polynomial", seed=seed + 1000 + r, n=n_points, noise=noise)
        sw_r = degree_sweep(s_r, degrees)
        i = int(np.argmin(sw_r["val"]))
        bias_val.append(sw_r["val"][i])
        bias_test.append(sw_r["test"][i])
    bias_val, bias_test = np.array(bias_val), np.array(bias_test)
    # sign test (the gaps are heavy-tailed: a 3-point validation set sometimes picks a wild degree):
    # under "no bias" each dataset is above the diagonal with probability 1/2.
    above = int((bias_test > bias_val).sum())
    z_sign = float((above - repeats / 2) / math.sqrt(repeats / 4))
    # 4. MLP regularization
    ms = load("polynomial", seed=seed, n=mlp_points, noise=noise)
    runs = _mlp_runs(ms, steps=mlp_steps, seed=seed, hidden=hidden, weight_decay=weight_decay, dropout=dropout,
                     patience=patience)
    plain_test = runs["plain"][1]
    plain_train = runs["plain"][0].final_loss
    # 4b. the same MLP trained with input noise (reported, not checked: seed 002 lists it as a regularizer)
    from ..losses import get_loss
    from ..models import build
    from ..train import full_loss, train

    tr_noise = train(build("mlp", in_dim=1, hidden=[hidden, hidden], out_dim=1, activation="tanh", seed=seed), ms,
                     optimizer="adam", lr=0.01, steps=mlp_steps, seed=seed, eval_every=10, input_noise=mlp_input_noise,
                     snapshot_every=mlp_steps, max_snapshots=2)
    noise_mlp_test = full_loss(tr_noise.model, ms.test, get_loss("mse"))[0]

    # 5. ridge path of the interpolating polynomial (degree n_train - 1)
    d_int = degrees[-1]
    lams = 10.0 ** np.arange(-18.0, 1.01, 0.5)  # from ~interpolation (s_min^2 / N ~ 1e-15) to heavy shrinkage
    rs = ridge_sweep(splits, d_int, lams)
    i_best = int(np.argmin(rs["val"]))
    rs0 = ridge_sweep(splits, d_int, [0.0])  # lambda = 0: the interpolant itself (square, invertible system)
    lam_best = float(lams[i_best])
    agree_lams = (1.0, 1e-1, 1e-2, 1e-3, 1e-4)
    agree = {}
    for lam in agree_lams:
        a_tr, tr_r = ridge_by_training(splits.train, d_int, lam, seed=seed)
        a_cf = torch.as_tensor(rs["coef"][int(np.argmin(np.abs(np.log10(lams) - math.log10(lam))))])
        agree[lam] = (float(torch.linalg.vector_norm(a_tr - a_cf) / torch.linalg.vector_norm(a_cf)),
                      float(torch.linalg.vector_norm(a_tr)), tr_r.final_loss, tr_r.settings["optimizer"])
    agree_max = max(v[0] for v in agree.values())
    norm_rise = float(np.max(np.diff(rs["norm"]) / rs["norm"][:-1]))  # relative; theorem: <= 0
    train_fall = float(-np.min(np.diff(rs["train"])))  # absolute; theorem: <= 0
    # 6. input noise as Tikhonov regularization on a linear model
    nz = _input_noise_linear(seed=seed, sigma=input_noise, steps=noise_steps, lr=0.1, n=100, dim=3,
                             draws=2000 if quick else 8000)
    gap_ro = float(np.linalg.norm(nz["w_ridge"] - nz["w_ols"]))
    dist_r = float(np.linalg.norm(nz["avg"] - nz["w_ridge"]))
    dist_o = float(np.linalg.norm(nz["avg"] - nz["w_ols"]))
    z_max = float(np.max(np.abs(nz["z"])))

    train_diffs = np.diff(sw["train"])
    i_max = len(degrees) - 1
    summary = {"n_train": n_train, "n_val": splits.val.n, "n_test": splits.test.n, "noise_variance": noise ** 2,
               "degree_by_validation": d_val, "degree_by_cv": d_cv, "degree_oracle": d_oracle,
               "test_mse_by_validation": float(sw["test"][degrees.index(d_val)]), "test_mse_by_cv": test_cv,
               "test_mse_oracle": float(sw["test"].min()), "test_mse_max_degree": float(sw["test"][i_max]),
               "train_mse_max_degree": float(sw["train"][i_max]),
               "selection_mean_val_mse": float(bias_val.mean()), "selection_mean_test_mse": float(bias_test.mean()),
               "selection_fraction_test_above_val": above / repeats,
               "selection_sign_test_z": z_sign, "selection_median_val_mse": float(np.median(bias_val)),
               "selection_median_test_mse": float(np.median(bias_test)), "mlp_plain_train_mse": plain_train, "mlp_plain_test_mse": plain_test}
    for name, (tr, test) in runs.items():
        summary[f"mlp_test_mse[{name}]"] = test
        summary[f"mlp_train_mse[{name}]"] = tr.final_loss
    summary.update({
        "mlp_input_noise_sigma": mlp_input_noise, "mlp_input_noise_test_mse": noise_mlp_test,
        "mlp_input_noise_train_mse": tr_noise.final_loss,
        "ridge_degree": d_int, "ridge_best_lambda": lam_best, "ridge_val_mse_best": float(rs["val"][i_best]),
        "ridge_test_mse_best": float(rs["test"][i_best]), "ridge_train_mse_best": float(rs["train"][i_best]),
        "ridge_test_mse_unregularised": float(sw["test"][i_max]),
        "ridge_test_mse_best_over_lambdas": float(rs["test"].min()),
        "ridge_norm_unregularised": float(rs0["norm"][0]), "ridge_test_mse_lambda_0": float(rs0["test"][0]),
        "ridge_norm_best": float(rs["norm"][i_best]), "ridge_norm_max_relative_rise": norm_rise,
        "ridge_train_mse_max_fall": train_fall, "ridge_training_max_rel_err": agree_max,
        **{f"ridge_training_rel_err[lambda={lam:g}]": v[0] for lam, v in agree.items()},
        "noise_sigma": input_noise, "noise_ridge_lambda": input_noise ** 2,
        "noise_identity_max_abs_z": nz["identity_max_z"], "noise_gd_max_abs_z": z_max,
        "noise_gd_dist_to_ridge": dist_r, "noise_gd_dist_to_ols": dist_o, "noise_ridge_to_ols": gap_ro,
        "noise_gd_steps": noise_steps,
    })
    checks = {
        f"training error never rises with degree (largest rise {max(train_diffs.max(), 0):.2e}) and reaches "
        f"~0 at degree {degrees[-1]} ({sw['train'][i_max]:.2e} <= 1e-8)":
            bool(train_diffs.max() <= 1e-10 and sw["train"][i_max] <= 1e-8),
        f"the interpolating degree overfits: test mse {sw['test'][i_max]:.3g} >= 10x that of the degree validation "
        f"picks ({d_val}: {sw['test'][degrees.index(d_val)]:.3g})":
            bool(sw["test"][i_max] >= 10 * sw["test"][degrees.index(d_val)]),
        f"{k}-fold CV picks degree {d_cv} with test mse {test_cv:.3g} <= 2x the best any degree reaches "
        f"({sw['test'].min():.3g} at degree {d_oracle})": bool(test_cv <= 2 * sw["test"].min()),
        f"validation error of the selected degree underestimates its test error: in {above} of {repeats} datasets "
        f"(median {np.median(bias_val):.3g} vs {np.median(bias_test):.3g}; sign test z = {z_sign:.1f} >= 2)":
            bool(z_sign >= 2),
        f"the over-large MLP overfits: train mse {plain_train:.3g} < noise variance {noise ** 2:.3g} < test mse "
        f"{plain_test:.3g}": bool(plain_train < noise ** 2 < plain_test),
        **{f"{name} lowers the MLP's test mse ({test:.3g} < plain {plain_test:.3g})": bool(test < plain_test)
           for name, (tr, test) in runs.items() if name != "plain"},
        # ridge theorems (SVD: ||a_lam||^2 = sum s^2 c^2 / (s^2 + N lam)^2 falls, the residual
        # sum (N lam / (s^2 + N lam))^2 c^2 rises); tolerances are float64 rounding on coefficients up to ~1e6
        f"ridge (degree {d_int}): ||a|| never rises with lambda over {len(lams)} lambdas {lams[0]:g}..{lams[-1]:g} (largest relative "
        f"rise {norm_rise:.1e} <= 1e-9)": bool(norm_rise <= 1e-9),
        f"ridge: training mse never falls with lambda (largest fall {max(train_fall, 0):.1e} <= 1e-12)":
            bool(train_fall <= 1e-12),
        f"weight-decay training (wd = 2 lambda; gd for lambda >= 0.5, L-BFGS below) reaches the closed-form ridge "
        f"coefficients at lambda = {', '.join(f'{l:g}' for l in agree_lams)} (largest relative error "
        f"{agree_max:.1e} <= 1e-5)": bool(agree_max <= 1e-5),
        f"ridge at the lambda validation picks ({lam_best:.3g}) has lower test mse than the unregularised "
        f"interpolant ({rs['test'][i_best]:.3g} < {sw['test'][i_max]:.3g})": bool(rs["test"][i_best] < sw["test"][i_max]),
        f"input noise identity E[mse(x + eps)] = mse + sigma^2 ||w||^2 (Bishop 1995) holds by Monte Carlo at 3 "
        f"parameter points x {len(nz['sigmas'])} sigmas (max |z| {nz['identity_max_z']:.2f} <= 4)":
            bool(nz["identity_max_z"] <= 4),
        f"gd with input noise sigma = {input_noise:g} on a linear model converges to ridge with lambda = sigma^2 = "
        f"{input_noise ** 2:.3g} on w only (Polyak average: max |z| {z_max:.2f} <= 4 per coordinate, and distance "
        f"{dist_r:.2g} <= 0.1 x the ridge-OLS gap {gap_ro:.2g}; distance to OLS {dist_o:.2g})":
            bool(z_max <= 4 and dist_r <= 0.1 * gap_ro),
    }
    arrays = {"degrees": np.array(degrees), "train_mse": sw["train"], "val_mse": sw["val"], "test_mse": sw["test"],
              "cv_degrees": np.array(cv_degrees), "cv_mse": cv, "selection_val_mse": bias_val,
              "selection_test_mse": bias_test}
    for name, (tr, test) in runs.items():
        key = name.split(" ")[0].lower()
        arrays[f"mlp/{key}/eval_steps"] = tr.eval_steps
        arrays[f"mlp/{key}/train_loss"] = tr.train_eval_loss
        arrays[f"mlp/{key}/val_loss"] = tr.val_loss
    arrays["mlp/input_noise/eval_steps"] = tr_noise.eval_steps
    arrays["mlp/input_noise/train_loss"] = tr_noise.train_eval_loss
    arrays["mlp/input_noise/val_loss"] = tr_noise.val_loss
    arrays.update({"ridge/lambdas": lams, "ridge/train_mse": rs["train"], "ridge/val_mse": rs["val"],
                   "ridge/test_mse": rs["test"], "ridge/coef_norm": rs["norm"], "ridge/coef": rs["coef"],
                   "ridge/training_lambdas": np.array(agree_lams),
                   "ridge/training_rel_err": np.array([agree[l][0] for l in agree_lams]),
                   "ridge/training_coef_norm": np.array([agree[l][1] for l in agree_lams]),
                   "ridge/training_train_mse": np.array([agree[l][2] for l in agree_lams]),
                   "noise/sigmas": nz["sigmas"], "noise/theta_ridge": nz["w_ridge"], "noise/theta_ols": nz["w_ols"],
                   "noise/theta_gd_average": nz["avg"], "noise/theta_gd_se": nz["se"],
                   "noise/snapshot_steps": nz["snap_steps"], "noise/dist_iterate_ridge": nz["dist_iter_ridge"],
                   "noise/tail_steps": nz["tail_steps"], "noise/dist_average_ridge": nz["dist_avg_ridge"],
                   "noise/dist_average_ols": nz["dist_avg_ols"]})
    for pname, (mc, se_, ex) in nz["identity"].items():
        arrays[f"noise/identity/{pname}/monte_carlo"] = mc
        arrays[f"noise/identity/{pname}/standard_error"] = se_
        arrays[f"noise/identity/{pname}/formula"] = ex
    dg = np.array(degrees, dtype=float)
    ridge_feats = build("polynomial", degree=d_int).features
    xs = torch.linspace(0, 1, 200, dtype=torch.float64).unsqueeze(1)
    fit0 = ridge_feats(xs) @ ridge(ridge_feats(splits.train.X.double()), splits.train.y, 0.0)[0]  # the interpolant
    curves = [Series(f"degree {d}", xs.squeeze(1).numpy(), fit_predict(splits.train, [xs], d)[0].squeeze(1).numpy())
              for d in sorted({1, d_val, degrees[-1]})]
    figs = (
        Figure(key="degree_sweep", title="Train, validation, test and k-fold CV error vs polynomial degree", kind="lines",
               x_label="degree", y_label="mse", log_y=True,
               series=(Series("train", dg, sw["train"] + 1e-16, mode="lines+markers"),
                       Series("validation", dg, sw["val"], mode="lines+markers"),
                       Series("test", dg, sw["test"], mode="lines+markers"),
                       Series(f"{k}-fold CV (train + val)", np.array(cv_degrees, float), cv, mode="lines+markers")),
               hlines=(("noise variance", noise ** 2),),
               caption=(f"{n_train} training, {splits.val.n} validation and {splits.test.n} test points of sin(2 pi x) + "
                        f"N(0, {noise}^2); closed-form least squares per degree. Validation picks degree {d_val}, "
                        f"{k}-fold CV picks {d_cv}, the test set's best is {d_oracle}."),
               table={"degree by validation": d_val, "degree by CV": d_cv, "oracle degree": d_oracle}),
        Figure(key="fits", title="Fitted polynomials on the training points", kind="lines", x_label="x", y_label="y",
               series=(Series("training points", splits.train.X.squeeze(1).numpy(), splits.train.y.squeeze(1).numpy(),
                              mode="markers"),
                       Series("sin(2 pi x)", xs.squeeze(1).numpy(), np.sin(2 * np.pi * xs.squeeze(1).numpy()), dash=True),
                       *curves),
               caption=f"Low degree underfits, degree {d_val} follows the curve, degree {degrees[-1]} interpolates the noise."),
        Figure(key="selection_bias", title="Validation error of the selected degree vs its test error, per dataset",
               kind="scatter", x_label="validation mse (selected degree)", y_label="test mse (same model)",
               series=(Series("datasets", bias_val, bias_test, mode="markers"),),
               log_x=True, log_y=True,
               caption=(f"{repeats} datasets; {above} points lie above the diagonal (validation flattered the chosen "
                        f"model). Median {np.median(bias_val):.3g} (val) vs {np.median(bias_test):.3g} (test); sign "
                        f"test z = {z_sign:.1f}.")),
        Figure(key="mlp_regularization", title="Over-large MLP: validation loss with and without regularization",
               kind="lines", x_label="step", y_label="validation mse", log_y=True,
               series=tuple(Series(f"{name} (test {test:.3g})", tr.eval_steps.astype(float), tr.val_loss)
                            for name, (tr, test) in runs.items()),
               caption=(f"MLP 1-{hidden}-{hidden}-1 (tanh), Adam lr 0.01, {mlp_steps} steps on {ms.train.n} points; test "
                        f"mse on {ms.test.n} fresh points in the legend."),
               table={name: {"train mse": tr.final_loss, "test mse": test, "status": tr.status}
                      for name, (tr, test) in runs.items()}),
        Figure(key="mlp_input_noise", title="Over-large MLP with and without input noise (validation loss)",
               kind="lines", x_label="step", y_label="validation mse", log_y=True,
               series=(Series(f"plain (test {plain_test:.3g})", runs["plain"][0].eval_steps.astype(float),
                              runs["plain"][0].val_loss),
                       Series(f"input noise sigma {mlp_input_noise:g} (test {noise_mlp_test:.3g})",
                              tr_noise.eval_steps.astype(float), tr_noise.val_loss)),
               caption=(f"Same MLP, data and Adam settings as above; each step adds N(0, {mlp_input_noise:g}^2) to the "
                        f"inputs. Reported, not checked: test mse {noise_mlp_test:.3g} vs plain {plain_test:.3g}."),
               table={"plain": {"train mse": plain_train, "test mse": plain_test},
                      f"input noise {mlp_input_noise:g}": {"train mse": tr_noise.final_loss, "test mse": noise_mlp_test}}),
        Figure(key="ridge_path", title=f"Ridge on the degree-{d_int} (interpolating) polynomial: error vs lambda",
               kind="lines", x_label="lambda", y_label="mse", log_x=True, log_y=True,
               series=(Series("train", lams, rs["train"] + 1e-16, mode="lines+markers"),
                       Series("validation", lams, rs["val"], mode="lines+markers"),
                       Series("test", lams, rs["test"], mode="lines+markers"),
                       Series("weight-decay training (its train mse)", np.array(agree_lams),
                              np.array([agree[l][2] for l in agree_lams]), mode="markers")),
               hlines=(("noise variance", noise ** 2), ("test mse at lambda = 0", float(rs0["test"][0]))),
               caption=(f"Objective (1/N) sum (a . phi(x_n) - y_n)^2 + lambda ||a||^2 on the {n_train} training points, "
                        f"phi = (1, x, ..., x^{d_int}), solved in closed form. Validation picks lambda = {lam_best:.3g} "
                        f"(test mse {rs['test'][i_best]:.3g}; the unregularised interpolant's is {rs0['test'][0]:.3g}). "
                        f"Markers: the training mse of the models that weight-decay training reached (on the train curve)."),
               table={"lambda by validation": lam_best, "test mse there": float(rs["test"][i_best]),
                      "test mse, lambda = 0": float(rs0["test"][0]),
                      **{f"training rel. error, lambda={l:g} ({agree[l][3]})": agree[l][0] for l in agree_lams}}),
        Figure(key="ridge_norm", title="Ridge coefficient norm vs lambda (a theorem: it can only fall)", kind="lines",
               x_label="lambda", y_label="||a||", log_x=True, log_y=True,
               series=(Series("closed form", lams, rs["norm"], mode="lines+markers"),
                       Series("weight-decay training", np.array(agree_lams),
                              np.array([agree[l][1] for l in agree_lams]), mode="markers")),
               hlines=(("lambda = 0 (interpolant)", float(rs0["norm"][0])),),
               caption=(f"||a|| falls from {rs0['norm'][0]:.3g} (interpolant) to {rs['norm'][-1]:.3g} at lambda = "
                        f"{lams[-1]:g}; the wild swings of the interpolant are its huge coefficients.")),
        Figure(key="ridge_fits", title="Ridge fits of the interpolating polynomial", kind="lines", x_label="x",
               y_label="y",
               series=(Series("training points", splits.train.X.squeeze(1).numpy(), splits.train.y.squeeze(1).numpy(),
                              mode="markers"),
                       Series("sin(2 pi x)", xs.squeeze(1).numpy(), np.sin(2 * np.pi * xs.squeeze(1).numpy()), dash=True),
                       *(Series(f"lambda = {lab}", xs.squeeze(1).numpy(), (ridge_feats(xs) @ c).numpy())
                         for lab, c in (("0", ridge(ridge_feats(splits.train.X.double()), splits.train.y, 0.0)[0]),
                                        (f"{lam_best:.3g} (validation)", torch.as_tensor(rs["coef"][i_best])),
                                        (f"{lams[-1]:g}", torch.as_tensor(rs["coef"][-1]))))),
               caption=(f"lambda = 0 interpolates the noise and swings to {float(fit0.abs().max()):.3g} between and beyond "
                        f"the points (where its test error comes from); the validation-chosen lambda follows the curve; a "
                        f"large lambda shrinks every coefficient (a_0 too) toward 0.")),
        Figure(key="input_noise_identity", title="Input noise on a linear model: Monte Carlo noisy mse vs mse + "
               "sigma^2 ||w||^2", kind="lines", x_label="sigma", y_label="expected mse with noisy inputs",
               series=tuple(sr for pname, (mc, se_, ex) in nz["identity"].items() for sr in (
                   Series(f"{pname}: Monte Carlo (+-2 SE)", nz["sigmas"], mc, band_lo=mc - 2 * se_, band_hi=mc + 2 * se_,
                          mode="markers"),
                   Series(f"{pname}: mse + sigma^2 ||w||^2", nz["sigmas"], ex, dash=True))),
               caption=(f"linear dataset, {nz['splits'].train.n} training points in {nz['w_ridge'].size - 1} dims; "
                        f"{2000 if quick else 8000} noise draws per point; max |z| {nz['identity_max_z']:.2f}.")),
        Figure(key="input_noise_gd", title=f"gd with input noise sigma = {input_noise:g} converges to ridge "
               f"(lambda = sigma^2), not to OLS", kind="lines", x_label="step", y_label="distance", log_y=True,
               series=(Series("iterate to ridge(sigma^2)", nz["snap_steps"].astype(float), nz["dist_iter_ridge"]),
                       Series("running average (after burn-in) to ridge(sigma^2)", nz["tail_steps"].astype(float),
                              nz["dist_avg_ridge"]),
                       Series("running average to OLS", nz["tail_steps"].astype(float), nz["dist_avg_ols"])),
               caption=(f"Full-batch gd, lr 0.1, {noise_steps} steps, fresh N(0, {input_noise:g}^2) input noise each "
                        f"step; Polyak average of the iterates after step {noise_steps // 4}. Distance to ridge "
                        f"{dist_r:.2g}, to OLS {dist_o:.2g}."),
               table={"theta (w, b) gd average": nz["avg"].tolist(), "ridge(sigma^2)": nz["w_ridge"].tolist(),
                      "OLS": nz["w_ols"].tolist(), "batch-means SE": nz["se"].tolist()}),
    )
    text = (f"Degree sweep on {n_train} points: train mse falls to {sw['train'][i_max]:.1e} at degree {degrees[-1]} while "
            f"test mse rises to {sw['test'][i_max]:.3g}; validation picks degree {d_val}, {k}-fold CV {d_cv} (test mse "
            f"{test_cv:.3g}, best possible {sw['test'].min():.3g}). Over-large MLP test mse: "
            + ", ".join(f"{name} {test:.3g}" for name, (tr, test) in runs.items())
            + f", input noise {mlp_input_noise:g} {noise_mlp_test:.3g}. Ridge on the degree-{d_int} polynomial: "
            f"validation picks lambda = {lam_best:.3g}, test mse {rs['test'][i_best]:.3g} vs {rs0['test'][0]:.3g} "
            f"unregularised; ||a|| falls and train mse rises with lambda as theory says; weight-decay training matches "
            f"the closed form to {agree_max:.1e}. Input noise sigma = {input_noise:g} on a linear model: E[noisy mse] = "
            f"mse + sigma^2 ||w||^2 by Monte Carlo (max |z| {nz['identity_max_z']:.2f}), and noisy gd lands "
            f"{dist_r:.2g} from ridge(sigma^2) vs {dist_o:.2g} from OLS.")
    return measured("overfitting", summary=summary, checks=checks, figures=figs,
                    arrays=arrays, settings={"quick": quick, "seed": seed, "n_points": n_points, "noise": noise,
                                             "k": k, "repeats": repeats, "mlp_points": mlp_points,
                                             "mlp_steps": mlp_steps, "hidden": hidden,
                                             "weight_decay": weight_decay, "dropout": dropout,
                                             "patience": patience, "fit": "closed-form OLS (float64)",
                                             "mlp_optimizer": "adam lr 0.01", "input_noise": input_noise,
                                             "noise_steps": noise_steps, "mlp_input_noise": mlp_input_noise,
                                             "ridge_lambdas": "10^(-18..1 step 0.5)",
                                             "ridge_objective": "(1/N)||Phi a - y||^2 + lambda ||a||^2; "
                                                                "training weight_decay = 2 lambda"},
                    text=text)
