"""`losslab surface` end to end: JSON output, saved files, resume of an interrupted grid."""
from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from losslab.cli import app
from losslab.landscape import surface
from losslab.cli.surface import acquire_model


def test_surface_cli_json_and_store(tmp_path):
    args = ["surface", "--data", "moons", "--model", "mlp", "--model-opt", "hidden=[8]", "--train-steps", "10",
            "--resolution", "4", "--span", "0.5", "--json", "--store", str(tmp_path)]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert np.array(out["loss"]).shape == (4, 4) and out["kind"] == "filter"
    from losslab.store import load_trained_run, open_store

    st = open_store(tmp_path)
    rec = st.get(out["run_id"])
    assert rec.kind == "surface" and rec.parent == out["training_run"]
    stored = st.load_arrays(rec.id)
    np.testing.assert_allclose(stored["loss"], out["loss"])
    # the same surface from Python, on the training run the CLI stored (and the CLI's training is reproducible)
    tr = load_trained_run(st, out["training_run"])
    ref = surface(tr.model, tr.splits.train, loss=tr.loss, resolution=4, span=0.5)
    np.testing.assert_allclose(stored["loss"], ref.loss, rtol=1e-6)
    net, _, _, rid2 = acquire_model(st, run=None, data="moons", data_opts={}, model="mlp", model_opts={"hidden": [8]},
                                    loss=None, train_steps=10, lr=1e-2, optimizer="adam", seed=0)
    np.testing.assert_array_equal(st.load_arrays(rid2)["snapshots"][-1], stored["base"])
    assert not list((tmp_path / "surfaces" / "partial").glob("*.npz"))  # checkpoint removed when complete


def test_surface_cli_on_a_stored_run(tmp_path):
    r = CliRunner().invoke(app, ["train", "--data", "moons", "--model", "mlp", "--model-opt", "hidden=[8]", "--steps",
                                 "20", "--store", str(tmp_path), "--json"])
    rid = json.loads(r.stdout)["id"]
    r = CliRunner().invoke(app, ["surface", "--run", rid, "--resolution", "3", "--dim", "1", "--json", "--store",
                                 str(tmp_path)])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["training_run"] == rid and np.array(out["loss"]).shape == (3,)


def test_surface_cli_bad_kind(tmp_path):
    r = CliRunner().invoke(app, ["surface", "--directions", "nope", "--train-steps", "1", "--resolution", "2",
                                 "--store", str(tmp_path)])
    assert r.exit_code != 0
    assert "filter" in str(r.exception) or "filter" in r.output
