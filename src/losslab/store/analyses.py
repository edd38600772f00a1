"""Storing analysis results as runs linked to the training run they measure."""
from __future__ import annotations

import time
import uuid

import numpy as np

from .runstore import RunStore


def surface_arrays(axes, loss, *, base=None, directions=None, accuracy=None) -> tuple[dict, dict]:
    """(arrays, summary) of a surface in the store's layout: axis0[, axis1], loss, base,
    directions, accuracy. The report rebuilds a ``landscape.Surface`` from these."""
    loss = np.asarray(loss)
    arrays = {f"axis{i}": np.asarray(a) for i, a in enumerate(axes)}
    arrays["loss"] = loss
    if base is not None:
        arrays["base"] = np.asarray(base)
    if directions is not None:
        arrays["directions"] = np.asarray(directions)
    if accuracy is not None:
        arrays["accuracy"] = np.asarray(accuracy)
    # the grid point nearest the model (coordinate 0 on every axis; an even grid has no point at 0 exactly)
    centre = tuple(int(np.argmin(np.abs(np.asarray(a, dtype=float)))) for a in axes)
    fin = np.isfinite(loss)
    summary = {"loss_min": float(loss[fin].min()) if fin.any() else None,
               "loss_max": float(loss[fin].max()) if fin.any() else None,
               "loss_centre": float(loss[centre]), "points": int(loss.size)}
    return arrays, summary


def save_surface(store: RunStore, surface, *, name: str, settings: dict, parent: str | None = None,
                 study: str | None = None) -> str:
    """Store a ``landscape.Surface`` as a run of kind 'surface'; returns its id."""
    arrays, summary = surface_arrays(surface.axes, surface.loss, base=surface.base, directions=surface.directions,
                                     accuracy=surface.accuracy)
    summary["seconds"] = surface.info.get("seconds")
    rid = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
    settings = {"directions": surface.kind, **surface.settings, **settings}
    return store.put_run(rid, name=name, kind="surface", settings=settings, status="completed", summary=summary,
                         arrays=arrays, result={"summary": summary, "settings": settings,
                                                "shape": list(surface.shape), "info": surface.info},
                         study=study, wall_time=surface.info.get("seconds"), parent=parent)
