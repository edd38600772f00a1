"""SQLite-indexed run store. Safe with several writer processes: WAL mode, a busy timeout, and
short transactions; array files are written to a temp name and renamed into place, so a
reader never sees half a file."""
from __future__ import annotations

import json
import os
import platform
import sqlite3
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

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
"""


class StoreError(RuntimeError):
    """A problem with the store or one run in it (missing, corrupt); the message says which."""


@dataclass(frozen=True)
class RunRecord:
    id: str
    name: str
    kind: str
    study: str | None
    status: str
    created: float
    finished: float | None
    wall_time: float | None
    spec_hash: str | None
    settings: dict
    summary: dict
    versions: dict
    message: str | None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def versions() -> dict:
    import torch

    from .. import __version__

    return {"losslab": __version__, "torch": torch.__version__, "numpy": np.__version__, "python": platform.python_version()}


def _json(o: Any) -> str:
    def default(x):
        if isinstance(x, (np.floating, np.integer)):
            return x.item()
        if isinstance(x, np.ndarray):
            return x.tolist()
        return str(x)

    return json.dumps(o, default=default, allow_nan=True)


class RunStore:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / "runs").mkdir(exist_ok=True)
        self.db = self.path / "index.sqlite"
        try:
            with self._conn() as c:
                c.executescript(SCHEMA)
        except sqlite3.DatabaseError as e:
            raise StoreError(f"the store index {self.db} is not a readable SQLite database ({e}); "
                             f"move it aside to start a fresh store") from None

    @contextmanager
    def _conn(self) -> Iterator[sqlite3.Connection]:
        c = sqlite3.connect(self.db, timeout=60, isolation_level=None)
        try:
            c.execute("PRAGMA journal_mode=WAL")
            c.execute("PRAGMA busy_timeout=60000")
            yield c
        finally:
            c.close()

    def run_dir(self, run_id: str) -> Path:
        return self.path / "runs" / run_id

    # -- writing -------------------------------------------------------------------------
    def new_run(self, *, name: str, kind: str, settings: dict, study: str | None = None, spec_hash: str | None = None,
                run_id: str | None = None) -> str:
        """Register a run with status 'running' and return its id."""
        rid = run_id or f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
        self.run_dir(rid).mkdir(parents=True, exist_ok=True)
        with self._conn() as c:
            c.execute("INSERT INTO runs (id, name, kind, study, status, created, spec_hash, settings, summary, versions) "
                      "VALUES (?, ?, ?, ?, 'running', ?, ?, ?, '{}', ?)",
                      (rid, name, kind, study, time.time(), spec_hash, _json(settings), _json(versions())))
        return rid

    def save_arrays(self, run_id: str, arrays: dict[str, np.ndarray], name: str = "arrays") -> Path:
        d = self.run_dir(run_id)
        d.mkdir(parents=True, exist_ok=True)
        final = d / f"{name}.npz"
        tmp = d / f".{name}.{uuid.uuid4().hex[:6]}.tmp.npz"
        np.savez_compressed(tmp, **{k: np.asarray(v) for k, v in arrays.items()})
        os.replace(tmp, final)
        return final

    def save_json(self, run_id: str, obj: dict, name: str = "result") -> Path:
        d = self.run_dir(run_id)
        final = d / f"{name}.json"
        tmp = d / f".{name}.{uuid.uuid4().hex[:6]}.tmp"
        tmp.write_text(_json(obj))
        os.replace(tmp, final)
        return final

    def finish(self, run_id: str, *, status: str, summary: dict, wall_time: float | None = None,
               message: str | None = None) -> None:
        with self._conn() as c:
            c.execute("UPDATE runs SET status=?, summary=?, finished=?, wall_time=?, message=? WHERE id=?",
                      (status, _json(summary), time.time(), wall_time, message, run_id))

    def save_trajectory(self, traj, *, name: str, kind: str = "train", study: str | None = None,
                        extra_settings: dict | None = None, spec_hash: str | None = None) -> str:
        """Store a finished Trajectory (arrays + summary) as one run; returns its id."""
        settings = {**traj.settings, **(extra_settings or {})}
        rid = self.new_run(name=name, kind=kind, settings=settings, study=study, spec_hash=spec_hash)
        self.save_arrays(rid, traj.arrays())
        self.save_json(rid, {"settings": settings, "summary": traj.summary(), "param_names": list(traj.param_names),
                             "message": traj.message})
        self.finish(rid, status=traj.status, summary=traj.summary(), wall_time=traj.wall_time, message=traj.message)
        return rid

    # -- reading -------------------------------------------------------------------------
    def _record(self, row) -> RunRecord:
        keys = ("id", "name", "kind", "study", "status", "created", "finished", "wall_time", "spec_hash", "settings",
                "summary", "versions", "message")
        d = dict(zip(keys, row))
        for k in ("settings", "summary", "versions"):
            d[k] = json.loads(d[k]) if d[k] else {}
        return RunRecord(**d)

    def list(self, *, status: str | None = None, name: str | None = None, kind: str | None = None,
             study: str | None = None) -> list[RunRecord]:
        q, args = "SELECT id, name, kind, study, status, created, finished, wall_time, spec_hash, settings, summary, " \
                  "versions, message FROM runs WHERE 1=1", []
        for col, val in (("status", status), ("kind", kind), ("study", study)):
            if val is not None:
                q += f" AND {col}=?"
                args.append(val)
        if name is not None:
            q += " AND name LIKE ?"
            args.append(f"%{name}%")
        with self._conn() as c:
            rows = c.execute(q + " ORDER BY created", args).fetchall()
        return [self._record(r) for r in rows]

    def get(self, run_id: str) -> RunRecord:
        with self._conn() as c:
            rows = c.execute("SELECT id, name, kind, study, status, created, finished, wall_time, spec_hash, settings, "
                             "summary, versions, message FROM runs WHERE id=? OR id LIKE ?", (run_id, f"{run_id}%")).fetchall()
        if not rows:
            raise StoreError(f"no run {run_id!r} in store {self.path} (see `losslab runs ls`)")
        if len(rows) > 1:
            raise StoreError(f"run id prefix {run_id!r} is ambiguous: {', '.join(r[0] for r in rows[:5])}")
        return self._record(rows[0])

    def load_arrays(self, run_id: str, name: str = "arrays") -> dict[str, np.ndarray]:
        rec = self.get(run_id)
        f = self.run_dir(rec.id) / f"{name}.npz"
        if not f.exists():
            raise StoreError(f"run {rec.id}: array file {f} is missing")
        try:
            with np.load(f, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except Exception as e:  # zipfile.BadZipFile, ValueError, OSError...
            raise StoreError(f"run {rec.id}: array file {f} is corrupt ({type(e).__name__}: {e})") from None

    def load_json(self, run_id: str, name: str = "result") -> dict:
        rec = self.get(run_id)
        f = self.run_dir(rec.id) / f"{name}.json"
        if not f.exists():
            raise StoreError(f"run {rec.id}: {f.name} is missing")
        try:
            return json.loads(f.read_text())
        except json.JSONDecodeError as e:
            raise StoreError(f"run {rec.id}: {f} is corrupt ({e})") from None


def open_store(path: str | os.PathLike | None = None) -> RunStore:
    """The store at ``path``, or $LOSSLAB_STORE, or ./losslab-runs."""
    return RunStore(path or os.environ.get("LOSSLAB_STORE") or "losslab-runs")
