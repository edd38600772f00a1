"""The run store: records, filters, compare, rm, studies, chunks, corrupt files, several writers."""
import multiprocessing as mp
import sqlite3

import numpy as np
import pytest

from losslab.store import RunStore, StoreError, open_store, parse_where


def _put(st, rid, loss, status="completed", name=None, study=None, lr=0.1):
    return st.put_run(rid, name=name or f"run-{rid}", kind="train", settings={"lr": lr, "optimizer": "sgd"},
                      status=status, summary={"final_train_loss": loss}, arrays={"x": np.arange(3) * loss},
                      study=study, wall_time=1.0)


def test_put_get_list_filters(tmp_path):
    st = open_store(tmp_path)
    _put(st, "aaa1", 0.05, lr=0.1)
    _put(st, "aaa2", 0.5, lr=0.2, name="other")
    _put(st, "bbb3", float("nan"), status="diverged", lr=0.3)
    assert [r.id for r in st.list()] == ["aaa1", "aaa2", "bbb3"]
    assert [r.id for r in st.list(status="diverged")] == ["bbb3"]
    assert [r.id for r in st.list(name="other")] == ["aaa2"]
    assert [r.id for r in st.list(where="final_train_loss<0.1")] == ["aaa1"]
    assert [r.id for r in st.list(where=["final_train_loss>=0.05", "lr>0.15"])] == ["aaa2"]  # settings too
    assert [r.id for r in st.list(where=("final_train_loss", ">", 0.0))] == ["aaa1", "aaa2"]  # NaN never matches
    assert [r.id for r in st.list(limit=1)] == ["bbb3"]
    assert st.get("bbb").id == "bbb3"  # unique prefix
    with pytest.raises(StoreError, match="ambiguous"):
        st.get("aaa")
    with pytest.raises(StoreError, match="no run"):
        st.get("zzz")
    np.testing.assert_array_equal(st.load_arrays("aaa2")["x"], np.arange(3) * 0.5)
    assert st.get("aaa1").versions["torch"]


def test_parse_where():
    assert parse_where("final_val_acc >= 0.9") == ("final_val_acc", ">=", 0.9)
    assert parse_where("optimizer=adam") == ("optimizer", "=", "adam")
    with pytest.raises(ValueError, match="METRIC OP VALUE"):
        parse_where("loss is small")


def test_put_run_replaces_never_duplicates(tmp_path):
    st = open_store(tmp_path)
    _put(st, "u1", 1.0, status="failed")
    _put(st, "u1", 0.2)
    recs = st.list()
    assert len(recs) == 1 and recs[0].status == "completed" and recs[0].summary["final_train_loss"] == 0.2


def test_compare_and_rm(tmp_path):
    st = open_store(tmp_path)
    _put(st, "r1", 0.1, lr=0.1)
    _put(st, "r2", 0.2, lr=0.2)
    cmp = st.compare(["r1", "r2"])
    assert cmp["settings"] == {"lr": [0.1, 0.2]}  # only what differs
    assert cmp["same_settings"] == {"optimizer": "sgd"}
    assert cmp["summary"]["final_train_loss"] == [0.1, 0.2]
    assert st.rm(["r1"]) == ["r1"]
    assert [r.id for r in st.list()] == ["r2"]
    assert not st.run_dir("r1").exists()


def test_corrupt_and_missing_files_are_clear_errors_for_that_run_only(tmp_path):
    st = open_store(tmp_path)
    for i in range(3):
        _put(st, f"r{i}", 0.1 * (i + 1))
    (st.run_dir("r0") / "arrays.npz").write_bytes(b"not a zip file at all")
    (st.run_dir("r1") / "arrays.npz").unlink()
    (st.run_dir("r2") / "result.json").write_text("{broken")
    with pytest.raises(StoreError, match=r"corrupt array file .*r0.*arrays.npz \(run r0: not a NumPy .npz archive\)"):
        st.load_arrays("r0")
    with pytest.raises(StoreError, match=r"run r1: array file .* is missing"):
        st.load_arrays("r1")
    with pytest.raises(StoreError, match=r"run r2: .*result.json is corrupt"):
        st.load_json("r2")
    # the rest of the store stays readable
    assert len(st.list()) == 3
    np.testing.assert_allclose(st.load_arrays("r2")["x"], np.arange(3) * 0.3)
    assert st.check("r2") and "corrupt" in st.check("r2")[0]
    assert any("missing" in p for p in st.check("r1"))


def test_corrupt_index_is_a_clear_error(tmp_path):
    (tmp_path / "index.sqlite").write_bytes(b"garbage" * 100)
    with pytest.raises(StoreError, match="not a readable SQLite database"):
        RunStore(tmp_path)


def test_old_store_is_migrated(tmp_path):
    # the first version of the store had no 'parent' column and no studies table
    c = sqlite3.connect(tmp_path / "index.sqlite")
    c.execute("CREATE TABLE runs (id TEXT PRIMARY KEY, name TEXT NOT NULL, kind TEXT NOT NULL, study TEXT, status TEXT "
              "NOT NULL, created REAL NOT NULL, finished REAL, wall_time REAL, spec_hash TEXT, settings TEXT NOT NULL, "
              "summary TEXT NOT NULL, versions TEXT NOT NULL, message TEXT)")
    c.execute("INSERT INTO runs VALUES ('old', 'n', 'train', NULL, 'completed', 1.0, 2.0, 1.0, NULL, '{}', "
              "'{\"final_train_loss\": 0.3}', '{}', NULL)")
    c.commit()
    c.close()
    st = RunStore(tmp_path)
    assert st.get("old").parent is None and st.get("old").summary["final_train_loss"] == 0.3
    assert st.studies() == []


def test_lifecycle_api_and_trajectory(tmp_path):
    import torch

    from losslab.models import build
    from losslab.train import train

    st = open_store(tmp_path)
    X = torch.linspace(-1, 1, 20).unsqueeze(1)
    traj = train(build("linear"), (X, 2 * X), optimizer="gd", lr=0.1, steps=5)
    rid = st.save_trajectory(traj, name="lin", study=None)
    rec = st.get(rid)
    assert rec.status == "completed" and rec.summary["final_train_loss"] == traj.summary()["final_train_loss"]
    np.testing.assert_array_equal(st.load_arrays(rid)["train_loss"], traj.train_loss)
    assert st.load_json(rid)["param_names"] == list(traj.param_names)


def test_studies_and_chunks(tmp_path):
    st = open_store(tmp_path)
    st.new_study(study_id="s1", name="demo", spec_hash="abc", spec={"name": "demo"}, n_units=2)
    _put(st, "u1", 0.1, study="s1")
    st.save_chunk("s1/g", 1, {"loss": np.ones(3)})
    st.save_chunk("s1/g", 0, {"loss": np.zeros(3)})
    (st.chunk_dir("s1/g") / "chunk_000002.npz").write_bytes(b"half written")  # dropped, recomputed
    chunks = st.load_chunks("s1/g")
    assert sorted(chunks) == [0, 1] and chunks[1]["loss"].sum() == 3
    st.set_study_status("s1", "completed")
    assert st.get_study("demo").status == "completed" and st.get_study("s1").spec == {"name": "demo"}
    assert st.rm_study("s1") == ["u1"]
    assert st.studies() == [] and st.list() == [] and not st.chunk_dir("s1/g").exists()


def _writer(path, k, n):
    st = RunStore(path)
    for i in range(n):
        _put(st, f"w{k}-{i}", float(i), study="s")


def test_several_writer_processes(tmp_path):
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), k, 15)) for k in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    st = RunStore(tmp_path)
    recs = st.list(study="s")
    assert len(recs) == 60 and len({r.id for r in recs}) == 60
    for r in recs[::7]:
        np.testing.assert_allclose(st.load_arrays(r.id)["x"], np.arange(3) * r.summary["final_train_loss"])
    with sqlite3.connect(tmp_path / "index.sqlite") as c:
        assert c.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
