"""Figure -> static matplotlib figure (PNG or PDF), for papers.

Same Figure descriptions as the HTML report; paths are drawn whole with their start (circle)
and end (cross) marked, since a page cannot hold a slider. Uses the non-interactive Agg
backend and never touches pyplot's global figure list (figures are built with
``matplotlib.figure.Figure``), so it is safe inside servers and tests.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from ..figures import Figure
from .plotly_render import bar_labels, histogram_bins, item_colors, path_z

STATIC_FORMATS = ("png", "pdf")


def _plain(text: str) -> str:
    # matplotlib treats $...$ as mathtext; show user text literally
    return str(text).replace("$", r"\$")


def _facets(fig: Figure, dpi: int):
    """Bars as small multiples: one panel (own y axis) per category."""
    from matplotlib.figure import Figure as MplFigure

    s0 = fig.series[0]
    n = len(np.asarray(s0.y).ravel())
    xs = np.asarray(s0.x) if s0.x is not None else np.arange(n)
    labels = [str(v) for v in xs.ravel()] if xs.dtype.kind in "OUS" else (bar_labels(fig, n) or [str(v) for v in xs])
    cols = item_colors(fig.series, None)
    mfig = MplFigure(figsize=(max(7.5, 1.9 * n), 4.2), dpi=dpi)
    axes = mfig.subplots(1, n, squeeze=False)[0]
    for k, ax in enumerate(axes):
        for i, s in enumerate(fig.series):
            ax.bar(i, float(np.asarray(s.y, dtype=float).ravel()[k]), color=cols[i], label=_plain(s.name))
        ax.set_title(_plain(labels[k]), fontsize=9)
        ax.set_xticks([])
        ax.grid(alpha=0.3, axis="y")
    axes[0].set_ylabel(_plain(fig.y_label))
    axes[0].legend(fontsize=7, loc="best")
    mfig.suptitle(_plain(fig.title), fontsize=11)
    mfig.tight_layout()
    return mfig


def to_matplotlib(fig: Figure, *, dpi: int = 120):
    """A ``matplotlib.figure.Figure`` drawing ``fig`` (colours as in the HTML report)."""
    from matplotlib.figure import Figure as MplFigure

    if fig.kind == "bars" and fig.facets and fig.series:
        return _facets(fig, dpi)
    three_d = fig.kind == "surface"
    mfig = MplFigure(figsize=(7.5, 5.2 if not three_d else 6.0), dpi=dpi)
    ax = mfig.add_subplot(111, projection="3d" if three_d else None)
    ax.set_title(_plain(fig.title), fontsize=11)
    scols = item_colors(fig.series, None)
    pcols = item_colors(fig.paths, None)
    if fig.kind in ("lines", "scatter"):
        for i, s in enumerate(fig.series):
            c = scols[i]
            x = np.arange(len(np.asarray(s.y))) if s.x is None else np.asarray(s.x, dtype=float)
            y = np.asarray(s.y, dtype=float)
            if s.band_lo is not None and s.band_hi is not None:
                ax.fill_between(x, np.asarray(s.band_lo, dtype=float), np.asarray(s.band_hi, dtype=float), color=c,
                                alpha=0.18, linewidth=0)
            mode = "markers" if fig.kind == "scatter" and s.mode == "lines" else s.mode
            ls = "none" if mode == "markers" else ("--" if s.dash else "-")
            mk = "o" if "markers" in mode else None
            ax.plot(x, y, color=c, linestyle=ls, marker=mk, markersize=3.5, label=_plain(s.name))
        by_name = {s.name: c for s, c in zip(fig.series, scols)}
        styles = (":", "--", "-.", (0, (5, 1)), (0, (3, 1, 1, 1)))
        for k, (label, yv) in enumerate(fig.hlines):
            owner = fig.hline_series[k] if k < len(fig.hline_series) else ""
            ax.axhline(float(yv), color=by_name.get(owner, "#444"), linewidth=1.3, label=_plain(label),
                       linestyle=styles[k % len(styles)] if len(fig.hlines) > 1 else ":")
    elif fig.kind == "bars":
        n = max(len(fig.series), 1)
        width = 0.8 / n
        labels = None
        for i, s in enumerate(fig.series):
            xs = np.asarray(s.x) if s.x is not None else np.arange(len(np.asarray(s.y)))
            if xs.dtype.kind in "OUS":
                labels = [str(v) for v in xs]
                pos = np.arange(len(xs), dtype=float)
            else:
                pos = xs.astype(float)
            ax.bar(pos + (i - (n - 1) / 2) * width, np.asarray(s.y, dtype=float), width=width,
                   color=scols[i], label=_plain(s.name))
        if labels is None and fig.series and fig.series[0].x is not None:
            xs = np.asarray(fig.series[0].x)
            if xs.dtype.kind in "fiu" and bar_labels(fig, len(xs)):
                ax.set_xticks(xs.astype(float), [_plain(l) for l in bar_labels(fig, len(xs))], rotation=30, ha="right")
        if labels is not None:
            ax.set_xticks(np.arange(len(labels)), [_plain(l) for l in labels], rotation=30, ha="right")
    elif fig.kind == "histogram":
        for i, s in enumerate(fig.series):
            c = scols[i]
            binned = histogram_bins(s)
            if binned is None:
                y = np.asarray(s.y, dtype=float)
                ax.hist(y[np.isfinite(y)], bins=30, alpha=0.6, color=c, label=_plain(s.name))
            else:
                centers, widths, counts = binned
                ax.bar(centers, counts, width=widths, alpha=0.55, color=c, label=_plain(s.name))
    else:
        g = fig.grid
        gx, gy, gz = (np.asarray(a, dtype=float) for a in (g.x, g.y, g.z))
        if three_d:
            X, Y = np.meshgrid(gx, gy)
            ax.plot_surface(X, Y, gz, cmap="viridis", alpha=0.8, linewidth=0)
            ax.set_zlabel(_plain(g.z_label))
        elif fig.kind == "contour":
            cs = ax.contourf(gx, gy, gz, levels=30, cmap="viridis")
            ax.contour(gx, gy, gz, levels=15, colors="white", linewidths=0.4, alpha=0.6)
            mfig.colorbar(cs, ax=ax, label=_plain(g.z_label))
        else:
            im = ax.pcolormesh(gx, gy, gz, cmap="viridis", shading="auto")
            mfig.colorbar(im, ax=ax, label=_plain(g.z_label))
        for i, p in enumerate(fig.paths):
            c = pcols[i]
            px, py = np.asarray(p.x, dtype=float), np.asarray(p.y, dtype=float)
            if three_d:
                pz = path_z(p, g)
                ax.plot(px, py, pz, color=c, linewidth=2, label=_plain(p.name))
                ax.scatter(px[:1], py[:1], pz[:1], color=c, marker="o", s=25)
            else:
                ax.plot(px, py, color=c, linewidth=1.8, marker=".", markersize=3, label=_plain(p.name))
                ax.plot(px[:1], py[:1], color=c, marker="o", markersize=6)
                fin = np.isfinite(px) & np.isfinite(py)
                if fin.any():
                    k = np.flatnonzero(fin)[-1]
                    ax.plot(px[k], py[k], color=c, marker="X", markersize=8, markeredgecolor="black")
        ax.set_xlim(gx.min(), gx.max())
        ax.set_ylim(gy.min(), gy.max())
    ax.set_xlabel(_plain(fig.x_label))
    ax.set_ylabel(_plain(fig.y_label))
    if fig.log_x and not three_d:
        ax.set_xscale("log")
    if fig.log_y and not three_d:
        ax.set_yscale("log")
    handles, _ = ax.get_legend_handles_labels()
    if handles:
        ax.legend(fontsize=8, loc="best")
    if not three_d:
        ax.grid(alpha=0.3)
    mfig.tight_layout()
    return mfig


def write_static(fig: Figure, path: str | os.PathLike, *, dpi: int = 150) -> Path:
    """Write one figure as PNG or PDF (by the path's suffix)."""
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in STATIC_FORMATS:
        raise ValueError(f"static figure format must be one of {', '.join(STATIC_FORMATS)}, got {path.suffix!r} "
                         f"(path {str(path)!r})")
    path.parent.mkdir(parents=True, exist_ok=True)
    import matplotlib

    with matplotlib.rc_context({"backend": "Agg"}):
        mfig = to_matplotlib(fig, dpi=dpi)
        mfig.savefig(path, format=fmt, dpi=dpi)
    return path


def write_static_figures(figures: Sequence[tuple[str, Figure]], folder: str | os.PathLike, *, fmt: str = "png",
                         dpi: int = 150) -> list[Path]:
    """Write ``(prefix, figure)`` pairs as ``folder/<prefix>-<figure.key>.<fmt>``; returns the paths."""
    if fmt not in STATIC_FORMATS:
        raise ValueError(f"static format must be one of {', '.join(STATIC_FORMATS)}, got {fmt!r}")
    folder = Path(folder)
    out = []
    used: set[str] = set()
    for prefix, fig in figures:
        stem = "".join(c if c.isalnum() or c in "-_." else "-" for c in (f"{prefix}-{fig.key}" if prefix else fig.key))
        name, k = stem, 1
        while name in used:
            k += 1
            name = f"{stem}-{k}"
        used.add(name)
        out.append(write_static(fig, folder / f"{name}.{fmt}", dpi=dpi))
    return out
