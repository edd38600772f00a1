"""Hyperparameter grid search and k-fold cross-validation over a parameter grid (sequential).

The grid is the product of the values of ``param_grid`` (like scikit-learn's ``ParameterGrid``).
A key that is an argument of :func:`losslab.train` (lr, optimizer, batch_size, steps,
weight_decay, ...) goes to training; any other key goes to the model factory
(``model(**params) -> nn.Module``), e.g. ``hidden`` for an MLP. Scores are the run's summary
metrics (``final_val_loss``, ``final_val_acc``, ``final_train_loss``...); lower is better unless
``maximize=True``. For a distributed sweep write a study spec and use ``losslab run --workers N``.

k-fold CV (Hastie, Tibshirani & Friedman, ESL 2nd ed., Sec. 7.10.1, Eq. 7.48):
CV(theta) = (1/K) sum_k L_k(theta), L_k = mean loss on fold k of the model trained on the other
K-1 folds. Folds come from :func:`losslab.data.kfold` with ``seed``.
"""
from __future__ import annotations

import inspect
import itertools
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from torch import nn

from ..data import Splits, as_data, kfold


def _grid(param_grid: dict[str, list]) -> list[dict]:
    if not isinstance(param_grid, dict) or not param_grid:
        raise ValueError("param_grid must be a non-empty dict {name: [values...]}")
    for k, v in param_grid.items():
        if not isinstance(v, (list, tuple)) or len(v) == 0:
            raise ValueError(f"param_grid[{k!r}] must be a non-empty list of values, got {v!r}")
    keys = list(param_grid)
    return [dict(zip(keys, vals)) for vals in itertools.product(*(param_grid[k] for k in keys))]


def _train_keys() -> set[str]:
    from ..train import train

    return {n for n, p in inspect.signature(train).parameters.items() if p.kind is p.KEYWORD_ONLY}


def _split(params: dict, model) -> tuple[dict, dict]:
    tk = _train_keys()
    train_p = {k: v for k, v in params.items() if k in tk}
    model_p = {k: v for k, v in params.items() if k not in tk}
    if model_p and not callable(model) or (model_p and isinstance(model, nn.Module)):
        raise ValueError(f"parameters {sorted(model_p)} are not arguments of losslab.train; to search model "
                         f"options pass model as a factory, e.g. lambda hidden: build('mlp', hidden=hidden)")
    return train_p, model_p


def _make(model, model_p: dict) -> nn.Module:
    if isinstance(model, nn.Module):
        return model
    if not callable(model):
        raise TypeError(f"model must be an nn.Module or a factory returning one, got {type(model).__name__}")
    m = model(**model_p)
    if not isinstance(m, nn.Module):
        raise TypeError(f"the model factory returned {type(m).__name__}, not an nn.Module")
    return m


@dataclass(frozen=True)
class GridSearch:
    """Scores of every grid point (``scores[i]`` for ``params[i]``), the best one, and each run's summary."""

    params: tuple[dict, ...]
    scores: np.ndarray
    metric: str
    maximize: bool
    best_index: int
    summaries: tuple[dict, ...] = field(repr=False, default=())

    @property
    def best_params(self) -> dict:
        return self.params[self.best_index]

    @property
    def best_score(self) -> float:
        return float(self.scores[self.best_index])

    def table(self) -> list[dict]:
        return [{**p, self.metric: float(s)} for p, s in zip(self.params, self.scores)]


def _best(scores: np.ndarray, maximize: bool) -> int:
    s = np.where(np.isfinite(scores), scores, -np.inf if maximize else np.inf)
    return int(np.argmax(s) if maximize else np.argmin(s))


def grid_search(model: nn.Module | Callable[..., nn.Module], data, param_grid: dict[str, list], *,
                metric: str | None = None, maximize: bool = False, **train_options) -> GridSearch:
    """Train once per grid point and score each run by ``metric`` (default ``final_val_loss`` when
    the data have a validation split, else ``final_train_loss``); a diverged run scores NaN and is
    never best. ``train_options`` are fixed arguments of :func:`losslab.train` (seed, steps, ...)."""
    from ..train import train

    grid = _grid(param_grid)
    if metric is None:
        metric = "final_val_loss" if isinstance(data, Splits) and data.val is not None else "final_train_loss"
    scores, summaries = [], []
    for p in grid:
        tp, mp = _split(p, model)
        traj = train(_make(model, mp), data, **{**train_options, **tp})
        s = traj.summary()
        if metric not in s:
            raise ValueError(f"metric {metric!r} is not in a run's summary; available: {', '.join(sorted(s))}")
        v = s[metric]
        scores.append(float("nan") if v is None or traj.status == "diverged" else float(v))
        summaries.append(s)
    arr = np.asarray(scores, dtype=float)
    return GridSearch(tuple(grid), arr, metric, maximize, _best(arr, maximize), tuple(summaries))


@dataclass(frozen=True)
class CrossValidation:
    """``fold_scores`` (n_params, k): held-out mean loss (or accuracy) of each fold; ``mean``/``std`` over folds."""

    params: tuple[dict, ...]
    fold_scores: np.ndarray
    metric: str
    maximize: bool
    k: int
    seed: int

    @property
    def mean(self) -> np.ndarray:
        return self.fold_scores.mean(axis=1)

    @property
    def std(self) -> np.ndarray:
        return self.fold_scores.std(axis=1, ddof=1) if self.k > 1 else np.zeros(len(self.params))

    @property
    def best_index(self) -> int:
        return _best(self.mean, self.maximize)

    @property
    def best_params(self) -> dict:
        return self.params[self.best_index]

    def table(self) -> list[dict]:
        return [{**p, f"cv_{self.metric}": float(m), "std": float(s)} for p, m, s in zip(self.params, self.mean, self.std)]


_CV_METRICS = {"loss": ("final_val_loss", False), "accuracy": ("final_val_acc", True)}


def cross_validate(model: nn.Module | Callable[..., nn.Module], data, *, k: int = 5, seed: int = 0,
                   param_grid: dict[str, list] | None = None, metric: str = "loss", **train_options) -> CrossValidation:
    """k-fold cross-validation of every grid point (one point when ``param_grid`` is None).

    ``data``: Data / (X, y) / Splits (its train split is folded). Each fold trains a fresh copy
    (same init: the model or the factory's output) on the other k-1 folds and scores the held-out
    fold: ``metric="loss"`` (full-data mean loss, lower is better) or ``"accuracy"``.
    """
    from ..train import train

    if metric not in _CV_METRICS:
        raise ValueError(f"metric must be one of {', '.join(_CV_METRICS)}, got {metric!r}")
    key, maximize = _CV_METRICS[metric]
    d = as_data(data)
    base = data if isinstance(data, Splits) else Splits(d)
    grid = _grid(param_grid) if param_grid else [{}]
    folds = list(kfold(d.n, k, seed=seed))
    out = np.full((len(grid), k), np.nan)
    for i, p in enumerate(grid):
        tp, mp = _split(p, model)
        for j, (tr, va) in enumerate(folds):
            fold = base.replace(train=d.subset(tr), val=d.subset(va), test=None)
            traj = train(_make(model, mp), fold, **{**train_options, **tp, "early_stopping": None})
            v = traj.summary()[key]
            out[i, j] = np.nan if v is None or traj.status == "diverged" else float(v)
    return CrossValidation(tuple(grid), out, metric, maximize, k, seed)
