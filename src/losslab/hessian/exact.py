"""The exact Hessian (or Gauss-Newton matrix) of a small model, in float64: the reference.

H = d^2 L / d theta^2 of the full-data loss L(theta) = (1/N) sum_n l(f(x_n; theta), y_n),
built by ``torch.func.jacrev(torch.func.grad(L))`` on the flat parameter vector, summed over
batches (columns in chunks to bound memory). The Gauss-Newton matrix is assembled densely as
(1/N) sum_n J_n^T H_out,n J_n with J_n from ``jacrev`` of the model output and H_out,n from
``torch.func.hessian`` of each example's loss in output space (Martens 2010, sec. 4.2).
Memory is O(P^2): use it for models up to a few thousand parameters.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..kernels import second_order
from ..losses import Loss
from .operator import BlockSpec, HessianOperator, NonFiniteError, _autodiff_limit, _quiet_torch_jit


@dataclass(frozen=True)
class Spectrum:
    """All eigenvalues (ascending) of a symmetric matrix, optionally with eigenvectors (P, P)."""

    eigenvalues: torch.Tensor
    eigenvectors: torch.Tensor | None
    names: tuple[str, ...]
    kind: str = "hessian"

    @property
    def size(self) -> int:
        return int(self.eigenvalues.shape[0])

    def top(self, k: int = 1) -> torch.Tensor:
        """The k largest eigenvalues, largest first."""
        return self.eigenvalues.flip(0)[:k]

    def bottom(self, k: int = 1) -> torch.Tensor:
        """The k smallest eigenvalues, smallest first."""
        return self.eigenvalues[:k]

    @property
    def trace(self) -> float:
        return float(self.eigenvalues.sum())

    def index(self, threshold: float = 0.0) -> int:
        """Number of eigenvalues below -threshold (the Morse index for threshold 0)."""
        return int((self.eigenvalues < -threshold).sum())

    def count(self, a: float, b: float) -> int:
        """Number of eigenvalues in [a, b)."""
        return int(((self.eigenvalues >= a) & (self.eigenvalues < b)).sum())


def exact_hessian(model: nn.Module, data, loss: str | Loss, *, kind: str = "hessian", block: BlockSpec = None,
                  batch_size: int | None = None, dtype: torch.dtype = torch.float64, train_mode: bool = False,
                  chunk_size: int | None = 256) -> torch.Tensor:
    """The dense (P, P) Hessian (``kind="hessian"``) or Gauss-Newton matrix (``kind="ggn"``).

    Same data, weighting, block and parameter conventions as :func:`hessian_operator`.
    """
    op = HessianOperator(model, data, loss, kind=kind, method="forward_over_reverse", block=block,
                         batch_size=batch_size, dtype=dtype, train_mode=train_mode, cache_graph=False)
    return dense_matrix(op, chunk_size=chunk_size)


def dense_matrix(op: HessianOperator, *, chunk_size: int | None = 256) -> torch.Tensor:
    """The dense matrix of a :class:`HessianOperator` by automatic differentiation (not products)."""
    try:
        with _quiet_torch_jit(), second_order(op.model):  # double-differentiable kernels (losslab.kernels)
            H = _dense(op, chunk_size)
    except (NotImplementedError, RuntimeError) as e:
        if not _autodiff_limit(e):
            raise
        H = _dense_by_products(op, e)
    if not bool(torch.isfinite(H).all()):
        raise NonFiniteError(f"the exact {op.kind} is not finite (NaN/inf): the loss or its gradient is not finite at "
                             "these parameters (a diverged model?) or overflows; use finite parameters or float64")
    return H


def _dense_by_products(op: HessianOperator, e: Exception) -> torch.Tensor:
    """The Hessian column by column, H e_i by double backward, for models torch.func cannot
    transform (e.g. a custom autograd.Function without ``setup_context``): P products, same
    matrix. The Gauss-Newton matrix has no such path (it needs forward mode)."""
    import copy

    if op.kind != "hessian" or not op._works("hessian", "double_backward"):
        raise op._unsupported(e) from None
    alt = copy.copy(op)
    alt.method, alt._cache = "double_backward", {}
    alt.cache_graph = len(op._batches) == 1
    eye = torch.eye(op.size, dtype=op.dtype, device=op.device)
    H = torch.stack([alt.matvec(eye[:, i]) for i in range(op.size)], dim=1)
    return (H + H.T) / 2


def _dense(op: HessianOperator, chunk_size: int | None) -> torch.Tensor:
    from torch.func import grad, jacrev, jvp

    spec, theta = op.spec, op.theta
    P = op.size
    H = torch.zeros(P, P, dtype=op.dtype, device=op.device)
    for X, y in op._batches:
        if op.kind == "hessian":
            f = lambda t, X=X, y=y: op._batch_loss(spec.unflatten(t), X, y)  # noqa: E731
            H += jacrev(grad(f), chunk_size=chunk_size)(theta)
        else:
            fo = lambda t, X=X: op._forward(spec.unflatten(t), X)  # noqa: E731
            out = fo(theta).detach()
            J = jacrev(fo, chunk_size=chunk_size)(theta).reshape(out.shape[0], -1, P)  # (B, C, P)

            # per-example output Hessians H_out,n (B, C, C): the batch loss is a sum over
            # examples, so one jvp of its output gradient along e_c (in every example at once)
            # gives column c of every H_out,n. (No vmap over labels: losses validate them.)
            B = out.shape[0]
            flat_out = out.reshape(B, -1)
            C = flat_out.shape[1]
            gsum = grad(lambda o: op.loss.per_example(o.reshape(out.shape), y).sum())
            cols = []
            for c in range(C):
                e = torch.zeros_like(flat_out)
                e[:, c] = 1
                cols.append(jvp(gsum, (flat_out,), (e,))[1])
            Hout = torch.stack(cols, dim=2)  # (B, C, C): [n, :, c] = H_out,n e_c
            H += torch.einsum("bcp,bcd,bdq->pq", J, Hout, J) / op.n
    return (H + H.T) / 2


def exact_spectrum(model: nn.Module, data, loss: str | Loss, *, kind: str = "hessian", block: BlockSpec = None,
                   batch_size: int | None = None, dtype: torch.dtype = torch.float64, train_mode: bool = False,
                   vectors: bool = False) -> Spectrum:
    """All eigenvalues (ascending; and eigenvectors if ``vectors``) of the exact Hessian / GGN."""
    op = HessianOperator(model, data, loss, kind=kind, method="forward_over_reverse", block=block,
                         batch_size=batch_size, dtype=dtype, train_mode=train_mode, cache_graph=False)
    H = dense_matrix(op)
    if vectors:
        w, V = torch.linalg.eigh(H)
        return Spectrum(w, V, op.spec.names, kind)
    return Spectrum(torch.linalg.eigvalsh(H), None, op.spec.names, kind)
