"""``load("mnist1d")``: shapes, determinism per seed, different seeds differ, no network, the caches.

Generation costs 1-10 s (load-dependent), so the module generates each seed once into a temporary
cache dir and the tests share it."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from losslab.data import builtin, load


@pytest.fixture(scope="module")
def cached(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    d = tmp_path_factory.mktemp("cache")
    mp.setenv("LOSSLAB_CACHE_DIR", str(d))

    def no_network(*a, **k):
        raise AssertionError("mnist1d tried to use the network")

    import socket
    import urllib.request

    import mnist1d.data

    mp.setattr(mnist1d.data.requests, "get", no_network)
    mp.setattr(mnist1d.data, "get_dataset", no_network)  # the package's download-or-load entry point
    mp.setattr(urllib.request, "urlopen", no_network)
    mp.setattr(socket.socket, "connect", no_network)
    mp.setattr(builtin, "_MNIST1D_CACHE", {})
    np.random.seed(123)
    random.seed(123)
    np_before, py_before = np.random.get_state()[1].copy(), random.getstate()
    s0 = load("mnist1d", seed=0)
    rng_restored = (np.array_equal(np.random.get_state()[1], np_before) and random.getstate() == py_before)
    s1 = load("mnist1d", seed=1)
    yield {"dir": d, "s0": s0, "s1": s1, "rng_restored": rng_restored, "mp": mp}
    mp.undo()


def test_shapes_and_splits(cached):
    s = cached["s0"]
    assert (s.name, s.task, s.in_dim, s.out_dim, s.n_classes) == ("mnist1d", "classification", 40, 10, 10)
    assert s.train.X.shape == (3200, 40) and s.val.X.shape == (800, 40) and s.test.X.shape == (1000, 40)
    assert s.train.X.dtype == torch.float32 and s.train.y.dtype == torch.long
    assert set(torch.cat([s.train.y, s.val.y, s.test.y]).tolist()) == set(range(10))
    # make_dataset draws 500 examples per class; the 4000/1000 cut keeps roughly 400/100 of each
    counts = torch.bincount(torch.cat([s.train.y, s.val.y, s.test.y]), minlength=10)
    assert counts.tolist() == [500] * 10
    # the package standardises the whole set: mean 0, std 1 (over 5000 x 40 values; 0.05: the 4000-row part)
    allx = torch.cat([s.train.X, s.val.X, s.test.X])
    assert abs(float(allx.mean())) < 1e-4 and abs(float(allx.std()) - 1) < 1e-3


def test_matches_the_package_generator(cached):
    """The arrays are make_dataset's output for that seed (an independent call), not something else."""
    import mnist1d.data as m

    args = m.get_dataset_args()
    args.seed = 0
    ref = m.make_dataset(args)
    s = cached["s0"]
    pool_X = torch.cat([s.train.X, s.val.X])
    assert pool_X.shape[0] == len(ref["x"])
    # same rows as a set (the train/val cut is a seeded permutation of the 4000): sort by row sum
    a = np.sort(pool_X.double().sum(1).numpy())
    b = np.sort(ref["x"].astype(np.float32).astype(np.float64).sum(1))
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-4)  # float32 rows summed in float64
    np.testing.assert_array_equal(s.test.X.numpy(), ref["x_test"].astype(np.float32))
    np.testing.assert_array_equal(s.test.y.numpy(), ref["y_test"])


def test_deterministic_per_seed_and_seeds_differ(cached):
    again = load("mnist1d", seed=0)  # from the in-process cache
    for a, b in ((again.train, cached["s0"].train), (again.val, cached["s0"].val), (again.test, cached["s0"].test)):
        assert torch.equal(a.X, b.X) and torch.equal(a.y, b.y)
    assert not torch.equal(cached["s0"].test.X, cached["s1"].test.X)


def test_file_cache_round_trip_and_fresh_generation(cached, monkeypatch):
    files = sorted(p.name for p in (cached["dir"] / "mnist1d").iterdir())
    assert len(files) == 2 and all(f.endswith(("seed0.npz", "seed1.npz")) for f in files)
    monkeypatch.setattr(builtin, "_MNIST1D_CACHE", {})
    from_file = load("mnist1d", seed=1)  # no in-process entry: read from the file
    assert torch.equal(from_file.test.X, cached["s1"].test.X) and torch.equal(from_file.train.y, cached["s1"].train.y)
    fresh = load("mnist1d", seed=1, cache=False)  # regenerated, nothing read or written
    assert torch.equal(fresh.train.X, cached["s1"].train.X) and torch.equal(fresh.test.y, cached["s1"].test.y)


def test_damaged_cache_file_is_regenerated(cached, monkeypatch):
    path = builtin._mnist1d_file(1)
    path.write_bytes(b"not an npz")
    monkeypatch.setattr(builtin, "_MNIST1D_CACHE", {})
    s = load("mnist1d", seed=1)
    assert torch.equal(s.test.X, cached["s1"].test.X)
    with np.load(path) as f:  # rewritten
        assert f["x"].shape == (4000, 40)


def test_global_random_state_is_restored(cached):
    assert cached["rng_restored"]


def test_cached_arrays_are_read_only_and_loads_are_independent(cached):
    s = load("mnist1d", seed=0)
    s.train.X[0, 0] = 1e6  # mutating one load's tensors does not reach the cache
    assert float(load("mnist1d", seed=0).train.X[0, 0]) != 1e6
    assert not builtin._MNIST1D_CACHE[0][0].flags.writeable


def test_cli_data_show(cached):
    from typer.testing import CliRunner

    from losslab.cli import app

    r = CliRunner().invoke(app, ["data", "show", "mnist1d", "--json"])
    assert r.exit_code == 0, r.output
    import json

    s = json.loads(r.output)
    assert s["splits"]["train"]["X_shape"] == [3200, 40] and s["n_classes"] == 10
    assert "Greydanus" in s["meta"]["source"]
