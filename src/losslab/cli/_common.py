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


#: set by :func:`run_app` when the command line has --json: failures then also print a JSON error object
#: on stdout, so a script reading stdout always gets JSON
_JSON_MODE = False
DEBUG_ENV = "LOSSLAB_DEBUG"


def one_line(message: str) -> str:
    """A message as one line (library errors such as torch's size-mismatch lists span several)."""
    return " ".join(str(message).split())


def report_error(message: str, code: int, *, prefix: str = "error") -> int:
    """Print ``prefix: message`` as one line on stderr (and, under --json, a JSON error object on
    stdout); returns ``code``."""
    from rich.markup import escape

    message = one_line(message)
    console.print(f"[bold red]{prefix}:[/] {escape(message)}", highlight=False, soft_wrap=True)
    if _JSON_MODE:
        sys.stdout.write(json.dumps({"error": f"{prefix}: {message}" if prefix != "error" else message,
                                     "exit_code": code}) + "\n")
        sys.stdout.flush()
    return code


def warn(message: str) -> None:
    """A one-line warning on stderr (stdout stays clean for --json)."""
    from rich.markup import escape

    console.print(f"[bold yellow]warning:[/] {escape(one_line(message))}", highlight=False, soft_wrap=True)


def fail(message: str, code: int = 2):
    report_error(message, code)
    raise typer.Exit(code)


def open_store_or_fail(store: Path | str | None, *, create: bool = True):
    """The run store at ``--store`` (or $LOSSLAB_STORE); a missing, unreadable, locked or corrupt
    store is a one-line error (exit 2) in every command, however the command is invoked.
    ``create=False`` (a reading command) also opens a store this user cannot write, read-only,
    and warns about run folders the index does not list (an emptied or replaced index)."""
    from ..store import StoreError, open_store

    try:
        st = open_store(store_path(store), create=create)
        if not create:
            warn_unindexed(st)
        return st
    except StoreError as e:
        fail(str(e))


def warn_unindexed(st) -> None:
    """One warning when run folders or study files on disk are missing from the store's index."""
    lost = st.unindexed()
    n, m = len(lost["runs"]), len(lost["studies"])
    if n or m:
        what = " and ".join(x for x in (f"{n} run folder(s)" if n else "", f"{m} study file(s)" if m else "") if x)
        eg = ", ".join((lost["runs"] or lost["studies"])[:3])
        warn(f"{what} in {st.path} are not in its index (e.g. {eg}): the index was emptied or replaced; "
             f"`losslab runs reindex --store {st.path}` rebuilds it from the runs' own files")


def check_store_writable(store: Path | str | None) -> Path:
    """Fail now (exit 2) when ``--store`` could not be written (read-only, a file, an emptied index),
    without creating anything: a writing command calls this before its work, and opens the store
    (creating it) only when it has something to save."""
    from ..store import StoreError
    from ..store.runstore import check_writable

    path = store_path(store)
    try:
        check_writable(path)
    except StoreError as e:
        fail(str(e))
    return path


class LazyStore:
    """A store for a writing command, created on first use (``check_store_writable`` has vetted the
    path): a command that rejects its input before saving anything leaves no store behind."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.read_only = False
        self._st = None

    def __getattr__(self, name: str):
        if self.__dict__.get("_st") is None:
            from ..store import open_store

            self.__dict__["_st"] = open_store(self.path)
        return getattr(self.__dict__["_st"], name)


def analysis_store(store: Path | str | None, *, run: str | None, save: bool = True):
    """The store of an analysis command (surface, hessian): with ``--run`` the existing store of that
    run (read-only is fine: the result is then not saved, with a warning); without it a
    :class:`LazyStore`, created only when the result is saved; None when nothing is saved."""
    if run is not None:
        st = open_store_or_fail(store, create=False)
        if st.read_only and save:
            warn(f"store {st.path} is read-only ({st.read_only_reason}): the result is printed but not stored")
        return st
    return LazyStore(check_store_writable(store)) if save else None


def check_device(device: str | None) -> str | None:
    """Validate a --device value before any work: a device string torch parses, and one this
    machine has. Returns it unchanged (None = the default, cpu)."""
    if device is None:
        return None
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise ValueError(f"--device must be cpu, cuda or cuda:N (or mps), got {device!r}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {device}: CUDA is not available here (torch {torch.__version__}, "
                             f"built with CUDA {torch.version.cuda or 'none'}); use --device cpu")
        n = torch.cuda.device_count()
        if dev.index is not None and dev.index >= n:
            raise ValueError(f"--device {device}: this machine has {n} CUDA device(s) (cuda:0..cuda:{n - 1})")
    elif dev.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise ValueError(f"--device {device}: MPS is not available here; use --device cpu")
    elif dev.type != "cpu":
        raise ValueError(f"--device must be cpu, cuda or cuda:N (or mps), got {device!r}")
    return device


def parse_options(pairs: list[str] | None) -> dict:
    """KEY=VALUE pairs to a dict; values parsed as JSON when possible (numbers, lists, booleans)."""
    result = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise ValueError(f"option {pair!r} is not KEY=VALUE")
        k, v = pair.split("=", 1)
        try:
            result[k.strip()] = json.loads(v)
        except json.JSONDecodeError as e:
            if v.strip()[:1] in ("[", "{"):  # meant as a list/dict: a typo, not a plain string
                raise ValueError(f"option {pair!r}: the value {v!r} is not valid JSON ({e.msg} at column "
                                 f"{e.colno}); write lists as [8,8] and dicts as {{\"k\": 1}}, quoted for the "
                                 f"shell") from None
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


def run_app(app: typer.Typer, args: list[str] | None = None) -> int:
    """Run the typer app; library errors (bad names, bad values, bad files, a missing or corrupt
    store entry) and usage errors become one line and exit code 2, running out of memory one line
    and exit code 2, anything unexpected one line ``internal error: ...`` and exit code 1 (with
    $LOSSLAB_DEBUG=1 the traceback is shown instead), Ctrl-C exit code 130; never a traceback.
    With --json, a failure also prints ``{"error": ..., "exit_code": ...}`` on stdout."""
    global _JSON_MODE
    from ..registry import UnknownNameError
    from ..store import StoreError

    args = list(sys.argv[1:] if args is None else args)
    _JSON_MODE = "--json" in args
    debug = os.environ.get(DEBUG_ENV, "").strip() not in ("", "0")
    clicks = _click_exceptions()
    usage = tuple(m.ClickException for m in clicks if hasattr(m, "ClickException"))
    aborts = tuple(m.Abort for m in clicks if hasattr(m, "Abort"))
    try:
        import torch

        oom: tuple = tuple(c for c in (getattr(torch, "OutOfMemoryError", None),
                                       getattr(getattr(torch, "cuda", None), "OutOfMemoryError", None)) if c)
    except Exception:  # pragma: no cover
        oom = ()
    try:
        rc = app(args=args, standalone_mode=False)
        return rc if isinstance(rc, int) else 0
    except typer.Exit as e:
        return e.exit_code
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        return 130
    except usage as e:
        if _JSON_MODE:
            report_error(e.format_message(), e.exit_code)
        else:
            e.show()
        return e.exit_code
    except aborts:
        return 130
    except (UnknownNameError, StoreError, ValueError, TypeError, FileNotFoundError, KeyError) as e:
        if debug:
            raise
        msg = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
        return report_error(msg, 2)
    except (MemoryError, *oom) as e:
        if debug:
            raise
        detail = one_line(str(e))[:300]
        return report_error(f"out of memory ({type(e).__name__}{': ' + detail if detail else ''}); use a smaller "
                            f"grid (--resolution), a smaller --batch-size or a smaller model/dataset", 2)
    except Exception as e:
        if debug:
            raise
        return report_error(f"{type(e).__name__}: {one_line(str(e))[:500]} (set {DEBUG_ENV}=1 for the traceback)",
                            1, prefix="internal error")
