"""Store an ExperimentResult in the run store and load it back, figures included.

Layout of one experiment run (kind ``"experiment"``):

* ``arrays.npz``: the result's own arrays under their names, plus every array inside its
  figures under ``_fig/<i>/...`` (series x/y/bands, grid x/y/z, path x/y/z/steps/off_plane);
* ``result.json``: ``{"name", "title", "claim", "summary", "checks", "settings", "text",
  "wall_time", "figures": [...]}`` where each figure is its scalar fields plus, for each array,
  the npz key that holds it.

``load_experiment(store, run_id)`` rebuilds the same ``ExperimentResult`` (tuples for tuples,
numpy arrays for arrays), so the report layer can draw a stored experiment.
"""
from __future__ import annotations

from dataclasses import fields
from typing import Any

import numpy as np

from ..figures import Figure, Grid, Path, Series
from .base import ExperimentResult

FIG_PREFIX = "_fig/"
_ARRAY_FIELDS = {Series: ("x", "y", "band_lo", "band_hi"), Grid: ("x", "y", "z"),
                 Path: ("x", "y", "z", "steps", "off_plane")}


def _pack(obj, prefix: str, arrays: dict[str, np.ndarray]) -> dict:
    """Series/Grid/Path -> JSON dict; its arrays go into ``arrays`` under ``prefix``."""
    out: dict[str, Any] = {}
    for f in fields(obj):
        v = getattr(obj, f.name)
        if f.name in _ARRAY_FIELDS[type(obj)]:
            if v is None:
                out[f.name] = None
            else:
                key = f"{prefix}{f.name}"
                arrays[key] = np.asarray(v)
                out[f.name] = {"array": key}
        else:
            out[f.name] = v
    return out


def _unpack(cls, d: dict, arrays: dict[str, np.ndarray]):
    kw = {}
    for f in fields(cls):
        if f.name not in d:
            continue
        v = d[f.name]
        if f.name in _ARRAY_FIELDS[cls] and v is not None:
            if v["array"] not in arrays:
                raise KeyError(f"stored figure refers to array {v['array']!r}, which is missing from arrays.npz")
            v = arrays[v["array"]]
        kw[f.name] = v
    return cls(**kw)


def figure_to_json(fig: Figure, index: int, arrays: dict[str, np.ndarray]) -> dict:
    """Serialize one Figure; its arrays are added to ``arrays`` under ``_fig/<index>/``."""
    p = f"{FIG_PREFIX}{index}/"
    d: dict[str, Any] = {}
    for f in fields(fig):
        v = getattr(fig, f.name)
        if f.name == "series":
            d["series"] = [_pack(s, f"{p}series/{j}/", arrays) for j, s in enumerate(v)]
        elif f.name == "paths":
            d["paths"] = [_pack(s, f"{p}paths/{j}/", arrays) for j, s in enumerate(v)]
        elif f.name == "grid":
            d["grid"] = None if v is None else _pack(v, f"{p}grid/", arrays)
        elif f.name == "hlines":
            d["hlines"] = [[str(a), float(b)] for a, b in v]
        else:
            d[f.name] = v
    return d


def figure_from_json(d: dict, arrays: dict[str, np.ndarray]) -> Figure:
    kw = dict(d)
    kw["series"] = tuple(_unpack(Series, s, arrays) for s in d.get("series", []))
    kw["paths"] = tuple(_unpack(Path, s, arrays) for s in d.get("paths", []))
    kw["grid"] = None if d.get("grid") is None else _unpack(Grid, d["grid"], arrays)
    kw["hlines"] = tuple((a, float(b)) for a, b in d.get("hlines", []))
    return Figure(**kw)


def experiment_record(result: ExperimentResult) -> tuple[dict[str, np.ndarray], dict, dict]:
    """(arrays, result JSON, index summary) for storing ``result``; figures are packed into the
    arrays and JSON so ``load_experiment`` can rebuild them. Used by ``save_experiment`` and by
    the study runner, which writes through ``RunStore.put_run``."""
    if not isinstance(result, ExperimentResult):
        raise TypeError(f"expected an ExperimentResult, got {type(result).__name__}")
    clash = [k for k in result.arrays if k.startswith(FIG_PREFIX)]
    if clash:
        raise ValueError(f"result array names must not start with {FIG_PREFIX!r} (reserved for figures): {clash[:3]}")
    arrays = {k: np.asarray(v) for k, v in result.arrays.items()}
    figs = [figure_to_json(f, i, arrays) for i, f in enumerate(result.figures)]
    summary = {**result.summary, "checks_passed": int(sum(map(bool, result.checks.values()))),
               "checks_total": len(result.checks), "passed": result.passed}
    meta = {"name": result.name, "title": result.title, "claim": result.claim, "summary": result.summary,
            "checks": result.checks, "settings": result.settings, "text": result.text,
            "wall_time": result.wall_time, "figures": figs}
    return arrays, meta, summary


def save_experiment(store, result: ExperimentResult, *, study: str | None = None) -> str:
    """Store ``result`` as one run of kind ``"experiment"`` (status ``completed``; whether its
    checks passed is in the summary as ``checks_passed``/``checks_total``). Returns the run id."""
    arrays, meta, summary = experiment_record(result)
    rid = store.new_run(name=result.name, kind="experiment", settings=result.settings, study=study)
    store.save_arrays(rid, arrays)
    store.save_json(rid, meta)
    store.finish(rid, status="completed", summary=summary, wall_time=result.wall_time,
                 message=f"{summary['checks_passed']}/{summary['checks_total']} checks passed")
    return rid


def load_experiment(store, run_id: str) -> ExperimentResult:
    """Rebuild the ExperimentResult stored under ``run_id`` (an id or unique prefix)."""
    rec = store.get(run_id)
    if rec.kind not in ("experiment", "dln"):
        raise ValueError(f"run {rec.id} is a {rec.kind!r} run, not an experiment; list experiments with "
                         f"`losslab runs ls` and pick one of kind 'experiment'")
    meta = store.load_json(rec.id)
    arrays = store.load_arrays(rec.id)
    figures = tuple(figure_from_json(d, arrays) for d in meta.get("figures", []))
    own = {k: v for k, v in arrays.items() if not k.startswith(FIG_PREFIX)}
    return ExperimentResult(name=meta["name"], title=meta["title"], claim=meta["claim"], summary=meta["summary"],
                            checks={k: bool(v) for k, v in meta["checks"].items()}, figures=figures, arrays=own,
                            settings=meta["settings"], text=meta.get("text", ""),
                            wall_time=float(meta.get("wall_time", 0.0)))


__all__ = ["save_experiment", "load_experiment", "figure_to_json", "figure_from_json"]
