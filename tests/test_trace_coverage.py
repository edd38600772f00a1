"""Do the stated standard errors of the trace estimators mean what they say?

For each estimator and each matrix with a known spectrum (an explicit matrix as the operator,
so a run costs microseconds), 200 seeds: the truth should lie within estimate +- 2 s.e. about
95 % of the time. Acceptance band, from the binomial distribution: with n = 200 and a true
coverage of 95 % the count has mean 190 and s.d. 3.1, so >= 176 (88 %) fails by chance with
probability ~1e-5; allowing for the Student-t shortfall of small samples (t with 9 degrees of
freedom puts 92 % within 2 s.e.) the chance stays below 1 %. The upper end, <= 198 (99 %),
catches a stated error that is too large (a 2x too large s.e. covers ~100 %). The seeds are
fixed, so each case is deterministic; a wrong s.e. (e.g. a missing sqrt(n), or a variance that
ignores a term) lands far outside the band (s.e. halved: ~68 %).
"""
from __future__ import annotations

import math
import warnings

import pytest
import torch

from losslab.hessian import ConvergenceWarning, hutchinson, hutchpp, slq
from losslab.hessian import deflated_hutchinson as deflated

N_SEEDS = 200
LOW, HIGH = 0.88, 0.99  # binomial band for 95 % coverage at n = 200 (module docstring)
P = 150


def _matrix(eigs: torch.Tensor, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    U, _ = torch.linalg.qr(torch.randn(len(eigs), len(eigs), generator=g, dtype=torch.float64))
    A = (U * eigs) @ U.T
    return (A + A.T) / 2


def _spectra() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    i = torch.arange(1, P + 1, dtype=torch.float64)
    return {
        # a trained network's Hessian: power-law decay, a few small negative eigenvalues
        "decaying": torch.cat([3 * i[: P - 10] ** -1.2, -0.02 * torch.rand(10, generator=g, dtype=torch.float64)]),
        # one outlier over a spread bulk (skewed Hutchinson samples: the hard case for an s.e.)
        "outlier": torch.cat([torch.tensor([20.0], dtype=torch.float64),
                              0.2 * torch.rand(P - 11, generator=g, dtype=torch.float64),
                              -0.05 * torch.rand(10, generator=g, dtype=torch.float64)]),
        # no structure to deflate
        "flat": 0.5 + torch.rand(P, generator=g, dtype=torch.float64),
    }


ESTIMATORS = {
    "hutchinson": lambda A, s: hutchinson(A, rtol=0.05, seed=s, max_samples=5000),
    "hutchpp": lambda A, s: hutchpp(A, n_products=30, seed=s),
    # rtol 0.02: at 0.01 on P = 150 the cost model deflates the flat spectrum completely (each
    # Lanczos step saves about one probe), which is exact (s.e. 0) and tests no s.e.
    "deflated": lambda A, s: deflated(A, rtol=0.02, seed=s),
    "slq": lambda A, s: slq(A, n_probes=10, n_steps=15, seed=s, grid_points=2).trace,
}


@pytest.mark.parametrize("spectrum", ["decaying", "outlier", "flat"])
@pytest.mark.parametrize("method", list(ESTIMATORS))
def test_two_stderr_cover_the_truth_about_95_percent(method, spectrum):
    eigs = _spectra()[spectrum]
    A, truth = _matrix(eigs), float(eigs.sum())
    hits, errs = 0, []
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)  # every run must meet its own stopping rule
        for seed in range(N_SEEDS):
            r = ESTIMATORS[method](A, seed)
            est, se = (r.estimate, r.stderr) if hasattr(r, "estimate") else r
            assert math.isfinite(se) and se > 0, (seed, est, se)
            z = abs(est - truth) / se
            hits += z <= 2
            errs.append(z)
    cover = hits / N_SEEDS
    worst = sorted(errs)[-3:]
    assert LOW <= cover <= HIGH, f"{method} on {spectrum}: {cover:.3f} within 2 s.e.; worst |err|/se {worst}"


def test_deflated_is_exact_when_the_krylov_space_is_everything():
    # rank-3 spectrum: the Krylov space of any start is invariant after 3 steps, so the
    # remainder is zero to rounding and the estimate is exact (absolute floor 1e-9: rounding
    # of 3 Lanczos steps on a 60 x 60 matrix of norm 5)
    eigs = torch.zeros(60, dtype=torch.float64)
    eigs[:3] = torch.tensor([5.0, 2.0, -1.0])
    t = deflated(_matrix(eigs, seed=4), rtol=0.01, seed=0)
    assert abs(t.estimate - 6.0) < 1e-9 and t.converged
    P_small = torch.diag(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))
    t = deflated(P_small, seed=0)  # the whole space after 3 steps: tr(T_3) = tr H, no probes
    assert abs(t.estimate - 6.0) < 1e-12 and t.stderr == 0.0 and t.n_samples == 0 and t.n_products == 3


def test_deflated_spends_far_fewer_products_than_hutchinson_on_a_decaying_spectrum():
    eigs = _spectra()["decaying"]
    A, truth = _matrix(eigs), float(eigs.sum())
    d = deflated(A, rtol=0.02, seed=0)
    h = hutchinson(A, rtol=0.02, seed=0, max_samples=20000)
    assert d.converged and h.converged
    assert d.stderr <= 0.02 * abs(d.estimate) and abs(d.estimate - truth) <= 3 * d.stderr
    assert d.n_products < h.n_products / 3, (d.n_products, h.n_products)
    assert d.n_products == d.rank + d.n_samples
    assert abs(d.estimate - sum(d.samples) / len(d.samples)) < 1e-12  # samples carry the deflated part


def test_trace_estimate_repr_is_one_line_and_keeps_the_samples():
    t = hutchinson(_matrix(_spectra()["flat"]), rtol=0.01, seed=0, max_samples=2000)
    text = repr(t)
    assert "\n" not in text and len(text) < 200 and "hutchinson" in text and f"{t.n_samples} samples" in text
    assert len(t.samples) == t.n_samples > 10  # the samples stay a field


def test_slq_trace_is_deflated_by_the_first_probe_and_exact_in_the_limit():
    eigs = _spectra()["decaying"]
    A, truth = _matrix(eigs), float(eigs.sum())
    d = slq(A, n_probes=10, n_steps=15, seed=0)
    plain, plain_se = d.trace_f(lambda t: t)
    tr, se = d.trace
    assert se < plain_se / 2  # the deflation pays on a decaying spectrum
    assert abs(tr - truth) <= 3 * se
    d = slq(A, n_probes=4, n_steps=P, seed=0)  # the first probe's Krylov space is the whole space
    tr, se = d.trace
    assert abs(tr - truth) < 1e-8 and se < 1e-8  # remainder zero up to rounding (absolute floor)


def test_deflated_turns_exact_on_a_small_operator_rather_than_overspend():
    # P = 87 with a flat spectrum at rtol 1e-3: Hutchinson would need thousands of probes, the
    # exact remainder costs P - k products; the estimate must be exact (1e-9: rounding of ~87
    # products with a 87 x 87 QR) and cost at most P + min_samples + block products
    g = torch.Generator().manual_seed(3)
    eigs = 0.5 + torch.rand(87, generator=g, dtype=torch.float64)
    A, truth = _matrix(eigs, seed=5), float(eigs.sum())
    t = deflated(A, rtol=1e-3, seed=0)
    assert t.converged and t.stderr == 0.0 and t.rank == 87
    assert abs(t.estimate - truth) < 1e-9 * abs(truth), (t.estimate, truth)
    assert t.n_products <= 87 + 30 + 8, t.n_products
    # P - k <= min_samples after Lanczos: the Krylov space is finished instead of probing
    t = deflated(_matrix(eigs[:25], seed=6), rtol=0.05, seed=1)
    assert t.n_samples == 0 and t.stderr == 0.0 and abs(t.estimate - float(eigs[:25].sum())) < 1e-9
