"""Page assembly: sections of figures, each with its caption, the numbers it shows, its
settings and buttons to download its data (CSV, JSON), into one HTML file that works offline
from file://.

plotly.js is never fetched from a CDN: its cartesian bundle (vendored, ``report/vendor``) is
either copied once beside the page (``plotly-cartesian.min.js``, shared by every report in the
folder) or inlined (``standalone=True``); 3-D scenes are drawn on a canvas (``scene3d``).
Everything a user typed (run names, captions, settings, table keys) is escaped with
``html.escape``; data embedded in the page sits in ``<script type="application/json">``
blocks whose ``<``, ``>`` and ``&`` are written as ``\\u003c``..., so no text can close the
block. Downloads are made in the browser from the embedded data with a Blob, so they work
from file:// without a server.
"""
from __future__ import annotations

import hashlib
import html
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..figures import Figure
from .assets import CSS, JS
from .binary import ArrayTable
from .plotly_render import plotly_js, plotly_spec, plotly_template, section_colors
from .scene3d import SCENE_JS
from .serialize import figure_to_dict, jsonable

#: the file beside the pages (its own name: pages made before losslab drew 3-D scenes on a canvas
#: load the full plotly.min.js, which stays where it is for them)
PLOTLY_FILE = "plotly-cartesian.min.js"


@dataclass(frozen=True)
class Section:
    """One section of a report: a chapter of the tour, an experiment, or a run.

    ``error`` (when set) is shown in red in place of missing results; ``summary`` and
    ``checks`` are the section's measured numbers and claims; ``links`` are (text, href).
    """

    key: str
    title: str
    text: str = ""
    figures: tuple[Figure, ...] = ()
    summary: dict[str, Any] = field(default_factory=dict)
    checks: dict[str, bool] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    note: str = ""
    wall_time: float | None = None
    links: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Page:
    title: str
    sections: tuple[Section, ...]
    intro: str = ""
    links: tuple[tuple[str, str], ...] = ()


def esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def embed_json(obj: Any) -> str:
    """JSON safe to place inside ``<script type="application/json">`` (no ``</script>`` can
    appear; the parsed value is unchanged)."""
    s = json.dumps(jsonable(obj), allow_nan=False, separators=(",", ":"))
    return s.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


#: significant digits in the page's tables (the full value is in the cell's tooltip and the downloads)
TABLE_DIGITS = 4


def num(f: float, digits: int = TABLE_DIGITS) -> str:
    """A float with ``digits`` significant digits, without exponent clutter for ordinary sizes."""
    if not math.isfinite(f):
        return str(f)
    return f"{f:.{digits}g}"


def seconds(t: float) -> str:
    """A duration with 3 significant digits ("0.0123 s", "12.3 s", "1234 s")."""
    return f"{t:.0f} s" if abs(t) >= 1000 else f"{t:.3g} s"


def fmt(v: Any) -> str:
    """A value for a table cell (already escaped): floats with 4 significant digits."""
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (float, np.floating)):
        return esc(num(float(v)))
    if isinstance(v, (int, np.integer)):
        return esc(int(v))
    if isinstance(v, np.ndarray):
        v = v.tolist()
    if isinstance(v, (list, tuple)):
        if len(v) <= 8 and all(not isinstance(e, (list, tuple, dict)) for e in v):
            return "[" + ", ".join(fmt(e) for e in v) + "]"
        try:
            a = np.asarray(v, dtype=float).ravel()
            fin = a[np.isfinite(a)]
            rng = f"{fin.min():.4g} … {fin.max():.4g}" if len(fin) else "no finite values"
            return esc(f"[{a.size} values: {rng}]")
        except (TypeError, ValueError):
            return esc(f"[{len(v)} items]")
    if v is None:
        return "—"
    return esc(v)


def _cell(v: Any) -> str:
    """A <td>: a float rounded for reading carries its full value as a tooltip."""
    if isinstance(v, (float, np.floating)) and not isinstance(v, bool) and math.isfinite(float(v)) \
            and num(float(v)) != repr(float(v)):
        return f'<td title="{esc(repr(float(v)))}">{fmt(v)}</td>'
    return f"<td>{fmt(v)}</td>"


def _flatten(d: dict, prefix: str = "") -> list[tuple[str, Any]]:
    rows = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            rows.extend(_flatten(v, key + "."))
        else:
            rows.append((key, v))
    return rows


#: tables longer than this are folded away (a <details> closed by default) with their row count
OPEN_ROWS = 12


def table_html(d: dict, *, cls: str = "numbers", caption: str | None = None, fold: bool | None = None) -> str:
    """A key/value table; folded into a closed <details> when ``fold`` (default: longer than
    ``OPEN_ROWS`` rows), with the caption and row count as its summary."""
    if not d:
        return ""
    flat = _flatten(d)
    rows = "".join(f"<tr><th>{esc(k)}</th>{_cell(v)}</tr>" for k, v in flat)
    fold = len(flat) > OPEN_ROWS if fold is None else fold
    if fold:
        label = f"{caption or 'numbers'} ({len(flat)} rows)"
        return (f'<details class="table {cls}"><summary>{esc(label)}</summary><div class="tablewrap">'
                f'<table class="{cls}"><tbody>{rows}</tbody></table></div></details>')
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    return f'<div class="tablewrap"><table class="{cls}">{cap}<tbody>{rows}</tbody></table></div>'


def paragraphs(text: str) -> str:
    parts = [p.strip() for p in str(text or "").split("\n\n") if p.strip()]
    return "".join(f"<p>{esc(p)}</p>" for p in parts)


def _slug(text: str) -> str:
    s = "".join(c if c.isalnum() or c in "-_" else "-" for c in str(text))[:40].strip("-") or "fig"
    return s


def auto_table(fig: Figure) -> dict[str, Any]:
    """Numbers for a figure that brought no table: per series its length, last value and range;
    for a grid its shape, minimum and where; for a path its start and end."""
    t: dict[str, Any] = {}

    def rng(a):
        a = np.asarray(a, dtype=float).ravel()
        f = a[np.isfinite(a)]
        return [float(f.min()), float(f.max())] if len(f) else None

    for s in fig.series:
        y = np.asarray(s.y)
        if y.dtype.kind not in "fiu":
            continue
        fin = np.asarray(y, dtype=float)[np.isfinite(np.asarray(y, dtype=float))]
        t[f"{s.name}: points"] = int(y.size)
        if fig.kind != "histogram" and len(fin):
            t[f"{s.name}: last"] = float(fin[-1])
        t[f"{s.name}: range"] = rng(y)
    if fig.grid is not None:
        z = np.asarray(fig.grid.z, dtype=float)
        t["grid (ny x nx)"] = f"{z.shape[0]}x{z.shape[1]}" if z.ndim == 2 else str(z.shape)
        if np.isfinite(z).any():
            j, i = np.unravel_index(int(np.nanargmin(z)), z.shape)
            t[f"min {fig.grid.z_label}"] = float(z[j, i])
            t["at (x, y)"] = [float(np.asarray(fig.grid.x)[i]), float(np.asarray(fig.grid.y)[j])]
    for p in fig.paths:
        x, y = np.asarray(p.x, dtype=float), np.asarray(p.y, dtype=float)
        if len(x):
            t[f"{p.name}: start"] = [float(x[0]), float(y[0])]
            t[f"{p.name}: end"] = [float(x[-1]), float(y[-1])]
    for lab, yv in fig.hlines:
        t[lab] = float(yv)
    return t


def figure_html(fig: Figure, fid: str, *, arrays: ArrayTable | None = None, colors: dict[str, str] | None = None) -> str:
    """One figure block: plot div, caption, numbers table, settings, download buttons.

    With ``arrays`` (the page's :class:`ArrayTable`) the figure's numbers are stored there once,
    in binary, and the CSV is written by the page when its button is pressed; without it the
    spec, the CSV text and the JSON data are embedded as text (three blocks)."""
    own = arrays is None
    arrays = ArrayTable() if own else arrays
    spec = plotly_spec(fig, arrays=arrays, colors=colors, canvas_3d=True)
    data = figure_to_dict(fig, arrays=arrays)
    base = _slug(fig.key)
    slider = ""
    if spec["slider"]:
        n = len(spec["slider"]["steps"])
        first = spec["slider"]["steps"][0] if n else 0
        slider = (f'<div class="slider"><button type="button" class="play" data-for="{fid}">▶ play</button>'
                  f'<label>step <input type="range" class="step-slider" id="{fid}-slider" data-for="{fid}" '
                  f'min="0" max="{max(n - 1, 0)}" value="0" step="1"></label>'
                  f'<output id="{fid}-step">{esc(first)}</output></div>')
    table = (table_html(fig.table, caption="numbers shown") or table_html(auto_table(fig), caption="numbers shown")
             or '<p class="muted">no numbers</p>')
    settings = table_html(fig.settings, cls="settings", fold=False)
    settings_html = f"<details><summary>settings</summary>{settings}</details>" if settings else ""
    scene = ' data-scene="3d"' if "scene3d" in spec else ""  # a 3-D scene on a canvas (scene3d.py)
    blobs = (f'<script type="application/json" id="{fid}-arrays">{embed_json(arrays.blobs)}</script>' if own else "")
    return (
        f'<figure class="fig" id="{fid}-block" data-key="{esc(fig.key)}" data-kind="{esc(fig.kind)}">'
        f'<div class="plotcol"><div class="plot" id="{fid}"{scene}></div>{slider}'
        f'<figcaption>{paragraphs(fig.caption)}</figcaption></div>'
        f'<div class="side">{table}{settings_html}'
        f'<div class="downloads"><button type="button" class="dl" data-fig="{fid}" data-format="csv" '
        f'data-name="{esc(base)}.csv" data-type="text/csv">download CSV</button> '
        f'<button type="button" class="dl" data-fig="{fid}" data-format="json" data-name="{esc(base)}.json" '
        f'data-type="application/json">download JSON</button></div></div>'
        f'<script type="application/json" id="{fid}-spec">{embed_json(spec)}</script>'
        f'<script type="application/json" id="{fid}-data">{embed_json(data)}</script>{blobs}'
        f'</figure>'
    )


def _section_ids(sections: Sequence[Section]) -> list[str]:
    ids, seen = [], set()
    for i, s in enumerate(sections):
        sid = _slug(s.key)
        if sid in seen:
            sid = f"{sid}-{i}"
        seen.add(sid)
        ids.append(sid)
    return ids


def section_html(sec: Section, index: int, sid: str | None = None, *, arrays: ArrayTable | None = None) -> str:
    """A chapter: its title and text (the claim), the checks, the figures, and then, folded away,
    the raw measured numbers and the settings. Every figure of a section uses one colour per
    meaning (:func:`section_colors`)."""
    parts = [f'<section id="{esc(sid or _slug(sec.key))}" class="chapter" data-key="{esc(sec.key)}">',
             f"<h2>{esc(sec.title)}</h2>"]
    meta = []
    if sec.wall_time is not None:
        meta.append(seconds(sec.wall_time))
    if sec.note:
        meta.append(sec.note)
    if meta:
        parts.append(f'<p class="meta">{esc(" · ".join(meta))}</p>')
    if sec.links:
        parts.append('<p class="links">' + " · ".join(f'<a href="{esc(h)}">{esc(t)}</a>' for t, h in sec.links) + "</p>")
    parts.append(paragraphs(sec.text))
    if sec.error:
        parts.append(f'<div class="error" role="alert"><strong>This part failed:</strong><pre>{esc(sec.error)}</pre></div>')
    if sec.checks:
        items = "".join(f'<li class="{"ok" if ok else "bad"}">{"✔" if ok else "✘"} {esc(c)}</li>'
                        for c, ok in sec.checks.items())
        parts.append(f'<ul class="checks">{items}</ul>')
    colors = section_colors(sec.figures)
    for j, fig in enumerate(sec.figures):
        parts.append(figure_html(fig, f"f{index}-{j}", arrays=arrays, colors=colors))
    if sec.summary:
        parts.append(table_html(sec.summary, cls="summary", caption="all measured numbers", fold=True))
    if sec.settings:
        parts.append(f"<details><summary>settings</summary>{table_html(sec.settings, cls='settings', fold=False)}"
                     f"</details>")
    parts.append("</section>")
    return "".join(parts)


def render_page(page: Page, *, standalone: bool = False, plotly_src: str = PLOTLY_FILE) -> str:
    """The page's HTML text. With ``standalone`` plotly.js is inlined, else loaded from
    ``plotly_src`` (relative to the page)."""
    ids = _section_ids(page.sections)
    toc = "".join(f'<li><a href="#{esc(sid)}">{esc(s.title)}</a>{" ⚠" if s.error else ""}</li>'
                  for s, sid in zip(page.sections, ids))
    js_tag = (f"<script>{plotly_js()}</script>" if standalone
              else f'<script src="{esc(plotly_src)}" charset="utf-8"></script>')
    links = ""
    if page.links:
        links = '<p class="links">' + " · ".join(f'<a href="{esc(h)}">{esc(t)}</a>' for t, h in page.links) + "</p>"
    arrays = ArrayTable()
    body = "".join(section_html(s, i, sid, arrays=arrays) for i, (s, sid) in enumerate(zip(page.sections, ids)))
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{esc(page.title)}</title>"
        f"<style>{CSS}</style>{js_tag}</head><body>"
        f"<h1>{esc(page.title)}</h1>{links}"
        f'<p class="meta">made by losslab on {esc(time.strftime("%Y-%m-%d %H:%M"))}</p>'
        f"{paragraphs(page.intro)}"
        f"{'<nav><ul>' + toc + '</ul></nav>' if len(page.sections) > 1 else ''}"
        f"{body}"
        f'<script type="application/json" id="plotly-template">{embed_json(plotly_template())}</script>'
        f'<script type="application/json" id="page-arrays">{embed_json(arrays.blobs)}</script>'
        f"<script>{SCENE_JS}{JS}</script></body></html>\n"
    )


def ensure_plotly_js(folder: str | os.PathLike) -> Path:
    """Write plotly.js into ``folder`` once (rewritten only when the installed plotly's copy
    differs, e.g. after an upgrade). Returns its path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / PLOTLY_FILE
    js = plotly_js().encode("utf-8")
    if target.exists() and target.stat().st_size == len(js) and \
            hashlib.sha256(target.read_bytes()).digest() == hashlib.sha256(js).digest():
        return target
    tmp = folder / f".{PLOTLY_FILE}.{os.getpid()}.tmp"
    tmp.write_bytes(js)
    os.replace(tmp, target)
    return target


def write_html(page: Page, path: str | os.PathLike, *, standalone: bool = False) -> Path:
    """Write the page to ``path``; without ``standalone`` plotly.js goes beside it once."""
    path = Path(path)
    if path.suffix.lower() not in (".html", ".htm"):
        raise ValueError(f"an HTML report path must end in .html, got {str(path)!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if not standalone:
        ensure_plotly_js(path.parent)
    text = render_page(page, standalone=standalone)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def write_page(title: str, sections: Sequence[Section], path: str | os.PathLike, *, intro: str = "",
               standalone: bool = False) -> Path:
    """Convenience: one page from sections."""
    return write_html(Page(title, tuple(sections), intro), path, standalone=standalone)
