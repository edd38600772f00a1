"""Shared CLI pieces: store option, JSON output, progress bars, and error handling that turns
library errors into one clear line (never a traceback) with exit code 2."""
from __future__ import annotations

import importlib
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

console = Console(stderr=True)
out = Console()

DEFAULT_STORE = "losslab-runs"
STORE_ENV = "LOSSLAB_STORE"

StoreOpt = typer.Option(None, "--store", help=f"Run store folder (default ${STORE_ENV} or ./{DEFAULT_STORE}).")
JsonOpt = typer.Option(False, "--json", help="Print the result as JSON on stdout (for scripts).")


def store_path(store: Path | str | None) -> Path:
    return Path(store or os.environ.get(STORE_ENV) or DEFAULT_STORE)


def _clean(o: Any):
    """Make results JSON-safe: tensors/arrays to lists, NaN/inf to strings."""
    import numpy as np

    try:
        import torch
    except Exception:  # pragma: no cover
        torch = None
    if torch is not None and isinstance(o, torch.Tensor):
        o = o.detach().cpu().numpy()
    if isinstance(o, np.ndarray):
        return _clean(o.tolist())
    if isinstance(o, (np.floating, float)):
        f = float(o)
        return f if math.isfinite(f) else str(f)
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, dict):
        return {str(k): _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    if isinstance(o, Path):
        return str(o)
    return o


def emit_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(_clean(obj), indent=2) + "\n")
    sys.stdout.flush()


def progress(transient: bool = True, disable: bool = False) -> Progress:
    """A rich progress bar on stderr (so --json output on stdout stays clean)."""
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), console=console, transient=transient, disable=disable)


def fail(message: str, code: int = 2):
    console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def parse_options(pairs: list[str] | None) -> dict:
    """KEY=VALUE pairs to a dict; values parsed as JSON when possible (numbers, lists, booleans)."""
    result = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise ValueError(f"option {pair!r} is not KEY=VALUE")
        k, v = pair.split("=", 1)
        try:
            result[k.strip()] = json.loads(v)
        except json.JSONDecodeError:
            result[k.strip()] = v
    return result


def _click_exceptions():
    """The click exception module(s) in use: typer >= 0.13 vendors click as ``typer._click``."""
    mods = []
    for name in ("typer._click.exceptions", "click.exceptions"):
        try:
            mods.append(importlib.import_module(name))
        except ImportError:
            pass
    return mods


def run_app(app: typer.Typer) -> int:
    """Run the typer app; library errors (bad names, bad values, bad files, a missing or corrupt
    store entry) and usage errors become one line and exit code 2, never a traceback."""
    from ..registry import UnknownNameError
    from ..store import StoreError

    clicks = _click_exceptions()
    usage = tuple(m.ClickException for m in clicks if hasattr(m, "ClickException"))
    aborts = tuple(m.Abort for m in clicks if hasattr(m, "Abort"))
    try:
        rc = app(standalone_mode=False)
        return rc if isinstance(rc, int) else 0
    except typer.Exit as e:
        return e.exit_code
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        return 130
    except usage as e:
        e.show()
        return e.exit_code
    except aborts:
        return 130
    except (UnknownNameError, StoreError, ValueError, TypeError, FileNotFoundError, KeyError) as e:
        msg = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
        console.print(f"[bold red]error:[/] {msg}", highlight=False)
        return 2
