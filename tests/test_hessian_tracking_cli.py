"""Sharpness tracking callback and the ``losslab hessian`` command against exact spectra."""
from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from losslab.cli import app
from losslab.cli.hessian import save_checkpoint
from losslab.data import load
from losslab.hessian import exact_spectrum, sharpness_callback, stability_thresholds
from losslab.losses import get_loss
from losslab.models import build
from losslab.params import module_fingerprint, same_fingerprint




def _moons_mlp(seed=0):
    s = load("moons", seed=0)
    return build("mlp", in_dim=s.in_dim, hidden=[6], out_dim=s.out_dim, seed=seed), s


def test_callback_matches_exact_and_thresholds():
    model, s = _moons_mlp()
    loss = s.default_loss
    fn = sharpness_callback(every=5, data=s.train, loss=loss, lr=0.1, momentum=0.9, tol=1e-8)
    assert fn.every == 5
    assert fn(3, model, None) == {}
    before = module_fingerprint(model)
    m = fn(10, model, None)
    assert same_fingerprint(before, module_fingerprint(model))
    top = float(exact_spectrum(model, s.train, loss).top(1)[0])
    assert m["lambda_max"] == pytest.approx(top, rel=1e-4)
    assert m["two_over_lr"] == pytest.approx(20.0)
    assert m["two_one_plus_beta_over_lr"] == pytest.approx(2 * 1.9 / 0.1)
    m2 = fn(15, model, None)  # warm start from the previous eigenvector at the same point
    assert m2["hvps"] <= m["hvps"]
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.5, nesterov=True)
    m3 = sharpness_callback(every=1, data=s.train, loss=loss, optimizer=opt)(0, model, None)
    assert m3["nesterov_threshold"] == pytest.approx(3.0 / (0.05 * 2.0))
    with pytest.raises(ValueError, match="needs lr="):
        sharpness_callback(every=1, data=s.train, loss=loss)


def test_callback_records_certification_and_warns_once():
    import warnings

    from losslab.hessian import ConvergenceWarning

    model, s = _moons_mlp()
    loss = s.default_loss
    ok = sharpness_callback(every=1, data=s.train, loss=loss, lr=0.1, tol=1e-6)(0, model, None)
    assert ok["lambda_max_certified"] == 1.0
    # 3 Lanczos steps cannot pass the fresh-vector check: every call records 0, only the first warns
    fn = sharpness_callback(every=1, data=s.train, loss=loss, lr=0.1, tol=1e-10, max_iter=3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = [fn(step, model, None) for step in range(3)]
    assert [g["lambda_max_certified"] for g in got] == [0.0, 0.0, 0.0]
    conv = [w for w in caught if issubclass(w.category, ConvergenceWarning)]
    assert len(conv) == 1 and "lambda_max_certified" in str(conv[0].message) and "step 0" in str(conv[0].message)


def test_stability_threshold_is_the_divergence_boundary_of_gd_on_a_quadratic():
    # GD x <- x - lr * lam * x: |1 - lr lam| < 1  <=>  lam < 2/lr; heavy ball: lam < 2(1+b)/lr
    lam, b = 4.0, 0.5
    for factor, diverges in [(0.99, False), (1.01, True)]:
        lr = factor * stability_thresholds(1.0)["two_over_lr"] / lam
        x = 1.0
        for _ in range(3000):
            x -= lr * lam * x
        assert (abs(x) > 1) == diverges
        lr = factor * stability_thresholds(1.0, momentum=b)["two_one_plus_beta_over_lr"] / lam
        x, v = 1.0, 0.0
        for _ in range(3000):
            v = b * v - lr * lam * x
            x += v
        assert (abs(x) > 1) == diverges


def _exact_top(model, data, loss, k, block=None):
    return exact_spectrum(model, data, loss, block=block).top(k).tolist()


def test_cli_builtin_model_top_trace_density_layer():
    r = CliRunner().invoke(app, ["hessian", "--data", "moons", "--model", "mlp", "--model-opt", "hidden=[6]",
                                 "--top", "3", "--bottom", "1", "--trace", "--density", "--probes", "4",
                                 "--steps", "20", "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    model, s = _moons_mlp()
    blk = res["blocks"]["all parameters"]
    assert blk["parameters"] == sum(p.numel() for p in model.parameters())
    assert blk["top"]["eigenvalues"] == pytest.approx(_exact_top(model, s.train, s.default_loss, 3), rel=1e-4)
    spec = exact_spectrum(model, s.train, s.default_loss)
    # a small model: the trace may be exact (s.e. 0), so a rounding floor of 1e-9 relative
    assert abs(blk["trace"]["estimate"] - spec.trace) <= 4 * blk["trace"]["stderr"] + 1e-9 * abs(spec.trace)
    assert len(blk["density"]["grid"]) == len(blk["density"]["density"])
    r = CliRunner().invoke(app, ["hessian", "--data", "moons", "--model", "mlp", "--model-opt", "hidden=[6]",
                                 "--layer", "net.2", "--top", "2", "--json"])
    assert r.exit_code == 0, r.output
    blk = json.loads(r.stdout)["blocks"]["net.2"]
    assert blk["top"]["eigenvalues"] == pytest.approx(_exact_top(model, s.train, s.default_loss, 2, "net.2"),
                                                      rel=1e-4)


def test_cli_checkpoint_roundtrip_and_errors(tmp_path):
    model, s = _moons_mlp(seed=3)
    L = get_loss(s.default_loss)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(30):
        opt.zero_grad()
        L(model(s.train.X), s.train.y).backward()
        opt.step()
    path = save_checkpoint(model, tmp_path / "m.pt", model_name="mlp",
                           model_options={"in_dim": s.in_dim, "hidden": [6], "out_dim": s.out_dim}, data="moons",
                           loss=s.default_loss)
    r = CliRunner().invoke(app, ["hessian", "--checkpoint", str(path), "--top", "2", "--json"])
    assert r.exit_code == 0, r.output
    vals = json.loads(r.stdout)["blocks"]["all parameters"]["top"]["eigenvalues"]
    assert vals == pytest.approx(_exact_top(model, s.train, s.default_loss, 2), rel=1e-4)
    r = CliRunner().invoke(app, ["hessian", "--checkpoint", str(path), "--layer", "nope"])
    assert r.exit_code != 0 and "valid layer prefixes" in str(r.exception)
    (tmp_path / "lonely.pt").write_bytes(b"")
    r = CliRunner().invoke(app, ["hessian", "--checkpoint", str(tmp_path / "lonely.pt")])
    assert isinstance(r.exception, FileNotFoundError) and "model spec" in str(r.exception)
