"""Figure -> plotly figure (plain JSON-safe dicts, rendered by plotly.js in the page).

Specs are built as plain dicts rather than through ``plotly.graph_objects`` so they carry
no per-figure template, and arrays as plain lists or, in a page, as references into its binary
:class:`~losslab.report.binary.ArrayTable`; :func:`to_plotly` wraps a spec
in a ``plotly.graph_objects.Figure`` (which validates every attribute) for use from Python.

All user-provided text (titles, series and path names, labels) is HTML-escaped before it goes
to plotly: plotly.js renders a small HTML subset in its SVG text and decodes entities, so an
escaped name is *shown* as typed and never interpreted.

A figure with ``slider=True`` and paths gets a marker per path and a ``slider`` entry in the
spec: for each slider position the marker coordinates of every path, which the page's step
slider feeds to ``Plotly.restyle``.
"""
from __future__ import annotations

import html
from pathlib import Path as Path_
from typing import Any

import numpy as np

from ..figures import COLORS, Figure, Path
from .binary import ArrayTable, decimate_minmax, stride_indices
from .scene3d import canvas_scene
from .serialize import jsonable

MAX_SLIDER_POSITIONS = 200


def esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def _lst(a) -> list | None:
    if a is None:
        return None
    return jsonable(np.asarray(a))


class _Enc:
    """How a spec holds arrays: plain lists (``arrays=None``, for Python use and plotly.py) or
    references into a page's :class:`ArrayTable` (``full``: float64, shared with the downloaded
    data; ``drawn``: float32, for what is only drawn)."""

    def __init__(self, arrays: ArrayTable | None):
        self.arrays = arrays

    def full(self, a):
        return _lst(a) if self.arrays is None or a is None else self.arrays.ref(a)

    def drawn(self, a):
        return _lst(a) if self.arrays is None or a is None else self.arrays.drawn(a)


def _finite_range(*arrays) -> tuple[float, float] | None:
    vals = [np.asarray(a, dtype=float).ravel() for a in arrays if a is not None and np.asarray(a).dtype.kind in "fiu"]
    vals = [v[np.isfinite(v)] for v in vals]
    vals = [v for v in vals if len(v)]
    if not vals:
        return None
    v = np.concatenate(vals)
    return float(v.min()), float(v.max())


def path_z(path: Path, grid) -> np.ndarray:
    """The loss at each path point: ``path.z`` when given, else bilinear interpolation of the
    grid (NaN outside it)."""
    if path.z is not None:
        return np.asarray(path.z, dtype=float)
    gx, gy, gz = (np.asarray(a, dtype=float) for a in (grid.x, grid.y, grid.z))
    px, py = np.asarray(path.x, dtype=float), np.asarray(path.y, dtype=float)
    out = np.full(px.shape, np.nan)
    inside = (px >= gx.min()) & (px <= gx.max()) & (py >= gy.min()) & (py <= gy.max()) & np.isfinite(px) & np.isfinite(py)
    if inside.any() and len(gx) > 1 and len(gy) > 1:
        ox, oy = np.argsort(gx), np.argsort(gy)
        gx, gy, gz = gx[ox], gy[oy], gz[np.ix_(oy, ox)]
        x, y = px[inside], py[inside]
        i = np.clip(np.searchsorted(gx, x) - 1, 0, len(gx) - 2)
        j = np.clip(np.searchsorted(gy, y) - 1, 0, len(gy) - 2)
        tx = (x - gx[i]) / (gx[i + 1] - gx[i])
        ty = (y - gy[j]) / (gy[j + 1] - gy[j])
        out[inside] = ((1 - tx) * (1 - ty) * gz[j, i] + tx * (1 - ty) * gz[j, i + 1] + (1 - tx) * ty * gz[j + 1, i]
                       + tx * ty * gz[j + 1, i + 1])
    return out


def color_key(name: str) -> str:
    """What a curve's name means, for colouring: the part before ': ' or ' (' ("small batch: mean"
    and "small batch" are one meaning; "lr 0.1 (2/lr = 20)" is "lr 0.1")."""
    return str(name).split(": ")[0].split(" (")[0].strip().lower() or str(name)


def section_colors(figures) -> dict[str, str]:
    """One colour per meaning across figures (a report section): explicit ``color`` first, then
    the palette by first appearance of each :func:`color_key` among series and paths."""
    out: dict[str, str] = {}
    for f in figures:
        for item in (*f.series, *f.paths):
            if getattr(item, "color", None):
                out.setdefault(color_key(item.name), item.color)
    used = set(out.values())
    free = [c for c in COLORS if c not in used] or list(COLORS)
    k = 0
    for f in figures:
        for item in (*f.series, *f.paths):
            key = color_key(item.name)
            if key not in out:
                out[key] = free[k % len(free)]
                k += 1
    return out


def item_colors(items, colors: dict[str, str] | None) -> list[str]:
    """The colour of each series/path of one figure: its own ``color``, else the section's colour
    for its meaning; within one figure a colour belongs to one meaning ("a: measured" and "a: predicted"
    share it) unless the palette runs out (then :func:`repeat_dashes` tells the lines apart)."""
    colors = colors if colors is not None else section_colors([_Fake(items)])
    out: list[str] = []
    owner: dict[str, str] = {}  # colour -> the meaning that holds it in this figure
    for i, it in enumerate(items):
        key = color_key(it.name)
        c = getattr(it, "color", None) or colors.get(key)
        # the same meaning keeps its colour ("a: measured" and "a: predicted"); another meaning may not take it
        if c is None or (owner.get(c, key) != key and not getattr(it, "color", None)):
            c = next((x for x in COLORS if x not in owner), COLORS[i % len(COLORS)])
        owner.setdefault(c, key)
        out.append(c)
    return out


_REPEAT_DASHES = ("dash", "dot", "dashdot", "longdash")


def repeat_dashes(cols: list[str]) -> list[str | None]:
    """A dash for each item whose colour an earlier item of the same figure already has (more
    curves than the palette has colours, e.g. twelve optimizers): same colour, different line."""
    seen: dict[str, int] = {}
    out: list[str | None] = []
    for c in cols:
        n = seen.get(c, 0)
        seen[c] = n + 1
        out.append(_REPEAT_DASHES[(n - 1) % len(_REPEAT_DASHES)] if n else None)
    return out


class _Fake:  # a figure-like holder of series for section_colors
    def __init__(self, items):
        self.series, self.paths = tuple(items), ()


def _path_custom(path: Path, n: int):
    """(steps, off-plane distance) per point for the hover of a path (plotly customdata)."""
    steps = np.arange(n, dtype=float) if path.steps is None else np.asarray(path.steps, dtype=float)[:n]
    if path.off_plane is None:
        return steps, False
    off = np.asarray(path.off_plane, dtype=float)[:n]
    return np.stack([steps, off], 1), True


def _path_hover(path: Path, has_off: bool) -> str:
    return (esc(path.name) + "<br>step %{customdata" + ("[0]" if has_off else "") + "}"
            + ("<br>off-plane distance %{customdata[1]:.4g}" if has_off else "") + "<extra></extra>")


#: from this many decades of data a log axis is labelled at powers of ten only
LOG_DECADE_LABELS_FROM = 2.0


def log_axis(values) -> dict:
    """A log axis labelled at powers of ten only (no minor labels such as "2, 5"), with
    unlabelled minor ticks, when its data spans two decades or more; under two decades (where
    powers of ten would leave one or two labels, e.g. lambda_max from 0.4 to 4 labelled "1" alone)
    at the 1-2-5 values in plain numbers (every digit on a very narrow range)."""
    ax: dict[str, Any] = {"type": "log", "exponentformat": "power", "showexponent": "all"}
    r = _finite_range(*[np.where(np.asarray(v, dtype=float) > 0, v, np.nan) for v in values if v is not None])
    if r is not None and r[0] > 0:
        decades = np.log10(r[1]) - np.log10(r[0])
        if decades >= LOG_DECADE_LABELS_FROM:
            # major ticks drawn too, so that the short minor marks read as a scale, not as minus signs
            ax.update({"dtick": int(max(1, np.ceil(decades / 8))), "ticks": "outside", "ticklen": 6,
                       "minor": {"ticks": "outside", "ticklen": 3, "showgrid": False}})
        else:
            # plotly's own labels under a decade are every digit ("2, 0.1, 9, 8, ... 3, 2"): label 1-2-5
            # values instead (all digits 1-9 when fewer than two 1-2-5 values fall in the range), in plain numbers
            lo, hi = r[0] / 1.1, r[1] * 1.1  # plotly pads the drawn range a little
            k0, k1 = int(np.floor(np.log10(lo))), int(np.ceil(np.log10(hi)))
            for mantissas in ((1, 2, 5), tuple(range(1, 10))):
                vals = [float(f"{m}e{k}") for k in range(k0, k1 + 1) for m in mantissas if lo <= float(f"{m}e{k}") <= hi]
                if len(vals) >= 2:
                    ax.update({"tickvals": vals, "ticktext": [f"{v:g}" for v in vals]})
                    break
    return ax


def _series_traces(fig: Figure, enc: "_Enc", colors: dict[str, str] | None) -> list[dict]:
    traces = []
    cols = item_colors(fig.series, colors)
    rdash = repeat_dashes(cols)
    for i, s in enumerate(fig.series):
        color = cols[i]
        name = esc(s.name)
        if fig.kind == "bars":
            if fig.facets:
                continue
            traces.append({"type": "bar", "name": name, "x": [esc(v) for v in np.asarray(s.x).ravel()] if
                           s.x is not None and np.asarray(s.x).dtype.kind in "OUS" else enc.full(s.x),
                           "y": enc.full(s.y), "marker": {"color": color}})
            continue
        if fig.kind == "histogram":
            binned = histogram_bins(s)
            if binned is None:  # ``y`` holds samples: plotly bins them
                traces.append({"type": "histogram", "name": name, "x": enc.full(s.y), "opacity": 0.65,
                               "marker": {"color": color}})
            else:  # already binned: bars at the centres, one bin wide
                centers, widths, counts = binned
                traces.append({"type": "bar", "name": name, "x": enc.drawn(centers), "y": enc.full(s.y),
                               "width": enc.drawn(widths), "opacity": 0.6, "marker": {"color": color}})
            continue
        y = np.asarray(s.y)
        xs = np.arange(len(y), dtype=float) if s.x is None else np.asarray(s.x)
        idx = decimate_minmax(xs, [y, s.band_lo, s.band_hi]) if xs.dtype.kind in "fiu" else None
        pick = (lambda a: a) if idx is None else (lambda a: None if a is None else np.asarray(a)[idx])
        put = enc.full if idx is None else enc.drawn
        if s.band_lo is not None and s.band_hi is not None:
            bx = pick(xs)
            traces.append({"type": "scatter", "x": enc.drawn(np.concatenate([bx, bx[::-1]])),
                           "y": enc.drawn(np.concatenate([pick(np.asarray(s.band_hi)), pick(np.asarray(s.band_lo))[::-1]])),
                           "fill": "toself", "fillcolor": _rgba(color, 0.18), "line": {"width": 0},
                           "hoverinfo": "skip", "showlegend": False, "legendgroup": f"s{i}", "name": f"{name} band"})
        mode = s.mode
        if fig.kind == "scatter" and mode == "lines":
            mode = "markers"
        if idx is not None and "markers" in mode:
            mode = "lines"  # thousands of markers are one smear: draw the line
        tr = {"type": "scatter", "mode": mode, "name": name, "x": None if s.x is None and idx is None else put(pick(xs)),
              "y": put(pick(y)), "legendgroup": f"s{i}",
              "line": {"color": color, **({"dash": "dash"} if s.dash else {"dash": rdash[i]} if rdash[i] else {})},
              "marker": {"color": color, "size": 6, **_marker_cap(len(pick(y)), mode)}}
        traces.append(tr)
    if fig.hlines and fig.kind in ("lines", "scatter"):
        xr = _finite_range(*[s.x for s in fig.series]) or (0.0, 1.0)
        by_name = {s.name: c for s, c in zip(fig.series, cols)}
        dashes = ("dot", "dash", "dashdot", "longdash", "longdashdot")
        for k, (label, yv) in enumerate(fig.hlines):
            owner = fig.hline_series[k] if k < len(fig.hline_series) else ""
            color = by_name.get(owner, "#444")
            # reference lines of different curves differ in colour (their curve's) and in dash
            dash = dashes[k % len(dashes)] if len(fig.hlines) > 1 else "dot"
            traces.append({"type": "scatter", "mode": "lines", "name": esc(label), "x": [xr[0], xr[1]],
                           "y": [float(yv), float(yv)], "line": {"color": color, "dash": dash, "width": 1.8}, "meta": "reference",
                           "hovertemplate": f"{esc(label)} = {float(yv):.4g}<extra></extra>"})
    return traces


def _facet_bars(fig: Figure, enc: "_Enc", colors: dict[str, str] | None, layout: dict) -> list[dict]:
    """Small multiples: one panel per category (bar position) with its own y axis, one bar per
    series in each; for measures in different units that must not share an axis."""
    cols = item_colors(fig.series, colors)
    s0 = fig.series[0]
    n = len(np.asarray(s0.y).ravel())
    xs = np.asarray(s0.x) if s0.x is not None else np.arange(n)
    labels = ([str(v) for v in xs.ravel()] if xs.dtype.kind in "OUS" else bar_labels(fig, n)
              or [f"{fig.x_label} {v}" for v in xs.ravel()])
    gap = 0.04
    width = (1.0 - gap * (n - 1)) / max(n, 1)
    traces, annotations = [], []
    for k in range(n):
        ax = "" if k == 0 else str(k + 1)
        lo = k * (width + gap)
        layout[f"xaxis{ax}"] = {"domain": [lo, lo + width], "showticklabels": False, "anchor": f"y{ax}"}
        layout[f"yaxis{ax}"] = {"anchor": f"x{ax}", "rangemode": "tozero", "exponentformat": "power",
                                **({"title": {"text": esc(fig.y_label)}} if k == 0 else {})}
        annotations.append({"text": f"<b>{esc(labels[k])}</b>", "x": lo + width / 2, "y": 1.02, "xref": "paper",
                            "yref": "paper", "xanchor": "center", "yanchor": "bottom", "showarrow": False,
                            "font": {"size": 12}})
        for i, s in enumerate(fig.series):
            v = float(np.asarray(s.y, dtype=float).ravel()[k])
            traces.append({"type": "bar", "name": esc(s.name), "x": [esc(s.name)], "y": [v], "xaxis": f"x{ax}",
                           "yaxis": f"y{ax}", "marker": {"color": cols[i]}, "legendgroup": f"s{i}",
                           "showlegend": k == 0,
                           "hovertemplate": f"{esc(s.name)}<br>{esc(labels[k])} = {v:.6g}<extra></extra>"})
    layout["annotations"] = annotations
    layout["margin"] = {**layout["margin"], "t": 80}
    return traces


def histogram_bins(s) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(centres, widths, counts) of a pre-binned histogram series, or None for raw samples.

    Convention for ``kind="histogram"``: ``x=None`` -> ``y`` are samples; ``len(x) == len(y)``
    -> ``x`` are bin centres and ``y`` the counts; ``len(x) == len(y) + 1`` -> ``x`` are bin edges."""
    if s.x is None:
        return None
    x, y = np.asarray(s.x, dtype=float), np.asarray(s.y, dtype=float)
    if len(x) == len(y) + 1:
        return 0.5 * (x[1:] + x[:-1]), np.diff(x), y
    if len(x) == len(y):
        if len(x) > 1:
            d = np.diff(x)
            w = np.empty_like(x)
            w[:-1], w[-1] = d, d[-1]
        else:
            w = np.ones_like(x)
        return x, w, y
    raise ValueError(f"histogram series {s.name!r}: x must be None (samples), bin centres (len {len(y)}) or bin "
                     f"edges (len {len(y) + 1}); got len {len(x)}")


def bar_labels(fig: Figure, n: int) -> list[str] | None:
    """Category labels for numeric bar positions from ``settings['labels']`` (as experiments set them)."""
    labels = fig.settings.get("labels") if isinstance(fig.settings, dict) else None
    if isinstance(labels, (list, tuple)) and len(labels) == n:
        return [str(v) for v in labels]
    return None


def _slider(fig: Figure, marker_traces: list[int], three_d: bool, enc: "_Enc") -> dict | None:
    paths = fig.paths
    if not fig.slider or not paths:
        return None
    step_lists = [np.arange(len(np.asarray(p.x))) if p.steps is None else np.asarray(p.steps) for p in paths]
    all_steps = np.unique(np.concatenate(step_lists))
    if len(all_steps) > MAX_SLIDER_POSITIONS:
        idx = np.unique(np.linspace(0, len(all_steps) - 1, MAX_SLIDER_POSITIONS).round().astype(int))
        all_steps = all_steps[idx]
    points = []
    for p, st in zip(paths, step_lists):
        px, py = np.asarray(p.x, dtype=float), np.asarray(p.y, dtype=float)
        pz = path_z(p, fig.grid) if three_d else None
        # index of the last recorded point at or before each slider step (a path that ended
        # early, e.g. diverged, keeps its last point)
        k = np.clip(np.searchsorted(st, all_steps, side="right") - 1, 0, len(st) - 1)
        points.append({"x": enc.drawn(px[k]), "y": enc.drawn(py[k]), "z": enc.drawn(pz[k]) if pz is not None else None})
    return {"traces": marker_traces, "steps": jsonable(all_steps), "points": points}


#: paths longer than this are drawn at evenly spaced points (the download keeps every point)
MAX_PATH_POINTS = 1500
#: a line drawn with markers shows at most this many of them, evenly spaced (plotly's
#: ``marker.maxdisplayed``; hover still reads every point): each marker is an SVG element plotly styles
#: one by one, and the tour's 10,000 markers were ~10 % of its report's render time (CPU profile, #17)
MAX_MARKERS = 80


def _marker_cap(n: int, mode: str) -> dict:
    return {"maxdisplayed": MAX_MARKERS} if n > MAX_MARKERS and "lines" in mode and "markers" in mode else {}


def plotly_spec(fig: Figure, *, arrays: ArrayTable | None = None, colors: dict[str, str] | None = None,
                canvas_3d: bool = False) -> dict:
    """The plotly ``{"data", "layout", "slider"}`` for one Figure (JSON-safe).

    ``arrays``: a page's :class:`ArrayTable`; numeric arrays become references into it (binary,
    stored once) instead of lists. ``colors``: the section's colour per meaning
    (:func:`section_colors`); by default the figure's own. Curves longer than
    ``MAX_DRAWN_POINTS`` are drawn decimated (:func:`decimate_minmax`), paths longer than
    ``MAX_PATH_POINTS`` at evenly spaced points. ``canvas_3d``: a surface figure as the report
    page draws it (a 2-D plotly frame plus ``"scene3d"`` for its canvas, :mod:`.scene3d`) instead
    of plotly's WebGL ``surface`` scene."""
    enc = _Enc(arrays)
    data: list[dict] = []
    layout: dict[str, Any] = {
        "title": {"text": esc(fig.title), "font": {"size": 15}},
        "margin": {"l": 60, "r": 20, "t": 50, "b": 50},
        "height": 430, "hovermode": "closest",
        "legend": {"orientation": "h", "y": -0.2},
    }
    three_d = fig.kind == "surface"
    marker_traces: list[int] = []
    if fig.kind == "bars" and fig.facets and fig.series:
        data.extend(_facet_bars(fig, enc, colors, layout))
    elif fig.kind in ("lines", "scatter", "bars", "histogram"):
        data.extend(_series_traces(fig, enc, colors))
        xs = [s.x for s in fig.series] if fig.kind != "histogram" else [s.y for s in fig.series]
        ys = [s.y for s in fig.series] + [np.array([v for _, v in fig.hlines])]
        layout["xaxis"] = {"title": {"text": esc(fig.x_label)}, **(log_axis(xs) if fig.log_x else {})}
        layout["yaxis"] = {"title": {"text": esc(fig.y_label)}, **(log_axis(ys) if fig.log_y else {})}
        if fig.kind == "histogram":
            layout["barmode"] = "overlay"
        if fig.kind == "bars" and fig.series:
            s0 = fig.series[0]
            xs0 = np.asarray(s0.x) if s0.x is not None else None
            labels = bar_labels(fig, len(xs0)) if xs0 is not None and xs0.dtype.kind in "fiu" else None
            if labels:
                layout["xaxis"].update({"tickmode": "array", "tickvals": _lst(xs0), "ticktext": [esc(l) for l in labels]})
    else:
        g = fig.grid
        gz = np.asarray(g.z, dtype=float)
        zr = _finite_range(gz) or (0.0, 1.0)
        cb = {"title": {"text": esc(g.z_label)}, "ticklabeloverflow": "allow"}
        if fig.kind == "contour":
            data.append({"type": "contour", "x": enc.full(g.x), "y": enc.full(g.y), "z": enc.full(g.z),
                         "colorscale": "Viridis", "ncontours": 30, "colorbar": cb, "name": esc(g.z_label),
                         "hovertemplate": "x %{x:.4g}<br>y %{y:.4g}<br>" + esc(g.z_label) + " %{z:.4g}<extra></extra>"})
        elif fig.kind == "heatmap":
            data.append({"type": "heatmap", "x": enc.full(g.x), "y": enc.full(g.y), "z": enc.full(g.z),
                         "colorscale": "Viridis", "colorbar": cb, "name": esc(g.z_label)})
        else:
            data.append({"type": "surface", "x": enc.full(g.x), "y": enc.full(g.y), "z": enc.full(g.z),
                         "colorscale": "Viridis", "colorbar": {**cb, "len": 0.75, "thickness": 18},
                         "opacity": 0.9, "name": esc(g.z_label), "cmin": zr[0], "cmax": zr[1],
                         "contours": {"z": {"show": True, "usecolormap": True, "project": {"z": True}}}})
        pcols = item_colors(fig.paths, colors)
        pdash = repeat_dashes(pcols)
        for i, p in enumerate(fig.paths):
            color = pcols[i]
            dash = {"dash": pdash[i]} if pdash[i] else {}
            n = len(np.asarray(p.x))
            idx = stride_indices(n, MAX_PATH_POINTS)
            pick = (lambda a: a) if idx is None else (lambda a, idx=idx: None if a is None else np.asarray(a)[idx])
            put = enc.full if idx is None else enc.drawn
            custom, has_off = _path_custom(p, n)
            # hover: the step (and distance off the plane) of each point, as data, not one string each
            cd = put(pick(p.steps)) if (not has_off and p.steps is not None) else enc.drawn(pick(custom))
            tr = {"mode": "lines+markers", "name": esc(p.name), "x": put(pick(p.x)), "y": put(pick(p.y)),
                  "customdata": cd, "hovertemplate": _path_hover(p, has_off)}
            if three_d:
                pz = path_z(p, g)
                tr.update({"type": "scatter3d", "z": (put(pick(p.z)) if p.z is not None else enc.drawn(pick(pz))),
                           "line": {"color": color, "width": 5, **dash}, "marker": {"size": 2.5, "color": color}})
            else:
                tr.update({"type": "scatter", "line": {"color": color, "width": 2, **dash},
                           "marker": {"size": 4, "color": color, **_marker_cap(n if idx is None else len(idx), tr["mode"])}})
            data.append(tr)
        if fig.slider and fig.paths:
            for i, p in enumerate(fig.paths):
                color = pcols[i]
                px, py = np.asarray(p.x, dtype=float), np.asarray(p.y, dtype=float)
                tr = {"type": "scatter3d" if three_d else "scatter", "mode": "markers", "name": f"{esc(p.name)} (step)",
                      "x": jsonable(px[:1]), "y": jsonable(py[:1]), "showlegend": False,
                      "marker": {"size": 8 if three_d else 13, "color": color, "symbol": "diamond" if three_d else
                                 "star", "line": {"color": "black", "width": 1}}}
                if three_d:
                    tr["z"] = jsonable(path_z(p, g)[:1])
                marker_traces.append(len(data))
                data.append(tr)
        xr, yr = _finite_range(g.x), _finite_range(g.y)
        if three_d:
            # room for the whole box and its colour bar: no side margins, a flatter box seen from
            # further away than plotly's default eye (1.25, 1.25, 1.25), which crops the corners
            layout["height"] = 600
            layout["margin"] = {"l": 0, "r": 0, "t": 50, "b": 10}
            layout["scene"] = {"xaxis": {"title": {"text": esc(fig.x_label or "x")}, "range": list(xr)},
                               "yaxis": {"title": {"text": esc(fig.y_label or "y")}, "range": list(yr)},
                               "zaxis": {"title": {"text": esc(g.z_label)}, "range": list(zr)},
                               "aspectmode": "manual", "aspectratio": {"x": 1, "y": 1, "z": 0.7},
                               "camera": {"eye": {"x": 1.55, "y": -1.55, "z": 1.0}},
                               "domain": {"x": [0, 0.92], "y": [0, 1]}}
            layout["legend"] = {"orientation": "h", "y": -0.02}
        else:
            layout["xaxis"] = {"title": {"text": esc(fig.x_label)}, "range": list(xr)}
            layout["yaxis"] = {"title": {"text": esc(fig.y_label)}, "range": list(yr)}
    presize_margins(data, layout, three_d=three_d)
    spec = {"data": data, "layout": layout, "slider": _slider(fig, marker_traces, three_d, enc)}
    return canvas_scene(spec) if three_d and canvas_3d else spec


#: what plotly's automatic margins come to (measured in Chromium, 12 px legend font): a legend row
#: below the plot takes 24 px, the x-axis title with the first row 98 px in all, a colour bar's
#: labels up to ~122 px on the right, y tick labels up to ~78 px on the left
LEGEND_ROW_PX, LEGEND_BASE_PX, COLORBAR_PX, YLABELS_PX = 24, 74, 125, 80
#: assumed legend width and text width per character (a wide sans serif, so rows are not undercounted)
LEGEND_WIDTH_PX, CHAR_PX, ITEM_PX = 760.0, 7.2, 40.0
_LEGEND_TYPES = ("scatter", "scatter3d", "bar", "histogram")


def legend_rows(data: list[dict], width: float = LEGEND_WIDTH_PX) -> int:
    """How many rows a horizontal plotly legend of these traces takes (0: no legend: plotly shows
    one only for two entries or more), packing entries greedily as plotly does."""
    names = [html.unescape(str(t.get("name", ""))) for t in data
             if t.get("type") in _LEGEND_TYPES and t.get("showlegend", True) and t.get("name")]
    if len(names) < 2:
        return 0
    rows, used = 1, 0.0
    for n in names:
        w = ITEM_PX + CHAR_PX * len(n)
        if used and used + w > width:
            rows, used = rows + 1, 0.0
        used += w
    return rows


def presize_margins(data: list[dict], layout: dict, *, three_d: bool) -> None:
    """Margins big enough for the legend, colour bar and tick labels before plotly measures them.

    plotly's auto-margins draw a figure, measure what sticks out and, when a margin must grow,
    draw it all again: about a quarter of the page's render time (measured: main-thread time of
    the full tour's 95 plots 6.8 s -> 5.1 s, loaded machine). Margins only ever grow, so a
    generous estimate costs a little white space and an underestimate only the redraw."""
    m = dict(layout.get("margin", {}))
    rows = legend_rows(data)
    if three_d:
        m["b"] = max(m.get("b", 0), 16 + LEGEND_ROW_PX * rows)
    else:
        m["b"] = max(m.get("b", 0), (LEGEND_BASE_PX + LEGEND_ROW_PX * rows) if rows else 55)
        m["l"] = max(m.get("l", 0), YLABELS_PX)
        if any(t.get("type") in ("contour", "heatmap") for t in data):
            m["r"] = max(m.get("r", 0), COLORBAR_PX)
    layout["margin"] = m


def to_plotly(fig: Figure):
    """A ``plotly.graph_objects.Figure`` for the Figure (validated by plotly); the step slider,
    when asked for, becomes plotly's own slider driving ``restyle``."""
    import plotly.graph_objects as go

    spec = plotly_spec(fig)
    out = go.Figure(data=spec["data"], layout=spec["layout"])
    sl = spec["slider"]
    if sl:
        steps = []
        for i, s in enumerate(sl["steps"]):
            upd: dict[str, list] = {"x": [[p["x"][i]] for p in sl["points"]], "y": [[p["y"][i]] for p in sl["points"]]}
            if sl["points"][0]["z"] is not None:
                upd["z"] = [[p["z"][i]] for p in sl["points"]]
            steps.append({"method": "restyle", "label": str(s), "args": [upd, sl["traces"]]})
        out.update_layout(sliders=[{"steps": steps, "currentvalue": {"prefix": "step "}}])
    return out


def plotly_json(fig: Figure) -> str:
    """The plotly figure JSON (``{"data", "layout"}``) of a Figure."""
    return to_plotly(fig).to_json()


#: plotly.js's cartesian bundle (plotly.js 4.1.1, MIT, vendor/LICENSE-plotly.js), the one the report page
#: loads: the page draws no WebGL (3-D scenes are canvas, :mod:`.scene3d`), and this bundle is 1.5 MB
#: against the full 4.8 MB one (whose parse alone took ~1 s of the tour report's render time, #17)
PLOTLY_BUNDLE = Path_(__file__).with_name("vendor") / "plotly-cartesian.min.js"


def plotly_js() -> str:
    """plotly.js for the report page: the vendored cartesian bundle (offline; never a CDN)."""
    if not PLOTLY_BUNDLE.is_file():
        raise FileNotFoundError(f"plotly.js's bundle is missing from the installed losslab ({PLOTLY_BUNDLE}): "
                                "reinstall losslab (pip install -e .)")
    return PLOTLY_BUNDLE.read_text(encoding="utf-8")


def plotly_template() -> dict:
    """The layout template applied once per page (kept out of each figure's JSON)."""
    import plotly.io as pio

    t = pio.templates["plotly_white"].to_plotly_json()
    # tick labels are never hidden at the div's edge (plotly's default "hide past div" measures
    # every label of every axis: ~15% of the render time), so no label is ever measured for it
    for ax in ("xaxis", "yaxis"):
        t["layout"].setdefault(ax, {})["ticklabeloverflow"] = "allow"
    return t
