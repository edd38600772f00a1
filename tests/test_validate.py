"""Bad input at the boundary of the public functions: one clear ValueError, never a deep torch
traceback or a silent all-NaN result."""
import pytest
import torch

from losslab.hessian import hessian_operator, lambda_max
from losslab.landscape import surface
from losslab.models import build
from losslab.train import train


@pytest.fixture
def model():
    return build("mlp", in_dim=4, hidden=[5], out_dim=1)


def xy(n=20, d=4):
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, d, generator=g), torch.randn(n, 1, generator=g)


@pytest.mark.parametrize("fn", [
    lambda m, d: surface(m, d, loss="mse", resolution=3),
    lambda m, d: lambda_max(m, d, "mse"),
    lambda m, d: hessian_operator(m, d, "mse"),
    lambda m, d: train(m, d, loss="mse", steps=2),
])
def test_wrong_input_width(model, fn):
    with pytest.raises(ValueError, match=r"cannot be evaluated on inputs of shape \(20, 5\)"):
        fn(model, xy(d=5))


@pytest.mark.parametrize("fn", [
    lambda m, d: surface(m, d, loss="mse", resolution=3),
    lambda m, d: lambda_max(m, d, "mse"),
    lambda m, d: train(m, d, loss="mse", steps=2),
])
def test_nan_inputs(model, fn):
    X, y = xy()
    X[3, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        fn(model, (X, y))


def test_mismatched_rows(model):
    X, y = xy()
    with pytest.raises(ValueError, match="same number of rows"):
        surface(model, (X, y[:10]), loss="mse", resolution=3)


def test_hessian_operator_does_not_share_the_callers_storage(model):
    X, y = xy()
    op = hessian_operator(model, (X, y), "mse")
    before = float(op.loss_at(op.theta)) if hasattr(op, "theta") else None
    v = torch.ones(op.size)
    hv = op.matvec(v).clone()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(2.0)
    torch.testing.assert_close(op.matvec(v), hv)
    if before is not None:
        assert float(op.loss_at(op.theta)) == before
