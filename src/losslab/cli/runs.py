"""``losslab runs [ls|show|compare|rm|studies]``: query the run store (``losslab runs`` alone = ``ls``)."""
from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import List, Optional

import typer

from ._common import JsonOpt, StoreOpt, console, emit_json, open_store_or_fail, out, warn
from ._format import num, print_table, value, whole_column

_LS_METRICS = ("final_train_loss", "final_val_loss", "final_val_acc", "lambda_max", "loss_min")


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, (dict, list)):
        return json.dumps(v, separators=(",", ":")) if len(json.dumps(v)) <= 60 else value(v)
    return num(v)


def _when(t) -> str:
    return datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S") if t else "-"


def _check_filters(st, status, kind, where, limit) -> list:
    """Refuse filters that can match nothing because they are malformed (a typo'd status or kind,
    a bad --where, a negative --limit); returns the parsed --where conditions."""
    from ..store import RUN_KINDS, RUN_STATUSES, parse_where

    if limit is not None and limit < 1:
        raise ValueError(f"--limit must be >= 1 (the newest N runs), got {limit}")
    for opt, val, known, col in (("--status", status, RUN_STATUSES, "status"), ("--kind", kind, RUN_KINDS, "kind")):
        if val is not None:
            valid = list(dict.fromkeys([*known, *st.distinct(col)]))
            if val not in valid:
                raise ValueError(f"{opt} must be one of {', '.join(valid)}; got {val!r}")
    return [parse_where(w) for w in where or []]


def _warn_unknown_keys(recs, conds) -> None:
    """A --where key that no run has matches nothing: say so (with the keys there are), not silently []."""
    if not recs:
        return
    from ..store.runstore import RUN_COLUMNS

    for key, _, _ in conds:
        if key in RUN_COLUMNS or any(key in r.summary or key in r.settings for r in recs):
            continue
        skeys = sorted({k for r in recs for k in r.summary})
        warn(f"no run here has the key {key!r} in its summary or settings, so --where {key}... matches nothing; "
             f"summary keys: {', '.join(skeys) or '(none)'}")


def _ls(store, status, name, kind, study, where, limit, json_):
    from rich.table import Table


    st = open_store_or_fail(store, create=False)
    conds = _check_filters(st, status, kind, where, limit)
    sid = st.get_study(study).id if study else None
    _warn_unknown_keys(st.list(status=status, name=name, kind=kind, study=sid), conds)
    recs = st.list(status=status, name=name, kind=kind, study=sid, where=conds, limit=limit)
    if json_:
        emit_json([r.to_dict() for r in recs])
        return
    t = Table(title=f"runs in {st.path} ({len(recs)})")
    whole_column(t, "id", [r.id for r in recs])  # ids are copied: never wrapped or cut
    for col in ("name", "kind", "status", "created", "wall s", "metric"):
        t.add_column(col, overflow="fold")
    for r in recs:
        metric = next(((k, r.summary[k]) for k in _LS_METRICS if r.summary.get(k) is not None), None)
        t.add_row(r.id, r.name, r.kind, r.status, _when(r.created), _fmt(r.wall_time),
                  f"{metric[0]}={_fmt(metric[1])}" if metric else "")
    print_table(out, t)


def register(app: typer.Typer) -> None:
    runs_app = typer.Typer(help="The run store: list, show, compare and remove runs; `losslab runs` alone lists them.",
                           invoke_without_command=True)
    status_opt = typer.Option(None, "--status", help="Only runs with this status (completed, diverged, interrupted, ...).")
    name_opt = typer.Option(None, "--name", help="Only runs whose name contains this.")
    kind_opt = typer.Option(None, "--kind", help="Only runs of this kind (train, surface, hessian, experiment, dln).")
    study_opt = typer.Option(None, "--study", help="Only runs of this study (id, id prefix or name: the newest).")
    where_opt = typer.Option(None, "--where", help="Metric/setting condition 'KEY OP VALUE', e.g. "
                                                   "'final_train_loss<0.1' (repeatable; all must hold).")
    limit_opt = typer.Option(None, "--limit", help="Only the newest N runs.")

    @runs_app.callback()
    def runs_main(ctx: typer.Context, status: Optional[str] = status_opt, name: Optional[str] = name_opt,
                  kind: Optional[str] = kind_opt, study: Optional[str] = study_opt,
                  where: Optional[List[str]] = where_opt, limit: Optional[int] = limit_opt,
                  json_: bool = JsonOpt, store: Optional[Path] = StoreOpt) -> None:
        if ctx.invoked_subcommand is None:
            _ls(store, status, name, kind, study, where, limit, json_)

    @runs_app.command("ls")
    def ls_cmd(status: Optional[str] = status_opt, name: Optional[str] = name_opt, kind: Optional[str] = kind_opt,
               study: Optional[str] = study_opt, where: Optional[List[str]] = where_opt,
               limit: Optional[int] = limit_opt, json_: bool = JsonOpt, store: Optional[Path] = StoreOpt) -> None:
        """List runs, oldest first, with filters."""
        _ls(store, status, name, kind, study, where, limit, json_)

    @runs_app.command("show")
    def show_cmd(run_id: str = typer.Argument(..., help="Run id or a unique prefix."),
                 json_: bool = JsonOpt, store: Optional[Path] = StoreOpt) -> None:
        """One run: its record, its arrays (names and shapes) and any problem with its files."""
        from rich.table import Table

        from ..store import FINAL_STATUSES, StoreError

        st = open_store_or_fail(store, create=False)
        rec = st.get(run_id)
        arrays = {}
        try:
            arrays = {k: list(v.shape) for k, v in st.load_arrays(rec.id).items()}
        except StoreError:
            pass  # st.check reports it
        problems = st.check(rec.id)  # missing/corrupt array files and result.json
        if rec.status not in FINAL_STATUSES:  # a running (or failed) run may not have written its files yet
            problems = [p for p in problems if not p.endswith("is missing")]
        problem = "; ".join(problems) or None
        if json_:
            emit_json({**rec.to_dict(), "arrays": arrays, "problem": problem, "dir": str(st.run_dir(rec.id))})
            return
        t = Table(title=f"run {rec.id}", show_header=False)
        t.add_column("key", style="bold")
        t.add_column("value", overflow="fold")
        for k in ("name", "kind", "study", "status", "message", "parent", "spec_hash"):
            t.add_row(k, _fmt(getattr(rec, k)))
        t.add_row("created", _when(rec.created))
        t.add_row("finished", _when(rec.finished))
        t.add_row("wall time", f"{num(rec.wall_time)} s" if rec.wall_time else "-")
        t.add_row("versions", _fmt(rec.versions))
        for k, v in rec.settings.items():
            t.add_row(f"settings.{k}", _fmt(v))
        for k, v in rec.summary.items():
            t.add_row(f"summary.{k}", _fmt(v))
        t.add_row("arrays", ", ".join(f"{k} {tuple(s)}" for k, s in arrays.items()) or "-")
        print_table(out, t)
        if problem:
            console.print(f"[bold red]problem:[/] {problem}", highlight=False)

    @runs_app.command("compare")
    def compare_cmd(run_ids: List[str] = typer.Argument(..., help="Two or more run ids (or prefixes)."),
                    json_: bool = JsonOpt, store: Optional[Path] = StoreOpt) -> None:
        """A table of runs side by side: the settings that differ and every summary metric."""
        from rich.table import Table


        if len(run_ids) < 2:
            raise ValueError(f"runs compare needs two or more run ids, got {len(run_ids)}; see one run with "
                             f"`losslab runs show {run_ids[0] if run_ids else 'ID'}`")
        cmp = open_store_or_fail(store, create=False).compare(run_ids)
        if json_:
            emit_json(cmp)
            return
        t = Table(title=f"{len(cmp['ids'])} runs")
        t.add_column("", style="bold")
        for i, n in zip(cmp["ids"], cmp["names"]):
            t.add_column(f"{i}\n{n}", overflow="fold", min_width=len(i))
        t.add_row("status", *cmp["status"])
        for k, vals in cmp["settings"].items():
            t.add_row(f"settings.{k}", *[_fmt(v) for v in vals])
        for k, vals in cmp["summary"].items():
            t.add_row(k, *[_fmt(v) for v in vals])
        print_table(out, t)

    @runs_app.command("rm")
    def rm_cmd(run_ids: Optional[List[str]] = typer.Argument(None, help="Run ids (or unique prefixes) to delete."),
               study: Optional[str] = typer.Option(None, "--study", help="Delete a whole study and its runs."),
               yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
               json_: bool = JsonOpt, store: Optional[Path] = StoreOpt) -> None:
        """Delete runs (index records and files), or a whole study with --study."""

        if not run_ids and not study:
            raise ValueError("give run ids to delete, or --study STUDY")
        st = open_store_or_fail(store, create=False)
        targets = [st.get(r).id for r in run_ids or []]
        sid = st.get_study(study).id if study else None
        n = len(targets) + (len(st.list(study=sid)) if sid else 0)
        if not yes:
            import sys

            if json_ or not sys.stdin.isatty():  # nobody to ask: deleting needs an explicit --yes
                raise ValueError(f"runs rm would delete {n} run(s){f' and study {sid}' if sid else ''} from "
                                 f"{st.path} but cannot ask for confirmation here (--json or no terminal); "
                                 f"add --yes to delete")
            typer.confirm(f"delete {n} run(s){f' and study {sid}' if sid else ''} from {st.path}?", abort=True)
        removed = st.rm(targets) if targets else []
        if sid:
            removed += st.rm_study(sid)
        if json_:
            emit_json({"removed": removed, "study": sid})
        else:
            out.print(f"removed {len(removed)} run(s)" + (f" and study {sid}" if sid else ""), highlight=False)

    @runs_app.command("studies")
    def studies_cmd(json_: bool = JsonOpt, store: Optional[Path] = StoreOpt) -> None:
        """List studies: id, name, spec hash, status, units."""
        from rich.table import Table


        st = open_store_or_fail(store, create=False)
        studies = st.studies()
        counts = {s.id: len(st.list(study=s.id)) for s in studies}
        if json_:
            emit_json([{**{k: v for k, v in s.to_dict().items() if k != "spec"}, "runs": counts[s.id]} for s in studies])
            return
        t = Table(title=f"studies in {st.path}")
        whole_column(t, "id", [s.id for s in studies])
        for col in ("name", "spec", "status", "units", "runs", "created", "message"):
            t.add_column(col, overflow="fold")
        for s in studies:
            t.add_row(s.id, s.name, s.spec_hash[:8], s.status, _fmt(s.n_units), str(counts[s.id]), _when(s.created),
                      s.message or "")
        print_table(out, t)

    @runs_app.command("reindex")
    def reindex_cmd(yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
                    json_: bool = JsonOpt, store: Optional[Path] = StoreOpt) -> None:
        """Rebuild the index (index.sqlite) from the runs' own files, studies included, after it was
        emptied, corrupted or replaced; the old index file is kept beside it, nothing is deleted."""
        import sys

        from ..store import reindex, reindex_plan
        from ._common import store_path

        path = store_path(store)
        p = reindex_plan(path)
        how = ", ".join(f"{n} from {k}" for k, n in p.sources.items()) or "nothing found"
        state = p.index_state + (f" ({p.index_problem})" if p.index_problem else "")
        what = (f"rebuild the index of {path} (now: {state}) with {len(p.runs)} run(s) and {len(p.studies)} "
                f"study(ies): {how}; the old index file is kept as index.sqlite.bak-TIME")
        if not yes:
            if json_ or not sys.stdin.isatty():  # nobody to ask: rewriting the index needs an explicit --yes
                raise ValueError(f"runs reindex would {what}, but cannot ask for confirmation here (--json or no "
                                 f"terminal); add --yes to do it")
            typer.confirm(f"{what}?", abort=True)
        done = reindex(path)
        if json_:
            emit_json(done.to_dict())
        else:
            out.print(f"reindexed {path}: {len(done.runs)} run(s), {len(done.studies)} study(ies) ({how})"
                      + (f"; old index kept as {done.backup}" if done.backup else ""), highlight=False)

    app.add_typer(runs_app, name="runs")
