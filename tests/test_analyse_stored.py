"""Analyses on a stored training run: the model is rebuilt at its final parameters."""
import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from losslab.cli import app
from losslab.store import StoreError, load_trained_run, open_store


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    store = tmp_path_factory.mktemp("store")
    res = CliRunner().invoke(app, ["train", "--data", "moons", "--model", "mlp", "--model-opt", "hidden=[8]",
                                   "--optimizer", "adam", "--lr", "0.02", "--steps", "40", "--store", str(store),
                                   "--json"])
    assert res.exit_code == 0, res.output
    return store, json.loads(res.stdout)["id"]


def test_load_trained_run_rebuilds_final_parameters(stored):
    store, rid = stored
    st = open_store(store)
    tr = load_trained_run(st, rid)
    flat = torch.cat([p.detach().reshape(-1) for p in tr.model.parameters()]).numpy()
    np.testing.assert_array_equal(flat, st.load_arrays(rid)["snapshots"][-1])
    # the rebuilt model reproduces the stored final training loss
    X, y = tr.splits.train
    with torch.no_grad():
        loss = float(tr.loss(tr.model(X), y))
    assert loss == pytest.approx(st.get(rid).summary["final_train_loss"], rel=1e-6)


def test_hessian_on_a_stored_run_is_recorded_with_its_parent(stored):
    from losslab.hessian import exact_spectrum

    store, rid = stored
    res = CliRunner().invoke(app, ["hessian", "--run", rid[:12], "--top", "2", "--float64", "--store", str(store),
                                   "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    tr = load_trained_run(open_store(store), rid)
    exact = exact_spectrum(tr.model, tr.splits.train, tr.loss, dtype=torch.float64).eigenvalues
    top = np.sort(np.asarray(exact))[::-1][:2]
    np.testing.assert_allclose(out["blocks"]["all parameters"]["top"]["eigenvalues"], top, rtol=1e-6)
    rec = open_store(store).get(out["run_id"])
    assert rec.kind == "hessian" and rec.summary["lambda_max"] == pytest.approx(top[0], rel=1e-6)


def test_analysing_a_non_training_run_is_a_clear_error(stored):
    store, rid = stored
    st = open_store(store)
    hs = [r for r in st.list() if r.kind != "train"]
    if not hs:
        pytest.skip("needs the hessian run of the previous test")
    with pytest.raises(StoreError, match="training run"):
        load_trained_run(st, hs[0].id)
