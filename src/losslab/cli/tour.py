"""``losslab tour``: the seeds' story end to end, as one report (what `make demo` runs)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ._common import JsonOpt, StoreOpt, console, emit_json, out, progress, store_path


def register(app: typer.Typer) -> None:
    @app.command("tour")
    def tour_cmd(
        quick: bool = typer.Option(False, "--quick", help="CI sizes (under 60 s on 2 cores; the full tour: under 3 min)."),
        output: Optional[Path] = typer.Option(None, "-o", "--output", help="Report path (default "
                                              "<store>/reports/tour.html)."),
        chapters: Optional[str] = typer.Option(None, "--chapters", help="Comma-separated chapter keys to run "
                                               "(default all; see --list)."),
        list_: bool = typer.Option(False, "--list", help="List the chapters and exit."),
        seed: int = typer.Option(0, "--seed", help="Seed for every chapter."),
        standalone: bool = typer.Option(False, "--standalone", help="Inline plotly.js in the report."),
        threads: int = typer.Option(1, "--threads", help="torch threads while the tour runs (tiny models: 1 is fastest)."),
        store: Optional[Path] = StoreOpt,
        json_: bool = JsonOpt,
    ) -> None:
        """Run the tour's chapters, store them, write one report, and print where it is."""
        from rich.table import Table

        from ..tour import CHAPTERS, ORDER, run_tour, tour_order

        if list_:
            rows = [{"key": k, "title": CHAPTERS.get(k).title, "full_only": CHAPTERS.get(k).full_only} for k in ORDER]
            if json_:
                emit_json(rows)
            else:
                for r in rows:
                    out.print(f"{r['key']:<20} {r['title']}{'  (full tour only)' if r['full_only'] else ''}",
                              highlight=False, soft_wrap=True)
            return
        keys = [k.strip() for k in chapters.split(",") if k.strip()] if chapters else None
        with progress(disable=json_) as bar:
            task = bar.add_task("tour", total=len(keys or tour_order(quick)))

            def on(title: str, done: int, total: int) -> None:
                bar.update(task, completed=done, description=title[:60])

            res = run_tour(quick=quick, seed=seed, store=store_path(store), out=output, chapters=keys,
                           standalone=standalone, threads=threads, progress=on)
        if json_:
            emit_json(res.to_dict())
            return
        table = Table(title=f"losslab tour ({'quick' if quick else 'full'}): {res.wall_time:.1f} s")
        for col in ("chapter", "status", "time (s)", "cpu (s)", "checks", "figures"):
            table.add_column(col)
        colors = {"ok": "green", "partial": "yellow", "failed": "red", "unavailable": "red"}
        for c in res.chapters:
            table.add_row(c.title, f"[{colors.get(c.status, 'white')}]{c.status}[/]", f"{c.wall_time:.1f}", f"{c.cpu_time:.1f}",
                          f"{c.checks_passed}/{c.checks_total}", str(c.n_figures))
        console.print(table)
        out.print(f"report: {res.report.resolve()}", highlight=False, soft_wrap=True)
