"""Rebuild a store's index from what is on disk: ``losslab runs reindex``.

After ``index.sqlite`` is truncated (a full disk, a crashed copy), corrupted or replaced, the
runs are still in their folders. Each run folder holds ``record.json`` (a copy of its index
record, written with every index write); each study has ``studies/<id>.json``. The new index
holds, for every run folder: the old index's row when the old index is readable and has one,
else its ``record.json``, else a record inferred from ``result.json``/``arrays.npz`` (runs
stored before record.json existed: kind and status are guessed and the message says so).
Rows of the old index without a folder are kept too, so nothing the old index knew is lost.
The old index file (with its ``-wal``/``-shm``) is moved aside, never deleted.
"""
from __future__ import annotations

import json
import os
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import access
from .errors import StoreError
from .runstore import (EXTRA_RUN_COLUMNS, EXTRA_STUDY_COLUMNS, FINAL_STATUSES, RUN_COLUMNS, SCHEMA, STUDY_COLUMNS,
                       RunStore, _json)


@dataclass
class ReindexPlan:
    """What ``reindex`` finds and would write: the state of the old index, and the records of the
    new one with where each came from (index / record.json / inferred / kept)."""

    path: Path
    index_state: str  # missing | empty | corrupt | readable
    index_problem: str | None
    runs: dict[str, dict] = field(default_factory=dict)
    studies: dict[str, dict] = field(default_factory=dict)
    sources: dict[str, int] = field(default_factory=dict)
    backup: Path | None = None

    def to_dict(self) -> dict:
        return {"store": str(self.path), "index_state": self.index_state, "index_problem": self.index_problem,
                "runs": len(self.runs), "studies": len(self.studies), "sources": dict(self.sources),
                "backup": str(self.backup) if self.backup else None}


def _old_index(db: Path) -> tuple[str, str | None, dict, dict]:
    """(state, problem, runs by id, studies by id) of the existing index, read-only."""
    if not db.is_file():
        return "missing", None, {}, {}
    if db.stat().st_size == 0:
        return "empty", "0 bytes", {}, {}
    try:
        c = sqlite3.connect(f"file:{db.resolve()}?mode=ro", uri=True, timeout=access.timeout())
        try:
            out = {}
            for table, cols in (("runs", RUN_COLUMNS), ("studies", STUDY_COLUMNS)):
                have = {r[1] for r in c.execute(f"PRAGMA table_info({table})")}
                sel = ", ".join(k if k in have else f"NULL AS {k}" for k in cols)
                rows = c.execute(f"SELECT {sel} FROM {table}").fetchall() if have else []
                out[table] = {r[0]: dict(zip(cols, r)) for r in rows}
        finally:
            c.close()
    except sqlite3.DatabaseError as e:
        if "locked" in str(e).lower():
            raise access.diagnose(e, db.parent, db) from None
        return "corrupt", str(e), {}, {}
    for rows in out.values():
        for d in rows.values():
            for k in ("settings", "summary", "versions", "spec", "owner"):
                if isinstance(d.get(k), str):
                    try:
                        d[k] = json.loads(d[k])
                    except json.JSONDecodeError:
                        d[k] = {}
    return "readable", None, out["runs"], out["studies"]


def _read_json(f: Path) -> dict | None:
    try:
        d = json.loads(f.read_text())
        return d if isinstance(d, dict) else None
    except (OSError, ValueError):
        return None


def _infer(folder: Path) -> dict:
    """A record for a run folder without record.json, from its result.json and array names."""
    rid = folder.name
    res = _read_json(folder / "result.json") or {}
    names: list[str] = []
    if (folder / "arrays.npz").is_file():
        try:
            with np.load(folder / "arrays.npz", allow_pickle=False) as z:
                names = list(z.files)
        except Exception:
            names = []
    kind = ("train" if "snapshots" in names or "param_names" in res else "surface" if "loss" in names and "axis0" in names
            else "hessian" if "eigenvalues" in names else "experiment" if names else "unknown")
    status = "failed" if "error" in res else ("completed" if names else "unknown")
    try:  # ids are YYYYmmdd-HHMMSS-...: that is when it was made
        created = time.mktime(time.strptime(rid[:15], "%Y%m%d-%H%M%S"))
    except ValueError:
        created = folder.stat().st_mtime
    settings = res.get("settings") if isinstance(res.get("settings"), dict) else {}
    summary = res.get("summary") if isinstance(res.get("summary"), dict) else {}
    return {"id": rid, "name": rid, "kind": kind, "study": None, "status": status, "created": created,
            "finished": None, "wall_time": None, "spec_hash": None, "settings": settings, "summary": summary,
            "versions": {}, "parent": None,
            "message": "reindexed from its files (no record.json): its name, kind and status are inferred"}


def plan(path: str | os.PathLike) -> ReindexPlan:
    """Read everything on disk (changing nothing) and return the index ``reindex`` would write."""
    path = Path(path)
    if not path.is_dir():
        raise StoreError(f"no run store at {path} (nothing to reindex)")
    db = path / "index.sqlite"
    access.check_readable(path, db)
    state, problem, old_runs, old_studies = _old_index(db)
    p = ReindexPlan(path, state, problem)
    src = p.sources
    runs_dir = path / "runs"
    folders = sorted(d for d in runs_dir.iterdir() if d.is_dir() and not d.name.startswith(".")) \
        if runs_dir.is_dir() else []
    for d in folders:
        rec = _read_json(d / "record.json")
        if d.name in old_runs:
            p.runs[d.name], how = old_runs[d.name], "index"
        elif rec is not None and rec.get("id") == d.name:
            p.runs[d.name], how = {k: rec.get(k) for k in RUN_COLUMNS}, "record.json"
        elif any(f.name in ("result.json", "arrays.npz") for f in d.iterdir()):
            p.runs[d.name], how = _infer(d), "inferred"
        else:
            continue  # an empty folder (a run registered a moment ago, or never written)
        src[how] = src.get(how, 0) + 1
    for rid, row in old_runs.items():  # rows whose folder is gone: keep what the index knew
        if rid not in p.runs:
            p.runs[rid] = row
            src["index only"] = src.get("index only", 0) + 1
    files = sorted((path / "studies").glob("*.json")) if (path / "studies").is_dir() else []
    for f in files:
        rec = _read_json(f)
        if f.stem in old_studies:
            p.studies[f.stem] = old_studies[f.stem]
        elif rec is not None and rec.get("id") == f.stem:
            p.studies[f.stem] = {k: rec.get(k) for k in STUDY_COLUMNS}
    for sid, row in old_studies.items():
        p.studies.setdefault(sid, row)
    for r in p.runs.values():  # a study its runs name but nothing describes: rebuild a stub from them
        sid = r.get("study")
        if sid and sid not in p.studies:
            mine = [x for x in p.runs.values() if x.get("study") == sid]
            p.studies[sid] = {"id": sid, "name": sid, "spec_hash": r.get("spec_hash") or "", "spec": {},
                              "source": None, "created": min(x.get("created") or 0 for x in mine), "finished": None,
                              "status": "completed" if all(x["status"] in FINAL_STATUSES for x in mine)
                              else "interrupted", "n_units": None, "versions": {}, "owner": None,
                              "message": "reindexed from its runs (no study file): its spec is unknown"}
            src["study stubs"] = src.get("study stubs", 0) + 1
    return p


_JSON_COLUMNS = ("settings", "summary", "versions", "spec")
#: values for the NOT NULL columns a hand-edited or partial record.json may lack
_DEFAULTS = {"kind": "unknown", "status": "unknown", "created": 0.0, "spec_hash": ""}


def _column(key: str, rec: dict):
    v = rec.get(key)
    if key in _JSON_COLUMNS:
        return _json(v if isinstance(v, dict) else {})
    if key == "owner":
        return _json(v) if isinstance(v, dict) else None
    if v is None:
        return rec.get("id") if key == "name" else _DEFAULTS.get(key)
    return v


def reindex(path: str | os.PathLike) -> ReindexPlan:
    """Write a new index for the store at ``path`` from :func:`plan`; the old index file (if any)
    is kept as ``index.sqlite.bak-TIME`` with its WAL files. Run it when nothing writes the store."""
    path = Path(path)
    db = path / "index.sqlite"
    ok, why = access.can_write(path, db)
    if not ok:
        raise StoreError(f"store {path} is read-only ({why}); reindex writes a new index: copy the store somewhere "
                         f"you can write and reindex the copy")
    p = plan(path)
    tmp = path / f".index.reindex-{os.getpid()}.sqlite"
    tmp.unlink(missing_ok=True)
    c = sqlite3.connect(tmp, isolation_level=None)
    try:
        c.executescript(SCHEMA)
        for table, extra in (("runs", EXTRA_RUN_COLUMNS), ("studies", EXTRA_STUDY_COLUMNS)):
            for col, typ in extra.items():
                c.execute(f"ALTER TABLE {table} ADD COLUMN {col} {typ}")
        c.execute("BEGIN")
        for table, cols, rows in (("runs", RUN_COLUMNS, p.runs), ("studies", STUDY_COLUMNS, p.studies)):
            c.executemany(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                          [tuple(_column(k, r) for k in cols) for r in rows.values()])
        c.execute("COMMIT")
    finally:
        c.close()
    if db.exists() or any(os.path.exists(f"{db}{s}") for s in ("-wal", "-shm")):
        p.backup = path / f"index.sqlite.bak-{time.strftime('%Y%m%d-%H%M%S')}"
        for s in ("", "-wal", "-shm"):  # the WAL goes with its database: a stale one beside the new index would corrupt it
            if os.path.exists(f"{db}{s}"):
                os.replace(f"{db}{s}", f"{p.backup}{s}")
    os.replace(tmp, db)
    st = RunStore(path, create=False)  # the new index opens, and record files exist for every run
    for r in st.list():
        if (st.run_dir(r.id)).is_dir() and not (st.run_dir(r.id) / "record.json").exists():
            st._save_record(r.to_dict())
    for s in st.studies():
        if not (path / "studies" / f"{s.id}.json").exists():
            st._save_study_record(s.id)
    return p
