"""Training phenomena: every claim of the seeds as a named experiment that measures it.

Each experiment lives in its own module of this package and registers itself in
``EXPERIMENTS`` with ``@register(name, title=..., claim=...)``; a function
``run(*, quick: bool = False, seed: int = 0, **options) -> ExperimentResult``.
"""
from __future__ import annotations

import importlib
import pkgutil

from .base import EXPERIMENTS, ExperimentResult, register, run_experiment

for _m in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if _m.name not in ("base",) and not _m.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_m.name}")

__all__ = ["EXPERIMENTS", "ExperimentResult", "register", "run_experiment"]
