"""Contracts of the training loop: closed-form agreement, divergence, determinism, bookkeeping."""
import math

import numpy as np
import pytest
import torch

from losslab.data import load
from losslab.models import build
from losslab.params import module_fingerprint, same_fingerprint
from losslab.train import train

SEVEN_X = np.array([2.4, 2.8, 3.2, 3.6, 4.0, 4.2, 5.0])
SEVEN_Y = np.array([1.7, 1.85, 1.79, 1.95, 2.1, 2.0, 2.7])


def seven_lambda_max() -> float:
    # mse = mean (w x + b - y)^2  ->  Hessian = (2/N) A^T A with A = [x, 1]  (independent of w, b)
    A = np.stack([SEVEN_X, np.ones_like(SEVEN_X)], axis=1)
    return float(np.linalg.eigvalsh(2 / len(SEVEN_X) * A.T @ A).max())


def test_gd_on_seven_points_reaches_ols():
    slope, intercept = np.polyfit(SEVEN_X, SEVEN_Y, 1)  # independent reference
    model = build("linear", dtype=torch.float64)
    lr = 1.0 / seven_lambda_max()  # half the stability limit 2/lambda_max
    t = train(model, load("seven_points"), optimizer="gd", lr=lr, steps=6000, eval_every=500, snapshot_every=500)
    assert t.status == "completed"
    assert abs(t.model.weight.item() - slope) < 1e-4
    assert abs(t.model.bias.item() - intercept) < 1e-4


def test_lr_above_two_over_lambda_max_diverges_and_below_does_not():
    lam = seven_lambda_max()
    model = build("linear", dtype=torch.float64)
    bad = train(model, load("seven_points"), optimizer="gd", lr=2.05 / lam, steps=3000)
    assert bad.status == "diverged" and bad.status_step is not None and "loss" in bad.message
    ok = train(model, load("seven_points"), optimizer="gd", lr=1.95 / lam, steps=3000)
    assert ok.status == "completed" and math.isfinite(ok.final_loss)


def test_same_seed_same_trajectory_bit_for_bit_and_no_mutation():
    data = load("moons", seed=1)
    model = build("mlp", in_dim=2, hidden=[16], out_dim=2, dropout=0.2, seed=3)
    before = module_fingerprint(model)
    rng_before = torch.get_rng_state()
    a = train(model, data, optimizer="sgd", lr=0.1, steps=60, batch_size=16, seed=7, input_noise=0.05)
    b = train(model, data, optimizer="sgd", lr=0.1, steps=60, batch_size=16, seed=7, input_noise=0.05)
    c = train(model, data, optimizer="sgd", lr=0.1, steps=60, batch_size=16, seed=8, input_noise=0.05)
    assert same_fingerprint(before, module_fingerprint(model))
    assert torch.equal(rng_before, torch.get_rng_state())
    np.testing.assert_array_equal(a.train_loss, b.train_loss)
    np.testing.assert_array_equal(a.snapshots, b.snapshots)
    assert not np.array_equal(a.train_loss, c.train_loss)


def test_trajectory_records_and_bounded_snapshots():
    t = train(build("linear", in_dim=5), load("linear"), optimizer="sgd", lr=0.05, steps=200, batch_size=20,
              snapshot_every=1, max_snapshots=16, eval_every=25)
    assert len(t.steps) == 200 and t.train_loss.shape == (200,) and np.isfinite(t.grad_norm).all()
    assert len(t.snapshots) <= 17 and t.snapshots.shape[1] == 6
    assert t.snapshot_steps[0] == 0 and t.snapshot_steps[-1] == 200
    assert np.all(np.diff(t.snapshot_steps) > 0)
    np.testing.assert_allclose(t.snapshots[-1], torch.cat([p.detach().reshape(-1) for p in t.model.parameters()]).numpy())
    assert list(t.eval_steps) == [0, 25, 50, 75, 100, 125, 150, 175, 200]
    assert np.isfinite(t.val_loss).all() and np.isnan(t.val_acc).all()


def test_classification_accuracy_and_schedules():
    t = train(build("mlp", in_dim=2, hidden=[32], out_dim=2), load("moons"), optimizer="adam", lr=0.02, steps=150,
              schedule="cosine")
    assert t.val_acc[-1] > 0.8
    assert t.lr[0] == pytest.approx(0.02) and t.lr[-1] < 0.001


def test_early_stopping_restores_best():
    data = load("polynomial", n=30, seed=0)
    model = build("mlp", in_dim=1, hidden=[64, 64], out_dim=1)
    t = train(model, data, optimizer="adam", lr=0.01, steps=3000, early_stopping=5, eval_every=20)
    assert t.status == "stopped_early"
    # patience 5: stopped after exactly 5 evaluations without a new best (the last entry of val_loss is
    # the evaluation made at the stopping step itself)
    best = int(np.nanargmin(t.val_loss))
    assert len(t.val_loss) - 2 - best == 5
    # the returned model is the best one, labelled with its own step; snapshots end at the last trained step
    assert t.restored_step == t.eval_steps[best]
    assert t.snapshot_steps[-1] == len(t.steps)
    from losslab.train import full_loss
    from losslab.losses import get_loss

    vl, _ = full_loss(t.model, data.val, get_loss("mse"))
    assert vl == pytest.approx(t.val_loss[best], rel=1e-6)
    assert t.summary()["final_val_loss"] == pytest.approx(t.val_loss[best], rel=1e-12)
    assert not np.array_equal(t.final_params, t.snapshots[-1])


def test_weight_decay_for_optimizer_without_it_adds_penalty():
    data = load("linear", n=50)
    m = build("linear", in_dim=5, dtype=torch.float64)
    free = train(m, data, optimizer="lbfgs", lr=1.0, steps=30)
    reg = train(m, data, optimizer="lbfgs", lr=1.0, steps=30, weight_decay=10.0)
    assert np.linalg.norm(reg.final_params) < 0.5 * np.linalg.norm(free.final_params)


def test_callbacks_record_metrics():
    calls = []

    def cb(step, model, ctx):
        calls.append(step)
        return {"weight_norm": float(sum((p.detach() ** 2).sum() for p in model.parameters()))}

    t = train(build("linear"), load("seven_points"), lr=0.01, steps=50, callbacks=[(10, cb)])
    assert calls == [0, 10, 20, 30, 40]
    steps, vals = t.metrics["weight_norm"]
    assert list(steps) == calls and len(vals) == 5 and "final_weight_norm" in t.summary()


def test_interrupt_records_status_with_what_it_had():
    def boom(step, model, ctx):
        if step == 30:
            raise KeyboardInterrupt
        return {}

    t = train(build("linear"), load("seven_points"), lr=0.01, steps=100, callbacks=[(1, boom)])
    assert t.status == "interrupted" and len(t.steps) == 30 and len(t.snapshots) >= 1


@pytest.mark.parametrize("kw, match", [
    ({"optimizer": "adamm"}, "Valid optimizer names"),
    ({"schedule": "linear_decay"}, "Valid schedule names"),
    ({"loss": "msee"}, "Valid loss names"),
    ({"lr": -1.0}, "lr must be"),
    ({"steps": 0}, "steps must be"),
    ({"optimizer_options": {"betaz": 1}}, "valid options"),
])
def test_bad_arguments_give_clear_errors(kw, match):
    args = {"optimizer": "adam", "lr": 0.1, "steps": 5, **kw}
    with pytest.raises((ValueError, TypeError, KeyError), match=match):
        train(build("linear"), load("seven_points"), **args)


def test_nan_data_rejected():
    X = torch.tensor([[1.0], [float("nan")]])
    with pytest.raises(ValueError, match="NaN"):
        train(build("linear"), (X, torch.zeros(2, 1)), steps=2)


def test_sharpness_tracking_on_the_seven_point_quadratic():
    # the mse of a linear model is a quadratic: lambda_max is the same at every step, in closed form
    t = train(build("linear", dtype=torch.float64), load("seven_points"), optimizer="momentum", lr=0.01, steps=30,
              sharpness_every=10)
    steps, lam = t.metrics["lambda_max"]
    assert list(steps) == [0, 10, 20]
    np.testing.assert_allclose(lam, seven_lambda_max(), rtol=1e-6)
    np.testing.assert_allclose(t.metrics["two_over_lr"][1], 2 / 0.01)
    np.testing.assert_allclose(t.metrics["two_one_plus_beta_over_lr"][1], 2 * 1.9 / 0.01)
