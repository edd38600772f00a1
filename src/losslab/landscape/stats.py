"""Statistics over random directions: many 1-D curves through one model, with mean and spread.

A single random 1-D slice is one sample of a random quantity; ``random_curves`` draws ``n``
directions of one kind (from one generator seeded with ``seed``) and evaluates all curves
in one batched pass (the n directions are stacked as an n-dimensional "plane" and each
curve's points use one-hot coordinates alpha * e_i).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ..losses import get_loss
from .directions import random_directions, _generator
from .evaluate import Evaluator
from .surface import grid_axes


@dataclass(frozen=True)
class CurveStats:
    """``curves`` (n, R) loss along each direction at ``alphas`` (R,); per-alpha ``mean``,
    ``std`` (ddof=1), ``lo``/``hi`` (the ``band`` quantiles), ``min``, ``max``; ``accuracy``
    (n, R) or None; ``direction_norms`` (n,)."""

    alphas: np.ndarray
    curves: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    min: np.ndarray
    max: np.ndarray
    accuracy: np.ndarray | None
    direction_norms: np.ndarray
    settings: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in self.__dict__.items()}
        return d


def random_curves(model: nn.Module, data, *, loss, n: int = 10, kind: str = "filter", resolution: int = 51,
                  span=1.0, seed: int | torch.Generator = 0, include_biases: bool = False,
                  band: tuple[float, float] = (0.1, 0.9), bn: str = "eval", batch_size: int | None = None,
                  dtype: torch.dtype | None = None, device=None, memory_budget: int | None = None, output=None,
                  batch_keys=None) -> CurveStats:
    """``n`` random 1-D loss curves L(theta + alpha d_i) of direction ``kind`` with their mean
    and spread bands (quantiles ``band``). Curve i uses the i-th draw from the seeded generator.
    ``output``/``batch_keys``/a callable ``loss``: as in :func:`losslab.landscape.surface`;
    ``dtype`` None follows the model's parameters."""
    if n < 2:
        raise ValueError(f"n must be >= 2 to have a spread, got {n}")
    if not (0 <= band[0] <= band[1] <= 1):
        raise ValueError(f"band must be quantiles 0 <= lo <= hi <= 1, got {band}")
    lossobj = get_loss(loss)
    from ..validate import check_model_data, warn_train_mode

    caller_mode = warn_train_mode(model, measured="eval", where="random_curves")
    check_model_data(model, data, lossobj, output=output, batch_keys=batch_keys)
    (alphas,) = grid_axes(resolution, span, 1)
    gen = _generator(seed)
    ds = [random_directions(model, kind=kind, k=1, seed=gen, include_biases=include_biases) for _ in range(n)]
    V = torch.cat([d.vectors for d in ds])  # (n, P)
    R = len(alphas)
    coords = torch.zeros(n * R, n, dtype=torch.float64)
    for i in range(n):
        coords[i * R:(i + 1) * R, i] = torch.as_tensor(alphas)
    ev = Evaluator(model, data, lossobj, ds[0].base, V, batch_size=batch_size, bn=bn, dtype=dtype, device=device,
                   memory_budget=memory_budget, output=output, batch_keys=batch_keys)
    l, a = ev.run_chunked(coords)
    C = l.double().numpy().reshape(n, R)
    A = None if a is None else a.double().numpy().reshape(n, R)
    return CurveStats(alphas, C, C.mean(0), C.std(0, ddof=1), np.quantile(C, band[0], axis=0),
                      np.quantile(C, band[1], axis=0), C.min(0), C.max(0), A,
                      V.double().norm(dim=1).cpu().numpy(),
                      {"loss": lossobj.name, "kind": kind, "n": n, "seed": seed if isinstance(seed, int) else None,
                       "include_biases": include_biases, "band": list(band), "bn": bn,
                       "dtype": str(ev.dtype).replace("torch.", ""), "mode": "eval", "caller_mode": caller_mode})
