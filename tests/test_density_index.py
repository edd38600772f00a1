"""The SLQ index, said for what it is: an estimate (P x quadrature mass below -threshold) and,
separately, the negative eigenvalues Lanczos resolves (a lower bound by Cauchy interlacing)."""
from __future__ import annotations

import json

import torch
from typer.testing import CliRunner

from losslab.cli import app
from losslab.hessian import exact_spectrum, slq


def _matrix(eigs: torch.Tensor, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    U, _ = torch.linalg.qr(torch.randn(len(eigs), len(eigs), generator=g, dtype=torch.float64))
    return (U * eigs) @ U.T


def test_resolved_index_is_a_lower_bound_and_finds_isolated_negatives():
    g = torch.Generator().manual_seed(0)
    isolated = -torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0], dtype=torch.float64)  # far from the bulk
    crowd = -0.05 * torch.rand(40, generator=g, dtype=torch.float64)  # many small negatives near 0
    bulk = torch.rand(155, generator=g, dtype=torch.float64)
    eigs = torch.cat([isolated, crowd, bulk])
    A = _matrix(eigs)
    true_neg = int((eigs < 0).sum())  # 45
    for seed in range(5):
        d = slq(A, n_probes=6, n_steps=40, seed=seed)
        lower, conv = d.resolved_index(), d.resolved_index(converged=True)
        assert conv <= lower <= true_neg, (seed, conv, lower)  # Cauchy interlacing: never more than the truth
        assert conv >= 5  # the isolated five converge in 40 steps (residual << their gap of 1)
        est, se = d.index()
        assert lower < est  # the estimate counts the crowd near zero that no Ritz value resolves
    # threshold: only eigenvalues below -0.5 (the isolated five): resolved exactly
    d = slq(A, n_probes=6, n_steps=40, seed=0)
    assert d.resolved_index(0.5) == 5 == d.resolved_index(0.5, converged=True)
    assert "at least" in repr(d) and "\n" not in repr(d)


def test_cli_density_states_estimate_and_resolved_count():
    args = ["hessian", "--data", "moons", "--model", "mlp", "--model-opt", "hidden=[6]", "--top", "0",
            "--density", "--probes", "4", "--steps", "20", "--no-save"]
    r = CliRunner().invoke(app, args + ["--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)["blocks"]["all parameters"]["density"]
    assert {"index", "index_stderr", "index_threshold", "negative_ritz", "negative_ritz_converged"} <= set(d)
    from losslab.data import load
    from losslab.models import build_for

    s = load("moons", seed=0)
    net = build_for("mlp", s, seed=0, hidden=[6])
    spec = exact_spectrum(net, s.train, s.default_loss)
    n_neg = int((spec.eigenvalues < -d["index_threshold"]).sum())
    # P = 32 < 20 steps x ... : the lower bound holds against the exact spectrum (float64 both)
    assert d["negative_ritz_converged"] <= d["negative_ritz"] <= n_neg
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    text = " ".join(r.stdout.split())  # rich wraps long lines
    assert "SLQ estimate" in text and "not a count" in text and "resolved by Lanczos" in text
