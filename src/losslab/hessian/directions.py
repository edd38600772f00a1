"""Hessian-eigenvector directions for loss surfaces: the plane (or line) along which the loss
bends the most. Lives with the Hessian (it runs Lanczos) and hands landscape a plain
:class:`losslab.landscape.Directions`, so the arrow points down: hessian -> landscape."""
from __future__ import annotations

import torch
from torch import nn

from ..landscape.directions import Directions, eigenvector_directions
from ..params import param_spec
from .lanczos import lanczos
from .operator import hessian_operator


def hessian_directions(model: nn.Module, data, loss, *, k: int = 2, seed: int = 0, tol: float = 1e-6,
                       batch_size: int | None = None) -> Directions:
    """The plane (k=2) or line (k=1) of the top-k Hessian eigenvectors of the full-data loss at
    the model, found by Lanczos (``losslab.hessian.lanczos``) and stored with their eigenvalues.
    Along these axes the surface bends the most, so it shows the sharpest cut through a minimum."""
    op = hessian_operator(model, data, loss, batch_size=batch_size, dtype=torch.float64)
    eig = lanczos(op, k, which="largest", tol=tol, seed=seed, vectors=True)
    vecs = list(eig.eigenvectors[:, :k].T.to(param_spec(model).dtype))  # eigenvectors are (P, k)
    return eigenvector_directions(model, vecs, eigenvalues=eig.eigenvalues[:k].tolist())
