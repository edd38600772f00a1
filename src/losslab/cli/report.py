"""``losslab report RUN_OR_STUDY`` (interactive HTML or static PNG/PDF) and ``losslab report index``."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ._common import JsonOpt, StoreOpt, console, emit_json, fail, open_store_or_fail, out


def register(app: typer.Typer) -> None:
    @app.command("report")
    def report_cmd(
        target: str = typer.Argument(..., help="A run id (or unique prefix), a study, a unique run name, or `index` "
                                               "for the store's index page."),
        output: Optional[Path] = typer.Option(None, "-o", "--output", help="Where to write: an .html file, or a "
                                              "folder for --format png/pdf (default: <store>/reports/...)."),
        fmt: str = typer.Option("html", "--format", "-f", help="html (interactive, plotly), png or pdf (matplotlib)."),
        standalone: bool = typer.Option(False, "--standalone", help="Inline plotly.js in the page (one self-contained "
                                        "file) instead of sharing <store>/reports/plotly-cartesian.min.js."),
        no_build: bool = typer.Option(False, "--no-build", help="index: do not write missing run/study reports."),
        store: Optional[Path] = StoreOpt,
        json_: bool = JsonOpt,
    ) -> None:
        """Write the report of a run or study (or the store's index page) and print where it is."""
        from ..report import REPORT_FORMATS, write_index, write_report
        from ..store import StoreError

        if fmt not in REPORT_FORMATS:
            fail(f"--format must be one of {', '.join(REPORT_FORMATS)}, got {fmt!r}")
        st = open_store_or_fail(store, create=False)  # a report reads a store; it never creates one
        if st.read_only:  # reports go to <store>/reports by default, and index builds missing ones there
            if output is None:
                fail(f"store {st.path} is read-only ({st.read_only_reason}), so the report cannot go in "
                     f"{st.path}/reports; write it elsewhere with -o {'FILE.html' if fmt == 'html' else 'FOLDER'}")
            no_build = True
        try:
            if target == "index":
                if fmt != "html":
                    fail("the index page is HTML only; drop --format")
                with console.status("writing the index and missing reports ...", spinner="dots"):
                    paths = [write_index(st, out=output, build_missing=not no_build, standalone=standalone)]
            else:
                with console.status(f"writing the {fmt} report ...", spinner="dots"):
                    paths = write_report(target, store=st, out=output, fmt=fmt, standalone=standalone)
        except StoreError as e:
            fail(str(e))
        if json_:
            emit_json({"target": target, "format": fmt, "paths": [str(p.resolve()) for p in paths]})
            return
        for p in paths:
            out.print(str(p.resolve()), highlight=False, soft_wrap=True)
