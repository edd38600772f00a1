"""Contract over the optimizer registry: every optimizer lowers the loss of a quadratic and of
the Rosenbrock function from a fixed start (DESIGN.md, style rule 9; issue #2).

The 2-parameter problems are nn.Modules whose outputs are residuals, trained through
``losslab.train`` with mse against zero targets (losslab.phenomena.optimizers). A new
optimizer added to the registry without an entry in the tables below fails the test, so it
cannot skip the contract.
"""
import math

import pytest

from losslab.optim import OPTIMIZERS
from losslab.phenomena.optimizers import ROSENBROCK_LR, Quadratic, Rosenbrock, rosenbrock_data
from losslab.train import train

# quadratic (theta - theta*)^T diag(1, 10) (theta - theta*) / 2: GD is stable for lr < 2/10; adadelta's
# effective step starts at lr * sqrt(1e-6), hence its large lr
QUADRATIC_LR = {"gd": 0.1, "sgd": 0.1, "momentum": 0.02, "nesterov": 0.02, "adagrad": 0.5, "adadelta": 10.0,
                "rmsprop": 0.05, "adam": 0.1, "adamw": 0.1, "lbfgs": 0.5, "random_search": 0.2, "langevin": 0.05}




def test_tables_cover_the_registry():
    assert set(QUADRATIC_LR) == set(OPTIMIZERS.names())
    assert set(ROSENBROCK_LR) == set(OPTIMIZERS.names())


def test_problem_modules_compute_their_formulas():
    X, y = rosenbrock_data()
    for a, b in [(-1.2, 1.0), (1.0, 1.0), (0.3, -0.7)]:
        m = Rosenbrock(start=(a, b))
        L = ((m(X) - y) ** 2).mean().detach()
        assert float(L) == pytest.approx(((1 - a) ** 2 + 100 * (b - a * a) ** 2) / 2, rel=1e-12, abs=1e-15)
    q = Quadratic()
    L = ((q(X) - y) ** 2).mean().detach()
    assert float(L) == pytest.approx((1.0 * 1.5 ** 2 + 10.0 * 1.75 ** 2) / 2, rel=1e-12)


@pytest.mark.parametrize("name", OPTIMIZERS.names())
def test_optimizer_lowers_quadratic(name):
    tr = train(Quadratic(), rosenbrock_data(), optimizer=name, lr=QUADRATIC_LR[name], steps=200, eval_every=200, seed=0)
    assert tr.status == "completed", tr.message
    L0, L1 = tr.train_eval_loss[0], tr.final_loss
    assert math.isfinite(L1)
    # every optimizer gets within 1% of the initial loss (16.4) of the minimum 0 in 200 steps
    assert L1 <= 0.01 * L0, f"{name}: {L0:.4g} -> {L1:.4g}"


@pytest.mark.parametrize("name", OPTIMIZERS.names())
def test_optimizer_lowers_rosenbrock(name):
    tr = train(Rosenbrock(), rosenbrock_data(), optimizer=name, lr=ROSENBROCK_LR[name], steps=300, eval_every=300, seed=0)
    assert tr.status == "completed", tr.message
    L0, L1 = tr.train_eval_loss[0], tr.final_loss
    # from (-1.2, 1) (loss 12.1) the valley floor is reached: at least a 4x drop in 300 steps
    assert L1 <= 0.25 * L0, f"{name}: {L0:.4g} -> {L1:.4g}"
