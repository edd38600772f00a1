"""What users do to a store, tried for real (#13): a folder nobody may write, an index with no read
permission, a locked index, a corrupt one, an emptied one, a sweep killed with SIGKILL, rejected input,
a garbage or pickled array file, a study whose runs diverged. Each gets its own message or status,
and nothing on disk is lost. docs/reliability.md tabulates these cases with the messages seen.

Permissions: as root ``chmod`` does not bite, so the reading process is started without
CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH (``prctl(PR_CAPBSET_DROP)`` before exec): it then meets the
folder's modes exactly as an ordinary user does. Where that cannot be done the test says so and skips.
"""
import ctypes
import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from losslab.store import StoreError, open_store

TRAIN = ["train", "--data", "moons", "--data-opt", "n=80", "--model", "mlp", "--model-opt", "hidden=[4]",
         "--steps", "15", "--optimizer", "sgd", "--lr", "0.1", "--seed", "0"]


def _cli(monkeypatch, capsys, *args, env=None):
    from losslab.cli import app
    from losslab.cli._common import run_app

    monkeypatch.setattr(sys, "argv", ["losslab", *args])
    for k, v in (env or {}).items():
        monkeypatch.setenv(k, v)
    try:
        code = run_app(app)
    except SystemExit as e:
        code = e.code
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def _train(monkeypatch, capsys, store, *extra) -> str:
    code, out, err = _cli(monkeypatch, capsys, *TRAIN, *extra, "--json", "--store", str(store))
    assert code == 0, err
    return json.loads(out)["id"]


def _drop_dac():  # runs in the child between fork and exec
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def _as_user(*args, timeout=120):
    """``python -m losslab ARGS`` in a process that folder modes bind (root loses its DAC override)."""
    pre = _drop_dac if os.geteuid() == 0 else None
    try:
        return subprocess.run([sys.executable, "-m", "losslab", *args], capture_output=True, text=True,
                              timeout=timeout, preexec_fn=pre, env={**os.environ, "COLUMNS": "250"})
    except subprocess.SubprocessError as e:
        if "preexec_fn" in str(e):
            pytest.skip(f"cannot drop root's file-permission override here ({e}); the read-only cases need it")
        raise


def _chmod_tree(root: Path, *, write: bool):
    for p in [root, *root.rglob("*")]:
        m = p.stat().st_mode
        p.chmod(m | stat.S_IWUSR if write else m & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


# ---------------------------------------------------------------------------------------------
# 2. permission, read-only, locked, corrupt, missing: each its own message


def test_read_only_store_is_read_and_writes_say_read_only(tmp_path, monkeypatch, capsys):
    store = tmp_path / "archive"
    rid = _train(monkeypatch, capsys, store)
    _chmod_tree(store, write=False)
    try:
        ls = _as_user("runs", "ls", "--json", "--store", str(store))
        assert ls.returncode == 0, ls.stderr
        assert [r["id"] for r in json.loads(ls.stdout)] == [rid]
        show = _as_user("runs", "show", rid, "--store", str(store))
        assert show.returncode == 0 and "snapshots" in show.stdout, show.stderr
        out = tmp_path / "elsewhere.html"
        rep = _as_user("report", rid, "-o", str(out), "--store", str(store))
        assert rep.returncode == 0, rep.stderr
        assert out.stat().st_size > 1000
        # writing commands: "read-only", never "corrupt"; the report's default place is in the store
        rep_in = _as_user("report", rid, "--store", str(store))
        assert rep_in.returncode != 0 and "read-only" in rep_in.stderr and "-o FILE.html" in rep_in.stderr
        tr = _as_user(*TRAIN, "--store", str(store))
        assert tr.returncode != 0
        assert "is read-only" in tr.stderr and "corrupt" not in tr.stderr and "Traceback" not in tr.stderr
        # nothing was written: no WAL side files, no new run folder
        assert sorted(p.name for p in store.iterdir()) == ["index.sqlite", "runs"]
        assert [p.name for p in (store / "runs").iterdir()] == [rid]
    finally:
        _chmod_tree(store, write=True)


def test_the_four_faults_and_a_missing_store_have_distinct_messages(tmp_path, monkeypatch, capsys):
    good = tmp_path / "good"
    _train(monkeypatch, capsys, good)
    msgs = {}
    # permission: the index cannot be read by this user
    perm = tmp_path / "perm"
    _train(monkeypatch, capsys, perm)
    (perm / "index.sqlite").chmod(0)
    try:
        r = _as_user("runs", "ls", "--store", str(perm))
        assert r.returncode != 0
        msgs["permission"] = r.stderr
    finally:
        (perm / "index.sqlite").chmod(0o644)
    # locked: another process holds the write lock longer than $LOSSLAB_STORE_TIMEOUT
    holder = sqlite3.connect(good / "index.sqlite", isolation_level=None, timeout=5)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        code, _, err = _cli(monkeypatch, capsys, *TRAIN, "--store", str(good), env={"LOSSLAB_STORE_TIMEOUT": "0.3"})
        assert code != 0
        msgs["locked"] = err
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    # corrupt: garbage where the SQLite file should be
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "index.sqlite").write_bytes(b"not sqlite " * 400)
    code, _, err = _cli(monkeypatch, capsys, "runs", "ls", "--store", str(bad))
    assert code != 0
    msgs["corrupt"] = err
    # missing: a reading command on a folder that is not there, which it must not create
    code, _, err = _cli(monkeypatch, capsys, "runs", "ls", "--store", str(tmp_path / "nowhere"))
    assert code != 0 and not (tmp_path / "nowhere").exists()
    msgs["missing"] = err
    expect = {"permission": "permission denied", "locked": "is locked by another process",
              "corrupt": "is corrupt: not a readable SQLite database", "missing": "no run store at"}
    for cause, text in expect.items():
        assert text in msgs[cause], (cause, msgs[cause])
        others = [c for c in expect if c != cause]
        assert not any(expect[o] in msgs[cause] for o in others), (cause, msgs[cause])
        assert "Traceback" not in msgs[cause]
    assert "read-only" not in msgs["corrupt"] and "corrupt" not in msgs["locked"]
    # the locked store was not harmed: its run is still listed, and it takes a new run once free
    _train(monkeypatch, capsys, good)
    assert len(open_store(good).list()) == 2


# ---------------------------------------------------------------------------------------------
# 3. an emptied index: warned about on reads, never overwritten, rebuilt by `runs reindex`

STUDY = {"name": "tiny", "data": {"name": "moons", "options": {"n": 60}}, "model": {"options": {"hidden": [4]}},
         "train": {"steps": 10, "batch_size": 16, "eval_every": 5}, "sweep": {"seeds": [0, 1]}}


def test_emptied_index_is_detected_and_reindex_loses_nothing(tmp_path, monkeypatch, capsys):
    from losslab.experiments import run_study, validate_spec

    store = tmp_path / "s"
    rid = _train(monkeypatch, capsys, store)
    res = run_study(validate_spec(STUDY), store=open_store(store), threads=1)
    st = open_store(store)
    before = {r.id: (r.name, r.kind, r.status, r.study, r.summary) for r in st.list()}
    arrays = {k: v.copy() for k, v in st.load_arrays(rid).items()}
    (study_before,) = st.studies()
    assert len(before) == 3 and study_before.status == "completed"
    del st

    (store / "index.sqlite").write_bytes(b"")  # a full disk, a crashed copy
    code, out, err = _cli(monkeypatch, capsys, "runs", "ls", "--store", str(store))
    assert code == 0 and "not in its index" in err and "runs reindex" in err
    # a writing command refuses to write a fresh index over the orphaned runs
    code, _, err = _cli(monkeypatch, capsys, *TRAIN, "--store", str(store))
    assert code != 0 and "refusing to write a fresh index" in err
    assert (store / "index.sqlite").stat().st_size == 0
    # without a terminal, reindex asks for --yes and changes nothing
    code, _, err = _cli(monkeypatch, capsys, "runs", "reindex", "--store", str(store))
    assert code != 0 and "--yes" in err and (store / "index.sqlite").stat().st_size == 0
    code, out, err = _cli(monkeypatch, capsys, "runs", "reindex", "--yes", "--json", "--store", str(store))
    assert code == 0, err
    info = json.loads(out)
    assert info["runs"] == 3 and info["studies"] == 1 and info["index_state"] == "empty"
    assert Path(info["backup"]).exists()  # the old (empty) index is kept, not deleted

    st = open_store(store)
    after = {r.id: (r.name, r.kind, r.status, r.study, r.summary) for r in st.list()}
    assert after == before
    (study_after,) = st.studies()
    assert (study_after.id, study_after.status, study_after.n_units) == (res.study_id, "completed", study_before.n_units)
    for k, v in st.load_arrays(rid).items():
        np.testing.assert_array_equal(v, arrays[k])
    code, _, err = _cli(monkeypatch, capsys, "runs", "ls", "--store", str(store))
    assert code == 0 and "not in its index" not in err


def test_corrupt_index_is_rebuilt_and_the_damaged_file_kept(tmp_path, monkeypatch, capsys):
    store = tmp_path / "s"
    rid = _train(monkeypatch, capsys, store)
    junk = b"\x00garbage\xff" * 300
    (store / "index.sqlite").write_bytes(junk)
    code, _, err = _cli(monkeypatch, capsys, "runs", "reindex", "--yes", "--json", "--store", str(store))
    assert code == 0, err
    assert [r.id for r in open_store(store).list()] == [rid]
    kept = [p for p in store.iterdir() if p.name.startswith("index.sqlite.bak-")]
    assert len(kept) == 1 and kept[0].read_bytes() == junk


# ---------------------------------------------------------------------------------------------
# 4. a sweep killed with SIGKILL shows 'interrupted' (its owner process is gone)

SWEEP_TOML = """
name = "killed"
[data]
name = "moons"
options = { n = 200 }
[model]
options = { hidden = [16] }
[train]
steps = 400
batch_size = 8
eval_every = 50
[sweep]
seeds = [0, 1, 2, 3, 4, 5, 6, 7]
"""


def test_sigkilled_sweep_shows_interrupted_and_resumes(tmp_path, monkeypatch, capsys):
    from losslab.store.owner import current_owner, owner_alive

    spec = tmp_path / "s.toml"
    spec.write_text(SWEEP_TOML)
    store = tmp_path / "store"
    proc = subprocess.Popen([sys.executable, "-m", "losslab", "run", str(spec), "--store", str(store),
                             "--threads", "1", "--json"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if (store / "index.sqlite").exists() and open_store(store).list(status="completed"):
            break
        time.sleep(0.1)
    assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
    (live,) = open_store(store).studies()
    assert live.status == "running" and live.owner["pid"] == proc.pid  # alive: still 'running'
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    st = open_store(store)
    (study,) = st.studies()
    assert study.status == "interrupted" and f"pid {proc.pid}" in study.message and "is gone" in study.message
    code, out, _ = _cli(monkeypatch, capsys, "runs", "studies", "--json", "--store", str(store))
    assert code == 0 and json.loads(out)[0]["status"] == "interrupted"
    kept = [r.id for r in st.list(study=study.id) if r.status == "completed"]
    assert 1 <= len(kept) < 8
    # the finished runs survive the kill and a resume does only what is missing
    from losslab.experiments import load_spec, run_study

    res = run_study(load_spec(spec), store=st, resume=True, threads=1)
    assert res.study_id == study.id and res.status == "completed" and res.n_already_done >= len(kept)
    # the owner check itself: alive for this process, gone for a dead pid or a reused one
    me = current_owner()
    assert owner_alive(me) is True
    assert owner_alive({**me, "pid": proc.pid}) is False
    assert owner_alive({**me, "started": me["started"] - 1000.0}) is False  # same pid, another process
    assert owner_alive({**me, "host": me["host"] + "-elsewhere"}) is None  # cannot tell from here


# ---------------------------------------------------------------------------------------------
# 5. rejected input touches nothing on disk


@pytest.mark.parametrize("bad", [["--lr", "nan"], ["--lr", "-1"], ["--steps", "0"], ["--model", "nosuchnet"],
                                 ["--data", "nosuchdata"], ["--optimizer", "nosuchopt"]])
def test_rejected_train_input_creates_no_store(tmp_path, monkeypatch, capsys, bad):
    new = tmp_path / "NEW"
    args = [*TRAIN]
    for i in range(0, len(bad), 2):  # the bad value replaces the good one
        if bad[i] in args:
            args[args.index(bad[i]) + 1] = bad[i + 1]
    code, _, err = _cli(monkeypatch, capsys, *args, "--store", str(new))
    assert code != 0 and err.strip().startswith("error:") and "Traceback" not in err
    assert not new.exists()


# ---------------------------------------------------------------------------------------------
# 6. array files are never unpickled, and a garbage one is "corrupt array file PATH"


def test_garbage_and_object_array_files_are_corrupt_and_never_loaded(tmp_path, monkeypatch, capsys):
    store = tmp_path / "s"
    rid = _train(monkeypatch, capsys, store)
    f = store / "runs" / rid / "arrays.npz"
    f.write_bytes(b"this is not an npz file" * 20)
    code, out, err = _cli(monkeypatch, capsys, "runs", "show", rid, "--store", str(store))
    text = " ".join((out + err).replace(str(tmp_path), "TMP").split())  # the tmp path may contain any word
    assert "corrupt array file" in text and f.name in text
    assert "pickle" not in text.lower()
    # an archive holding an object array: loading it would run pickle; the store refuses
    np.savez(f, x=np.array([{"a": 1}], dtype=object))
    with pytest.raises(StoreError) as e:
        open_store(store).load_arrays(rid)
    msg = str(e.value).replace(str(tmp_path), "TMP")
    assert "corrupt array file" in msg and "holds object arrays" in msg and "allow_pickle" not in msg


# ---------------------------------------------------------------------------------------------
# 7. a study with diverged runs counts them as diverged, not "0 failed" and not completed


def test_study_summary_counts_diverged_runs_separately(tmp_path, monkeypatch, capsys):
    spec = tmp_path / "d.toml"
    spec.write_text('name = "div"\n[data]\nname = "moons"\noptions = { n = 60 }\n[model]\noptions = { hidden = [4] }\n'
                    '[train]\nsteps = 30\nbatch_size = 60\neval_every = 10\noptimizer = "sgd"\n'
                    '[sweep]\nlrs = [0.1, 1e12]\n')
    code, out, err = _cli(monkeypatch, capsys, "run", str(spec), "--threads", "1", "--store", str(tmp_path / "st"))
    st = open_store(tmp_path / "st")
    statuses = sorted(r.status for r in st.list())
    assert statuses == ["completed", "diverged"], (statuses, err[-2000:])
    assert "1 completed, 1 diverged, 0 failed, 0 interrupted runs" in " ".join((out + err).split())
