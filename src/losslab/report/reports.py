"""Reports of what is in the store: one run, or a study (all its runs), as an HTML page or as
static PNG/PDF figures."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from .html import Page, Section, write_html

REPORT_FORMATS = ("html", "png", "pdf")
REPORTS_DIR = "reports"


def reports_dir(store) -> Path:
    return Path(store.path) / REPORTS_DIR


def _safe(text: str) -> str:
    s = "".join(c if c.isalnum() or c in "-_." else "-" for c in str(text))[:48].strip("-.") or "x"
    return s


def run_report_name(run_id: str) -> str:
    return f"run-{_safe(run_id)}"


def study_report_name(study: str) -> str:
    # names are user text: keep a readable part and make it unique with a hash of the full name
    return f"study-{_safe(study)}-{hashlib.sha1(study.encode()).hexdigest()[:6]}"


def resolve(store, target: str) -> tuple[str, str]:
    """('run', run_id) or ('study', name) for a run id (or unique prefix), a study name, or a
    unique run name."""
    from ..store import StoreError

    try:
        return "run", store.get(target).id
    except StoreError as e:
        if "ambiguous" in str(e):
            raise
    runs = store.list()
    if any(r.study == target for r in runs):
        return "study", target
    if hasattr(store, "get_study"):  # a study id, id prefix or name in the studies table
        try:
            return "study", store.get_study(target).id
        except StoreError as e:
            if "ambiguous" in str(e):
                raise
    named = [r for r in runs if r.name == target]
    if len(named) == 1:
        return "run", named[0].id
    if len(named) > 1:
        raise ValueError(f"{len(named)} runs are named {target!r}; pass a run id instead: "
                         f"{', '.join(r.id for r in named[:5])}")
    studies = sorted({r.study for r in runs if r.study})
    raise ValueError(f"{target!r} is neither a run id, a study nor a run name in store {store.path} "
                     f"({len(runs)} runs; studies: {', '.join(studies) or '(none)'}); see `losslab runs ls`")


def sections_for(store, target: str) -> tuple[str, str, list[Section]]:
    """(kind, id or name, sections) for a run or study."""
    from .builders import run_sections, study_sections

    kind, ident = resolve(store, target)
    if kind == "run":
        return kind, ident, run_sections(store, ident)
    return kind, ident, study_sections(store, ident)


def write_report(target: str, *, store=None, out: str | os.PathLike | None = None, fmt: str = "html",
                 standalone: bool = False) -> list[Path]:
    """Write the report of a run or a study.

    ``fmt="html"``: one interactive page (default ``<store>/reports/run-<id>.html`` or
    ``study-<name>-<hash>.html``; plotly.js beside it unless ``standalone``). ``fmt="png"``
    or ``"pdf"``: one static file per figure in the folder ``out`` (default
    ``<store>/reports/<name>-<fmt>/``). Returns the written paths.
    """
    from ..store import open_store

    if fmt not in REPORT_FORMATS:
        raise ValueError(f"report format must be one of {', '.join(REPORT_FORMATS)}, got {fmt!r}")
    store = store if hasattr(store, "list") else open_store(store)
    kind, ident, sections = sections_for(store, target)
    stem = run_report_name(ident) if kind == "run" else study_report_name(ident)
    if fmt == "html":
        path = Path(out) if out else reports_dir(store) / f"{stem}.html"
        title = f"losslab {kind}: {sections[0].title if kind == 'run' else study_title(store, ident)}"
        links = (("index of the store", os.path.relpath(reports_dir(store) / "index.html", path.parent)),)
        return [write_html(Page(title, tuple(sections), links=links), path, standalone=standalone)]
    from .static_render import write_static_figures

    folder = Path(out) if out else reports_dir(store) / f"{stem}-{fmt}"
    figs = [(_safe(s.title)[:24], f) for s in sections for f in s.figures]
    if not figs:
        raise ValueError(f"{kind} {ident!r} has no figures to write as {fmt}")
    return write_static_figures(figs, folder, fmt=fmt)


def study_title(store, study: str) -> str:
    """A study's name (from the studies table when the store has one) or its label."""
    if hasattr(store, "get_study"):
        try:
            rec = store.get_study(study)
            return rec.name if rec.name == rec.id else f"{rec.name} ({rec.id})"
        except Exception:
            pass
    return study
