"""The command line: a thin layer over the public API.

Each area adds its commands in its own module of this package, as a function
``register(app: typer.Typer) -> None``; modules are discovered here, so adding a command
never edits a shared file. Every command that produces results takes ``--json`` and
``--store``.
"""
from __future__ import annotations

import importlib
import pkgutil
import sys

import typer

app = typer.Typer(
    name="losslab",
    help="losslab: train models, record where training goes, and measure the loss landscape.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _load_commands() -> None:
    for mod in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if mod.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{mod.name}")
        if hasattr(module, "register"):
            module.register(app)


_load_commands()


def main() -> None:
    from ..allocator import keep_freed_memory_unless_disabled
    from ._common import run_app

    # this process is losslab's: freed tensors stay in the heap (up to 3x on CPU conv nets; allocator.py)
    keep_freed_memory_unless_disabled()
    sys.exit(run_app(app))
