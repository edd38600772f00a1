"""The ``inverse_time`` and ``warmup_cosine`` schedules against their formulas (written out here
independently of the module), through the registry and through ``losslab.train``."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from losslab.optim import SCHEDULES, make_optimizer, make_schedule


def _trace(name: str, lr0: float, T: int, **options) -> list[float]:
    x = torch.nn.Parameter(torch.zeros(3))
    opt = make_optimizer("sgd", [x], lr=lr0)
    sched = make_schedule(name, opt, steps=T, **options)
    lrs = []
    for _ in range(T):
        lrs.append(opt.param_groups[0]["lr"])
        x.grad = torch.zeros(3)
        opt.step()
        sched.step()
    return lrs


def test_registered():
    assert "inverse_time" in SCHEDULES and "warmup_cosine" in SCHEDULES


@pytest.mark.parametrize("decay", [0.0, 0.1, 2.5])
def test_inverse_time_formula(decay):
    T, lr0 = 40, 0.3
    ref = [lr0 / (1 + decay * t) for t in range(T)]
    # rtol 1e-12: one float division per step in both; torch stores the lr as a Python float
    np.testing.assert_allclose(_trace("inverse_time", lr0, T, decay=decay), ref, rtol=1e-12, atol=0)


def test_inverse_time_sum_diverges_and_square_sum_converges():
    """The Robbins-Monro conditions that make 1/t converge where a constant lr cannot: sum lr_t grows
    like ln T / decay, sum lr_t^2 stays bounded."""
    lrs = np.array(_trace("inverse_time", 1.0, 20000, decay=1.0))
    assert lrs.sum() == pytest.approx(np.log(20000) + 0.5772, rel=1e-3)  # harmonic number H_T ~ ln T + gamma
    assert (lrs ** 2).sum() < math.pi ** 2 / 6


@pytest.mark.parametrize("T,w,sf,emf", [(50, 5, 0.01, 0.0), (30, 10, 0.0, 0.1), (20, 0, 0.5, 0.0), (11, 1, 0.2, 0.3)])
def test_warmup_cosine_formula(T, w, sf, emf):
    lr0 = 0.4
    ref = []
    for t in range(T):
        if t < w:
            ref.append(lr0 * (sf + (1 - sf) * t / w))
        else:
            ref.append(lr0 * (emf + (1 - emf) * 0.5 * (1 + math.cos(math.pi * (t - w) / (T - w)))))
    got = _trace("warmup_cosine", lr0, T, warmup_steps=w, start_factor=sf, eta_min_factor=emf)
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-15)  # atol: cos(pi) rounding near 0
    assert got[w] == pytest.approx(lr0)  # the peak is lr0, right after the warm-up


def test_warmup_cosine_default_warmup_and_end():
    T, lr0 = 100, 1.0
    got = _trace("warmup_cosine", lr0, T + 1)
    assert got[0] == pytest.approx(0.01 * lr0)
    assert max(got) == pytest.approx(lr0) and int(np.argmax(got)) == 10  # default warm-up: (T+1) // 10 steps


@pytest.mark.parametrize("name,options,match", [
    ("inverse_time", {"decay": -1.0}, "decay must be"),
    ("warmup_cosine", {"warmup_steps": 50}, "warmup_steps must be"),
    ("warmup_cosine", {"start_factor": 2.0}, "start_factor must be"),
    ("warmup_cosine", {"bogus": 1}, "unknown option"),
])
def test_bad_options(name, options, match):
    x = torch.nn.Parameter(torch.zeros(1))
    opt = make_optimizer("sgd", [x], lr=0.1)
    with pytest.raises((ValueError, TypeError), match=match):
        make_schedule(name, opt, steps=50, **options)


def test_train_uses_inverse_time():
    """Gradient descent on f(w) = w^2/2 (gradient w) under lr_t = lr0/(1 + d t): w_T = prod (1 - lr_t) w_0."""
    from losslab.train import train

    X = torch.ones(1, 1, dtype=torch.float64)
    y = torch.zeros(1, 1, dtype=torch.float64)
    model = torch.nn.Linear(1, 1, bias=False).double()
    with torch.no_grad():
        model.weight.fill_(2.0)
    # mse on one point: L = (w - 0)^2, gradient 2w, so w_{t+1} = (1 - 2 lr_t) w_t
    tr = train(model, (X, y), optimizer="gd", lr=0.2, steps=25, schedule="inverse_time",
               schedule_options={"decay": 0.5}, eval_every=25, snapshot_every=25, seed=0)
    w_ref = 2.0 * np.prod([1 - 2 * 0.2 / (1 + 0.5 * t) for t in range(25)])
    assert float(tr.snapshots[-1][0]) == pytest.approx(w_ref, rel=1e-10)
    assert float(model.weight.detach()) == 2.0  # the caller's model is not changed
