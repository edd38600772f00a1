"""The study runner: sweeps, surface sharding, resume after SIGTERM, and Dask (a LocalCluster of 2 workers).

Identity claims are exact (np.array_equal): training and surface chunks are deterministic on the
CPU given their seeds, and every unit runs with 1 torch thread wherever it runs. The one
comparison with a tolerance is the sharded surface against ``landscape.surface`` in one call,
whose vmap batches are a different size (float32 batched matmuls may round differently).
"""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from losslab.experiments import plan, run_study, validate_spec
from losslab.store import open_store

SPEC = {"name": "sweep4", "data": {"name": "moons", "options": {"n": 120}}, "model": {"options": {"hidden": [8]}},
        "train": {"steps": 150, "batch_size": 16, "eval_every": 25},
        "sweep": {"seeds": [0, 1], "lrs": [0.1, 0.3]},
        "analyses": [{"kind": "surface", "resolution": 9, "span": 0.5, "chunks": 2}]}


def _by_name(st, study_id):
    return {r.name: r for r in st.list(study=study_id)}


def _same_results(st_a, sid_a, st_b, sid_b):
    A, B = _by_name(st_a, sid_a), _by_name(st_b, sid_b)
    assert sorted(A) == sorted(B)
    for n in A:
        assert A[n].status == B[n].status == "completed", n
        xa, xb = st_a.load_arrays(A[n].id), st_b.load_arrays(B[n].id)
        assert sorted(xa) == sorted(xb)
        for k in xa:
            assert np.array_equal(xa[k], xb[k], equal_nan=True), (n, k)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The sweep run sequentially in this process: the reference of every other test."""
    st = open_store(tmp_path_factory.mktemp("seq"))
    res = run_study(validate_spec(SPEC), store=st, threads=1)
    assert res.status == "completed" and res.n_ran == res.n_units == 4 + 4 * 2
    return st, res


def test_plan_ids_are_deterministic_and_unique():
    spec = validate_spec(SPEC)
    a, b, c = plan(spec, "study-1"), plan(spec, "study-1"), plan(spec, "study-2")
    assert [u.id for u in a] == [u.id for u in b]
    assert len({u.id for u in a}) == len(a) == 12
    assert not {u.id for u in a} & {u.id for u in c}
    chunks = [u for u in a if u.kind == "surface_chunk"]
    assert all(u.deps and u.deps[0] in {t.id for t in a if t.kind == "train"} for u in chunks)


def test_sequential_study_records_everything(reference):
    st, res = reference
    recs = st.list(study=res.study_id)
    assert sorted(r.kind for r in recs) == ["surface"] * 4 + ["train"] * 4
    surf = [r for r in recs if r.kind == "surface"]
    arr = st.load_arrays(surf[0].id)
    assert arr["loss"].shape == (9, 9) and np.isfinite(arr["loss"]).all()
    assert surf[0].parent in {r.id for r in recs if r.kind == "train"}
    assert st.get_study(res.study_id).status == "completed"
    assert not (st.path / "chunks" / res.study_id).exists()  # chunks assembled and cleared
    # resuming a finished study does nothing
    again = run_study(validate_spec(SPEC), store=st, resume=True, threads=1)
    assert again.study_id == res.study_id and again.n_ran == 0 and again.n_already_done == 12


def test_sharded_surface_equals_single_process_surface(reference):
    import torch

    from losslab.experiments.units import trained_model
    from losslab.experiments.spec import RunConfig
    from losslab.landscape import surface

    st, res = reference
    surf = [r for r in st.list(study=res.study_id, kind="surface")][0]
    train_rec = st.get(surf.parent)
    cfg = RunConfig.model_validate(st.load_json(train_rec.id)["config"])
    model, splits = trained_model(cfg, st.load_arrays(train_rec.id)["snapshots"][-1])
    ref = surface(model, splits.train, loss=splits.default_loss, directions="filter", dim=2, resolution=9, span=0.5,
                  seed=0, dtype=torch.float32)
    got = st.load_arrays(surf.id)
    np.testing.assert_array_equal(got["axis0"], ref.axes[0])
    np.testing.assert_array_equal(got["directions"], ref.directions)
    # float32 losses ~0.3: batched matmuls of another batch size may round differently (<= a few ulp)
    np.testing.assert_allclose(got["loss"], ref.loss, rtol=2e-6, atol=1e-7)
    np.testing.assert_allclose(got["accuracy"], ref.accuracy, atol=1e-6)


def test_failing_unit_is_recorded_and_resume_retries(tmp_path):
    spec = validate_spec({**SPEC, "sweep": {"seeds": [0]}, "analyses": [],
                          "train": {**SPEC["train"], "steps": 5, "loss": "mse"}})  # mse with integer labels fails
    res = run_study(spec, store=tmp_path, threads=1)
    assert res.status == "failed" and res.n_failed == 1
    (rec,) = open_store(tmp_path).list()
    assert rec.status == "failed" and rec.message
    again = run_study(spec, store=tmp_path, resume=True, threads=1)
    assert again.n_already_done == 0 and again.n_failed == 1 and len(open_store(tmp_path).list()) == 1


SPEC_TOML = """
name = "sweep4"
[data]
name = "moons"
options = { n = 120 }
[model]
options = { hidden = [8] }
[train]
steps = 150
batch_size = 16
eval_every = 25
[sweep]
seeds = [0, 1]
lrs = [0.1, 0.3]
[[analyses]]
kind = "surface"
resolution = 9
span = 0.5
chunks = 2
"""


@pytest.mark.slow
def test_sigterm_keeps_finished_units_and_resume_equals_uninterrupted(tmp_path, reference):
    spec_file = tmp_path / "s.toml"
    spec_file.write_text(SPEC_TOML)
    store = tmp_path / "store"
    proc = subprocess.Popen([sys.executable, "-m", "losslab", "run", str(spec_file), "--store", str(store),
                             "--threads", "1", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 90
    while time.time() < deadline:  # wait for the first finished unit, then SIGTERM
        if (store / "index.sqlite").exists() and open_store(store).list(status="completed"):
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err.decode()[-2000:]
    st = open_store(store)
    (study,) = st.studies()
    assert study.status == "interrupted"
    kept = [r for r in st.list(study=study.id) if r.status == "completed"]
    assert 1 <= len(kept) < 8
    res = run_study(validate_spec(SPEC), store=st, resume=True, threads=1)
    assert res.study_id == study.id and res.status == "completed"
    assert res.n_already_done >= len(kept) and res.n_ran == 12 - res.n_already_done
    _same_results(st, study.id, reference[0], reference[1].study_id)


# ---------------------------------------------------------------------------------------
# Dask: one LocalCluster of 2 worker processes for the module (startup is several seconds)


@pytest.fixture(scope="module")
def dask_client():
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0")
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


@pytest.mark.slow
def test_dask_sweep_equals_sequential(tmp_path, reference, dask_client):
    from losslab.experiments.distributed import DaskExecutor

    ex = DaskExecutor(client=dask_client)
    res = run_study(validate_spec(SPEC), store=tmp_path, executor=ex)
    assert res.status == "completed" and res.n_ran == 12
    _same_results(open_store(tmp_path), res.study_id, reference[0], reference[1].study_id)
    assert len(dask_client.scheduler_info()["workers"]) == 2


@pytest.mark.slow
def test_dask_killed_worker_loses_nothing_and_duplicates_nothing(tmp_path, reference, dask_client):
    from losslab.experiments.distributed import DaskExecutor

    ex = DaskExecutor(client=dask_client)
    killed = []

    def kill_one(unit, result):
        if not killed:  # after the first result, kill a worker process: its task is rerun elsewhere
            pids = ex.worker_pids()
            busy = dask_client.processing()
            addr = max(busy, key=lambda a: len(busy[a]))  # the worker with most work in flight
            os.kill(pids[addr], signal.SIGKILL)
            killed.append(addr)

    res = run_study(validate_spec(SPEC), store=tmp_path, executor=ex, on_result=kill_one)
    assert killed and res.status == "completed" and res.n_failed == 0
    st = open_store(tmp_path)
    recs = st.list(study=res.study_id)
    assert len(recs) == 8 and len({r.name for r in recs}) == 8  # nothing lost, nothing duplicated
    _same_results(st, res.study_id, reference[0], reference[1].study_id)
