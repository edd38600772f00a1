"""SQLite-indexed run store. Safe with several writer processes: WAL mode, a busy timeout, and
short transactions; array files are written to a temp name and renamed into place, so a
reader never sees half a file.

Layout::

    STORE/index.sqlite                 tables ``runs`` and ``studies`` (WAL journal)
    STORE/runs/<id>/arrays.npz         a run's arrays
    STORE/runs/<id>/result.json        a run's JSON-able result
    STORE/runs/<id>/record.json        a copy of the run's index record (``losslab runs reindex`` reads it)
    STORE/studies/<id>.json            a copy of each study's index record (likewise)
    STORE/chunks/<key>/chunk_<i>.npz   finished chunks of work still in progress (surface grids)

Two ways to write a run:

- ``new_run`` (status ``running``) ... ``save_arrays``/``save_json`` ... ``finish``: for a run
  that is watched while it goes (``losslab train``);
- ``put_run``: files first, then ONE ``INSERT OR REPLACE`` of the finished record. A process
  killed before that statement leaves no record (orphan files are overwritten by the next
  attempt), so a record in the index always means a finished unit. The study runner uses it.

A store whose folder or index cannot be written opens read-only (see ``access``); writing to it
is a StoreError that says so. An index that is 0 bytes or corrupt while run folders exist is
never overwritten by a fresh one: only ``reindex`` rebuilds it (from the records beside the runs).
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

from . import access
from .errors import StoreError
from .records import _OPS, RunRecord, StudyRecord, _json, _matches, parse_where, versions  # noqa: F401 (re-exported)
from .owner import current_owner, owner_alive

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    study TEXT,
    status TEXT NOT NULL,
    created REAL NOT NULL,
    finished REAL,
    wall_time REAL,
    spec_hash TEXT,
    settings TEXT NOT NULL,
    summary TEXT NOT NULL,
    versions TEXT NOT NULL,
    message TEXT
);
CREATE INDEX IF NOT EXISTS runs_study ON runs(study);
CREATE INDEX IF NOT EXISTS runs_status ON runs(status);
CREATE TABLE IF NOT EXISTS studies (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    spec_hash TEXT NOT NULL,
    spec TEXT NOT NULL,
    source TEXT,
    status TEXT NOT NULL,
    created REAL NOT NULL,
    finished REAL,
    n_units INTEGER,
    versions TEXT NOT NULL,
    message TEXT
);
CREATE INDEX IF NOT EXISTS studies_hash ON studies(spec_hash);
"""

# columns added after the first version of the store; old stores are migrated on open
EXTRA_RUN_COLUMNS = {"parent": "TEXT"}
EXTRA_STUDY_COLUMNS = {"owner": "TEXT"}  # JSON {host, pid, started} of the process running it

RUN_COLUMNS = ("id", "name", "kind", "study", "status", "created", "finished", "wall_time", "spec_hash", "settings",
               "summary", "versions", "message", "parent")
STUDY_COLUMNS = ("id", "name", "spec_hash", "spec", "source", "status", "created", "finished", "n_units", "versions",
                 "message", "owner")

#: statuses of a run that finished (a resumed study does not redo these)
FINAL_STATUSES = ("completed", "diverged", "stopped_early")
#: every status a run can have (a store may hold others written by later versions)
RUN_STATUSES = ("running", *FINAL_STATUSES, "interrupted", "failed")
#: the kinds of run losslab writes
RUN_KINDS = ("train", "surface", "hessian", "experiment", "dln", "gradcheck", "report_section")


def _why_corrupt(e: Exception) -> str:
    """What is wrong with an unreadable .npz, in the store's words (numpy's own message for a file
    that is not an archive suggests loading it with pickle, which a store never does)."""
    import zipfile

    if isinstance(e, ValueError) and "object arrays" in str(e).lower():
        return "it holds object arrays, which only pickle can load, and a store never unpickles"
    if isinstance(e, zipfile.BadZipFile) or (isinstance(e, ValueError) and "pickle" in str(e)):
        return "not a NumPy .npz archive"
    if isinstance(e, OSError):
        return f"cannot be read: {e.strerror or e}"
    return f"an array in it cannot be read: {type(e).__name__}"


class RunStore:
    """The run store at ``path``; ``create=False`` opens an existing store only (for readers:
    a mistyped path is an error, not a new empty store). A store this user cannot write opens
    read-only (``read_only`` is True, ``read_only_reason`` says why) when ``create=False``; with
    ``create=True`` (a writer) it is a StoreError saying the store is read-only."""

    def __init__(self, path: str | os.PathLike, *, create: bool = True):
        self.path = Path(path)
        self.db = self.path / "index.sqlite"
        if os.path.exists(self.path) and not os.path.isdir(self.path):
            raise StoreError(f"the store path {self.path} is a file, not a folder; pass another --store")
        access.check_readable(self.path, self.db)
        if not create and not os.path.isfile(self.db):
            n = len(self._run_folders())
            if n:
                raise StoreError(f"store {self.path} has no index.sqlite but {n} run folder(s) in {self.path / 'runs'}; "
                                 f"`losslab runs reindex --store {self.path}` rebuilds the index from them")
            raise StoreError(f"no run store at {self.path} (create one by running something, or check --store / "
                             f"$LOSSLAB_STORE)")
        if os.path.exists(self.path):
            ok, why = access.can_write(self.path, self.db)
        else:  # a new store: can its nearest existing parent folder be written?
            parent = next(p for p in self.path.absolute().parents if os.path.exists(p))
            ok, why = (True, None) if os.access(parent, os.W_OK | os.X_OK) else (False, f"{parent} is not writable")
        self.read_only, self.read_only_reason = not ok, why
        self._empty = False  # an index file of 0 bytes: read as empty, never written over
        if create:
            self.require_writable()
            self.path.mkdir(parents=True, exist_ok=True)
            (self.path / "runs").mkdir(exist_ok=True)
        if os.path.isfile(self.db) and os.path.getsize(self.db) == 0:
            # SQLite takes a 0-byte file for an empty database: writing the schema into it would hide
            # every run folder (a truncated index after a full disk or a crashed copy)
            n = len(self._run_folders()) + len(self._study_files())
            if n and create:
                raise StoreError(self._empty_message(n))
            self._empty = bool(n) or not create or self.read_only
        try:
            with self._conn() as c:
                if not self.read_only and not self._empty:
                    c.executescript(SCHEMA)
                    for table, extra in (("runs", EXTRA_RUN_COLUMNS), ("studies", EXTRA_STUDY_COLUMNS)):
                        have = {r[1] for r in c.execute(f"PRAGMA table_info({table})")}
                        for col, typ in extra.items():
                            if col not in have:
                                with contextlib.suppress(sqlite3.OperationalError):  # another process migrated it
                                    c.execute(f"ALTER TABLE {table} ADD COLUMN {col} {typ}")
                # columns an old (read-only, unmigrated) index lacks read as NULL
                cols = {t: {r[1] for r in c.execute(f"PRAGMA table_info({t})")} for t in ("runs", "studies")}
        except StoreError:
            raise
        except sqlite3.DatabaseError as e:
            raise access.diagnose(e, self.path, self.db) from None
        if not cols["runs"]:  # an index with no tables (read-only: it cannot be given them): read as empty
            self._empty = True
            cols = {"runs": set(RUN_COLUMNS), "studies": set(STUDY_COLUMNS)}
        self._run_sel = ", ".join(c if c in cols["runs"] else f"NULL AS {c}" for c in RUN_COLUMNS)
        self._study_sel = ", ".join(c if c in cols["studies"] else f"NULL AS {c}" for c in STUDY_COLUMNS)

    def __repr__(self) -> str:
        return f"RunStore({str(self.path)!r}{', read-only' if self.read_only else ''})"

    def _empty_message(self, n: int) -> str:
        return (f"store index {self.db} is empty (0 bytes) but the store holds {n} run/study folder(s) it should "
                f"list; refusing to write a fresh index over it: `losslab runs reindex --store {self.path}` rebuilds "
                f"it from the runs' own files")

    def require_writable(self) -> None:
        """Raise before any write to a store that must not be written."""
        if self.read_only:
            raise StoreError(f"store {self.path} is read-only ({self.read_only_reason}); reading commands work on it, "
                             f"writing ones need a store you can write: pass another --store")
        if self._empty:
            raise StoreError(self._empty_message(len(self._run_folders()) + len(self._study_files())))

    @contextmanager
    def _conn(self) -> Iterator[sqlite3.Connection]:
        try:
            if self._empty:  # nothing indexed: an empty in-memory index with the right tables
                c = sqlite3.connect(":memory:", isolation_level=None)
                c.executescript(SCHEMA)
            else:
                c = access.connect(self.db, read_only=self.read_only)
        except sqlite3.Error as e:
            raise access.diagnose(e, self.path, self.db) from None
        try:
            yield c
        except sqlite3.Error as e:
            raise access.diagnose(e, self.path, self.db) from None
        finally:
            c.close()

    # -- what is on disk beside the index ---------------------------------------------------
    def _run_folders(self) -> list[str]:
        """Names of the run folders that hold a file (a folder made a moment ago by ``new_run`` does not)."""
        runs = self.path / "runs"
        try:
            with os.scandir(runs) as it:
                dirs = [e for e in it if e.is_dir() and not e.name.startswith(".")]
        except OSError:
            return []
        out = []
        for e in dirs:
            with contextlib.suppress(OSError), os.scandir(e.path) as files:
                if any(not f.name.startswith(".") for f in files):
                    out.append(e.name)
        return sorted(out)

    def _study_files(self) -> list[str]:
        try:
            return sorted(f.stem for f in (self.path / "studies").glob("*.json"))
        except OSError:
            return []

    def unindexed(self) -> dict[str, list[str]]:
        """Run folders and study files on disk that the index does not know (an emptied or replaced
        index): ``{"runs": [...], "studies": [...]}``. ``losslab runs reindex`` adds them back."""
        runs, studies = self._run_folders(), self._study_files()
        if not runs and not studies:
            return {"runs": [], "studies": []}
        known_runs = set(self.ids()) if runs else set()
        known_studies = {s.id for s in self.studies()} if studies else set()
        return {"runs": [r for r in runs if r not in known_runs], "studies": [s for s in studies if s not in known_studies]}

    def _save_record(self, rec: dict) -> None:
        """Keep a copy of a run's index record beside its files (what ``reindex`` rebuilds from)."""
        self.save_json(rec["id"], {**rec, "settings": rec.get("settings") or {}, "summary": rec.get("summary") or {}},
                       name="record")

    def _save_study_record(self, study_id: str) -> None:
        with self._conn() as c:
            row = c.execute(f"SELECT {self._study_sel} FROM studies WHERE id=?", (study_id,)).fetchone()
        if row is None:
            return
        d = self._raw_study(row)
        folder = self.path / "studies"
        folder.mkdir(exist_ok=True)
        tmp = folder / f".{study_id}.{uuid.uuid4().hex[:6]}.tmp"
        tmp.write_text(_json(d))
        os.replace(tmp, folder / f"{study_id}.json")

    def run_dir(self, run_id: str) -> Path:
        return self.path / "runs" / run_id

    # -- writing -------------------------------------------------------------------------
    def new_run(self, *, name: str, kind: str, settings: dict, study: str | None = None, spec_hash: str | None = None,
                run_id: str | None = None, parent: str | None = None) -> str:
        """Register a run with status 'running' and return its id."""
        self.require_writable()
        rid = run_id or f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
        self.run_dir(rid).mkdir(parents=True, exist_ok=True)
        rec = {"id": rid, "name": name, "kind": kind, "study": study, "status": "running", "created": time.time(),
               "finished": None, "wall_time": None, "spec_hash": spec_hash, "settings": settings, "summary": {},
               "versions": versions(), "message": None, "parent": parent}
        self._save_record(rec)
        with self._conn() as c:
            c.execute("INSERT INTO runs (id, name, kind, study, status, created, spec_hash, settings, summary, versions, "
                      "parent) VALUES (?, ?, ?, ?, 'running', ?, ?, ?, '{}', ?, ?)",
                      (rid, name, kind, study, rec["created"], spec_hash, _json(settings), _json(rec["versions"]),
                       parent))
        return rid

    def _write_npz(self, final: Path, arrays: dict[str, np.ndarray]) -> Path:
        self.require_writable()
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f".{final.stem}.{uuid.uuid4().hex[:6]}.tmp.npz")
        try:
            np.savez_compressed(tmp, **{k: np.asarray(v) for k, v in arrays.items()})
            os.replace(tmp, final)
        finally:
            if tmp.exists():
                tmp.unlink()
        return final

    def save_arrays(self, run_id: str, arrays: dict[str, np.ndarray], name: str = "arrays") -> Path:
        return self._write_npz(self.run_dir(run_id) / f"{name}.npz", arrays)

    def save_json(self, run_id: str, obj: dict, name: str = "result") -> Path:
        self.require_writable()
        d = self.run_dir(run_id)
        d.mkdir(parents=True, exist_ok=True)
        final = d / f"{name}.json"
        tmp = d / f".{name}.{uuid.uuid4().hex[:6]}.tmp"
        tmp.write_text(_json(obj))
        os.replace(tmp, final)
        return final

    def finish(self, run_id: str, *, status: str, summary: dict, wall_time: float | None = None,
               message: str | None = None) -> None:
        self.require_writable()
        with self._conn() as c:
            c.execute("UPDATE runs SET status=?, summary=?, finished=?, wall_time=?, message=? WHERE id=?",
                      (status, _json(summary), time.time(), wall_time, message, run_id))
        with contextlib.suppress(StoreError):  # a run the index does not hold has no record to copy
            self._save_record(self.get(run_id).to_dict())

    def put_run(self, run_id: str, *, name: str, kind: str, settings: dict, status: str, summary: dict,
                arrays: dict[str, np.ndarray] | None = None, result: dict | None = None, study: str | None = None,
                spec_hash: str | None = None, wall_time: float | None = None, message: str | None = None,
                parent: str | None = None, created: float | None = None) -> str:
        """Write a finished run in one step: its files, then its index record in one statement
        (``INSERT OR REPLACE``: a retried unit replaces its earlier failed record, never duplicates it)."""
        self.require_writable()
        d = self.run_dir(run_id)
        d.mkdir(parents=True, exist_ok=True)
        if arrays is not None:
            self.save_arrays(run_id, arrays)
        self.save_json(run_id, result if result is not None else {"settings": settings, "summary": summary,
                                                                  "message": message})
        now = time.time()
        rec = {"id": run_id, "name": name, "kind": kind, "study": study, "status": status, "created": created or now,
               "finished": now, "wall_time": wall_time, "spec_hash": spec_hash, "settings": settings,
               "summary": summary, "versions": versions(), "message": message, "parent": parent}
        self._save_record(rec)
        with self._conn() as c:
            c.execute("INSERT OR REPLACE INTO runs (id, name, kind, study, status, created, finished, wall_time, "
                      "spec_hash, settings, summary, versions, message, parent) "
                      "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                      tuple(rec[k] if k not in ("settings", "summary", "versions") else _json(rec[k])
                            for k in RUN_COLUMNS))
        return run_id

    def save_trajectory(self, traj, *, name: str, kind: str = "train", study: str | None = None,
                        extra_settings: dict | None = None, spec_hash: str | None = None,
                        run_id: str | None = None) -> str:
        """Store a finished Trajectory (arrays + summary) as one run; returns its id. ``run_id``: a
        run already registered with ``new_run`` (status running, e.g. by a Tracker) to finish;
        its settings are those it was registered with."""
        settings = {**traj.settings, **(extra_settings or {})}
        if run_id is None:
            rid = self.new_run(name=name, kind=kind, settings=settings, study=study, spec_hash=spec_hash)
        else:
            rid = run_id
        self.save_arrays(rid, traj.arrays())
        self.save_json(rid, {"settings": settings, "summary": traj.summary(), "param_names": list(traj.param_names),
                             "message": traj.message})
        self.finish(rid, status=traj.status, summary=traj.summary(), wall_time=traj.wall_time, message=traj.message)
        return rid

    def rm(self, run_ids: list[str] | str) -> list[str]:
        """Delete runs (records and files); ids or unique prefixes. Returns the full ids removed."""
        self.require_writable()
        ids = [self.get(r).id for r in ([run_ids] if isinstance(run_ids, str) else run_ids)]
        with self._conn() as c:
            c.executemany("DELETE FROM runs WHERE id=?", [(i,) for i in ids])
        for i in ids:
            shutil.rmtree(self.run_dir(i), ignore_errors=True)
        return ids

    # -- studies -------------------------------------------------------------------------
    def new_study(self, *, study_id: str, name: str, spec_hash: str, spec: dict, source: str | None = None,
                  n_units: int | None = None) -> str:
        """Register a study as 'running', owned by this process (host, pid, start time)."""
        self.require_writable()
        with self._conn() as c:
            c.execute("INSERT INTO studies (id, name, spec_hash, spec, source, status, created, n_units, versions, "
                      "owner) VALUES (?, ?, ?, ?, ?, 'running', ?, ?, ?, ?)",
                      (study_id, name, spec_hash, _json(spec), source, time.time(), n_units, _json(versions()),
                       _json(current_owner())))
        self._save_study_record(study_id)
        return study_id

    def set_study_status(self, study_id: str, status: str, *, message: str | None = None,
                         n_units: int | None = None) -> None:
        """Set a study's status; 'running' (a resume) makes this process its owner."""
        self.require_writable()
        fin = time.time() if status != "running" else None
        with self._conn() as c:
            c.execute("UPDATE studies SET status=?, finished=?, message=?, n_units=COALESCE(?, n_units) WHERE id=?",
                      (status, fin, message, n_units, study_id))
            if status == "running":
                c.execute("UPDATE studies SET owner=? WHERE id=?", (_json(current_owner()), study_id))
        self._save_study_record(study_id)

    @staticmethod
    def _raw_study(row) -> dict:
        d = dict(zip(STUDY_COLUMNS, row))
        for k in ("spec", "versions", "owner"):
            try:
                d[k] = json.loads(d[k]) if d[k] else ({} if k != "owner" else None)
            except json.JSONDecodeError:
                d[k] = {"_error": f"unreadable {k} in the index"} if k != "owner" else None
        return d

    def _study(self, row) -> StudyRecord:
        d = self._raw_study(row)
        if d["status"] == "running" and owner_alive(d["owner"]) is False:
            # its process was killed (kill -9, a crashed machine) and never said so
            o = d["owner"]
            d["status"] = "interrupted"
            d["message"] = (f"its process (pid {o.get('pid')} on {o.get('host')}) is gone without finishing; "
                            f"`losslab run SPEC --resume` continues it")
        return StudyRecord(**d)

    def studies(self, *, name: str | None = None, spec_hash: str | None = None) -> list[StudyRecord]:
        q, args = f"SELECT {self._study_sel} FROM studies WHERE 1=1", []
        if name is not None:
            q += " AND name=?"
            args.append(name)
        if spec_hash is not None:
            q += " AND spec_hash=?"
            args.append(spec_hash)
        with self._conn() as c:
            rows = c.execute(q + " ORDER BY created", args).fetchall()
        return [self._study(r) for r in rows]

    def get_study(self, study_id: str) -> StudyRecord:
        with self._conn() as c:
            rows = c.execute(f"SELECT {self._study_sel} FROM studies WHERE id=? OR id LIKE ? OR name=?",
                             (study_id, f"{study_id}%", study_id)).fetchall()
        if not rows:
            raise StoreError(f"no study {study_id!r} in store {self.path} (see `losslab runs studies`)")
        exact = [r for r in rows if r[0] == study_id]
        if len(rows) > 1 and not exact:
            named = [r for r in rows if r[1] == study_id]
            if named:
                return self._study(max(named, key=lambda r: r[6]))  # the newest study of that name
            raise StoreError(f"study id prefix {study_id!r} is ambiguous: {', '.join(r[0] for r in rows[:5])}")
        return self._study(exact[0] if exact else rows[0])

    def rm_study(self, study_id: str) -> list[str]:
        """Delete a study, all its runs and its pending chunks. Returns the run ids removed."""
        self.require_writable()
        st = self.get_study(study_id)
        ids = [r.id for r in self.list(study=st.id)]
        with self._conn() as c:
            c.executemany("DELETE FROM runs WHERE id=?", [(i,) for i in ids])
            c.execute("DELETE FROM studies WHERE id=?", (st.id,))
        (self.path / "studies" / f"{st.id}.json").unlink(missing_ok=True)
        for i in ids:
            shutil.rmtree(self.run_dir(i), ignore_errors=True)
        shutil.rmtree(self.path / "chunks" / st.id, ignore_errors=True)
        return ids

    # -- chunks of unfinished work (e.g. a surface grid sharded over workers) ---------------
    def chunk_dir(self, key: str) -> Path:
        return self.path / "chunks" / key

    def save_chunk(self, key: str, index: int, arrays: dict[str, np.ndarray]) -> Path:
        """Keep one finished chunk (atomically) so an interrupted job resumes after it."""
        return self._write_npz(self.chunk_dir(key) / f"chunk_{int(index):06d}.npz", arrays)

    def load_chunks(self, key: str) -> dict[int, dict[str, np.ndarray]]:
        """Finished chunks under ``key`` as {index: arrays}. An unreadable chunk file is dropped
        (and deleted) so it is simply computed again."""
        out: dict[int, dict[str, np.ndarray]] = {}
        d = self.chunk_dir(key)
        if not d.exists():
            return out
        for f in sorted(d.glob("chunk_*.npz")):
            try:
                with np.load(f, allow_pickle=False) as z:
                    out[int(f.stem.split("_")[1])] = {k: z[k] for k in z.files}
            except Exception:  # corrupt: recompute it
                f.unlink(missing_ok=True)
        return out

    def clear_chunks(self, key: str) -> None:
        self.require_writable()
        shutil.rmtree(self.chunk_dir(key), ignore_errors=True)
        parent = self.chunk_dir(key).parent
        try:
            if parent != self.path / "chunks" and parent.exists() and not any(parent.iterdir()):
                parent.rmdir()
        except OSError:
            pass

    # -- reading -------------------------------------------------------------------------
    def _record(self, row) -> RunRecord:
        d = dict(zip(RUN_COLUMNS, row))
        for k in ("settings", "summary", "versions"):
            try:
                d[k] = json.loads(d[k]) if d[k] else {}
            except json.JSONDecodeError:
                d[k] = {"_error": f"unreadable {k} in the index"}
        return RunRecord(**d)

    def list(self, *, status: str | None = None, name: str | None = None, kind: str | None = None,
             study: str | None = None, where: list | tuple | str | None = None, parent: str | None = None,
             limit: int | None = None) -> list[RunRecord]:
        """Runs, oldest first. ``name`` matches a substring; ``status``/``kind``/``study``/``parent``
        match exactly; ``where``: conditions on summary metrics or settings, each
        ``"METRIC OP VALUE"`` or a (metric, op, value) tuple (all must hold; a run without the
        metric does not match); ``limit``: the newest ``limit`` runs."""
        q, args = f"SELECT {self._run_sel} FROM runs WHERE 1=1", []
        for col, val in (("status", status), ("kind", kind), ("study", study), ("parent", parent)):
            if val is not None:
                q += f" AND {col}=?"
                args.append(val)
        if name is not None:
            q += " AND name LIKE ?"
            args.append(f"%{name}%")
        with self._conn() as c:
            rows = c.execute(q + " ORDER BY created, id", args).fetchall()
        recs = [self._record(r) for r in rows]
        single = isinstance(where, str) or (isinstance(where, tuple) and len(where) == 3 and where[1] in _OPS
                                             and isinstance(where[0], str))
        conds = [where] if single else list(where or [])
        conds = [parse_where(w) if isinstance(w, str) else tuple(w) for w in conds]
        for k, op, _ in conds:
            if op not in _OPS:
                raise ValueError(f"filter operator {op!r} is not one of {', '.join(_OPS)}")
        recs = [r for r in recs if all(_matches(r, cnd) for cnd in conds)]
        if limit is not None:
            if int(limit) < 0:
                raise ValueError(f"limit must be >= 0 (the newest N runs), got {limit}")
            recs = recs[-int(limit):] if limit > 0 else []
        return recs

    def distinct(self, column: str) -> list[str]:
        """The distinct values of a run column (``status``, ``kind``, ...) present in the store."""
        if column not in RUN_COLUMNS:
            raise ValueError(f"{column!r} is not a run column; one of {', '.join(RUN_COLUMNS)}")
        with self._conn() as c:
            return sorted(r[0] for r in c.execute(f"SELECT DISTINCT {column} FROM runs") if r[0] is not None)

    def ids(self, *, study: str | None = None) -> dict[str, str]:
        """{run id: status} (cheap; used by the resuming runner)."""
        q, args = "SELECT id, status FROM runs", []
        if study is not None:
            q += " WHERE study=?"
            args.append(study)
        with self._conn() as c:
            return dict(c.execute(q, args).fetchall())

    def get(self, run_id: str) -> RunRecord:
        if not isinstance(run_id, str) or not run_id:
            raise StoreError(f"a run id must be a non-empty string, got {run_id!r}")
        with self._conn() as c:
            rows = c.execute(f"SELECT {self._run_sel} FROM runs WHERE id=? OR id LIKE ?",
                             (run_id, f"{run_id}%")).fetchall()
        if not rows:
            raise StoreError(f"no run {run_id!r} in store {self.path} (see `losslab runs ls`)")
        exact = [r for r in rows if r[0] == run_id]
        if exact:
            return self._record(exact[0])
        if len(rows) > 1:
            raise StoreError(f"run id prefix {run_id!r} is ambiguous: {', '.join(r[0] for r in rows[:5])}")
        return self._record(rows[0])

    def load_arrays(self, run_id: str, name: str = "arrays") -> dict[str, np.ndarray]:
        rec = self.get(run_id)
        f = self.run_dir(rec.id) / f"{name}.npz"
        if not f.exists():
            raise StoreError(f"run {rec.id}: array file {f} is missing")
        try:
            # never allow_pickle: a store's files may come from anywhere, and unpickling runs code
            with np.load(f, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except Exception as e:  # zipfile.BadZipFile, ValueError (numpy's pickle advice: not relayed), OSError...
            raise StoreError(f"corrupt array file {f} (run {rec.id}: {_why_corrupt(e)}); rerun the run, or delete "
                             f"it with `losslab runs rm {rec.id}`") from None

    def load_json(self, run_id: str, name: str = "result") -> dict:
        rec = self.get(run_id)
        f = self.run_dir(rec.id) / f"{name}.json"
        if not f.exists():
            raise StoreError(f"run {rec.id}: {f.name} is missing")
        try:
            return json.loads(f.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise StoreError(f"run {rec.id}: {f} is corrupt ({e})") from None

    def check(self, run_id: str) -> list[str]:
        """Problems with a run's files (missing/corrupt arrays or result), [] when it reads fine."""
        rec = self.get(run_id)
        problems = []
        d = self.run_dir(rec.id)
        for f in sorted(d.glob("*.npz")) if d.exists() else []:
            try:
                self.load_arrays(rec.id, f.stem)
            except StoreError as e:
                problems.append(str(e))
        if rec.status in FINAL_STATUSES and not (d / "arrays.npz").exists():
            # every finished run is stored with its arrays; one without them lost its file
            problems.append(f"run {rec.id}: array file {d / 'arrays.npz'} is missing")
        try:
            self.load_json(rec.id)
        except StoreError as e:
            problems.append(str(e))
        return problems

    def compare(self, run_ids: list[str]) -> dict:
        """A side-by-side table of runs: the settings that differ between them and every summary metric.

        Returns ``{"ids": [...], "names": [...], "status": [...], "settings": {key: [v per run]},
        "summary": {metric: [v per run]}, "same_settings": {key: v}}``.
        """
        if len(run_ids) < 1:
            raise ValueError("compare needs at least one run id")
        recs = [self.get(r) for r in run_ids]
        skeys = sorted({k for r in recs for k in r.settings})
        differ, same = {}, {}
        for k in skeys:
            vals = [r.settings.get(k) for r in recs]
            if all(_json(v) == _json(vals[0]) for v in vals):
                same[k] = vals[0]
            else:
                differ[k] = vals
        mkeys = sorted({k for r in recs for k in r.summary})
        return {"ids": [r.id for r in recs], "names": [r.name for r in recs], "status": [r.status for r in recs],
                "wall_time": [r.wall_time for r in recs], "settings": differ,
                "summary": {k: [r.summary.get(k) for r in recs] for k in mkeys}, "same_settings": same}


def check_writable(path: str | os.PathLike) -> None:
    """Raise the StoreError a writer would hit at ``path`` (read-only, a file, an emptied or
    corrupt index, locked), creating nothing: writing commands call it before their work."""
    path = Path(path)
    if not os.path.exists(path):
        parent = next(p for p in path.absolute().parents if os.path.exists(p))
        if not os.path.isdir(parent):
            raise StoreError(f"cannot create the store {path}: {parent} is a file, not a folder; pass another --store")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise StoreError(f"cannot create the store {path}: {parent} is read-only for this user; pass another "
                             f"--store")
        return
    if not os.path.isdir(path):
        raise StoreError(f"the store path {path} is a file, not a folder; pass another --store")
    if os.path.isfile(path / "index.sqlite"):
        RunStore(path, create=False).require_writable()
        return
    ok, why = access.can_write(path, path / "index.sqlite")
    if not ok:
        raise StoreError(f"store {path} is read-only ({why}); pass another --store")


def open_store(path: str | os.PathLike | None = None, *, create: bool = True) -> RunStore:
    """The store at ``path``, or $LOSSLAB_STORE, or ./losslab-runs; ``create=False``: it must exist
    already (a StoreError says so otherwise)."""
    return RunStore(path or os.environ.get("LOSSLAB_STORE") or "losslab-runs", create=create)
