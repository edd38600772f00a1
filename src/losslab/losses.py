"""Registry of losses. Each loss maps (output, target) to *per-example* losses of shape (N,);
the reported loss is their mean over examples, so a sum over batches divided by the example
count equals the full-data loss exactly (the landscape and curvature code rely on this).

Exact formulas (N examples, K = number of output entries per example):
- ``mse``    : (1/N) sum_n (1/K) sum_k (f_nk - y_nk)^2          (torch's MSELoss, mean)
- ``l1``     : (1/N) sum_n (1/K) sum_k |f_nk - y_nk|
- ``huber``  : (1/N) sum_n (1/K) sum_k h_delta(f_nk - y_nk), h = r^2/2 if |r|<=delta else delta(|r|-delta/2)
- ``lp``     : (1/N) sum_n (1/K) sum_k |f_nk - y_nk|^p            (p=2 is mse, p=4 used for DLN depth)
- ``cross_entropy``: (1/N) sum_n -log softmax(f_n)[y_n]          (logits f, integer labels y)
- ``bce``    : (1/N) sum_n -[y_n log s(f_n) + (1-y_n) log(1-s(f_n))], s = sigmoid (logits f, y in {0,1})
- ``hinge``  : (1/N) sum_n (1/C) sum_{j != y_n} max(0, margin - f_{n,y_n} + f_nj)  (torch multi_margin_loss)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F

from .registry import Registry, call_with_options

LOSSES: Registry = Registry("loss")


@dataclass(frozen=True)
class Loss:
    """A loss: ``per_example(output, target) -> (N,)``; calling it gives the mean."""

    name: str
    per_example: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    task: str  # "regression" or "classification"
    options: dict = field(default_factory=dict)
    custom: bool = False  # a user's callable (see :func:`callable_loss`): evaluated one point at a time

    def __call__(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.per_example(output, target).mean()

    def sum(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.per_example(output, target).sum()


def _match(out: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if y.dim() == out.dim() - 1 and out.shape[-1] == 1:
        y = y.unsqueeze(-1)
    if out.shape != y.shape:
        raise ValueError(f"output shape {tuple(out.shape)} does not match target shape {tuple(y.shape)}")
    return out, y.to(out.dtype)


def _rowmean(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(t.shape[0], -1).mean(dim=1)


@LOSSES.register("mse")
def mse() -> Loss:
    """Mean squared error, mean over examples and output entries."""

    def f(out, y):
        out, y = _match(out, y)
        return _rowmean((out - y) ** 2)

    return Loss("mse", f, "regression")


@LOSSES.register("l1")
def l1() -> Loss:
    """Mean absolute error."""

    def f(out, y):
        out, y = _match(out, y)
        return _rowmean((out - y).abs())

    return Loss("l1", f, "regression")


@LOSSES.register("huber")
def huber(delta: float = 1.0) -> Loss:
    """Huber loss with threshold delta (quadratic inside, linear outside)."""
    if delta <= 0:
        raise ValueError(f"huber delta must be > 0, got {delta}")

    def f(out, y):
        out, y = _match(out, y)
        return _rowmean(F.huber_loss(out, y, reduction="none", delta=delta))

    return Loss("huber", f, "regression", {"delta": delta})


@LOSSES.register("lp")
def lp(p: float = 4.0) -> Loss:
    """Mean |residual|^p (p=4 is the deep-linear acceleration example)."""
    if p < 1:
        raise ValueError(f"lp loss needs p >= 1, got {p}")

    def f(out, y):
        out, y = _match(out, y)
        return _rowmean((out - y).abs() ** p)

    return Loss("lp", f, "regression", {"p": p})


def _concrete(t: torch.Tensor) -> bool:
    """False inside torch.func transforms (vmap/grad), where data-dependent checks can't run;
    the checks then happen on the first plain call instead."""
    try:
        return not torch._C._functorch.is_functorch_wrapped_tensor(t)
    except AttributeError:  # older torch
        return True


def _labels(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if out.dim() != 2:
        raise ValueError(f"classification output must be (N, C) logits, got shape {tuple(out.shape)}")
    if y.dim() > 1 and y.shape[1:].numel() != 1:
        hint = (" -- these look like one-hot or probability targets; pass class indices y.argmax(1)"
                if tuple(y.shape[1:]) == tuple(out.shape[1:]) else "")
        raise ValueError(f"classification losses expect class-index labels of shape (N,) (integers 0..C-1), "
                         f"got targets with shape {tuple(y.shape[1:])} per example{hint}")
    y = y.reshape(-1)
    if y.is_floating_point():
        if not torch.all(y == y.round()):
            raise ValueError("classification targets must be integer class labels")
        y = y.long()
    if y.shape[0] != out.shape[0]:
        raise ValueError(f"{out.shape[0]} outputs but {y.shape[0]} labels")
    c = out.shape[1]
    if _concrete(y) and y.numel() and (int(y.min()) < 0 or int(y.max()) >= c):
        raise ValueError(f"labels must be in [0, {c}) for {c} logits, got min {int(y.min())}, max {int(y.max())}")
    return y


@LOSSES.register("cross_entropy")
def cross_entropy() -> Loss:
    """Softmax cross-entropy on logits with integer labels."""

    def f(out, y):
        return F.cross_entropy(out, _labels(out, y), reduction="none")

    return Loss("cross_entropy", f, "classification")


@LOSSES.register("bce")
def bce() -> Loss:
    """Binary cross-entropy on logits (sigmoid inside), targets in {0, 1}."""

    def f(out, y):
        out = out.reshape(out.shape[0], -1)
        if out.shape[1] != 1:
            raise ValueError(f"bce expects one logit per example, got shape {tuple(out.shape)}")
        if _concrete(y) and not bool(((y == 0) | (y == 1)).all()):
            raise ValueError("bce targets must be 0 or 1")
        return F.binary_cross_entropy_with_logits(out[:, 0], y.reshape(-1).to(out.dtype), reduction="none")

    return Loss("bce", f, "binary")


@LOSSES.register("hinge")
def hinge(margin: float = 1.0) -> Loss:
    """Multi-class hinge (Weston-Watkins form as in torch's multi_margin_loss)."""
    if margin <= 0:
        raise ValueError(f"hinge margin must be > 0, got {margin}")

    def f(out, y):
        # the formula of torch's multi_margin_loss written with elementary ops, because its fused
        # kernel has no double backward (Hessians, GGN and Newton methods need one)
        lab = _labels(out, y)
        fy = out.gather(1, lab.unsqueeze(1))
        viol = torch.clamp(margin - fy + out, min=0).scatter(1, lab.unsqueeze(1), 0.0)
        return viol.sum(1) / out.shape[1]

    return Loss("hinge", f, "classification", {"margin": margin})


def callable_loss(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], *, name: str | None = None,
                  task: str = "regression") -> Loss:
    """A Loss from your own ``fn(output, target)``.

    ``fn`` returns either per-example losses of shape (N,) (used as they are), or one number, the
    mean over the batch (any other shape is an error). A mean becomes N equal per-example values,
    so the full-data loss over batches of sizes n_b is the batch-size-weighted mean
    sum_b n_b m_b / sum_b n_b -- exactly the full-data mean when ``fn`` is a mean of per-example
    terms. ``task="classification"`` (or "binary") adds accuracy with the registry's rule
    (argmax of the logits; sign of one logit); the default "regression" reports none.
    """
    if not callable(fn):
        raise TypeError(f"loss must be a name from {LOSSES.names()}, "
                        f"a Loss or a callable (output, target) -> loss; got {type(fn).__name__}")
    if task not in ("regression", "classification", "binary"):
        raise ValueError(f"task must be 'regression', 'classification' or 'binary', got {task!r}")
    label = name or getattr(fn, "__name__", None) or type(fn).__name__

    def per_example(out, y):
        r = fn(out, y)
        if not isinstance(r, torch.Tensor):
            raise TypeError(f"loss {label!r} returned {type(r).__name__}, expected a tensor: per-example losses (N,) "
                            f"or their mean (a scalar)")
        n = out.shape[0] if out.dim() else 1
        if r.dim() == 1 and r.shape[0] == n:
            return r
        if r.numel() == 1:
            return r.reshape(1).expand(n)  # the batch mean, as n equal terms (sums weight by batch size)
        raise ValueError(f"loss {label!r} returned shape {tuple(r.shape)} for {n} examples; return per-example "
                         f"losses of shape ({n},) or their mean (a scalar)")

    return Loss(label, per_example, task, {}, custom=True)


def get_loss(loss: str | Loss | dict | Callable, **options) -> Loss:
    """A Loss from a name (with options), a Loss passed through, or a callable
    ``(output, target) -> per-example (N,) or mean loss`` (:func:`callable_loss`)."""
    if isinstance(loss, Loss):
        return loss
    if callable(loss) and not isinstance(loss, (str, dict)):
        return callable_loss(loss)
    if isinstance(loss, dict):
        loss = dict(loss)
        name = loss.pop("name")
        return get_loss(name, **loss, **options)
    factory = LOSSES.get(loss)
    return call_with_options("loss", loss, factory, options)


def accuracy(output: torch.Tensor, target: torch.Tensor, loss: Loss) -> torch.Tensor | None:
    """Per-example correctness (N,) for classification losses, None for regression."""
    if loss.task == "classification":
        return (output.argmax(dim=-1) == target.reshape(-1).long()).to(output.dtype)
    if loss.task == "binary":
        return ((output.reshape(-1) > 0).long() == target.reshape(-1).long()).to(output.dtype)
    return None
