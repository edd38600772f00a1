"""Closed-form ordinary least squares (the reference answer for linear regression).

    minimize_{W, b} (1/N) sum_n ||W x_n + b - y_n||^2 / K

solved as one least-squares problem on the augmented design [X, 1] with
``torch.linalg.lstsq`` in float64 (QR with column pivoting, 'gelsy', on CPU: rank-deficient
designs get a minimum-norm-like basic solution instead of a failure). The book chapter notes
OLS "solves it analytically" for linear regression; gradient descent on ``mse`` with the
``linear`` model converges to this point.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class OLSResult:
    """weight (K, D) and bias (K,) (None without bias) as in ``nn.Linear``; ``mse`` is the mean over
    examples and outputs of the squared residual (the ``mse`` loss); ``rank`` of the design."""

    weight: torch.Tensor
    bias: torch.Tensor | None
    mse: float
    rank: int

    def predict(self, X) -> torch.Tensor:
        X = torch.as_tensor(X, dtype=self.weight.dtype)
        X = X.unsqueeze(1) if X.dim() == 1 else X
        out = X @ self.weight.T
        return out + self.bias if self.bias is not None else out


def ols(X, y, *, bias: bool = True) -> OLSResult:
    """Least-squares fit of y ~ X W^T + b in float64 (X (N, D) or (N,), y (N,) or (N, K))."""
    X = torch.as_tensor(np.asarray(X) if not isinstance(X, torch.Tensor) else X).detach().to(torch.float64)
    y = torch.as_tensor(np.asarray(y) if not isinstance(y, torch.Tensor) else y).detach().to(torch.float64)
    if X.dim() == 1:
        X = X.unsqueeze(1)
    if y.dim() == 1:
        y = y.unsqueeze(1)
    if X.dim() != 2 or y.dim() != 2:
        raise ValueError(f"ols expects X of shape (N, D) and y of shape (N,) or (N, K); got {tuple(X.shape)} and {tuple(y.shape)}")
    if X.shape[0] != y.shape[0]:
        raise ValueError(f"X has {X.shape[0]} rows but y has {y.shape[0]}; they must match (one target per example)")
    if X.shape[0] == 0:
        raise ValueError("ols needs at least one example")
    if not (torch.isfinite(X).all() and torch.isfinite(y).all()):
        raise ValueError("ols got NaN/inf in X or y; clean the data first")
    A = torch.cat([X, torch.ones(X.shape[0], 1, dtype=torch.float64)], dim=1) if bias else X  # (N, D+1)
    sol = torch.linalg.lstsq(A, y, driver="gelsy")
    coef = sol.solution  # (D(+1), K)
    rank = int(sol.rank) if sol.rank is not None and sol.rank.numel() else int(torch.linalg.matrix_rank(A))
    resid = A @ coef - y
    mse = float((resid ** 2).mean())
    W = coef[: X.shape[1]].T.contiguous()  # (K, D)
    b = coef[X.shape[1]].clone() if bias else None  # (K,)
    return OLSResult(weight=W, bias=b, mse=mse, rank=rank)


__all__ = ["ols", "OLSResult"]
