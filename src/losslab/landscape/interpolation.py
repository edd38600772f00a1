"""The line between two models and the loss barrier on it.

theta(alpha) = (1 - alpha) theta_a + alpha theta_b, alpha in R (values outside [0, 1]
extrapolate beyond the models; Goodfellow et al. 2015, "Qualitatively characterizing neural
network optimization problems", Sec. 3).

Barrier (the definition used here, as Frankle et al. 2020, "Linear Mode Connectivity and the
Lottery Ticket Hypothesis", Def. of instability, with loss in place of error):
    B = max_{alpha in [0, 1]} L(theta(alpha)) - (L(theta_a) + L(theta_b)) / 2,
the max taken over the evaluated alphas in [0, 1] (which always include 0 and 1, so B >= 0;
B = 0 means no barrier on the sampled line). Batch-norm buffers come from model_a in eval mode;
pass bn="recompute" to recompute statistics at every alpha (recommended for BN nets).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ..losses import get_loss
from .directions import line_through
from .evaluate import Evaluator

BARRIER_DEFINITION = "max_{alpha in [0,1]} L((1-alpha) theta_a + alpha theta_b) - (L(theta_a) + L(theta_b)) / 2"


@dataclass(frozen=True)
class Barrier:
    """Barrier ``height`` (definition in ``definition``), where the max is (``alpha_max``,
    ``loss_max``), and the endpoint losses."""

    height: float
    alpha_max: float
    loss_max: float
    loss_a: float
    loss_b: float
    definition: str = BARRIER_DEFINITION

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Interpolation:
    """Loss (and accuracy) along the line at ``alphas``; the barrier over alphas in [0, 1]."""

    alphas: np.ndarray
    loss: np.ndarray
    accuracy: np.ndarray | None
    barrier: Barrier
    settings: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"alphas": self.alphas.tolist(), "loss": self.loss.tolist(),
                "accuracy": None if self.accuracy is None else self.accuracy.tolist(),
                "barrier": self.barrier.to_dict(), "settings": self.settings}


def _barrier_from(alphas: np.ndarray, loss: np.ndarray) -> Barrier:
    inside = (alphas >= 0) & (alphas <= 1)
    la, lb = float(loss[alphas == 0][0]), float(loss[alphas == 1][0])
    i = np.flatnonzero(inside)[int(np.argmax(loss[inside]))]
    return Barrier(float(loss[i] - (la + lb) / 2), float(alphas[i]), float(loss[i]), la, lb)


def interpolate(model_a: nn.Module, model_b, data, *, loss, alphas=None, bn: str = "eval",
                batch_size: int | None = None, dtype: torch.dtype | None = None, device=None,
                memory_budget: int | None = None, output=None, batch_keys=None) -> Interpolation:
    """Loss along theta(alpha) = (1 - alpha) theta_a + alpha theta_b at ``alphas`` (default
    41 points on [-0.5, 1.5]); alpha = 0 and 1 are always added for the barrier.
    ``model_b`` may be a model, a parameter dict or a flat vector. Neither model is modified.
    ``output``/``batch_keys``/a callable ``loss``: as in :func:`losslab.landscape.surface`;
    ``dtype`` None follows model_a's parameters."""
    if not isinstance(model_a, nn.Module):
        raise TypeError(f"model_a must be an nn.Module (its architecture is used), got {type(model_a).__name__}")
    a = np.linspace(-0.5, 1.5, 41) if alphas is None else np.asarray(alphas, dtype=np.float64).reshape(-1)
    if a.size == 0 or not np.all(np.isfinite(a)):
        raise ValueError("alphas must be a non-empty array of finite numbers")
    a = np.unique(np.concatenate([a, [0.0, 1.0]]))
    lossobj = get_loss(loss)
    from ..validate import check_model_data, warn_train_mode

    caller_mode = warn_train_mode(model_a, measured="eval", where="interpolate")
    check_model_data(model_a, data, lossobj, output=output, batch_keys=batch_keys)
    d = line_through(model_a, model_b)
    ev = Evaluator(model_a, data, lossobj, d.base, d.vectors, batch_size=batch_size, bn=bn, dtype=dtype,
                   device=device, memory_budget=memory_budget, output=output, batch_keys=batch_keys)
    l, acc = ev.run_chunked(torch.as_tensor(a).unsqueeze(1))
    L = l.double().numpy()
    return Interpolation(a, L, None if acc is None else acc.double().numpy(), _barrier_from(a, L),
                         {"loss": lossobj.name, "bn": bn, "dtype": str(ev.dtype).replace("torch.", ""),
                          "mode": "eval", "caller_mode": caller_mode})


def barrier(model_a: nn.Module, model_b, data, *, loss, resolution: int = 21, **options) -> Barrier:
    """The linear-interpolation loss barrier between two models (definition in the module
    docstring) from ``resolution`` evenly spaced alphas on [0, 1]."""
    if resolution < 2:
        raise ValueError(f"resolution must be >= 2 (it includes both endpoints), got {resolution}")
    return interpolate(model_a, model_b, data, loss=loss, alphas=np.linspace(0, 1, resolution), **options).barrier
