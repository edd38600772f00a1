"""What the store's index holds, as Python records, and the filter language of ``runs ls --where``."""
from __future__ import annotations

import json
import math
import operator
import platform
import re
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class RunRecord:
    id: str
    name: str
    kind: str
    study: str | None
    status: str
    created: float
    finished: float | None
    wall_time: float | None
    spec_hash: str | None
    settings: dict
    summary: dict
    versions: dict
    message: str | None
    parent: str | None = None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class StudyRecord:
    id: str
    name: str
    spec_hash: str
    spec: dict
    source: str | None
    status: str
    created: float
    finished: float | None
    n_units: int | None
    versions: dict
    message: str | None
    owner: dict | None = None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def versions() -> dict:
    import torch

    from .. import __version__

    return {"losslab": __version__, "torch": torch.__version__, "numpy": np.__version__, "python": platform.python_version()}


def _json(o: Any) -> str:
    def default(x):
        if isinstance(x, (np.floating, np.integer)):
            return x.item()
        if isinstance(x, np.ndarray):
            return x.tolist()
        return str(x)

    return json.dumps(o, default=default, allow_nan=True)


_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "=": operator.eq, "==": operator.eq,
        "!=": operator.ne}
_WHERE = re.compile(r"^\s*([A-Za-z_][\w./-]*)\s*(<=|>=|==|!=|<|>|=)\s*(.+?)\s*$")


def parse_where(expr: str) -> tuple[str, str, Any]:
    """``"final_train_loss<0.1"`` -> ("final_train_loss", "<", 0.1). Values parse as numbers when they can."""
    m = _WHERE.match(expr)
    if not m:
        raise ValueError(f"filter {expr!r} is not METRIC OP VALUE with OP one of < <= > >= = !=, "
                         f"e.g. 'final_train_loss<0.1'")
    key, op, raw = m.groups()
    if raw[:1] in "<>=!":
        raise ValueError(f"filter {expr!r} has a doubled operator ({op}{raw[0]}); write METRIC OP VALUE with one "
                         f"OP of < <= > >= = !=, e.g. 'final_train_loss<0.1'")
    try:
        val: Any = float(raw)
    except ValueError:
        if op in ("<", "<=", ">", ">="):
            raise ValueError(f"filter {expr!r}: {op} compares numbers, got the value {raw!r}; give a number "
                             f"(e.g. '{key}{op}0.5'), or use = / != to match a text setting") from None
        val = raw
    return key, op, val


def _lookup(rec: "RunRecord", key: str):
    """A metric for filtering: summary first, then settings, then a record column."""
    if key in rec.summary:
        return rec.summary[key]
    if key in rec.settings:
        return rec.settings[key]
    return getattr(rec, key, None)


def _matches(rec: "RunRecord", cond: tuple[str, str, Any]) -> bool:
    key, op, val = cond
    have = _lookup(rec, key)
    if have is None:
        return False
    if isinstance(val, float):
        try:
            have = float(have)
        except (TypeError, ValueError):
            return False
        if math.isnan(have):
            return False
    else:
        have = str(have)
    return bool(_OPS[op](have, val))
