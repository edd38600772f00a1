"""Sharpness tracking during training, for the edge-of-stability view.

Cohen, Kaur, Li, Kolter & Talwalkar (2021), "Gradient descent on neural networks typically
occurs at the edge of stability": on a quadratic with top curvature lambda, gradient descent
with step size lr diverges iff lambda > 2/lr; heavy-ball momentum beta moves the threshold to
2(1 + beta)/lr, Nesterov momentum to (2 + 2 beta)/(lr (1 + 2 beta)) (their Appendix).

:func:`sharpness_callback` builds the callback the training loop calls as
``fn(step, model, trajectory_so_far) -> dict[str, float]``; it measures lambda_max by Lanczos
every ``every`` steps (warm-started from the previous top eigenvector, which typically halves
the Hessian-vector products) and returns it with the thresholds beside it.
"""
from __future__ import annotations

import warnings
from typing import Any, Callable

import torch
from torch import nn

from ..losses import Loss
from .lanczos import ConvergenceWarning, lanczos
from .operator import BlockSpec, check_int, check_positive, hessian_operator


def stability_thresholds(lr: float, *, momentum: float = 0.0, nesterov: bool = False) -> dict[str, float]:
    """The largest stable curvature for gradient descent at ``lr`` (Cohen et al. 2021)."""
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    if not 0 <= momentum < 1:
        raise ValueError(f"momentum must be in [0, 1), got {momentum}")
    out = {"two_over_lr": 2.0 / lr}
    if momentum > 0:
        if nesterov:
            out["nesterov_threshold"] = (2.0 + 2.0 * momentum) / (lr * (1.0 + 2.0 * momentum))
        else:
            out["two_one_plus_beta_over_lr"] = 2.0 * (1.0 + momentum) / lr
    return out


def _optimizer_settings(optimizer) -> tuple[float, float, bool]:
    g = optimizer.param_groups[0]
    return float(g["lr"]), float(g.get("momentum", 0.0) or 0.0), bool(g.get("nesterov", False))


def sharpness_callback(*, every: int, data, loss: str | Loss, lr: float | None = None, momentum: float = 0.0,
                       nesterov: bool = False, optimizer: torch.optim.Optimizer | None = None, tol: float = 1e-4,
                       max_iter: int | None = None, seed: int = 0, warm_start: bool = True,
                       block: BlockSpec = None, batch_size: int | None = None,
                       dtype: torch.dtype | None = None) -> Callable[[int, nn.Module, Any], dict[str, float]]:
    """A training callback measuring lambda_max every ``every`` steps.

    The returned ``fn(step, model, trajectory_so_far)`` returns ``{}`` when ``step % every``
    is not 0, else ``{"lambda_max", "lambda_max_residual", "hvps", "lambda_max_certified" (1.0 when
    Lanczos converged and its fresh-vector check confirmed the value, else 0.0), "two_over_lr", and
    "two_one_plus_beta_over_lr" (heavy ball) or "nesterov_threshold"}``. The first uncertified
    measurement warns (ConvergenceWarning) once; later ones are only recorded. The learning rate and
    momentum come from ``optimizer.param_groups[0]`` at call time when ``optimizer`` is given
    (so schedules are followed), else from ``lr`` / ``momentum``. ``fn.every`` holds ``every``.
    The model is never mutated. Lanczos seeds are ``seed + step``.
    """
    if not (isinstance(every, int) and every >= 1):
        raise ValueError(f"every must be a positive integer, got {every!r}")
    if optimizer is None and lr is None:
        raise ValueError("sharpness_callback needs lr= (and momentum= for heavy ball) or optimizer=")
    if optimizer is None:
        stability_thresholds(lr, momentum=momentum, nesterov=nesterov)  # validate now
    check_positive("tol", tol)
    if max_iter is not None:
        check_int("max_iter", max_iter)
    if isinstance(seed, bool) or not isinstance(seed, int):  # seed + step: an int, not a Generator
        raise TypeError(f"seed must be an int (Lanczos at step s uses seed + s), got {seed!r} ({type(seed).__name__})")
    state: dict = {"v": None, "warned": False}

    def fn(step: int, model: nn.Module, trajectory_so_far: Any = None) -> dict[str, float]:
        if step % every != 0:
            return {}
        op = hessian_operator(model, data, loss, block=block, batch_size=batch_size, dtype=dtype,
                             warn_mode=False)  # train()/the tracker record the measured mode
        v0 = state["v"] if (warm_start and state["v"] is not None and state["v"].shape[0] == op.size) else None
        eig = lanczos(op, 1, tol=tol, max_iter=max_iter, seed=seed + step, v0=v0, warn=False)
        state["v"] = eig.eigenvectors[:, 0].detach().clone()
        if not eig.report.converged and not state["warned"]:
            # once per callback, not once per step: every measurement's status is in lambda_max_certified
            state["warned"] = True
            warnings.warn(f"sharpness at step {step}: lanczos: {eig.report.message} (each measurement records "
                          f"lambda_max_certified = 1 or 0; later ones are not warned about again)",
                          ConvergenceWarning, stacklevel=2)
        if optimizer is not None:
            cur_lr, beta, nest = _optimizer_settings(optimizer)
        else:
            cur_lr, beta, nest = float(lr), float(momentum), bool(nesterov)
        out = {"lambda_max": float(eig.eigenvalues[0]), "lambda_max_residual": float(eig.report.residuals[0]),
               "hvps": float(eig.report.n_products), "lambda_max_certified": float(eig.report.converged)}
        out.update(stability_thresholds(cur_lr, momentum=beta, nesterov=nest))
        return out

    fn.every = every  # type: ignore[attr-defined]
    return fn
