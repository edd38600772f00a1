"""Gradient check (backprop vs central differences) and closed-form OLS.

References: central finite differences in float64 (independent of autograd) for the
gradients; numpy.polyfit / numpy.linalg.lstsq (independent of torch) for OLS.
"""
import math

import numpy as np
import pytest
import torch
from torch import nn

from losslab.closed_form import OLSResult, ols
from losslab.data import load
from losslab.gradcheck import GradcheckResult, gradcheck
from losslab.models import build
from losslab.params import module_fingerprint, same_fingerprint



# Every model kind of the registry with data and a loss it fits. Small sizes keep it fast.
CASES = [
    ("linear", dict(in_dim=5), "linear", dict(n=40), "mse"),
    ("sigmoid_neuron", dict(in_dim=2), "moons", dict(n=40), "mse"),
    ("polynomial", dict(degree=3), "polynomial", {}, "mse"),
    *[("mlp", dict(in_dim=2, hidden=[8, 6], out_dim=2, activation=a), "moons", dict(n=40), "cross_entropy")
      for a in ("tanh", "relu", "sigmoid", "gelu")],
    ("deep_linear", dict(widths=[5, 4, 3, 1]), "linear", dict(n=40), "mse"),
    ("rnn", dict(in_dim=2, hidden=5), "adding", dict(n=20, length=6), "mse"),
    ("lstm", dict(in_dim=2, hidden=4, forget_bias=1.0), "adding", dict(n=20, length=6), "mse"),
]


def test_cases_cover_every_registered_model():
    from losslab.models import MODELS

    assert {c[0] for c in CASES} == set(MODELS.names())
    from losslab.models.nets import ACTIVATIONS

    assert {c[1]["activation"] for c in CASES if c[0] == "mlp"} == set(ACTIVATIONS)


@pytest.mark.parametrize("name,mopts,dname,dopts,loss", CASES,
                         ids=[c[0] + ("-" + c[1]["activation"] if "activation" in c[1] else "") for c in CASES])
def test_gradcheck_every_model_kind(name, mopts, dname, dopts, loss):
    model = build(name, seed=1, **mopts)
    data = load(dname, seed=0, **dopts)
    before = module_fingerprint(model)
    r = gradcheck(model, data, loss)
    assert isinstance(r, GradcheckResult)
    # Tolerance 1e-6: float64 central differences with eps=1e-6 have truncation ~1e-12 and
    # round-off ~1e-10 relative to |L|; measured max errors are 1e-10..1e-7 (sigmoid MLP, whose
    # first-layer gradients are ~6e-4, is the largest).
    assert r.passed and r.max_rel_err < 1e-6, r
    assert r.tol == 1e-6
    assert all(t.n_checked == t.n_total for t in r.tensors)
    assert sum(t.n_total for t in r.tensors) == sum(p.numel() for p in model.parameters())
    assert all(t.grad_scale > 0 for t in r.tensors)  # every tensor really was exercised
    assert same_fingerprint(before, module_fingerprint(model))
    assert next(model.parameters()).dtype == torch.float32  # the caller's model stays float32


class _WrongSquare(torch.autograd.Function):
    """x**2 with a deliberately wrong backward (3x instead of 2x)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x ** 2

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 3 * x * g


class _SquareNet(nn.Module):
    def __init__(self, wrong: bool):
        super().__init__()
        self.lin = nn.Linear(3, 2)
        self.out = nn.Linear(2, 1)
        self.wrong = wrong

    def forward(self, x):
        h = self.lin(x)
        return self.out(_WrongSquare.apply(h) if self.wrong else h ** 2)


def test_wrong_backward_is_caught():
    g = torch.Generator().manual_seed(0)
    X, y = torch.randn(10, 3, generator=g), torch.randn(10, 1, generator=g)
    torch.manual_seed(0)
    wrong = _SquareNet(True)
    right = _SquareNet(False)
    right.load_state_dict(wrong.state_dict())
    ok = gradcheck(right, (X, y), "mse")
    bad = gradcheck(wrong, (X, y), "mse")
    assert ok.passed and ok.max_rel_err < 1e-6
    assert not bad.passed
    # the wrong factor 3/2 puts the backprop gradient of the first layer off by O(1)
    per = {t.name: t for t in bad.tensors}
    assert per["lin.weight"].max_rel_err > 0.1 and per["lin.bias"].max_rel_err > 0.1
    # the read-out layer sits after the wrong op: its gradient is still right
    assert per["out.weight"].max_rel_err < 1e-6


def test_subset_of_entries_is_seeded_and_bounded():
    model = build("mlp", in_dim=2, hidden=[20], out_dim=2, seed=0)
    data = load("moons", n=30)
    a = gradcheck(model, data, "cross_entropy", max_params_per_tensor=7, seed=3)
    b = gradcheck(model, data, "cross_entropy", max_params_per_tensor=7, seed=3)
    assert a == b  # same seed, same subset, same numbers
    for t in a.tensors:
        assert t.n_checked == min(7, t.n_total)
    assert a.passed


def test_train_mode_with_dropout_and_batch_norm():
    # dropout masks are re-drawn from the same seed at every evaluation, so finite differences
    # see the same function; batch norm uses batch statistics in train mode.
    model = build("mlp", in_dim=2, hidden=[6], out_dim=2, dropout=0.3, batch_norm=True, seed=0)
    data = load("moons", n=30)
    before = module_fingerprint(model)
    r = gradcheck(model, data, "cross_entropy", train=True)
    assert r.passed and r.train
    r_eval = gradcheck(model, data, "cross_entropy")
    assert r_eval.passed
    assert r.loss_value != r_eval.loss_value  # really a different mode
    assert same_fingerprint(before, module_fingerprint(model))  # running stats untouched
    # the first layer's bias is followed by batch norm: its gradient is analytically zero in
    # train mode, and its finite difference is pure round-off (~1e-10). Without the scale
    # floor that round-off would read as a relative error of ~1.
    b = {t.name: t for t in r.tensors}["net.0.bias"]
    assert b.grad_scale < 1e-8
    assert not gradcheck(model, data, "cross_entropy", train=True, scale_floor=0.0).passed


def test_unused_parameter_has_zero_error():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(2, 1)
            self.unused = nn.Parameter(torch.ones(3))

        def forward(self, x):
            return self.lin(x)

    r = gradcheck(M(), (torch.randn(5, 2), torch.randn(5, 1)), "mse")
    t = {c.name: c for c in r.tensors}["unused"]
    assert t.max_abs_err == 0 and t.max_rel_err == 0 and t.grad_scale == 0
    assert r.passed


def test_bad_options():
    model = build("linear")
    with pytest.raises(ValueError, match="eps"):
        gradcheck(model, load("seven_points"), "mse", eps=0)
    with pytest.raises(ValueError, match="max_params_per_tensor"):
        gradcheck(model, load("seven_points"), "mse", max_params_per_tensor=0)
    with pytest.raises(ValueError, match="Valid loss names"):
        gradcheck(model, load("seven_points"), "msee")


# ----------------------------------------------------------------------------- OLS

SEVEN_X = [2.4, 2.8, 3.2, 3.6, 4.0, 4.2, 5.0]
SEVEN_Y = [1.7, 1.85, 1.79, 1.95, 2.1, 2.0, 2.7]


def test_ols_seven_points_against_polyfit():
    s = load("seven_points")
    # the built-in dataset is the chapter's table
    assert np.allclose(s.train.X[:, 0].numpy(), SEVEN_X) and np.allclose(s.train.y[:, 0].numpy(), SEVEN_Y)
    r = ols(s.train.X, s.train.y)
    assert isinstance(r, OLSResult) and r.rank == 2
    slope, intercept = np.polyfit(np.array(SEVEN_X), np.array(SEVEN_Y), 1)  # independent reference
    # 1e-10: both are float64 least-squares solves of a 7x2 well-conditioned system (cond ~ 20),
    # so they agree to ~1e-14; the float32 -> float64 input cast of the dataset is avoided by
    # comparing on the same float64 table below.
    r64 = ols(np.array(SEVEN_X), np.array(SEVEN_Y))
    assert abs(float(r64.weight[0, 0]) - slope) < 1e-10
    assert abs(float(r64.bias[0]) - intercept) < 1e-10
    resid = np.polyval([slope, intercept], SEVEN_X) - np.array(SEVEN_Y)
    assert abs(r64.mse - float(np.mean(resid ** 2))) < 1e-12
    # the dataset is stored in float32: same line to float32 precision
    assert abs(float(r.weight[0, 0]) - slope) < 1e-5 and abs(float(r.bias[0]) - intercept) < 1e-5


def test_ols_multi_output_and_no_bias_against_numpy_lstsq():
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(30, 4)), rng.normal(size=(30, 3))
    r = ols(X, Y)
    A = np.hstack([X, np.ones((30, 1))])
    coef = np.linalg.lstsq(A, Y, rcond=None)[0]
    assert np.allclose(r.weight.numpy(), coef[:4].T, atol=1e-12)
    assert np.allclose(r.bias.numpy(), coef[4], atol=1e-12)
    assert np.allclose(r.predict(X).numpy(), A @ coef, atol=1e-12)
    r0 = ols(X, Y, bias=False)
    assert r0.bias is None
    assert np.allclose(r0.weight.numpy(), np.linalg.lstsq(X, Y, rcond=None)[0].T, atol=1e-12)
    assert r0.mse >= r.mse  # fewer parameters, no better fit


def test_ols_matches_gradient_descent_stationarity():
    # at the OLS solution the gradient of the mse loss of the linear model is zero
    d = load("linear", n=50)
    r = ols(d.train.X, d.train.y)
    model = build("linear", in_dim=5, dtype=torch.float64)
    with torch.no_grad():
        model.weight.copy_(r.weight)
        model.bias.copy_(r.bias)
    X, y = d.train.X.double(), d.train.y.double()
    loss = ((model(X) - y) ** 2).mean()
    loss.backward()
    assert model.weight.grad.abs().max() < 1e-12 and model.bias.grad.abs().max() < 1e-12
    assert math.isclose(float(loss.detach()), r.mse, rel_tol=1e-12)


def test_ols_errors():
    with pytest.raises(ValueError, match="rows"):
        ols(np.zeros((3, 2)), np.zeros(4))
    with pytest.raises(ValueError, match="NaN"):
        ols(np.array([[1.0], [np.nan]]), np.zeros(2))


def test_mismatched_model_data_or_loss_give_clear_errors():
    data = load("moons", n=20)
    with pytest.raises(ValueError, match=r"loss 'cross_entropy' cannot be evaluated on the model output of shape \(12, 1\)"):
        gradcheck(build("sigmoid_neuron", in_dim=2), data, "cross_entropy")
    with pytest.raises(ValueError, match=r"model cannot be evaluated on inputs of shape \(12, 2\).*in_dim"):
        gradcheck(build("mlp", in_dim=3), data, "mse")


# ----------------------------------------------------------------------------- CLI

def _cli(monkeypatch, capsys, *args):
    import sys

    from losslab.cli import app
    from losslab.cli._common import run_app

    monkeypatch.setattr(sys, "argv", ["losslab", *args])
    code = run_app(app)
    cap = capsys.readouterr()
    return code, cap.out, " ".join(cap.err.split())  # rich wraps long lines


def test_cli_gradcheck_json_and_table(monkeypatch, capsys):
    import json

    code, out, _ = _cli(monkeypatch, capsys, "gradcheck", "--model", "mlp", "--data", "moons", "--data-opt", "n=30",
                        "--model-opt", "hidden=[5]", "--model-opt", "activation=relu", "--json")
    assert code == 0
    r = json.loads(out)
    assert r["passed"] and r["loss"] == "cross_entropy" and r["model_options"]["out_dim"] == 2  # filled from data
    assert [t["name"] for t in r["tensors"]] == ["net.0.weight", "net.0.bias", "net.2.weight", "net.2.bias"]
    assert r["max_rel_err"] < 1e-6
    code, out, _ = _cli(monkeypatch, capsys, "gradcheck", "-m", "linear", "-d", "seven_points")
    assert code == 0 and "weight" in out and "PASSED" in out
    code, out, err = _cli(monkeypatch, capsys, "gradcheck", "-m", "linaer", "-d", "seven_points")
    assert code == 2 and "Valid model names" in err and "Traceback" not in err
    code, out, err = _cli(monkeypatch, capsys, "gradcheck", "-m", "sigmoid_neuron", "-d", "moons", "--data-opt", "n=20")
    assert code == 2 and "Pick a loss" in err


def test_cli_gradcheck_store(monkeypatch, capsys, tmp_path):
    import json

    from losslab.store import open_store

    code, out, _ = _cli(monkeypatch, capsys, "gradcheck", "-m", "linear", "-d", "seven_points", "--json",
                        "--store", str(tmp_path / "st"))
    assert code == 0
    r = json.loads(out)
    rec = open_store(tmp_path / "st").get(r["run_id"])
    assert rec.kind == "gradcheck" and rec.summary["passed"] is True
    assert open_store(tmp_path / "st").load_json(r["run_id"])["max_rel_err"] == r["max_rel_err"]
