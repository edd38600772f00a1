"""Figure -> plotly figure (plain JSON-safe dicts, rendered by plotly.js in the page).

Specs are built as plain dicts rather than through ``plotly.graph_objects`` so they carry
plain lists (no binary encodings) and no per-figure template; :func:`to_plotly` wraps a spec
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
from typing import Any

import numpy as np

from ..figures import Figure, Path
from .serialize import jsonable

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#e377c2", "#8c564b", "#bcbd22",
          "#7f7f7f")
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


def _hover(path: Path) -> list[str]:
    n = len(np.asarray(path.x))
    steps = np.arange(n) if path.steps is None else np.asarray(path.steps)
    off = None if path.off_plane is None else np.asarray(path.off_plane, dtype=float)
    out = []
    for i in range(n):
        t = f"{esc(path.name)}<br>step {steps[i]}" if i < len(steps) else esc(path.name)
        if off is not None and i < len(off):
            t += f"<br>off-plane distance {off[i]:.4g}"
        out.append(t)
    return out


def _series_traces(fig: Figure) -> list[dict]:
    traces = []
    for i, s in enumerate(fig.series):
        color = COLORS[i % len(COLORS)]
        name = esc(s.name)
        x = _lst(s.x) if s.x is not None else None
        if fig.kind == "bars":
            traces.append({"type": "bar", "name": name, "x": [esc(v) for v in np.asarray(s.x).ravel()] if
                           s.x is not None and np.asarray(s.x).dtype.kind in "OUS" else x, "y": _lst(s.y),
                           "marker": {"color": color}})
            continue
        if fig.kind == "histogram":
            binned = histogram_bins(s)
            if binned is None:  # ``y`` holds samples: plotly bins them
                traces.append({"type": "histogram", "name": name, "x": _lst(s.y), "opacity": 0.65,
                               "marker": {"color": color}})
            else:  # already binned: bars at the centres, one bin wide
                centers, widths, counts = binned
                traces.append({"type": "bar", "name": name, "x": _lst(centers), "y": _lst(counts),
                               "width": _lst(widths), "opacity": 0.6, "marker": {"color": color}})
            continue
        if s.band_lo is not None and s.band_hi is not None:
            xs = np.asarray(s.x)
            traces.append({"type": "scatter", "x": _lst(np.concatenate([xs, xs[::-1]])),
                           "y": _lst(np.concatenate([np.asarray(s.band_hi), np.asarray(s.band_lo)[::-1]])),
                           "fill": "toself", "fillcolor": _rgba(color, 0.18), "line": {"width": 0},
                           "hoverinfo": "skip", "showlegend": False, "legendgroup": f"s{i}", "name": f"{name} band"})
        mode = s.mode
        if fig.kind == "scatter" and mode == "lines":
            mode = "markers"
        tr = {"type": "scatter", "mode": mode, "name": name, "x": x, "y": _lst(s.y), "legendgroup": f"s{i}",
              "line": {"color": color, **({"dash": "dash"} if s.dash else {})}, "marker": {"color": color, "size": 6}}
        traces.append(tr)
    if fig.hlines and fig.kind in ("lines", "scatter"):
        xr = _finite_range(*[s.x for s in fig.series]) or (0.0, 1.0)
        for k, (label, yv) in enumerate(fig.hlines):
            traces.append({"type": "scatter", "mode": "lines", "name": esc(label), "x": [xr[0], xr[1]],
                           "y": [float(yv), float(yv)], "line": {"color": "#444", "dash": "dot", "width": 1.5},
                           "hovertemplate": f"{esc(label)} = {float(yv):.4g}<extra></extra>"})
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


def _slider(fig: Figure, marker_traces: list[int], three_d: bool) -> dict | None:
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
        points.append({"x": jsonable(px[k]), "y": jsonable(py[k]), "z": jsonable(pz[k]) if pz is not None else None})
    return {"traces": marker_traces, "steps": jsonable(all_steps), "points": points}


def plotly_spec(fig: Figure) -> dict:
    """The plotly ``{"data", "layout", "slider"}`` for one Figure (JSON-safe)."""
    data: list[dict] = []
    layout: dict[str, Any] = {
        "title": {"text": esc(fig.title), "font": {"size": 15}},
        "margin": {"l": 60, "r": 20, "t": 50, "b": 50},
        "height": 430, "hovermode": "closest",
        "legend": {"orientation": "h", "y": -0.2},
    }
    three_d = fig.kind == "surface"
    marker_traces: list[int] = []
    if fig.kind in ("lines", "scatter", "bars", "histogram"):
        data.extend(_series_traces(fig))
        layout["xaxis"] = {"title": {"text": esc(fig.x_label)}, **({"type": "log"} if fig.log_x else {})}
        layout["yaxis"] = {"title": {"text": esc(fig.y_label)}, **({"type": "log"} if fig.log_y else {})}
        if fig.kind == "histogram":
            layout["barmode"] = "overlay"
        if fig.kind == "bars" and fig.series:
            s0 = fig.series[0]
            xs = np.asarray(s0.x) if s0.x is not None else None
            labels = bar_labels(fig, len(xs)) if xs is not None and xs.dtype.kind in "fiu" else None
            if labels:
                layout["xaxis"].update({"tickmode": "array", "tickvals": _lst(xs), "ticktext": [esc(l) for l in labels]})
    else:
        g = fig.grid
        gz = np.asarray(g.z, dtype=float)
        zr = _finite_range(gz) or (0.0, 1.0)
        cb = {"title": {"text": esc(g.z_label)}}
        if fig.kind == "contour":
            data.append({"type": "contour", "x": _lst(g.x), "y": _lst(g.y), "z": _lst(gz), "colorscale": "Viridis",
                         "ncontours": 30, "colorbar": cb, "name": esc(g.z_label),
                         "hovertemplate": "x %{x:.4g}<br>y %{y:.4g}<br>" + esc(g.z_label) + " %{z:.4g}<extra></extra>"})
        elif fig.kind == "heatmap":
            data.append({"type": "heatmap", "x": _lst(g.x), "y": _lst(g.y), "z": _lst(gz), "colorscale": "Viridis",
                         "colorbar": cb, "name": esc(g.z_label)})
        else:
            data.append({"type": "surface", "x": _lst(g.x), "y": _lst(g.y), "z": _lst(gz), "colorscale": "Viridis",
                         "colorbar": cb, "opacity": 0.9, "name": esc(g.z_label), "cmin": zr[0], "cmax": zr[1],
                         "contours": {"z": {"show": True, "usecolormap": True, "project": {"z": True}}}})
        for i, p in enumerate(fig.paths):
            color = COLORS[(i + 1) % len(COLORS)]
            hover = _hover(p)
            if three_d:
                pz = path_z(p, g)
                data.append({"type": "scatter3d", "mode": "lines+markers", "name": esc(p.name), "x": _lst(p.x),
                             "y": _lst(p.y), "z": _lst(pz), "line": {"color": color, "width": 5},
                             "marker": {"size": 2.5, "color": color}, "text": hover, "hoverinfo": "text"})
            else:
                data.append({"type": "scatter", "mode": "lines+markers", "name": esc(p.name), "x": _lst(p.x),
                             "y": _lst(p.y), "line": {"color": color, "width": 2}, "marker": {"size": 4, "color": color},
                             "text": hover, "hoverinfo": "text"})
        if fig.slider and fig.paths:
            for i, p in enumerate(fig.paths):
                color = COLORS[(i + 1) % len(COLORS)]
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
            layout["height"] = 560
            layout["scene"] = {"xaxis": {"title": {"text": esc(fig.x_label or "x")}, "range": list(xr)},
                               "yaxis": {"title": {"text": esc(fig.y_label or "y")}, "range": list(yr)},
                               "zaxis": {"title": {"text": esc(g.z_label)}, "range": list(zr)}}
        else:
            layout["xaxis"] = {"title": {"text": esc(fig.x_label)}, "range": list(xr)}
            layout["yaxis"] = {"title": {"text": esc(fig.y_label)}, "range": list(yr)}
    return {"data": data, "layout": layout, "slider": _slider(fig, marker_traces, three_d)}


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


def plotly_js() -> str:
    """plotly.js from the installed plotly package (offline; never a CDN)."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def plotly_template() -> dict:
    """The layout template applied once per page (kept out of each figure's JSON)."""
    import plotly.io as pio

    return pio.templates["plotly_white"].to_plotly_json()
