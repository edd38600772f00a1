"""`losslab surface --run ID` defaults to the PCA plane of the run's trajectory (Li et al. 2018,
Sec. 7), says so, and keeps random filter-normalized directions one flag away (#18 item 4).

The plane, its explained variance and how far the trajectory is off it are checked here against
an independent numpy computation on the run's stored snapshots."""
import json

import numpy as np
import pytest
from conftest import invoke_cli

from losslab.store import load_trained_run, open_store

_cli = invoke_cli  # conftest: the CLI's entry point in-process -> (code, stdout, stderr)

TRAIN = ("train", "--data", "moons", "--data-opt", "n=120", "--model", "mlp", "--model-opt", "hidden=[6]",
         "--optimizer", "adam", "--lr", "0.05", "--json")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A store with a 60-step training run (snapshots every 10 steps: 7) and a 1-step one (2 snapshots)."""
    import contextlib
    import io
    import sys

    from losslab.cli import app
    from losslab.cli._common import run_app

    store = tmp_path_factory.mktemp("store")
    ids = {}
    for name, steps in (("long", "60"), ("short", "1")):
        buf = io.StringIO()
        argv, sys.argv = sys.argv, ["losslab", *TRAIN, "--steps", steps, "--name", name, "--store", str(store)]
        try:
            with contextlib.redirect_stdout(buf):
                assert run_app(app) == 0
        finally:
            sys.argv = argv
        ids[name] = json.loads(buf.getvalue())["id"]
    snaps = open_store(store).load_arrays(ids["long"])["snapshots"]
    assert snaps.shape[0] == 7 and np.isfinite(snaps).all()
    assert open_store(store).load_arrays(ids["short"])["snapshots"].shape[0] == 2
    return store, ids


def _pca_numpy(S: np.ndarray, k: int):
    """Top-k principal directions (rows) and explained variance ratios, numpy float64 SVD."""
    C = S - S.mean(0)
    _, s, Vt = np.linalg.svd(C, full_matrices=False)
    return Vt[:k], s[:k] ** 2 / (s ** 2).sum()


def _off_plane_fraction(S: np.ndarray, base: np.ndarray, D: np.ndarray) -> tuple[float, np.ndarray]:
    """sqrt(sum ||residual||^2 / sum ||theta - base||^2) of the snapshots on the plane base + span(D),
    by least squares, and the coordinates (K, k)."""
    R = S - base
    coords, *_ = np.linalg.lstsq(D.T, R.T, rcond=None)
    res = R - coords.T @ D
    return float(np.sqrt((res ** 2).sum() / (R ** 2).sum())), coords.T


def _stored(store, rid):
    st = open_store(store)
    return st.get(rid), st.load_arrays(rid)


def test_default_on_a_run_is_the_pca_plane_of_its_trajectory(runs, capsys):
    store, ids = runs
    code, out, err = _cli(capsys, "surface", "--run", ids["long"], "--resolution", "5", "--store", str(store))
    assert code == 0, err
    S = open_store(store).load_arrays(ids["long"])["snapshots"].astype(np.float64)
    V, evr = _pca_numpy(S, 2)
    # it says so, with the explained variance
    line = next(l for l in err.splitlines() if l.startswith("directions:"))
    assert "pca of the run's 7 snapshots" in line
    assert f"explained variance {100 * evr[0]:.1f}%, {100 * evr[1]:.1f}%" in line
    assert "surface pca 5x5 on moons/train" in err
    rid = err.split("stored as run ", 1)[1].split()[0]
    rec, arr = _stored(store, rid)
    assert rec.parent == ids["long"]
    assert rec.settings["directions"] == "pca" and rec.settings["directions_requested"] == "auto"
    assert rec.settings["pca_snapshots"] == 7 and rec.settings["span_from"] == "trajectory"
    np.testing.assert_allclose(rec.settings["explained_variance_ratio"], evr, rtol=1e-6)
    # the stored plane: anchored at the final parameters, orthonormal axes spanning numpy's top-2 PCs
    np.testing.assert_array_equal(arr["base"], S[-1].astype(np.float32))
    D = arr["directions"]
    np.testing.assert_allclose(D @ D.T, np.eye(2), atol=1e-6)
    np.testing.assert_allclose(np.abs(D @ V.T), np.eye(2), atol=1e-5)
    # the trajectory lies (mostly) in that plane, unlike the random filter plane (below)
    frac, coords = _off_plane_fraction(S, arr["base"], D)
    assert frac < 0.35, frac
    # the default span covers the trajectory: 1.25 x its largest |coordinate| per axis
    for i in range(2):
        ext = np.abs(coords[:, i]).max()
        np.testing.assert_allclose(arr[f"axis{i}"][[0, -1]], [-1.25 * ext, 1.25 * ext], rtol=1e-5)
        assert len(arr[f"axis{i}"]) == 5


def test_json_reports_the_plane_and_the_off_plane_fraction(runs, capsys):
    store, ids = runs
    code, out, err = _cli(capsys, "surface", "--run", ids["long"], "--resolution", "3", "--json", "--store",
                          str(store))
    assert code == 0, err
    res = json.loads(out)
    S = open_store(store).load_arrays(ids["long"])["snapshots"].astype(np.float64)
    _, evr = _pca_numpy(S, 2)
    d = res["directions"]
    assert d["kind"] == "pca" and d["requested"] == "auto" and d["note"] is None and d["snapshots"] == 7
    np.testing.assert_allclose(d["explained_variance_ratio"], evr, rtol=1e-6)
    assert "pca of the run's 7 snapshots" in d["description"]
    assert res["kind"] == "pca" and res["command"]["directions"] == "pca"
    assert res["settings"]["directions"] == "pca"
    _, arr = _stored(store, res["run_id"])
    frac, _ = _off_plane_fraction(S, arr["base"], arr["directions"])
    np.testing.assert_allclose(d["trajectory_off_plane"], frac, rtol=1e-4)
    assert 0 <= d["trajectory_off_plane"] <= d["trajectory_max_relative_off_plane"] <= 1


def test_filter_directions_stay_one_flag_away(runs, capsys):
    store, ids = runs
    code, out, err = _cli(capsys, "surface", "--run", ids["long"], "--directions", "filter", "--resolution", "5",
                          "--json", "--store", str(store))
    assert code == 0, err
    res = json.loads(out)
    assert res["kind"] == "filter" and res["directions"]["kind"] == "filter" and res["directions"]["note"] is None
    assert "explained_variance_ratio" not in res["directions"]
    rec, arr = _stored(store, res["run_id"])
    assert rec.settings["directions"] == "filter" and "pca_snapshots" not in rec.settings
    np.testing.assert_allclose(arr["axis0"][[0, -1]], [-1.0, 1.0])  # the old default span
    # exactly the old surface: random filter-normalized directions, span 1, around the final parameters
    from losslab.landscape import surface

    tr = load_trained_run(open_store(store), ids["long"])
    ref = surface(tr.model, tr.splits.train, loss=tr.loss, directions="filter", resolution=5, span=1.0, seed=0)
    np.testing.assert_allclose(arr["loss"], ref.loss, rtol=1e-6)
    np.testing.assert_allclose(arr["directions"], ref.directions)
    # ... whose plane the trajectory is almost entirely off
    S = tr.snapshots.astype(np.float64)
    frac, _ = _off_plane_fraction(S, arr["base"], arr["directions"])
    assert frac > 0.8, frac


def test_explicit_span_and_dim_1(runs, capsys):
    store, ids = runs
    code, out, err = _cli(capsys, "surface", "--run", ids["long"], "--directions", "pca", "--span", "0.5",
                          "--resolution", "3", "--json", "--store", str(store))
    assert code == 0, err
    res = json.loads(out)
    assert res["kind"] == "pca" and res["axes"][0] == [-0.5, 0.0, 0.5] and res["axes"][1] == [-0.5, 0.0, 0.5]
    assert _stored(store, res["run_id"])[0].settings["span_from"] == "--span"
    code, out, err = _cli(capsys, "surface", "--run", ids["long"], "--dim", "1", "--resolution", "3", "--json",
                          "--store", str(store))
    assert code == 0, err
    res = json.loads(out)
    S = open_store(store).load_arrays(ids["long"])["snapshots"].astype(np.float64)
    _, evr = _pca_numpy(S, 1)
    assert res["kind"] == "pca" and len(res["directions"]["explained_variance_ratio"]) == 1
    np.testing.assert_allclose(res["directions"]["explained_variance_ratio"], evr, rtol=1e-6)


def test_pca_without_a_run_fails_clearly(tmp_path, capsys):
    code, out, err = _cli(capsys, "surface", "--directions", "pca", "--train-steps", "1", "--resolution", "2",
                          "--store", str(tmp_path / "s"))
    assert code != 0 and "--run" in err and "Traceback" not in err
    assert not (tmp_path / "s").exists()  # it failed before training or storing anything


def test_too_few_snapshots_fall_back_to_filter_with_a_note(runs, capsys):
    store, ids = runs
    code, out, err = _cli(capsys, "surface", "--run", ids["short"], "--resolution", "3", "--json", "--store",
                          str(store))
    assert code == 0, err
    res = json.loads(out)
    note = res["directions"]["note"]
    assert res["kind"] == "filter" and "2 parameter snapshots" in note and "at least 3" in note
    assert f"note: {note}" in err
    rec, _ = _stored(store, res["run_id"])
    assert rec.settings["directions"] == "filter" and rec.settings["directions_note"] == note
    assert res["axes"][0] == [-1.0, 0.0, 1.0]
    # a PCA line needs only 2 snapshots
    code, out, err = _cli(capsys, "surface", "--run", ids["short"], "--dim", "1", "--resolution", "3", "--json",
                          "--store", str(store))
    assert code == 0 and json.loads(out)["kind"] == "pca"
    # asking for pca explicitly is an error, not a silent fallback
    code, out, err = _cli(capsys, "surface", "--run", ids["short"], "--directions", "pca", "--resolution", "3",
                          "--store", str(store))
    assert code != 0 and "--directions pca" in err and "at least 3" in err


def test_inline_training_keeps_filter_without_a_note(tmp_path, capsys):
    code, out, err = _cli(capsys, "surface", "--data", "moons", "--data-opt", "n=80", "--model-opt", "hidden=[4]",
                          "--train-steps", "3", "--resolution", "2", "--json", "--store", str(tmp_path))
    assert code == 0, err
    res = json.loads(out)
    assert res["kind"] == "filter" and res["directions"]["note"] is None and "note:" not in err
