"""The index page of a store: its studies and runs, with links to their reports.

``write_index(store)`` writes ``<store>/reports/index.html``. With ``build_missing`` (the
default) it first writes the report of every run and study that has none yet (a run whose
report cannot be built gets a page showing the error), so every link works.
"""
from __future__ import annotations

import os
import time
import traceback
from pathlib import Path

from .html import CSS, esc, fmt, seconds
from .reports import reports_dir, run_report_name, study_report_name, study_title, write_report

SUMMARY_COLUMNS = 4
#: what a reader wants first from a run: how far the loss got and how accurate it is
PREFERRED = ("final_train_loss", "final_val_loss", "final_train_acc", "final_val_acc", "final_test_acc",
             "best_val_loss", "loss_min", "lambda_max", "checks_passed", "checks_total")
#: bookkeeping that says nothing about the result (step counters, statuses, timings, sizes)
_BOOKKEEPING = ("status", "status_step", "restored_step", "steps_run", "wall_time", "n_params",
                "last_finite_eval_step")


def _when(t) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(t)) if t else "—"


#: the index's "final loss" and "accuracy" columns: the first of these a run's summary has
LOSS_KEYS = ("final_val_loss", "final_train_loss", "final_loss", "loss_min")
ACC_KEYS = ("final_val_acc", "final_test_acc", "final_train_acc", "final_acc")


def _first(summary: dict, keys) -> tuple[str | None, object]:
    for k in keys:
        v = summary.get(k)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return k, v
    return None, None


def _metric_cell(summary: dict, keys) -> str:
    """A number column: the value with the summary key it came from as a tooltip (validation is
    preferred to training), or an em dash."""
    k, v = _first(summary, keys)
    if k is None:
        return '<td class="num">—</td>'
    return f'<td class="num" title="{esc(k)} = {esc(repr(v))}">{fmt(v)}</td>'


def _summary_cell(summary: dict) -> str:
    """Other results after the loss and accuracy columns, never step counters."""
    shown = {_first(summary, LOSS_KEYS)[0], _first(summary, ACC_KEYS)[0]}
    ok = {k: v for k, v in summary.items() if not isinstance(v, (dict, list)) and v is not None
          and k not in _BOOKKEEPING and k not in shown and not k.endswith(("_step", "_steps", "status"))}
    keys = [k for k in PREFERRED if k in ok] + [k for k in ok if k not in PREFERRED]
    if "checks_passed" in ok and "checks_total" in ok:  # one cell: "checks 3/3"
        keys = [k for k in keys if k != "checks_total"]
    parts = []
    for k in keys[:SUMMARY_COLUMNS]:
        if k == "checks_passed" and "checks_total" in ok:
            parts.append(f"checks: {fmt(ok[k])}/{fmt(ok['checks_total'])}")
        else:
            parts.append(f"{esc(k.replace('_', ' '))}: {fmt(ok[k])}")
    return "<br>".join(parts)


def write_index(store=None, *, out: str | os.PathLike | None = None, build_missing: bool = True,
                standalone: bool = False) -> Path:
    """Write the store's index page (default ``<store>/reports/index.html``); returns its path."""
    from ..store import open_store

    store = store if hasattr(store, "list") else open_store(store)
    rdir = reports_dir(store)
    path = Path(out) if out else rdir / "index.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    runs = store.list()
    labels: list[str] = []
    for r in runs:
        if r.study and r.study not in labels:
            labels.append(r.study)
    errors: list[str] = []

    def ensure(target: str, stem: str) -> str | None:
        f = rdir / f"{stem}.html"
        if not f.exists() and build_missing:
            try:
                write_report(target, store=store, out=f, standalone=standalone)
            except Exception as e:
                errors.append(f"{target}: {''.join(traceback.format_exception_only(type(e), e)).strip()}")
        return os.path.relpath(f, path.parent) if f.exists() else None

    rows_st = []
    for label in labels:
        members = [r for r in runs if r.study == label]
        counts: dict[str, int] = {}
        for r in members:
            counts[r.status] = counts.get(r.status, 0) + 1
        href = ensure(label, study_report_name(label))
        name = esc(study_title(store, label))
        link = f'<a href="{esc(href)}">{name}</a>' if href else name
        rows_st.append(f"<tr><td>{link}</td><td>{len(members)}</td><td>"
                       f"{esc(', '.join(f'{k}: {v}' for k, v in sorted(counts.items())))}</td>"
                       f"<td>{esc(_when(min(r.created for r in members)))}</td></tr>")
    rows_run = []
    for r in reversed(runs):  # newest first
        href = ensure(r.id, run_report_name(r.id))
        name = esc(r.name)
        link = f'<a href="{esc(href)}">{name}</a>' if href else name
        cls = ' class="bad"' if r.status == "failed" else ""
        rows_run.append(f"<tr{cls}><td><code>{esc(r.id)}</code></td><td>{link}</td><td>{esc(r.kind)}</td>"
                        f"<td>{esc(study_title(store, r.study) if r.study else '')}</td><td>{esc(r.status)}</td>"
                        f"<td>{esc(_when(r.created))}</td>"
                        f"<td>{seconds(r.wall_time) if r.wall_time is not None else '—'}</td>"
                        f"{_metric_cell(r.summary, LOSS_KEYS)}{_metric_cell(r.summary, ACC_KEYS)}"
                        f"<td>{_summary_cell(r.summary)}</td></tr>")
    tour = rdir / "tour.html"
    tour_link = (f'<p><a href="{esc(os.path.relpath(tour, path.parent))}">The tour</a> '
                 f'(made {esc(_when(tour.stat().st_mtime))})</p>' if tour.exists() else "")
    err_html = ""
    if errors:
        err_html = ('<div class="error" role="alert"><strong>Some reports could not be built:</strong><pre>'
                    + esc("\n".join(errors)) + "</pre></div>")
    text = (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>losslab store index</title>"
        f"<style>{CSS} tr.bad td{{color:#b00020}} td code{{font-size:.85em}} td.num{{text-align:right;white-space:nowrap}}</style></head><body>"
        f"<h1>losslab store</h1><p class=\"meta\">{esc(Path(store.path).resolve())} · {len(runs)} runs · "
        f"{len(labels)} studies · indexed {esc(_when(time.time()))}</p>{tour_link}{err_html}"
        "<h2>Studies</h2>"
        + ("<table><thead><tr><th>study</th><th>runs</th><th>status</th><th>created</th></tr></thead><tbody>"
           + "".join(rows_st) + "</tbody></table>" if rows_st else "<p class=\"muted\">no studies</p>")
        + "<h2>Runs</h2>"
        + ("<table><thead><tr><th>id</th><th>name</th><th>kind</th><th>study</th><th>status</th><th>created</th>"
           "<th>wall time</th><th>final loss</th><th>accuracy</th><th>other results</th></tr></thead><tbody>" + "".join(rows_run) + "</tbody></table>"
           if rows_run else "<p class=\"muted\">no runs</p>")
        + "</body></html>\n"
    )
    path.write_text(text, encoding="utf-8")
    return path
