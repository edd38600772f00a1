"""``losslab run [SPEC]``: run a study spec (or the built-in default study), locally or on Dask."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ._common import JsonOpt, StoreOpt, check_store_writable, console, emit_json, open_store_or_fail, out, progress


def register(app: typer.Typer) -> None:
    @app.command("run")
    def run_cmd(
        spec: Optional[Path] = typer.Argument(None, help="A TOML study spec (default: the built-in default study)."),
        resume: bool = typer.Option(False, "--resume", help="Continue the newest study of this spec: run only what is "
                                                            "missing."),
        workers: Optional[int] = typer.Option(None, "--workers", "-w", help="Start a local Dask cluster of N worker "
                                                                            "processes."),
        scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Use a running Dask cluster at "
                                                                          "tcp://HOST:PORT."),
        threads: Optional[int] = typer.Option(None, "--threads", help="torch threads per unit (default: torch's; "
                                                                      "1 per Dask worker)."),
        json_: bool = JsonOpt,
        store: Optional[Path] = StoreOpt,
    ) -> None:
        """Run a study: every training run of its sweep grid, then its analyses; results go to the store."""
        from ..experiments.runner import run_study
        from ..experiments.spec import default_spec_path, load_spec
        from ..store import open_store

        if workers is not None and scheduler is not None:
            raise ValueError("give --workers N (a local cluster) or --scheduler ADDRESS (an existing one), not both")
        if workers is not None and workers < 1:
            raise ValueError(f"--workers must be >= 1, got {workers}")
        if threads is not None and threads < 1:
            raise ValueError(f"--threads must be >= 1, got {threads}")
        path = spec if spec is not None else default_spec_path()
        study = load_spec(path)  # a bad spec fails here, before the store is touched
        # --resume continues a study of an existing store: it never creates one
        st = open_store_or_fail(store, create=False) if resume else open_store(check_store_writable(store))
        if resume:
            st.require_writable()
        where = f"{workers} local Dask workers" if workers else (f"Dask cluster {scheduler}" if scheduler else "this process")
        if not json_:
            console.print(f"study [bold]{study.name}[/] ({path.name}) on {where} -> {st.path}", highlight=False)
        with progress(transient=False, disable=json_) as bar:
            task = bar.add_task(f"study {study.name}", total=None)

            def on_progress(done, total, name):
                bar.update(task, completed=done, total=total, description=f"study {study.name}")

            res = run_study(study, store=st, resume=resume, workers=workers, scheduler=scheduler, threads=threads,
                            progress=on_progress, source=str(path))
        if json_:
            emit_json({**res.to_dict(), "store": str(st.path)})
        else:
            colour = {"completed": "green", "interrupted": "yellow"}.get(res.status, "red")
            out.print(f"study [bold]{res.study_id}[/] [{colour}]{res.status}[/]: {res.n_units} units; "
                      f"{res.run_counts_line()}; {res.n_ran} ran now, {res.n_already_done} already done, "
                      f"{res.n_skipped} skipped, {res.wall_time:.1f} s", highlight=False)
            for m in res.messages[-5:]:
                out.print(f"  {m}", highlight=False)
            out.print(f"see `losslab runs ls --study {res.study_id}`", highlight=False)
        if res.status == "interrupted":
            raise SystemExit(130)  # typer.Exit codes are dropped by run_app (standalone_mode=False)
        if res.status != "completed":
            raise SystemExit(1)
