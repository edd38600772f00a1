"""DLN experiments (quick sizes): Saxe's closed form, the Langevin stationary density, depth
acceleration, storage and the CLI."""
import json

import numpy as np
import pytest

from losslab.phenomena.dln_experiments import save_result
from losslab.phenomena.dln_runs import EXPERIMENTS, conservation, depth, end_to_end_experiment, langevin, saxe
from losslab.dln.langevin import (diffusion, diffusion_prime, from_arclength, langevin_drift, quadratic,
                                  stationary_bin_probabilities, stationary_density, to_arclength)


def test_saxe_aligned_init_matches_closed_form():
    r = saxe(quick=True)
    # done-when: 1e-6 (measured ~6e-11 at rtol 1e-11)
    assert r.max_abs_error < 1e-6
    # learning time ordered by 1/s: larger s learns first
    assert np.all(np.diff(r.t_half_flow) > 0) and np.all(np.diff(r.s) < 0)
    np.testing.assert_allclose(r.t_half_flow, r.t_half_closed_form, rtol=1e-3)  # 201-point interpolation
    # the random small init only approximately follows the curves (it is not decoupled)
    assert np.max(np.abs(r.u_random_init - r.u_closed_form)) > 10 * r.max_abs_error


def test_conservation_and_end_to_end_quick():
    c = conservation(quick=True)
    assert np.max(c.flow_drift) < 1e-9
    assert np.all(np.abs(c.halving_ratios - 2) < 0.4)
    e = end_to_end_experiment(quick=True)
    assert e.summary()["max_rel_diff_balanced"] < 1e-7  # two ODE solves at rtol 1e-10 (measured 2e-9)
    assert e.summary()["max_rel_diff_unbalanced"] > 1e-2  # an unbalanced start departs from the ODE


def test_langevin_pieces_are_consistent():
    x = np.linspace(-2, 2, 41)
    for N in (2, 3, 4):
        np.testing.assert_allclose(from_arclength(to_arclength(x, N), N), x, atol=1e-14)
        h = 1e-6
        xs = x[np.abs(x) > 0.1]
        fd = (diffusion(xs + h, N) - diffusion(xs - h, N)) / (2 * h)
        np.testing.assert_allclose(diffusion_prime(xs, N), fd, rtol=1e-6)
    # zero flux: drift * rho == (D rho)' / beta (finite differences, away from x = 0)
    e, N, beta = quadratic(a=1.0), 3, 2.0
    xs = np.linspace(0.2, 2.0, 10)
    rho = lambda z: stationary_density(z, e, N=N, beta=beta, lo=-1, hi=2.5)  # noqa: E731
    h = 1e-5
    dDrho = (diffusion(xs + h, N) * rho(xs + h) - diffusion(xs - h, N) * rho(xs - h)) / (2 * h)
    np.testing.assert_allclose(langevin_drift(xs, e, N, beta) * rho(xs), dDrho / beta, rtol=1e-6)
    # bin probabilities integrate the density (quadrature in y vs direct in x on a bin away from 0)
    from scipy.integrate import quad

    edges = np.linspace(-1, 2.5, 8)
    p = stationary_bin_probabilities(edges, e, N=N, beta=beta)
    assert abs(p.sum() - 1) < 1e-12
    assert abs(p[-1] - quad(rho, edges[-2], edges[-1], epsrel=1e-12)[0]) < 1e-9


def test_langevin_histogram_matches_riemannian_density_and_rejects_gibbs():
    r = langevin(quick=True)  # 4000 chains x 10 records, dt = 4e-3, beta = 4, N = 2
    # Tolerance: TV <= 0.03, about 4x the sampling noise floor (~0.007 for 40k samples, 20 bins);
    # the remaining dt bias measured ~0.004 at dt = 2e-3 with 200k samples. TV(predicted, Gibbs) = 0.17.
    assert r.tv_predicted < 0.03, r.summary()
    assert r.tv_gibbs > 0.1, r.summary()
    assert r.fraction_outside < 0.01
    assert np.all(np.isfinite(r.noisy_free_energy))


def test_langevin_euler_scheme_also_close():
    r = langevin(quick=True, scheme="euler", n_chains=2000)
    assert r.tv_predicted < 0.04 and r.tv_gibbs > 0.1, r.summary()


def test_depth_accelerates_p4():
    r = depth(quick=True, control=False)
    (k,) = np.where(r.ps == 4)[0]
    d1, d2 = r.mean_steps_to_target[k, 0], r.mean_steps_to_target[k, 1]
    assert r.depths[0] == 1 and r.depths[1] == 2
    assert d1 <= r.settings["max_steps"]  # depth 1 does reach the target, so the comparison is fair
    assert d2 < d1, r.summary()  # done-when: depth 2 fewer steps than depth 1 (seeds averaged)
    # every best lr is inside the grid, not at its edge (else the grid would be too narrow)
    assert np.all((r.best_lr[k] > r.lr_grid[0]) & (r.best_lr[k] < r.lr_grid[-1]))


def test_save_result_writes_json_and_npz(tmp_path):
    r = conservation(quick=True)
    from losslab.store import open_store

    rid = save_result(r, tmp_path, "conservation")
    store = open_store(tmp_path)
    np.testing.assert_array_equal(store.load_arrays(rid)["gd_drift"], r.gd_drift)
    assert store.get(rid).summary["halving_ratio_smallest_steps"] == pytest.approx(r.halving_ratios[-1])


def test_registry_and_cli(tmp_path):
    from typer.testing import CliRunner

    from losslab.cli import app

    assert set(EXPERIMENTS.names()) == {"conservation", "end_to_end", "depth", "saxe", "langevin"}
    res = CliRunner().invoke(app, ["dln", "saxe", "--quick", "--json", "--store", str(tmp_path)])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["summary"]["max_abs_error_aligned"] < 1e-6
    from losslab.store import open_store

    assert len(open_store(tmp_path).list()) == 1
