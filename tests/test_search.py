"""grid_search and cross_validate against a hand-written loop over the same grid and folds."""
import numpy as np
import pytest
import torch

from losslab.data import Data, Splits, kfold, load
from losslab.experiments import cross_validate, grid_search
from losslab.models import build
from losslab.train import train


def test_grid_search_equals_manual_loop():
    splits = load("linear", seed=0, n=80, dim=3)
    factory = lambda hidden: build("mlp", in_dim=3, out_dim=1, hidden=[hidden], seed=0)  # noqa: E731
    gs = grid_search(factory, splits, {"lr": [0.01, 0.05], "hidden": [4, 8]}, steps=20, optimizer="gd", seed=0)
    assert len(gs.params) == 4 and gs.metric == "final_val_loss"
    for p, s in zip(gs.params, gs.scores):
        ref = train(factory(p["hidden"]), splits, lr=p["lr"], steps=20, optimizer="gd", seed=0).summary()["final_val_loss"]
        assert s == ref  # same deterministic run
    assert gs.best_score == np.min(gs.scores) and gs.best_params == gs.params[int(np.argmin(gs.scores))]


def test_grid_search_diverged_is_never_best():
    X = torch.linspace(-1, 1, 20).unsqueeze(1)
    d = Data(X, 3 * X)
    gs = grid_search(build("linear"), d, {"lr": [0.1, 1e4]}, steps=30, optimizer="gd")
    assert np.isnan(gs.scores[1]) and gs.best_params == {"lr": 0.1}


def test_cross_validate_equals_manual_folds():
    torch.manual_seed(0)
    X = torch.randn(40, 2)
    y = X @ torch.tensor([[1.0], [-2.0]]) + 0.1 * torch.randn(40, 1)
    d = Data(X, y)
    model = build("linear", in_dim=2, seed=1)
    cv = cross_validate(model, d, k=4, seed=5, param_grid={"lr": [0.05, 0.2]}, steps=15, optimizer="gd")
    assert cv.fold_scores.shape == (2, 4)
    for i, lr in enumerate((0.05, 0.2)):
        for j, (tr, va) in enumerate(kfold(40, 4, seed=5)):
            t = train(model, Splits(d.subset(tr), d.subset(va)), lr=lr, steps=15, optimizer="gd")
            with torch.no_grad():  # independent held-out MSE
                ref = float(((t.model(X[va]) - y[va]) ** 2).mean())
            assert cv.fold_scores[i, j] == pytest.approx(ref, rel=1e-6)  # float32 sums in another order
    assert cv.best_params == {"lr": 0.2}  # 15 steps of gd: the larger stable lr fits better
    np.testing.assert_allclose(cv.mean, cv.fold_scores.mean(axis=1))


def test_bad_grid_errors():
    with pytest.raises(ValueError, match="non-empty list"):
        grid_search(build("linear"), load("seven_points"), {"lr": []})
    with pytest.raises(ValueError, match="not arguments of losslab.train"):
        grid_search(build("linear"), load("seven_points"), {"hidden": [1]})
    with pytest.raises(ValueError, match="metric must be one of"):
        cross_validate(build("linear"), load("seven_points"), metric="r2")
