"""Gradient check: backprop gradient of the full-data loss vs central finite differences.

For every trainable tensor W of the model and every checked entry i,

    g_fd[i] = (L(theta + eps e_i) - L(theta - eps e_i)) / (2 eps)        (central difference)

is compared with the backprop gradient g_bp[i] = dL/dtheta_i. Everything runs in float64 on a
deep copy of the model, so the caller's model (parameters, buffers, modes, dtype) is never
touched. Per tensor the reported errors are

    max_abs_err = max_i |g_bp[i] - g_fd[i]|
    max_rel_err = max_i |g_bp[i] - g_fd[i]| / max(s_W, scale_floor * max_V s_V),
    s_W = max(max_i |g_bp[i]|, max_i |g_fd[i]|)   (the tensor's gradient scale)

(the max-norm form, per tensor: relative to the tensor's gradient scale, so entries whose
gradient is ~0 do not blow up the ratio). The floor ``scale_floor`` (1e-3) times the largest
tensor scale keeps tensors whose gradient is analytically zero but not exactly zero in
floating point (e.g. the bias of a linear layer followed by batch norm in train mode: the
finite difference is pure round-off, ~1e-10) from reporting a relative error of ~1; a
tensor's error is then measured against 1e-3 of the model's largest gradient. A tensor the
loss does not depend on at all has both gradients exactly 0 and error 0. The check passes
when every tensor's ``max_rel_err <= tol``.

Error budget (why tol = 1e-6 at eps = 1e-6 in float64): the central difference has
truncation error eps^2 |L'''| / 6 ~ 1e-12 and round-off ~ u |L| / eps ~ 1e-16 / 1e-6 = 1e-10
(u = float64 unit round-off) relative to |L|; for gradients of size ~1e-3 or larger the
relative error is then below ~1e-7. A wrong backward is typically off by O(1) relatively.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from .adapters import check_batch_keys, check_output_spec, select_output
from .data import as_data
from .kernels import second_order
from .losses import Loss, get_loss
from .params import call, trainable_params
from .rng import seeded
from .validate import check_fits

TINY = 1e-300


@dataclass(frozen=True)
class TensorCheck:
    """The check of one parameter tensor."""

    name: str
    shape: tuple[int, ...]
    n_checked: int  # entries compared
    n_total: int  # entries in the tensor
    max_abs_err: float
    max_rel_err: float  # max-norm form with floor, see the module docstring
    grad_scale: float  # max(max |g_bp|, max |g_fd|) over the checked entries


@dataclass(frozen=True)
class GradcheckResult:
    """Per-tensor errors, the overall maxima, and the settings that produced them."""

    tensors: tuple[TensorCheck, ...]
    max_rel_err: float
    max_abs_err: float
    passed: bool
    tol: float
    eps: float
    loss_value: float
    seed: int
    train: bool
    scale_floor: float
    caller_mode: str = "eval"  # the mode the caller's model was in (the check runs in ``train``'s mode)

    def as_dict(self) -> dict:
        return {
            "passed": self.passed, "max_rel_err": self.max_rel_err, "max_abs_err": self.max_abs_err,
            "tol": self.tol, "eps": self.eps, "loss_value": self.loss_value, "seed": self.seed, "train": self.train,
            "scale_floor": self.scale_floor, "caller_mode": self.caller_mode,
            "relative_error": "per tensor: max|g_bp-g_fd| / max(max|g_bp|, max|g_fd|, scale_floor * largest tensor scale)",
            "tensors": [dict(name=t.name, shape=list(t.shape), n_checked=t.n_checked, n_total=t.n_total,
                             max_abs_err=t.max_abs_err, max_rel_err=t.max_rel_err, grad_scale=t.grad_scale)
                        for t in self.tensors],
        }


def _one_batch(data, batch_keys):
    """All of ``data`` as one Data: tensors / Data / Splits as they are, a dict batch or an iterable
    of batches (a DataLoader) concatenated."""
    from collections.abc import Mapping

    from .data import iterate_batches
    from .data.types import Data, Splits
    from .validate import as_tensor_pair, as_tensors

    data = as_tensors(data)
    if isinstance(data, (Data, Splits)) or (isinstance(data, (tuple, list)) and len(data) == 2
                                            and all(isinstance(t, torch.Tensor) for t in data)):
        return as_data(data)
    if isinstance(data, Mapping) or hasattr(data, "__iter__"):
        parts = [as_tensor_pair(X, y) for X, y in iterate_batches(data, batch_keys=batch_keys)]
        if not parts:
            raise ValueError("the data yielded no batches; pass (X, y) tensors or a non-empty DataLoader")
        return Data(torch.cat([torch.as_tensor(X) for X, _ in parts]), torch.cat([torch.as_tensor(y) for _, y in parts]))
    return as_data(data)


def _to64(t: torch.Tensor) -> torch.Tensor:
    return t.to(torch.float64) if t.is_floating_point() else t


def gradcheck(model: nn.Module, data, loss: str | Loss = "mse", *, eps: float = 1e-6, seed: int = 0,
              max_params_per_tensor: int | None = None, tol: float = 1e-6, train: bool = False,
              scale_floor: float = 1e-3, output=None, batch_keys=None) -> GradcheckResult:
    """Compare backprop and central-difference gradients of ``loss`` on ``data`` in float64.

    ``data``: Data, Splits (its train split is used) or an (X, y) pair -- all examples in one
    batch; the loss is the mean of per-example losses. ``max_params_per_tensor``: check at most
    that many entries of each tensor, a random subset drawn with ``seed`` (None: all entries).
    ``train``: evaluate in train mode (batch norm uses batch statistics); every evaluation
    reseeds the RNG with ``seed`` so dropout draws the same mask each time and the finite
    differences stay meaningful. Eval mode by default (a model passed in train mode with dropout or
    batch norm gets one warning; ``caller_mode`` records its mode). ``scale_floor``: see the module
    docstring. ``data`` may also be an iterable of batches (a DataLoader; concatenated into one
    batch), dict batches read with ``batch_keys=(inputs_key, targets_key)``; ``output`` selects the
    loss's tensor from the forward's return value; ``loss`` may be a callable (output, target) ->
    per-example (N,) or mean loss.
    """
    if not scale_floor >= 0:
        raise ValueError(f"scale_floor must be >= 0, got {scale_floor}")
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps}")
    if max_params_per_tensor is not None and max_params_per_tensor < 1:
        raise ValueError(f"max_params_per_tensor must be >= 1 or None, got {max_params_per_tensor}")
    loss_fn = get_loss(loss)
    output = check_output_spec(output)
    d = _one_batch(data, check_batch_keys(batch_keys))
    X, y = _to64(torch.as_tensor(d.X)), _to64(torch.as_tensor(d.y))
    from .validate import warn_train_mode

    caller_mode = warn_train_mode(model, measured="train" if train else "eval", where="gradcheck")

    m = copy.deepcopy(model).to(torch.float64)  # never touch the caller's model
    m.train(train)
    base = {n: p.detach().clone() for n, p in trainable_params(m).items()}
    if not base:
        raise ValueError("the model has no trainable parameters (all have requires_grad=False)")

    def L(params) -> torch.Tensor:
        # same dropout mask for every evaluation; attention/RNN kernels with a backward in every
        # mode (cuDNN's RNN has none in eval mode; losslab.kernels), caller's settings restored
        with seeded(seed), second_order(m):
            return loss_fn(select_output(call(m, params, X), output), y)

    # backprop
    leaves = {n: v.clone().requires_grad_(True) for n, v in base.items()}
    check_fits(m, X, y, loss_fn, params=base, output=output)
    value = L(leaves)
    grads = torch.autograd.grad(value, list(leaves.values()), allow_unused=True)
    g_bp = {n: (torch.zeros_like(v) if g is None else g.detach()) for (n, v), g in zip(leaves.items(), grads)}

    gen = torch.Generator().manual_seed(int(seed))
    pairs = []  # (name, shape, n_total, bp (k,), fd (k,))
    with torch.no_grad():
        for name, w in base.items():
            n_total = w.numel()
            if max_params_per_tensor is None or n_total <= max_params_per_tensor:
                idx = torch.arange(n_total)
            else:
                idx = torch.randperm(n_total, generator=gen)[:max_params_per_tensor].sort().values
            fd = torch.empty(len(idx), dtype=torch.float64)
            for k, i in enumerate(idx.tolist()):
                plus, minus = w.clone(), w.clone()
                plus.view(-1)[i] += eps
                minus.view(-1)[i] -= eps
                h = plus.view(-1)[i] - minus.view(-1)[i]  # the step actually representable, ~2 eps
                fd[k] = (L({**base, name: plus}) - L({**base, name: minus})) / h
            pairs.append((name, tuple(w.shape), n_total, g_bp[name].reshape(-1)[idx], fd))
    scales = [max(float(bp.abs().max()), float(fd.abs().max())) if len(fd) else 0.0 for *_, bp, fd in pairs]
    floor = max(scale_floor * max(scales), TINY)
    checks = []
    for (name, shape, n_total, bp, fd), scale in zip(pairs, scales):
        max_abs = float((bp - fd).abs().max()) if len(fd) else 0.0
        checks.append(TensorCheck(name=name, shape=shape, n_checked=len(fd), n_total=n_total, max_abs_err=max_abs,
                                  max_rel_err=max_abs / max(scale, floor), grad_scale=scale))
    max_rel = max(c.max_rel_err for c in checks)
    max_abs = max(c.max_abs_err for c in checks)
    return GradcheckResult(tensors=tuple(checks), max_rel_err=max_rel, max_abs_err=max_abs, passed=bool(max_rel <= tol),
                           tol=tol, eps=eps, loss_value=float(value.detach()), seed=seed, train=train, scale_floor=scale_floor,
                           caller_mode=caller_mode)


__all__ = ["gradcheck", "GradcheckResult", "TensorCheck"]
