"""The study runner: expand a spec into units of work, run the missing ones, write them to the store.

Units (each with a deterministic id = sha256(study id, kind, expanded settings)):

- ``train``: one training run of the sweep grid;
- ``surface_chunk``: one chunk of one surface grid (the grid's points split into ``chunks``
  slices); the client assembles the surface run once every chunk is in;
- ``hessian``: top eigenvalues of one trained model;
- ``experiment`` / ``dln``: one named experiment, once per study.

Who writes: the CLIENT (the process running the study) writes every record; workers only
compute and return plain dicts of numpy arrays. SQLite over a shared/network filesystem
(NFS, Lustre: where cluster workers would write) has unreliable locking and WAL needs shared
memory on one host, so only one process on one machine touches the index. A unit's record is
written last, in one statement, after its files: a unit killed mid-way leaves no record and
is simply run again on resume; a retried unit replaces (never duplicates) its record.

Who runs units: an executor (``executors.py``: the interface and the in-process one; Dask's in
``distributed.py``), each calling ``units.execute_unit``; the runner depends on them, never the reverse.

Interrupts: Ctrl-C and SIGTERM stop the study gracefully (every finished unit and surface chunk
is already kept); a SIGKILL loses only the units in flight. ``resume=True`` continues the newest
study of the same spec hash and runs only what is missing; training is deterministic (seeded),
so a resumed study equals an uninterrupted one.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..store import FINAL_STATUSES, RunStore, StoreError, open_store
from .executors import Executor, LocalExecutor
from .spec import PER_MODEL, SpecError, StudySpec, _canonical_json, spec_hash
from .units import surface_coords

OK_FOR_ANALYSIS = ("completed", "stopped_early")


@dataclass(frozen=True)
class Unit:
    """One unit of work. ``payload`` is everything a worker needs (JSON-able; the trained
    parameters of a dependency are added by the client when the unit is submitted)."""

    id: str
    kind: str  # train | surface_chunk | hessian | experiment | dln
    name: str
    payload: dict
    deps: tuple[str, ...] = ()
    group: str | None = None  # surface run id a chunk belongs to
    chunk: int | None = None
    n_chunks: int | None = None


@dataclass(frozen=True)
class StudyResult:
    """What ``run_study`` did: the study id, its status (completed / interrupted / failed), how many
    units there are, how many ran now, were already done, failed or were skipped (their training
    diverged), the run ids of the study, and the wall time of this session."""

    study_id: str
    name: str
    spec_hash: str
    status: str
    n_units: int
    n_ran: int
    n_already_done: int
    n_failed: int
    n_skipped: int
    run_ids: tuple[str, ...]
    wall_time: float
    messages: tuple[str, ...] = ()
    #: the study's runs in the store by status ({"completed": 3, "diverged": 1, ...})
    run_counts: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    def run_counts_line(self) -> str:
        """'3 completed, 1 diverged, 0 failed, 0 interrupted runs' (other statuses added when present):
        a diverged run is finished but not a success, and is never counted as failed or completed."""
        c = dict(self.run_counts)
        parts = [f"{c.pop(k, 0)} {k}" for k in ("completed", "diverged", "failed", "interrupted")]
        parts += [f"{n} {k.replace('_', ' ')}" for k, n in sorted(c.items())]
        return ", ".join(parts) + " runs"


def _uid(*parts: Any) -> str:
    return hashlib.sha256(_canonical_json(list(parts)).encode()).hexdigest()[:20]


def _point_name(point: dict) -> str:
    return ",".join(f"{k}={json.dumps(v, separators=(',', ':'))}" for k, v in point.items()) or "base"


def plan(spec: StudySpec, study_id: str) -> list[Unit]:
    """All units of a study, dependencies first."""
    units: list[Unit] = []
    for point, cfg in spec.configs():
        c = cfg.model_dump(mode="json")
        tid = _uid(study_id, "train", c)
        tname = f"{spec.name}/{_point_name(point)}"
        units.append(Unit(tid, "train", tname, {"config": c, "point": point}))
        for ai, a in enumerate(spec.analyses):
            if a.kind not in PER_MODEL:
                continue
            ad = a.model_dump(mode="json")
            aid = _uid(study_id, a.kind, c, ad, ai)
            if a.kind == "surface":
                n = _n_points(a)
                n_chunks = min(a.chunks, n)
                for ci in range(n_chunks):
                    units.append(Unit(_uid(aid, "chunk", ci, n_chunks), "surface_chunk",
                                      f"{tname}/surface[{ci + 1}/{n_chunks}]",
                                      {"config": c, "analysis": ad, "point": point, "chunk": ci, "n_chunks": n_chunks},
                                      deps=(tid,), group=aid, chunk=ci, n_chunks=n_chunks))
            else:
                units.append(Unit(aid, a.kind, f"{tname}/{a.kind}", {"config": c, "analysis": ad, "point": point},
                                  deps=(tid,)))
    for ai, a in enumerate(spec.analyses):
        if a.kind == "experiments":
            for n in a.names:
                ad = {**a.model_dump(mode="json"), "name": n}
                units.append(Unit(_uid(study_id, "experiment", ad, ai), "experiment", f"{spec.name}/experiment/{n}",
                                  {"analysis": ad}))
        elif a.kind == "dln":
            ad = a.model_dump(mode="json")
            units.append(Unit(_uid(study_id, "dln", ad, ai), "dln", f"{spec.name}/dln/{a.name}", {"analysis": ad}))
    return units


def _n_points(a) -> int:
    return a.resolution ** a.dim


class _Stop:
    """Set by the signal handlers: a stop was requested (Ctrl-C / SIGTERM)."""

    def __init__(self):
        self.requested = False
        self.signal: str | None = None


@contextlib.contextmanager
def graceful_signals(stop: _Stop):
    """SIGTERM (and SIGINT) -> KeyboardInterrupt in the main thread, with a flag, so the runner stops
    after keeping every finished unit. Outside the main thread nothing is installed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        stop.requested = True
        stop.signal = signal.Signals(signum).name
        raise KeyboardInterrupt(stop.signal)

    old = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    for s in old:
        signal.signal(s, handler)
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _study_id(spec: StudySpec, h: str) -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{h[:8]}-{hashlib.sha256(str(time.time_ns()).encode()).hexdigest()[:4]}"


def find_resumable(store: RunStore, spec: StudySpec) -> str | None:
    """The newest study in the store with this spec's hash."""
    h = spec_hash(spec)
    st = store.studies(spec_hash=h)
    return st[-1].id if st else None


def run_study(spec: StudySpec, *, store: RunStore | str | None = None, resume: bool = False,
              executor: Executor | None = None, workers: int | None = None, scheduler: str | None = None, threads: int | None = None,
              progress: Callable[[int, int, str], None] | None = None, source: str | None = None,
              on_result: Callable[[Unit, dict], None] | None = None) -> StudyResult:
    """Run (or resume) a study and write every unit to the store.

    ``executor``: a LocalExecutor (default), or a DaskExecutor; ``workers=N`` starts a Dask
    LocalCluster of N processes, ``scheduler='tcp://host:port'`` uses an existing cluster.
    ``threads``: torch threads per unit (per worker on a cluster: default 1 there).
    ``resume=True`` continues the newest study of this spec (same spec hash) and runs only the
    units without a finished record. ``progress(done, total, unit_name)`` after each unit.
    ``on_result(unit, result)`` is called after a unit's result is written (hooks, tests).
    """
    t0 = time.perf_counter()
    store = store if isinstance(store, RunStore) else open_store(store)
    h = spec_hash(spec)
    if resume:
        sid = find_resumable(store, spec)
        if sid is None:
            others = [s for s in store.studies(name=spec.name)]
            hint = (f" (study {spec.name!r} exists in the store but with a different spec: hash "
                    f"{others[-1].spec_hash[:8]} vs {h[:8]}; the spec file changed)") if others else ""
            raise SpecError(f"nothing to resume: no study of this spec in store {store.path}{hint}; "
                            f"run without --resume to start it")
    else:
        sid = _study_id(spec, h)
    units = plan(spec, sid)
    if not resume:
        store.new_study(study_id=sid, name=spec.name, spec_hash=h, spec=spec.model_dump(mode="json"), source=source,
                        n_units=len(units))
    else:
        store.set_study_status(sid, "running", n_units=len(units))

    by_id = {u.id: u for u in units}
    status_of = store.ids(study=sid)  # run id -> status (records of earlier sessions)
    groups: dict[str, list[Unit]] = {}
    for u in units:
        if u.group:
            groups.setdefault(u.group, []).append(u)
    chunks_have: dict[str, dict[int, dict]] = {}
    done: set[str] = set()
    for u in units:
        if u.group:
            if status_of.get(u.group) in FINAL_STATUSES:
                done.add(u.id)
            else:
                have = chunks_have.setdefault(u.group, store.load_chunks(f"{sid}/{u.group}"))
                if u.chunk in have:
                    done.add(u.id)
        elif status_of.get(u.id) in FINAL_STATUSES:
            done.add(u.id)
    n_already = len(done)
    total = len(units)
    n_ran = n_failed = n_skipped = 0
    messages: list[str] = []
    skipped: set[str] = set()
    submitted: set[str] = set()
    stop = _Stop()
    own_executor = executor is None
    if executor is None:
        if workers or scheduler:
            from .distributed import DaskExecutor

            executor = DaskExecutor(workers=workers, scheduler=scheduler, threads_per_worker=threads or 1)
        else:
            executor = LocalExecutor(threads=threads)
    if progress:
        progress(len(done), total, "")

    def dep_status(dep: str) -> str | None:
        return status_of.get(dep)

    def ready_units() -> list[Unit]:
        out = []
        for u in units:
            if u.id in done or u.id in submitted or u.id in skipped:
                continue
            if all(dep_status(d) in FINAL_STATUSES or dep_status(d) in ("failed", "interrupted") for d in u.deps) \
                    and all(d in done for d in u.deps):
                out.append(u)
        return out

    def payload_for(u: Unit) -> dict:
        p = dict(u.payload)
        if u.deps:
            arr = store.load_arrays(u.deps[0])
            p["params"] = arr["snapshots"][-1]
        return p

    def record(u: Unit, res: dict | None, err: BaseException | None) -> None:
        nonlocal n_ran, n_failed
        if u.kind == "surface_chunk":
            key = f"{sid}/{u.group}"
            if err is not None:
                n_failed += 1
                messages.append(f"{u.name}: {type(err).__name__}: {err}")
                _put_failed(store, u.group, u, err, sid, h)
                status_of[u.group] = "failed"
                for o in groups[u.group]:
                    skipped.add(o.id)
                return
            store.save_chunk(key, u.chunk, res["arrays"])
            chunks_have.setdefault(u.group, {})[u.chunk] = res["arrays"]
            done.add(u.id)
            n_ran += 1
            if len(chunks_have[u.group]) == u.n_chunks:
                _assemble_surface(store, u, chunks_have[u.group], sid, h)
                status_of[u.group] = "completed"
                store.clear_chunks(key)
            return
        if err is not None:
            n_failed += 1
            messages.append(f"{u.name}: {type(err).__name__}: {err}")
            _put_failed(store, u.id, u, err, sid, h)
            status_of[u.id] = "failed"
            done.add(u.id)
            return
        status = res["status"]
        # an 'interrupted' training (it caught the Ctrl-C itself) is kept with what it had, as NOT
        # finished: resume redoes it and its record is replaced
        store.put_run(u.id, name=u.name, kind=u.kind, settings=res.get("settings", u.payload.get("analysis", {})),
                      status=status, summary=res.get("summary", {}), arrays=res.get("arrays"),
                      result={**(res.get("result") or {}), "summary": res.get("summary", {}), "unit": u.payload
                              if u.kind != "train" else {"point": u.payload["point"]}},
                      study=sid, spec_hash=h, wall_time=res.get("wall_time"), message=res.get("message"),
                      parent=u.deps[0] if u.deps else None)
        status_of[u.id] = status
        if status in FINAL_STATUSES:
            done.add(u.id)
            n_ran += 1

    def skip_dependents(dep: str) -> None:
        nonlocal n_skipped
        for o in units:
            if dep in o.deps and o.id not in skipped:
                skipped.add(o.id)
                n_skipped += 1

    final = "completed"
    try:
        with graceful_signals(stop):
            # units whose training is already finished but not good for analysis are skipped now
            for u in units:
                if u.kind == "train" and u.id in done and status_of.get(u.id) not in OK_FOR_ANALYSIS:
                    skip_dependents(u.id)
            while True:
                for u in ready_units():
                    if any(status_of.get(d) not in OK_FOR_ANALYSIS for d in u.deps):
                        skip_dependents(u.deps[0])
                        continue
                    try:
                        payload = payload_for(u)
                    except StoreError as e:
                        messages.append(f"{u.name}: {e}")
                        skip_dependents(u.deps[0])
                        continue
                    executor.submit(u.id, u.kind, payload)
                    submitted.add(u.id)
                if not executor.pending():
                    break
                for key, res, err in executor.wait_any():
                    u = by_id[key]
                    submitted.discard(key)
                    record(u, res, err)
                    if on_result is not None:
                        on_result(u, res if res is not None else {"error": err})
                    if progress:
                        progress(len(done) + len(skipped), total, u.name)
                    if stop.requested:
                        raise KeyboardInterrupt(stop.signal)
    except KeyboardInterrupt:
        final = "interrupted"
        messages.append(f"interrupted ({stop.signal or 'KeyboardInterrupt'}); resume with --resume")
        with contextlib.suppress(Exception):
            executor.cancel_all()
    finally:
        if own_executor:
            with contextlib.suppress(Exception):
                executor.close()
    if final == "completed" and n_failed:
        final = "failed"
    if final == "completed" and len(done) + len(skipped) < total:
        final = "failed"
    store.set_study_status(sid, final, message="; ".join(messages[-5:]) or None, n_units=total)
    runs = store.list(study=sid)
    counts: dict[str, int] = {}
    for r in runs:
        counts[r.status] = counts.get(r.status, 0) + 1
    return StudyResult(study_id=sid, name=spec.name, spec_hash=h, status=final, n_units=total, n_ran=n_ran,
                       n_already_done=n_already, n_failed=n_failed, n_skipped=n_skipped,
                       run_ids=tuple(r.id for r in runs), wall_time=time.perf_counter() - t0,
                       messages=tuple(messages), run_counts=counts)


def _put_failed(store: RunStore, run_id: str, u: Unit, err: BaseException, sid: str, h: str) -> None:
    msg = f"{type(err).__name__}: {err}"
    store.put_run(run_id, name=u.name if u.kind != "surface_chunk" else u.name.rsplit("[", 1)[0].rstrip("/"),
                  kind="surface" if u.kind == "surface_chunk" else u.kind,
                  settings=u.payload.get("analysis", u.payload.get("config", {})), status="failed", summary={},
                  result={"error": msg, "traceback": getattr(err, "__losslab_tb__", None)}, study=sid, spec_hash=h,
                  message=msg, parent=u.deps[0] if u.deps else None)


def _assemble_surface(store: RunStore, u: Unit, chunks: dict[int, dict], sid: str, h: str) -> None:
    """Concatenate the chunks of one surface (in chunk order) into its run."""
    a = u.payload["analysis"]
    coords, axes = surface_coords(a)
    shape = tuple(len(x) for x in axes)
    order = [chunks[i] for i in range(u.n_chunks)]
    idx = np.concatenate([c["index"] for c in order])
    if not np.array_equal(idx, np.arange(coords.shape[0])):
        raise RuntimeError(f"surface chunks of {u.group} do not cover the grid exactly once")
    from ..store.analyses import surface_arrays

    loss = np.concatenate([c["loss"] for c in order]).reshape(shape)
    acc = np.concatenate([c["accuracy"] for c in order]).reshape(shape) if "accuracy" in order[0] else None
    arrays, summary = surface_arrays(axes, loss, base=order[0]["base"], directions=order[0]["directions"],
                                     accuracy=acc)
    summary["chunks"] = u.n_chunks
    name = u.name.rsplit("[", 1)[0].rstrip("/")
    cfg = u.payload["config"]
    store.put_run(u.group, name=name, kind="surface", settings={**a, "lr": cfg["train"]["lr"], "sweep": u.payload["point"]},
                  status="completed", summary=summary, arrays=arrays,
                  result={"summary": summary, "settings": a, "shape": list(shape)}, study=sid, spec_hash=h,
                  wall_time=None, parent=u.deps[0])
