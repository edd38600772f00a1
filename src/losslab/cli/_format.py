"""How the command line writes numbers and values for people (``--json`` keeps full precision).

One rule everywhere: integers as they are, floats with 4 significant digits (``0.01234``,
``1.235e-07``, ``1235``), non-finite values spelled out; nested settings and summaries as
``key=value`` pairs instead of a Python repr. Run ids and names are never cut: tables give
them columns that do not wrap (:func:`whole_column`).
"""
from __future__ import annotations

import math
from typing import Any

DIGITS = 4


def num(v: Any, digits: int = DIGITS) -> str:
    """A number for reading: ints unchanged, floats with ``digits`` significant digits."""
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    try:
        import numpy as np

        if isinstance(v, np.generic):
            v = v.item()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        return f"{v:.{digits}g}"
    return str(v)


def value(v: Any, digits: int = DIGITS) -> str:
    """Any value: numbers via :func:`num`, lists as ``[a, b]``, dicts as ``k=v, k2=v2``."""
    if isinstance(v, dict):
        return ", ".join(f"{k}={value(x, digits)}" for k, x in v.items())
    if isinstance(v, (list, tuple)):
        if len(v) > 12:
            return f"[{', '.join(value(x, digits) for x in v[:6])}, ... ({len(v)} values)]"
        return "[" + ", ".join(value(x, digits) for x in v) + "]"
    if hasattr(v, "tolist") and not isinstance(v, (str, bytes)):
        return value(v.tolist(), digits)
    return num(v, digits)


def flat_items(d: dict, prefix: str = "") -> list[tuple[str, Any]]:
    """``{"a": {"b": 1}}`` -> ``[("a.b", 1)]`` (nested summaries as rows)."""
    rows: list[tuple[str, Any]] = []
    for k, v in d.items():
        if isinstance(v, dict) and v:
            rows.extend(flat_items(v, f"{prefix}{k}."))
        else:
            rows.append((f"{prefix}{k}", v))
    return rows


def whole_column(table, header: str, values, **kw) -> None:
    """Add a column whose cells are never wrapped, folded or cut (run ids, parameter names):
    as wide as its longest value; other columns give way, and a table wider than the terminal
    runs past its edge rather than break an id a user must copy."""
    width = max([len(header), *(len(str(v)) for v in values)]) if values else len(header)
    table.add_column(header, no_wrap=True, min_width=width, overflow="ignore", **kw)


def print_table(console, table) -> None:
    """Print a rich table; not on a terminal (a pipe, a file) at its natural width, so no cell is
    wrapped to fit an 80-column default that nobody is looking at."""
    if console.is_terminal:
        console.print(table)
        return
    from rich.measure import Measurement

    need = Measurement.get(console, console.options.update(max_width=400), table).maximum
    saved = console._width  # None = auto-detect; restored exactly
    console.width = max(console.width, min(need, 400))
    try:
        console.print(table)
    finally:
        console._width = saved
