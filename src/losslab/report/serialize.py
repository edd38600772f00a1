"""Figures as plain data: JSON-safe dicts (and back) and a tidy CSV of the numbers a figure
draws. The report embeds both in the page so every figure's data can be downloaded; the tour
stores figures this way so a report can be rebuilt from the store without rerunning."""
from __future__ import annotations

import csv
import io
import json
import math
from typing import Any

import numpy as np

from ..figures import Figure, Grid, Path, Series

CSV_COLUMNS = ("part", "name", "index", "x", "y", "z", "band_lo", "band_hi", "step", "off_plane")


def jsonable(o: Any) -> Any:
    """Arrays to lists, numpy scalars to Python, non-finite floats to None (JSON has no NaN)."""
    if isinstance(o, np.ndarray):
        if o.dtype.kind in "fc":
            return [jsonable(v) for v in o.tolist()] if o.ndim else jsonable(o.item())
        return o.tolist()
    if isinstance(o, (np.floating, float)):
        f = float(o)
        return f if math.isfinite(f) else None
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, np.bool_):
        return bool(o)
    if isinstance(o, dict):
        return {str(k): jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [jsonable(v) for v in o]
    if o is None or isinstance(o, (str, int, bool)):
        return o
    try:  # torch tensors and other array-likes
        return jsonable(np.asarray(o))
    except Exception:
        return str(o)


def _arr(v) -> np.ndarray | None:
    if v is None:
        return None
    a = np.asarray(v)
    if a.dtype == object:  # lists with None for NaN (from JSON)
        try:
            a = np.array([np.nan if e is None else e for e in a.ravel()], dtype=float).reshape(a.shape)
        except (TypeError, ValueError):
            a = a.astype(str)
    return a


def figure_to_dict(fig: Figure, *, arrays=None) -> dict:
    """Every field of a Figure as JSON-safe data (NaN -> None). With ``arrays`` (a page's
    ``ArrayTable``) numeric arrays become references into it (float64, NaN kept)."""
    A = (lambda v: _arr(v)) if arrays is None else (lambda v: arrays.ref(_arr(v)))
    return jsonable({
        "key": fig.key, "title": fig.title, "kind": fig.kind, "x_label": fig.x_label, "y_label": fig.y_label,
        "series": [{"name": s.name, "x": A(s.x), "y": A(s.y), "band_lo": A(s.band_lo),
                    "band_hi": A(s.band_hi), "mode": s.mode, "dash": s.dash, "color": s.color} for s in fig.series],
        "grid": None if fig.grid is None else {"x": A(fig.grid.x), "y": A(fig.grid.y), "z": A(fig.grid.z),
                                               "z_label": fig.grid.z_label},
        "paths": [{"name": p.name, "x": A(p.x), "y": A(p.y), "z": A(p.z), "steps": A(p.steps),
                   "off_plane": A(p.off_plane), "color": p.color} for p in fig.paths],
        "caption": fig.caption, "table": fig.table, "settings": fig.settings, "log_x": fig.log_x, "log_y": fig.log_y,
        "slider": fig.slider, "hlines": [[str(lab), y] for lab, y in fig.hlines],
        "hline_series": list(fig.hline_series), "facets": fig.facets,
    })


def figure_from_dict(d: dict) -> Figure:
    """Inverse of :func:`figure_to_dict` (None inside numeric arrays comes back as NaN)."""
    if not isinstance(d, dict) or "kind" not in d or "key" not in d:
        raise ValueError(f"expected a figure dict with at least 'key' and 'kind', got {type(d).__name__} "
                         f"with keys {sorted(d) if isinstance(d, dict) else '-'}")
    g = d.get("grid")
    return Figure(
        key=d["key"], title=d.get("title", d["key"]), kind=d["kind"], x_label=d.get("x_label", ""),
        y_label=d.get("y_label", ""),
        series=tuple(Series(s["name"], _arr(s["x"]), _arr(s["y"]), _arr(s.get("band_lo")), _arr(s.get("band_hi")),
                            s.get("mode", "lines"), bool(s.get("dash", False)), s.get("color")) for s in d.get("series", ())),
        grid=None if g is None else Grid(_arr(g["x"]), _arr(g["y"]), _arr(g["z"]), g.get("z_label", "loss")),
        paths=tuple(Path(p["name"], _arr(p["x"]), _arr(p["y"]), _arr(p.get("z")), _arr(p.get("steps")),
                         _arr(p.get("off_plane")), p.get("color")) for p in d.get("paths", ())),
        caption=d.get("caption", ""), table=d.get("table") or {}, settings=d.get("settings") or {},
        log_x=bool(d.get("log_x")), log_y=bool(d.get("log_y")), slider=bool(d.get("slider")),
        hlines=tuple((str(lab), float(y)) for lab, y in d.get("hlines", ())),
        hline_series=tuple(str(n) for n in d.get("hline_series", ())), facets=bool(d.get("facets")),
    )


def _num(v) -> str:
    if v is None:
        return ""
    if isinstance(v, (float, np.floating)):
        f = float(v)
        return repr(f) if math.isfinite(f) else ("nan" if math.isnan(f) else ("inf" if f > 0 else "-inf"))
    if isinstance(v, (np.integer, int)):
        return str(int(v))
    return str(v)


def _at(a, i):
    if a is None:
        return None
    a = np.asarray(a).ravel()
    return a[i] if i < len(a) else None


def figure_csv(fig: Figure) -> str:
    """The numbers a figure draws, one row per point, in tidy form.

    Columns ``part,name,index,x,y,z,band_lo,band_hi,step,off_plane``; ``part`` is ``series``
    (curves, bars, histogram samples), ``grid`` (one row per grid cell: x, y, z) or ``path``
    (trajectories on a plane). Full float precision (``repr``); empty cells where a column
    does not apply; ``nan``/``inf`` spelled out.
    """
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for s in fig.series:
        y = np.asarray(s.y).ravel()
        x = None if s.x is None else np.asarray(s.x).ravel()
        for i in range(len(y)):
            w.writerow(["series", s.name, i, _num(_at(x, i)), _num(y[i]), "", _num(_at(s.band_lo, i)),
                        _num(_at(s.band_hi, i)), "", ""])
    if fig.grid is not None:
        gx, gy, gz = np.asarray(fig.grid.x), np.asarray(fig.grid.y), np.asarray(fig.grid.z)
        k = 0
        for j in range(len(gy)):
            for i in range(len(gx)):
                w.writerow(["grid", fig.grid.z_label, k, _num(gx[i]), _num(gy[j]), _num(gz[j, i]), "", "", "", ""])
                k += 1
    for p in fig.paths:
        x = np.asarray(p.x).ravel()
        for i in range(len(x)):
            w.writerow(["path", p.name, i, _num(x[i]), _num(_at(p.y, i)), _num(_at(p.z, i)), "", "",
                        _num(_at(p.steps, i)), _num(_at(p.off_plane, i))])
    for lab, yv in fig.hlines:
        w.writerow(["hline", lab, 0, "", _num(float(yv)), "", "", "", "", ""])
    return buf.getvalue()


def figure_json(fig: Figure) -> str:
    """The figure's data, table and settings as a JSON document (what the JSON button downloads)."""
    return json.dumps(figure_to_dict(fig), indent=1, allow_nan=False)
