"""The surface along the top Hessian eigenvectors: checked against the exact Hessian."""
import numpy as np
import torch

from losslab.data import load
from losslab.hessian import exact_hessian
from losslab.hessian import hessian_directions
from losslab.landscape import surface
from losslab.models import build
from losslab.params import module_fingerprint, same_fingerprint


def test_hessian_directions_are_top_eigenvectors_and_bend_the_surface_by_lambda():
    splits = load("moons", n=120)
    model = build("mlp", in_dim=2, hidden=[6], out_dim=2, dtype=torch.float64)
    before = module_fingerprint(model)
    d = hessian_directions(model, splits.train, "cross_entropy", k=2, tol=1e-10)
    assert same_fingerprint(before, module_fingerprint(model))
    H = exact_hessian(model, splits.train, "cross_entropy", dtype=torch.float64)
    lam = torch.linalg.eigvalsh(H).flip(0)[:2]
    V = d.vectors.double()
    np.testing.assert_allclose(np.asarray(d.info["eigenvalues"]), lam.numpy(), rtol=1e-6)
    np.testing.assert_allclose((V @ V.T).numpy(), np.eye(2), atol=1e-8)
    for v, l in zip(V, lam):  # residual of the eigen-equation, relative to lambda_max
        assert float(torch.linalg.norm(H @ v - l * v)) < 1e-5 * float(lam[0])
    # the loss curve along the top eigenvector bends with second derivative lambda_max (a quadratic in
    # alpha near the base point: central difference with h = 1e-3, truncation O(h^2))
    h = 1e-3
    s = surface(model, splits.train, loss="cross_entropy", directions=[V[0]], dim=1, resolution=3, span=h,
                dtype=torch.float64)
    curv = (s.loss[0] + s.loss[2] - 2 * s.loss[1]) / h ** 2
    assert abs(curv - float(lam[0])) < 1e-4 * float(lam[0])
