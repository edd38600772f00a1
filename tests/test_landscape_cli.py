"""`losslab surface` end to end: JSON output, saved files, resume of an interrupted grid."""
from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from losslab.cli import app
from losslab.landscape import Surface, surface
from losslab.cli.surface import acquire_model


def test_surface_cli_json_and_store(tmp_path):
    args = ["surface", "--data", "moons", "--model", "mlp", "--model-opt", "hidden=[8]", "--train-steps", "10",
            "--resolution", "4", "--span", "0.5", "--json", "--store", str(tmp_path)]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert np.array(out["loss"]).shape == (4, 4) and out["kind"] == "filter"
    s = Surface.load(out["saved"]["npz"])
    np.testing.assert_allclose(s.loss, out["loss"])
    # the same surface from Python with the model the CLI trained
    net, splits, loss = acquire_model(data="moons", data_opts={}, model="mlp", model_opts={"hidden": [8]}, loss=None,
                                      train_steps=10, lr=1e-2, optimizer="adam", seed=0)
    ref = surface(net, splits.train, loss=loss, resolution=4, span=0.5)
    np.testing.assert_allclose(s.loss, ref.loss, rtol=1e-6)
    assert not list((tmp_path / "surfaces" / "partial").glob("*.npz"))  # checkpoint removed when complete


def test_surface_cli_bad_kind(tmp_path):
    r = CliRunner().invoke(app, ["surface", "--directions", "nope", "--train-steps", "0", "--resolution", "2",
                                 "--store", str(tmp_path)])
    assert r.exit_code != 0
    assert "filter" in str(r.exception) or "filter" in r.output
