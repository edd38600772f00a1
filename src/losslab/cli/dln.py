"""``losslab dln ...``: the deep-linear-network experiments (a thin layer over ``losslab.dln``)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ._common import JsonOpt, StoreOpt, console, emit_json, store_path

QuickOpt = typer.Option(False, "--quick", help="Small sizes that run in seconds (CI, tour).")
SeedOpt = typer.Option(0, "--seed", help="Random seed.")
NoSaveOpt = typer.Option(False, "--no-save", help="Do not write the result to the store.")


def _run(name: str, quick: bool, seed: int, json_out: bool, store: Optional[Path], no_save: bool) -> None:
    from ..dln.experiments import run_experiment, save_result

    with console.status(f"dln {name}{' (quick)' if quick else ''}..."):
        result = run_experiment(name, quick=quick, seed=seed)
    folder = None if no_save else save_result(result, store_path(store), name.replace("_", "-"))
    payload = {"experiment": name, "summary": result.summary(), "settings": result.settings,
               "saved_to": str(folder) if folder else None}
    if json_out:
        emit_json(payload)
        return
    from rich.pretty import Pretty

    console.print(f"[bold]dln {name}[/]")
    console.print(Pretty(result.summary()))
    if folder:
        console.print(f"saved to {folder}")


def register(app: typer.Typer) -> None:
    dln = typer.Typer(help="Deep linear networks: invariants, end-to-end dynamics, depth, Saxe, Langevin.",
                      no_args_is_help=True)

    @dln.command("conservation")
    def conservation(quick: bool = QuickOpt, seed: int = SeedOpt, json_out: bool = JsonOpt,
                     store: Optional[Path] = StoreOpt, no_save: bool = NoSaveOpt):
        """G_p along gradient flow (constant) and gradient descent (drift ~ step size)."""
        _run("conservation", quick, seed, json_out, store, no_save)

    @dln.command("end-to-end")
    def end_to_end(quick: bool = QuickOpt, seed: int = SeedOpt, json_out: bool = JsonOpt,
                   store: Optional[Path] = StoreOpt, no_save: bool = NoSaveOpt):
        """Layer-wise gradient flow vs dX/dt = -A_{N,X}(grad E) from a balanced start."""
        _run("end_to_end", quick, seed, json_out, store, no_save)

    @dln.command("depth")
    def depth(quick: bool = QuickOpt, seed: int = SeedOpt, json_out: bool = JsonOpt,
              store: Optional[Path] = StoreOpt, no_save: bool = NoSaveOpt):
        """Acceleration by depth: lp regression (p = 4, and p = 2), lr grid-searched per depth."""
        _run("depth", quick, seed, json_out, store, no_save)

    @dln.command("saxe")
    def saxe(quick: bool = QuickOpt, seed: int = SeedOpt, json_out: bool = JsonOpt,
             store: Optional[Path] = StoreOpt, no_save: bool = NoSaveOpt):
        """Saxe's learning curves: mode strengths vs the closed form u(t)."""
        _run("saxe", quick, seed, json_out, store, no_save)

    @dln.command("langevin")
    def langevin(quick: bool = QuickOpt, seed: int = SeedOpt, json_out: bool = JsonOpt,
                 store: Optional[Path] = StoreOpt, no_save: bool = NoSaveOpt):
        """Scalar Riemannian Langevin histogram vs D^{-1/2} e^{-beta E}; noisy GD with free energy."""
        _run("langevin", quick, seed, json_out, store, no_save)

    app.add_typer(dln, name="dln")
