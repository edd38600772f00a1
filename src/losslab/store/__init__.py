"""The run store: a SQLite index (WAL mode) of runs plus each run's arrays in files beside it.

Layout::

    STORE/index.sqlite            runs table: id, name, kind, study, status, timings, settings, summary
    STORE/runs/<id>/arrays.npz    the run's arrays (written atomically: temp file + rename)
    STORE/runs/<id>/result.json   the run's JSON-able result (settings, summary, extra)
"""
from .runstore import RunStore, RunRecord, StoreError, open_store

__all__ = ["RunStore", "RunRecord", "StoreError", "open_store"]
