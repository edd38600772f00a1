"""``losslab dln ...``: the deep-linear-network experiments (a thin layer over
``losslab.phenomena.dln_experiments``, which wraps ``losslab.phenomena.dln_runs``).

Each command runs the registered experiment ``dln_<name>``, prints its checks and summary (or
JSON with ``--json``) and stores it in the run store as an experiment run (``--store``, default
``$LOSSLAB_STORE`` or ``./losslab-runs``; ``--no-save`` to skip), printing the run id.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ._common import JsonOpt, StoreOpt, console, emit_json, parse_options, store_path
from ._format import flat_items, num, value

QuickOpt = typer.Option(False, "--quick", help="Small sizes that run in seconds (CI, tour).")
SeedOpt = typer.Option(0, "--seed", help="Random seed.")
NoSaveOpt = typer.Option(False, "--no-save", help="Do not write the result to the run store.")
OptionOpt = typer.Option(None, "--option", "-o", help="Experiment option KEY=VALUE (JSON values), e.g. -o beta=2; "
                                                      "see the experiment's docstring in losslab.phenomena.dln_runs.")


def _run(name: str, quick: bool, seed: int, json_out: bool, store: Optional[Path], no_save: bool,
         option: Optional[List[str]]) -> None:
    from ..phenomena import run_experiment
    from ..phenomena.dln_experiments import PHENOMENON_OF

    options = parse_options(option)
    exp = PHENOMENON_OF[name]
    with console.status(f"dln {name}{' (quick)' if quick else ''}..."):
        result = run_experiment(exp, quick=quick, seed=seed, **options)
    run_id, where = None, None
    if not no_save:
        from ..phenomena.dln_experiments import save_result

        where = store_path(store)
        run_id = save_result(result, where)
    if json_out:
        emit_json({"experiment": exp, "title": result.title, "summary": result.summary, "checks": result.checks,
                   "passed": result.passed, "settings": result.settings, "wall_time": result.wall_time,
                   "run_id": run_id, "store": str(where) if where else None})
        return
    from rich.markup import escape
    from rich.table import Table

    console.print(f"[bold]{escape(result.title)}[/]  ({num(result.wall_time)} s)", highlight=False)
    for claim, ok in result.checks.items():
        console.print(f"  {'[green]PASS[/]' if ok else '[red]FAIL[/]'} {escape(claim)}", highlight=False)
    t = Table(title="measured", show_header=False, title_justify="left")
    t.add_column("quantity", style="bold", overflow="fold")
    t.add_column("value", overflow="fold")
    for k, v in flat_items(result.summary):
        t.add_row(escape(k), escape(value(v)))
    console.print(t)
    if run_id:
        console.print(f"stored as run [bold]{run_id}[/] in {where}", highlight=False)


def register(app: typer.Typer) -> None:
    dln = typer.Typer(help="Deep linear networks: invariants, end-to-end dynamics, depth, Saxe, Langevin.",
                      no_args_is_help=True)

    @dln.command("conservation")
    def conservation(quick: bool = QuickOpt, seed: int = SeedOpt, json_out: bool = JsonOpt,
                     store: Optional[Path] = StoreOpt, no_save: bool = NoSaveOpt, option: Optional[List[str]] = OptionOpt):
        """G_p along gradient flow (constant) and gradient descent (drift ~ step size)."""
        _run("conservation", quick, seed, json_out, store, no_save, option)

    @dln.command("end-to-end")
    def end_to_end(quick: bool = QuickOpt, seed: int = SeedOpt, json_out: bool = JsonOpt,
                   store: Optional[Path] = StoreOpt, no_save: bool = NoSaveOpt, option: Optional[List[str]] = OptionOpt):
        """Layer-wise gradient flow vs dX/dt = -A_{N,X}(grad E) from a balanced start."""
        _run("end_to_end", quick, seed, json_out, store, no_save, option)

    @dln.command("depth")
    def depth(quick: bool = QuickOpt, seed: int = SeedOpt, json_out: bool = JsonOpt,
              store: Optional[Path] = StoreOpt, no_save: bool = NoSaveOpt, option: Optional[List[str]] = OptionOpt):
        """Acceleration by depth: lp regression (p = 4, and p = 2), lr grid-searched per depth."""
        _run("depth", quick, seed, json_out, store, no_save, option)

    @dln.command("saxe")
    def saxe(quick: bool = QuickOpt, seed: int = SeedOpt, json_out: bool = JsonOpt,
             store: Optional[Path] = StoreOpt, no_save: bool = NoSaveOpt, option: Optional[List[str]] = OptionOpt):
        """Saxe's learning curves: mode strengths vs the closed form u(t)."""
        _run("saxe", quick, seed, json_out, store, no_save, option)

    @dln.command("langevin")
    def langevin(quick: bool = QuickOpt, seed: int = SeedOpt, json_out: bool = JsonOpt,
                 store: Optional[Path] = StoreOpt, no_save: bool = NoSaveOpt, option: Optional[List[str]] = OptionOpt):
        """Scalar Riemannian Langevin histogram vs D^{-1/2} e^{-beta E}; noisy GD with free energy."""
        _run("langevin", quick, seed, json_out, store, no_save, option)

    app.add_typer(dln, name="dln")
