"""How the store's SQLite index is opened, and what the user is told when it cannot be.

A store may sit in a folder this user cannot write (an archive, a shared results folder, a
read-only mount): reading commands must still read it, so the index is then opened read-only
(``mode=ro``), or ``immutable=1`` when its WAL side files (``-wal``/``-shm``) are absent and
cannot be created there. Each way of failing gets its own one-line message: permission,
read-only, locked, corrupt, missing.
"""
from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from urllib.parse import quote

from .errors import StoreError

#: seconds a connection waits for another process's lock (busy timeout) before "locked"
TIMEOUT_ENV = "LOSSLAB_STORE_TIMEOUT"


def timeout() -> float:
    raw = os.environ.get(TIMEOUT_ENV, "").strip()
    try:
        return max(0.0, float(raw)) if raw else 60.0
    except ValueError:
        raise StoreError(f"${TIMEOUT_ENV} must be a number of seconds, got {raw!r}") from None


def can_write(folder: Path, db: Path) -> tuple[bool, str | None]:
    """(writable, why not). ``os.access`` honours modes, read-only mounts (EROFS) and ``chattr +i``
    (EPERM); as root only the last two bite. SQLite needs the folder writable too (journal files)."""
    if not os.access(folder, os.W_OK | os.X_OK):
        return False, f"the folder {folder} is not writable by this user"
    if os.path.exists(db) and not os.access(db, os.W_OK):
        return False, f"{db} is not writable by this user"
    return True, None


def check_readable(folder: Path, db: Path) -> None:
    """A store this user may not read at all: say permission, not 'missing' or 'corrupt'."""
    for p, need in ((folder, os.R_OK | os.X_OK), (db, os.R_OK)):
        if os.path.exists(p) and not os.access(p, need):
            raise StoreError(f"store {folder} cannot be read: permission denied on {p} (owner uid "
                             f"{os.stat(p).st_uid}, mode {oct(os.stat(p).st_mode & 0o777)}); ask its owner for read "
                             f"access, or copy the store somewhere you can read")


def read_only_uri(db: Path) -> str:
    """``mode=ro`` when SQLite can use (or create) the WAL side files, else ``immutable=1`` (a folder
    nobody can write: no other process can be changing it through this path)."""
    side = all(os.path.exists(f"{db}{s}") for s in ("-wal", "-shm"))
    flag = "mode=ro" if side or os.access(db.parent, os.W_OK) else "immutable=1"
    return f"file:{quote(str(db.resolve()))}?{flag}"


def connect(db: Path, *, read_only: bool) -> sqlite3.Connection:
    t = timeout()
    if read_only:
        c = sqlite3.connect(read_only_uri(db), uri=True, timeout=t, isolation_level=None)
    else:
        c = sqlite3.connect(db, timeout=t, isolation_level=None)
        c.execute("PRAGMA journal_mode=WAL")
    c.execute(f"PRAGMA busy_timeout={int(t * 1000)}")
    return c


def diagnose(e: sqlite3.Error, folder: Path, db: Path) -> StoreError:
    """One message per cause: locked, read-only, corrupt, cannot open (permission), or other."""
    msg = str(e)
    low = msg.lower()
    if "locked" in low or "busy" in low:
        return StoreError(f"store index {db} is locked by another process (waited {timeout():g} s: {msg}); another "
                          f"losslab may be writing to it: retry when it is done, or set ${TIMEOUT_ENV}=SECONDS to "
                          f"wait longer")
    if "readonly" in low or "read-only" in low:
        return StoreError(f"store {folder} is read-only ({msg}); reading commands work on it, writing ones need a "
                          f"store you can write: pass another --store")
    if any(s in low for s in ("not a database", "malformed", "encrypted", "file is not", "disk image")):
        return StoreError(f"store index {db} is corrupt: not a readable SQLite database ({msg}); "
                          f"`losslab runs reindex --store {folder}` rebuilds it from the run folders "
                          f"(the damaged file is kept beside it)")
    if "unable to open" in low:
        check_readable(folder, db)
        return StoreError(f"store index {db} cannot be opened ({msg}); check that the folder exists and is readable")
    return StoreError(f"store index {db}: {type(e).__name__}: {msg}")
