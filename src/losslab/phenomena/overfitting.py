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
   decay, with dropout, and with early stopping on the validation loss; test mse of each.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..figures import Figure, Series
from .base import ExperimentResult, register

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
        weight_decay: float = 1e-2, dropout: float = 0.1, patience: int = 10) -> ExperimentResult:
    """Degree sweep, k-fold CV, selection bias over ``repeats`` datasets, and an MLP with L2 /
    dropout / early stopping.

    Quick: 40 repeats, 1500 MLP steps. Full: 400 repeats, 4000 MLP steps.
    """
    from ..data import load
    from ..data.types import Data

    repeats = repeats or (40 if quick else 400)
    mlp_steps = mlp_steps or (1500 if quick else 4000)
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
    }
    arrays = {"degrees": np.array(degrees), "train_mse": sw["train"], "val_mse": sw["val"], "test_mse": sw["test"],
              "cv_degrees": np.array(cv_degrees), "cv_mse": cv, "selection_val_mse": bias_val,
              "selection_test_mse": bias_test}
    for name, (tr, test) in runs.items():
        key = name.split(" ")[0].lower()
        arrays[f"mlp/{key}/eval_steps"] = tr.eval_steps
        arrays[f"mlp/{key}/train_loss"] = tr.train_eval_loss
        arrays[f"mlp/{key}/val_loss"] = tr.val_loss
    dg = np.array(degrees, dtype=float)
    xs = torch.linspace(0, 1, 200, dtype=torch.float64).unsqueeze(1)
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
    )
    text = (f"Degree sweep on {n_train} points: train mse falls to {sw['train'][i_max]:.1e} at degree {degrees[-1]} while "
            f"test mse rises to {sw['test'][i_max]:.3g}; validation picks degree {d_val}, {k}-fold CV {d_cv} (test mse "
            f"{test_cv:.3g}, best possible {sw['test'].min():.3g}). Over-large MLP test mse: "
            + ", ".join(f"{name} {test:.3g}" for name, (tr, test) in runs.items()) + ".")
    return ExperimentResult(name="overfitting", title=TITLE, claim=CLAIM, summary=summary, checks=checks, figures=figs,
                            arrays=arrays, settings={"quick": quick, "seed": seed, "n_points": n_points, "noise": noise,
                                                     "k": k, "repeats": repeats, "mlp_points": mlp_points,
                                                     "mlp_steps": mlp_steps, "hidden": hidden,
                                                     "weight_decay": weight_decay, "dropout": dropout,
                                                     "patience": patience, "fit": "closed-form OLS (float64)",
                                                     "mlp_optimizer": "adam lr 0.01"},
                            text=text)
