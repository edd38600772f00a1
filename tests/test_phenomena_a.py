"""Training-phenomena experiments, part A (issue #6): each at its --quick size with fixed seeds,
asserting its claim with numbers, plus independent references for the pieces they rest on,
the storage round trip and the CLI."""
import json

import numpy as np
import pytest
import torch

from losslab.phenomena import EXPERIMENTS, run_experiment




_cache: dict = {}


def quick(name):
    if name not in _cache:
        _cache[name] = run_experiment(name, quick=True, seed=0)
    return _cache[name]


def test_registered():
    for n in ("random_search", "learning_rate", "optimizers", "minima", "overfitting", "gradient_check"):
        assert n in EXPERIMENTS
    assert EXPERIMENTS.get("random-search") is EXPERIMENTS.get("random_search")


# --- learning rate ------------------------------------------------------------------------------
def test_seven_point_hessian_matches_autograd():
    from losslab.data import load
    from losslab.phenomena.learning_rate import seven_point_hessian

    d = load("seven_points").train
    X, y = d.X.double(), d.y.double()

    def loss(theta):  # theta = (w, b), mse = mean over the 7 examples
        return ((X[:, 0] * theta[0] + theta[1] - y[:, 0]) ** 2).mean()

    H_ref = torch.autograd.functional.hessian(loss, torch.tensor([0.3, -0.2], dtype=torch.float64))
    H, eig = seven_point_hessian()
    torch.testing.assert_close(H, H_ref, rtol=1e-12, atol=1e-12)
    assert float(eig[-1]) == pytest.approx(float(torch.linalg.eigvalsh(H_ref)[-1]), rel=1e-12)


def test_learning_rate_thresholds():
    r = quick("learning_rate")
    s = r.summary
    # the criterion: observed divergence rate within 5% of 2/lambda_max (and 2(1+beta)/lambda_max)
    assert abs(s["observed_gd_threshold"] / (2 / s["lambda_max"]) - 1) <= 0.05
    assert abs(s["observed_threshold_beta_0.9"] / (2 * 1.9 / s["lambda_max"]) - 1) <= 0.05
    assert s["excess_too_small"] >= 10 * s["excess_good"]
    assert s["excess_good"] * 100 <= s["initial_excess_loss"]
    assert s["status_too_large"] == "diverged" and s["status_overshooting"] == "completed"
    assert r.passed, r.checks


def test_bisection_rejects_bad_bracket():
    from losslab.phenomena.learning_rate import observed_threshold

    with pytest.raises(ValueError, match="already diverges"):
        observed_threshold(lo=1.0, hi=2.0, iterations=1, steps=50)


# --- random search ------------------------------------------------------------------------------
def test_gram_loss_equals_model_loss():
    from losslab.phenomena.random_search import make_problem, mse_of_guesses

    X, y, w_star, h = make_problem(3, kappa=10, n_examples=16, noise=0.1, seed=4)
    W = torch.rand(50, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 2 - 1
    G, c, yy = X.T @ X, (X.T @ y).reshape(-1), float((y * y).sum())
    gram = (((W @ G) * W).sum(1) - 2 * W @ c + yy) / X.shape[0]
    torch.testing.assert_close(gram, mse_of_guesses(X, y, W), rtol=1e-10, atol=1e-12)
    # the design has the promised Hessian and w* is the exact least-squares solution
    torch.testing.assert_close(2 / X.shape[0] * X.T @ X, torch.diag(h), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(torch.linalg.lstsq(X, y).solution.reshape(-1), w_star, rtol=1e-10, atol=1e-12)


def test_random_search_curse_of_dimensionality():
    r = quick("random_search")
    s, a = r.summary, r.arrays
    ok = a["hits"] >= 200
    # measured mean guesses vs the closed-form volume ratio: 600 hits -> ~4% std; 15% is ~3.7 sigma
    assert np.all(np.abs(a["guesses_measured"][ok] / a["guesses_predicted"][ok] - 1) <= 0.15)
    assert s["decades_per_parameter"] >= 0.5
    assert a["guesses_measured"][-1] >= 100 * a["guesses_measured"][0]
    assert np.all(a["gd_steps"] <= a["gd_steps_bound"])
    assert 100 * a["gd_steps"][-1] <= a["guesses_measured"][-1]
    # the chapter's arithmetic: 784-15-10 has 784*15 + 15*10 weights + 25 biases = 11,935 parameters
    assert s["mnist_784_15_10_parameters"] == 784 * 15 + 15 * 10 + 25 == 11935
    assert s["mnist_log10_grid_guesses_10_bins"] == pytest.approx(11935.0, abs=1e-9)
    assert s["mnist_grid_decades_beyond_atoms"] == pytest.approx(11935.0 - 80, abs=1e-9)
    assert "11,935 parameters" in r.text and "10^11935" in r.text
    from losslab.phenomena.random_search import grid_guesses

    assert grid_guesses(torch.nn.Linear(3, 2), bins=100) == (8, pytest.approx(16.0))
    with pytest.raises(ValueError, match="bins"):
        grid_guesses(torch.nn.Linear(3, 2), bins=1)
    assert r.passed, r.checks


# --- optimizers ---------------------------------------------------------------------------------
def test_optimizers_all_from_one_init():
    from losslab.optim import OPTIMIZERS

    r = quick("optimizers")
    s = r.summary
    for nm in OPTIMIZERS.names():
        assert s[f"rosenbrock_final_{nm}"] <= 0.5 * 12.1  # start (-1.2, 1): f/2 = 12.1
    assert all(s[f"digits_final_{nm}"] < s["digits_final_random_search"] for nm in OPTIMIZERS.names() if nm != "random_search")
    # the shared plane: every digits path starts at the common init = plane origin
    for nm in OPTIMIZERS.names():
        c = r.arrays[f"digits/{nm}/coords"]
        assert np.allclose(c[0], 0, atol=1e-5) and r.arrays[f"digits/{nm}/off_plane"][0] < 1e-5
    fig = {f.key: f for f in r.figures}["rosenbrock_paths"]
    # grid evaluated through the module equals the formula
    A, B = np.meshgrid(fig.grid.x, fig.grid.y)
    np.testing.assert_allclose(fig.grid.z, ((1 - A) ** 2 + 100 * (B - A * A) ** 2) / 2, rtol=1e-12)
    assert r.passed, r.checks


# --- minima: tests in tests/test_flat_minima.py ---------------------------------------------


# --- overfitting --------------------------------------------------------------------------------
def test_polynomial_fit_matches_numpy_polyfit():
    from losslab.data import load
    from losslab.phenomena.overfitting import fit_predict

    sp = load("polynomial", seed=3, n=12)
    xs = torch.linspace(0, 1, 7, dtype=torch.float64).unsqueeze(1)
    for d in (1, 3, 5):
        (p,) = fit_predict(sp.train, [xs], d)
        coef = np.polyfit(sp.train.X.double().numpy()[:, 0], sp.train.y.double().numpy()[:, 0], d)
        np.testing.assert_allclose(p.numpy()[:, 0], np.polyval(coef, xs.numpy()[:, 0]), rtol=1e-7, atol=1e-8)


def test_overfitting_caught():
    r = quick("overfitting")
    s, a = r.summary, r.arrays
    assert np.all(np.diff(a["train_mse"]) <= 1e-10) and a["train_mse"][-1] <= 1e-8
    assert s["test_mse_max_degree"] >= 10 * s["test_mse_by_validation"]
    assert s["test_mse_by_cv"] <= 2 * s["test_mse_oracle"]
    assert s["selection_sign_test_z"] >= 2
    plain = s["mlp_test_mse[plain]"]
    regs = [k for k in s if k.startswith("mlp_test_mse[") and k != "mlp_test_mse[plain]"]
    assert len(regs) == 3 and all(s[k] < plain for k in regs)
    assert r.passed, r.checks


# --- gradient check -----------------------------------------------------------------------------
def test_gradient_check_every_model_kind():
    from losslab.models import MODELS

    r = quick("gradient_check")
    s = r.summary
    kinds = {k[len("max_rel_err["):-1].split(" ")[0] for k in s if k.startswith("max_rel_err[")}
    assert kinds == set(MODELS.names())
    assert s["max_rel_err_all_models"] <= 1e-6
    assert s["wrong_backward_rel_err"] >= 1e-2
    assert r.passed, r.checks


# --- storage and CLI ----------------------------------------------------------------------------
def _assert_same_figures(f1, f2):
    assert len(f1) == len(f2)
    for a, b in zip(f1, f2):
        assert (a.key, a.title, a.kind, a.caption, a.log_x, a.log_y, a.slider) == (b.key, b.title, b.kind, b.caption,
                                                                                   b.log_x, b.log_y, b.slider)
        assert a.hlines == b.hlines
        assert json.loads(json.dumps(a.table, default=float)) == json.loads(json.dumps(b.table, default=float))
        for sa, sb in zip(a.series, b.series, strict=True):
            assert sa.name == sb.name and sa.mode == sb.mode and sa.dash == sb.dash
            for fld in ("x", "y", "band_lo", "band_hi"):
                va, vb = getattr(sa, fld), getattr(sb, fld)
                assert (va is None) == (vb is None)
                if va is not None:
                    np.testing.assert_array_equal(np.asarray(va), vb)
        assert (a.grid is None) == (b.grid is None)
        if a.grid is not None:
            for fld in ("x", "y", "z"):
                np.testing.assert_array_equal(np.asarray(getattr(a.grid, fld)), getattr(b.grid, fld))
        for pa, pb in zip(a.paths, b.paths, strict=True):
            for fld in ("x", "y", "z", "steps", "off_plane"):
                va, vb = getattr(pa, fld), getattr(pb, fld)
                assert (va is None) == (vb is None)
                if va is not None:
                    np.testing.assert_array_equal(np.asarray(va), vb)


def test_storage_round_trip(tmp_path):
    from losslab.phenomena.storage import load_experiment, save_experiment
    from losslab.store import open_store

    store = open_store(tmp_path / "runs")
    for name in ("optimizers", "overfitting"):  # contour grids + paths; series with hlines, scatter
        r = quick(name)
        rid = save_experiment(store, r)
        back = load_experiment(store, rid)
        assert (back.name, back.title, back.claim, back.text, back.checks) == (r.name, r.title, r.claim, r.text, r.checks)
        assert back.wall_time == pytest.approx(r.wall_time)
        assert set(back.arrays) == set(r.arrays)
        for k in r.arrays:
            np.testing.assert_array_equal(back.arrays[k], r.arrays[k])
        _assert_same_figures(r.figures, back.figures)
        rec = store.get(rid)
        assert rec.kind == "experiment" and rec.status == "completed"
        assert rec.summary["checks_total"] == len(r.checks)
    with pytest.raises(TypeError, match="ExperimentResult"):
        save_experiment(store, {"not": "a result"})


def test_cli_list_and_run(tmp_path):
    from typer.testing import CliRunner

    from losslab.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["experiments", "list", "--json"])
    assert res.exit_code == 0, res.output
    names = {row["name"] for row in json.loads(res.stdout)}
    assert {"random_search", "learning_rate", "optimizers", "minima", "overfitting", "gradient_check"} <= names
    store = tmp_path / "runs"
    args = ["experiments", "run", "random-search", "--quick", "--store", str(store), "--opt", "dims=[1,2]",
            "--opt", "target_hits=300", "--opt", "local_steps=50"]
    res = runner.invoke(app, args + ["--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["name"] == "random_search" and out["summary"]["dims"] == [1, 2]
    from losslab.phenomena.storage import load_experiment
    from losslab.store import open_store

    back = load_experiment(open_store(store), out["run_id"])
    assert back.settings["target_hits"] == 300
    res = runner.invoke(app, args)  # the human-readable form: summary table and check marks
    assert "✓" in res.stdout or "✗" in res.stdout
    assert "stored as run" in res.stdout
    bad = runner.invoke(app, ["experiments", "run", "random-search", "--store", str(store), "--opt", "nope=1"])
    assert bad.exit_code != 0
    assert "valid options" in str(bad.exception) or "valid options" in bad.output
