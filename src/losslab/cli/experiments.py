"""`losslab experiments list|run`: the registry of training-phenomena experiments."""
from __future__ import annotations

import inspect
import time
from pathlib import Path
from typing import Optional

import typer

from ._common import JsonOpt, StoreOpt, console, emit_json, out, parse_options, store_path


def _check_options(info, options: dict) -> None:
    """Unknown --opt keys -> one clear error listing the experiment's options."""
    sig = inspect.signature(info.fn)
    valid = [n for n, p in sig.parameters.items() if p.kind is p.KEYWORD_ONLY and n not in ("quick", "seed")]
    bad = [k for k in options if k not in valid]
    if bad:
        raise ValueError(f"experiment {info.name!r} has no option(s) {', '.join(map(repr, bad))}; "
                         f"valid options: {', '.join(valid) or '(none)'}")


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    return str(v)


def register(app: typer.Typer) -> None:
    exp = typer.Typer(help="Training-phenomena experiments: each measures one claim of the seeds and stores its numbers.",
                      no_args_is_help=True)
    app.add_typer(exp, name="experiments")

    @exp.command("list")
    def list_cmd(json_out: bool = JsonOpt) -> None:
        """List the registered experiments with their claims."""
        from ..phenomena import EXPERIMENTS

        rows = [{"name": n, "title": EXPERIMENTS.get(n).title, "claim": EXPERIMENTS.get(n).claim} for n in EXPERIMENTS.names()]
        if json_out:
            emit_json(rows)
            return
        from rich.table import Table

        t = Table(title="losslab experiments")
        t.add_column("name", style="bold")
        t.add_column("title")
        for r in rows:
            t.add_row(r["name"].replace("_", "-"), r["title"])
        out.print(t)

    @exp.command("run")
    def run_cmd(name: str = typer.Argument(..., help="Experiment name (see `losslab experiments list`)."),
                quick: bool = typer.Option(False, "--quick", help="The small size (< 1 minute on 2 CPU cores)."),
                seed: int = typer.Option(0, "--seed", help="Seed of every random choice."),
                opt: Optional[list[str]] = typer.Option(None, "--opt", help="Experiment option KEY=VALUE (repeatable)."),
                json_out: bool = JsonOpt, store: Optional[Path] = StoreOpt) -> None:
        """Run an experiment, store it in the run store, print its summary and checks."""
        from ..phenomena import EXPERIMENTS, run_experiment
        from ..phenomena.storage import save_experiment
        from ..store import open_store

        info = EXPERIMENTS.get(name)
        options = parse_options(opt)
        _check_options(info, options)
        t0 = time.perf_counter()
        label = f"running {info.name}{' (quick)' if quick else ''}"
        if json_out:
            res = run_experiment(info.name, quick=quick, seed=seed, **options)
        else:
            with console.status(label, spinner="dots"):  # rich animates the spinner; the work runs here
                res = run_experiment(info.name, quick=quick, seed=seed, **options)
        rid = save_experiment(open_store(store_path(store)), res)
        if json_out:
            emit_json({"run_id": rid, "name": res.name, "passed": res.passed, "wall_time": res.wall_time,
                       "summary": res.summary, "checks": res.checks, "text": res.text})
            return
        from rich.table import Table

        from rich.markup import escape

        t = Table(title=escape(res.title))
        t.add_column("quantity", style="bold")
        t.add_column("value", justify="right")
        for k, v in res.summary.items():
            t.add_row(escape(k), escape(_fmt(v)))
        out.print(t)
        for claim, ok in res.checks.items():
            out.print(("[green]✓[/] " if ok else "[red]✗[/] ") + escape(claim), highlight=False)
        out.print("\n" + escape(res.text) + "\n")
        n_ok = sum(map(bool, res.checks.values()))
        out.print(f"{n_ok}/{len(res.checks)} checks passed in {time.perf_counter() - t0:.1f} s; stored as run "
                  f"[bold]{rid}[/] in {store_path(store)}", highlight=False)
        if not res.passed:
            raise typer.Exit(1)
