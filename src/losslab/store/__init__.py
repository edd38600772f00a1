"""The run store: a SQLite index (WAL mode) of studies and runs plus each run's arrays in files beside it.

Layout::

    STORE/index.sqlite                 runs: id, name, kind, study, status, timings, settings, summary, versions
                                       studies: id, name, spec hash, spec, status, timings
    STORE/runs/<id>/arrays.npz         the run's arrays (written atomically: temp file + rename)
    STORE/runs/<id>/result.json        the run's JSON-able result (settings, summary, extra)
    STORE/runs/<id>/record.json        a copy of the run's index record (what ``reindex`` rebuilds from)
    STORE/studies/<id>.json            a copy of each study's record
    STORE/chunks/<study>/<unit>/...    finished chunks of unfinished surface grids (for resume)
"""
from .runstore import (FINAL_STATUSES, RUN_KINDS, RUN_STATUSES, RunRecord, RunStore, StoreError, StudyRecord,
                       check_writable, open_store, parse_where)
from .reindex import ReindexPlan, reindex
from .reindex import plan as reindex_plan
from .trained import TrainedRun, load_trained_run

__all__ = ["RunStore", "RunRecord", "StudyRecord", "StoreError", "open_store", "parse_where", "FINAL_STATUSES", "RUN_STATUSES", "RUN_KINDS", "TrainedRun",
           "load_trained_run", "check_writable", "reindex", "reindex_plan", "ReindexPlan"]
