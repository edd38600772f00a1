"""Boundary checks shared by the public functions (train, surface, hessian, gradcheck): data
that does not fit the model or the loss, mismatched rows and NaN/inf become one clear
ValueError here instead of a traceback from deep inside torch, or a silent all-NaN result."""
from __future__ import annotations

import math
import warnings

from collections.abc import Iterator, Mapping

import numpy as np
import torch
from torch import nn

from .adapters import check_batch_keys, check_output_spec, select_output, split_batch
from .data.types import Data, Splits
from .losses import Loss, get_loss
from .params import call, eval_mode


def _is_array(a) -> bool:
    """A numpy array (or anything numpy-like that is not a tensor)."""
    return isinstance(a, np.ndarray) or (not isinstance(a, torch.Tensor) and hasattr(a, "__array__")
                                         and hasattr(a, "shape") and hasattr(a, "dtype"))


def as_tensor_pair(X, y) -> tuple[torch.Tensor, torch.Tensor]:
    """(X, y) as tensors: numpy arrays are converted with ``torch.as_tensor`` (float64 arrays stay
    float64 until the evaluation casts them to its dtype; integer labels become int64)."""
    if _is_array(X):
        X = torch.as_tensor(np.asarray(X))
    if _is_array(y):
        y = torch.as_tensor(np.asarray(y))
        if not y.is_floating_point() and y.dtype != torch.bool:
            y = y.long()
    return X, y


def as_tensors(data):
    """``data`` with a pair of numpy arrays ``(X, y)`` turned into a pair of tensors; anything
    else is returned as it is."""
    if isinstance(data, (tuple, list)) and len(data) == 2 and any(_is_array(t) for t in data) \
            and all(_is_array(t) or isinstance(t, torch.Tensor) for t in data):
        return as_tensor_pair(*data)
    return data


def check_has_params(model: nn.Module) -> None:
    if next(model.parameters(), None) is None:
        raise ValueError(f"the model has no parameters ({type(model).__name__}): a loss landscape or a Hessian "
                         f"is taken with respect to the parameters; pass a model with at least one nn.Parameter")


def first_batch(data, batch_keys=None) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The first (X, y) of ``data`` without consuming it: tensors, Data, Splits, or a re-iterable
    of batches (a DataLoader; dict batches read with ``batch_keys``). None for one-shot iterators
    (they are checked as they are read)."""
    batch_keys = check_batch_keys(batch_keys)
    data = as_tensors(data)
    if isinstance(data, Mapping):
        data = tuple(split_batch(data, batch_keys))
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
    if isinstance(batch, (tuple, list)) and len(batch) >= 2 or isinstance(batch, Mapping) or batch_keys is not None:
        X, y = as_tensor_pair(*split_batch(batch, batch_keys))
        if isinstance(X, torch.Tensor) and isinstance(y, torch.Tensor):
            return X, y
    return None


def _all_finite(t: torch.Tensor) -> bool:
    # a NaN/inf entry makes the sum NaN/inf, so a finite sum proves every entry finite (one reduction,
    # several times cheaper than isfinite().all() on a CPU); only a non-finite (or overflowing) sum
    # takes the exact check
    return math.isfinite(float(t.sum())) or bool(torch.isfinite(t).all())


def check_finite(X: torch.Tensor, y: torch.Tensor, *, what: str = "data") -> None:
    if X.is_floating_point() and not _all_finite(X):
        raise ValueError(f"{what}: the inputs X contain NaN or inf; clean or impute them first")
    if y.is_floating_point() and not _all_finite(y):
        raise ValueError(f"{what}: the targets y contain NaN or inf; clean or impute them first")


def check_fits(model: nn.Module, X: torch.Tensor, y: torch.Tensor, loss: str | Loss, *, params=None,
               rows: int = 8, output=None) -> None:
    """Evaluate the model and the loss on the first ``rows`` examples (no grad, eval mode, the
    caller's module untouched) and turn a shape or label mismatch into a clear ValueError.
    ``output`` selects the loss's tensor from what the forward returns (:func:`select_output`)."""
    loss_fn = get_loss(loss)
    output = check_output_spec(output)
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
            msg = str(e).rstrip('.')
            if not X.is_floating_point() and p0 is not None and p0.is_floating_point() and (
                    "dtype" in msg or "scalar type" in msg or "Long" in msg or "Int" in msg):
                raise ValueError(f"the model cannot be evaluated on inputs of dtype "
                                 f"{str(X.dtype).replace('torch.', '')}: {msg}. The inputs X are integers but the "
                                 f"model's parameters are {str(p0.dtype).replace('torch.', '')}: convert them with "
                                 f"X.float() (integer inputs suit only models that start with an embedding)."
                                 ) from None
            raise ValueError(f"the model cannot be evaluated on inputs of shape {tuple(X.shape)}: "
                             f"{msg}. Check the model's in_dim (or sequence shape) against the data."
                             ) from None
        out = select_output(out, output)
        try:
            per = loss_fn.per_example(out, ys)
        except (IndexError, RuntimeError, ValueError) as e:
            full = (X.shape[0], *out.shape[1:])  # the output shape for all rows (only the first were run)
            raise ValueError(f"loss {loss_fn.name!r} cannot be evaluated on the model output of shape "
                             f"{full} with targets of shape {tuple(y.shape)} "
                             f"({str(y.dtype).replace('torch.', '')}): {str(e).rstrip('.')}. Pick a loss that fits the "
                             f"model's output (cross_entropy needs (N, C) logits and labels 0..C-1; mse needs outputs "
                             f"shaped like y).") from None
        if per.dim() > 1 or (per.dim() == 1 and per.shape[0] != out.shape[0] and per.numel() != 1):
            raise ValueError(f"loss {loss_fn.name!r} returned shape {tuple(per.shape)} for {out.shape[0]} examples; a "
                             f"loss returns per-example losses (N,) or one mean (a scalar)")


def check_model_data(model: nn.Module, data, loss: str | Loss, *, what: str = "data", output=None,
                     batch_keys=None) -> None:
    """The model has parameters, and both checks on the first batch of ``data`` (all of it for
    tensors); tensors with no rows are refused here."""
    check_has_params(model)
    fb = first_batch(data, batch_keys)
    if fb is None:
        return
    X, y = fb
    if X.dim() == 0 or X.shape[0] == 0:
        raise ValueError(f"{what} has no examples (X has shape {tuple(X.shape)}, y {tuple(y.shape)}); "
                         f"pass at least one (x, y) row")
    if isinstance(data, (Data, Splits)) or (isinstance(data, (tuple, list)) and len(data) == 2):
        check_finite(X, y, what=what)
    check_fits(model, X, y, loss, output=output)


#: modules whose forward differs between train and eval mode
_MODE_DEPENDENT = (nn.modules.dropout._DropoutNd, nn.modules.batchnorm._BatchNorm, nn.modules.instancenorm._InstanceNorm,
                   nn.MultiheadAttention, nn.RNNBase)


def mode_dependent(model: nn.Module) -> list[str]:
    """Names of the submodules that behave differently in train mode (dropout, batch/instance norm
    with running statistics, attention or recurrent layers with dropout)."""
    out = []
    for n, m in model.named_modules():
        if isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0:
            out.append(n)
        elif isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.modules.instancenorm._InstanceNorm)) \
                and m.track_running_stats:
            out.append(n)
        elif isinstance(m, (nn.MultiheadAttention, nn.RNNBase)) and getattr(m, "dropout", 0) > 0:
            out.append(n)
    return out


def warn_train_mode(model: nn.Module, *, measured: str, where: str) -> str:
    """The caller's mode ("train" or "eval"); when the model is in train mode and has mode-dependent
    modules, but losslab measures it in ``measured`` mode, one warning says so."""
    caller = "train" if model.training else "eval"
    if caller == "train" and measured == "eval":
        mods = mode_dependent(model)
        if mods:
            shown = ", ".join(mods[:4]) + (", ..." if len(mods) > 4 else "")
            warnings.warn(f"{where}: the model is in train mode, but losslab measures it in eval mode (dropout off, "
                          f"batch norm with its running statistics; modules {shown}); the mode is recorded in the "
                          f"result's settings. Call model.eval() first to silence this, or see the function's "
                          f"train/bn options to measure in train mode", UserWarning, stacklevel=3)
    return caller
