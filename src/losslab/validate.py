"""Boundary checks shared by the public functions (train, surface, hessian, gradcheck): data
that does not fit the model or the loss, mismatched rows and NaN/inf become one clear
ValueError here instead of a traceback from deep inside torch, or a silent all-NaN result."""
from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from .data.types import Data, Splits
from .losses import Loss, get_loss
from .params import call, eval_mode


def first_batch(data) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The first (X, y) of ``data`` without consuming it: tensors, Data, Splits, or a re-iterable
    of batches (a DataLoader). None for one-shot iterators (they are checked as they are read)."""
    if isinstance(data, Splits):
        data = data.train
    if isinstance(data, Data):
        return data.X, data.y
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data):
        X, y = data
        if X.dim() == 0 or y.dim() == 0 or X.shape[0] != y.shape[0]:
            raise ValueError(f"X and y must have the same number of rows: X has shape {tuple(X.shape)}, "
                             f"y has shape {tuple(y.shape)}")
        return X, y
    if isinstance(data, Iterator):
        return None
    try:
        batch = next(iter(data))
    except (TypeError, StopIteration):
        return None
    if isinstance(batch, (tuple, list)) and len(batch) >= 2:
        return batch[0], batch[1]
    return None


def check_finite(X: torch.Tensor, y: torch.Tensor, *, what: str = "data") -> None:
    if X.is_floating_point() and not bool(torch.isfinite(X).all()):
        raise ValueError(f"{what}: the inputs X contain NaN or inf; clean or impute them first")
    if y.is_floating_point() and not bool(torch.isfinite(y).all()):
        raise ValueError(f"{what}: the targets y contain NaN or inf; clean or impute them first")


def check_fits(model: nn.Module, X: torch.Tensor, y: torch.Tensor, loss: str | Loss, *, params=None,
               rows: int = 8) -> None:
    """Evaluate the model and the loss on the first ``rows`` examples (no grad, eval mode, the
    caller's module untouched) and turn a shape or label mismatch into a clear ValueError."""
    loss_fn = get_loss(loss)
    Xs, ys = X[:rows], y[:rows]
    p0 = next(model.parameters(), None)
    if p0 is not None and Xs.is_floating_point():
        Xs = Xs.to(device=p0.device, dtype=p0.dtype)
    if p0 is not None:
        ys = ys.to(device=p0.device, dtype=p0.dtype) if ys.is_floating_point() else ys.to(p0.device)
    with torch.no_grad(), eval_mode(model):
        try:
            out = call(model, params, Xs) if params is not None else model(Xs)
        except (IndexError, RuntimeError, ValueError, TypeError) as e:
            raise ValueError(f"the model cannot be evaluated on inputs of shape {tuple(X.shape)}: "
                             f"{str(e).rstrip('.')}. Check the model's in_dim (or sequence shape) against the data."
                             ) from None
        try:
            loss_fn(out, ys)
        except (IndexError, RuntimeError, ValueError) as e:
            full = (X.shape[0], *out.shape[1:])  # the output shape for all rows (only the first were run)
            raise ValueError(f"loss {loss_fn.name!r} cannot be evaluated on the model output of shape "
                             f"{full} with targets of shape {tuple(y.shape)} "
                             f"({str(y.dtype).replace('torch.', '')}): {str(e).rstrip('.')}. Pick a loss that fits the "
                             f"model's output (cross_entropy needs (N, C) logits and labels 0..C-1; mse needs outputs "
                             f"shaped like y).") from None


def check_model_data(model: nn.Module, data, loss: str | Loss, *, what: str = "data") -> None:
    """Both checks on the first batch of ``data`` (all of it for tensors)."""
    fb = first_batch(data)
    if fb is None:
        return
    X, y = fb
    if isinstance(data, (Data, Splits)) or (isinstance(data, (tuple, list)) and len(data) == 2):
        check_finite(X, y, what=what)
    check_fits(model, X, y, loss)
