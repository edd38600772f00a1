"""The experiment registry and its result type."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..figures import Figure
from ..registry import Registry

EXPERIMENTS: Registry = Registry("experiment")


@dataclass(frozen=True)
class ExperimentResult:
    """What an experiment measured.

    ``summary``: scalar numbers (the table stored in the run index); ``checks``: named claims
    with whether the measurement supports them ({"rnn gradient ratio >= 100x smaller": True});
    ``figures``: figure descriptions for the report; ``arrays``: every array behind them;
    ``text``: a short paragraph saying what was done and what it shows.
    """

    name: str
    title: str
    claim: str
    summary: dict[str, Any]
    checks: dict[str, bool]
    figures: tuple[Figure, ...]
    arrays: dict[str, np.ndarray]
    settings: dict[str, Any]
    text: str = ""
    wall_time: float = 0.0

    @property
    def passed(self) -> bool:
        return all(self.checks.values())


@dataclass(frozen=True)
class ExperimentInfo:
    name: str
    title: str
    claim: str
    fn: Callable[..., ExperimentResult]
    quick_seconds: float | None = None


def register(name: str, *, title: str, claim: str):
    """Register ``run(*, quick=False, seed=0, **options) -> ExperimentResult`` under ``name``."""

    def deco(fn):
        EXPERIMENTS.register(name, ExperimentInfo(name, title, claim, fn), doc=title)
        return fn

    return deco


def measured(name: str, *, summary: dict, checks: dict, figures, arrays: dict, settings: dict,
             text: str = "") -> ExperimentResult:
    """The result of the registered experiment ``name``: its title and claim come from the registry
    (said once, at ``@register``), the measurements from the caller. Every experiment ends here."""
    info = EXPERIMENTS.get(name)
    return ExperimentResult(name=name, title=info.title, claim=info.claim, summary=summary, checks=checks,
                            figures=tuple(figures), arrays=arrays, settings=settings, text=text)


def run_experiment(name: str, *, quick: bool = False, seed: int = 0, **options) -> ExperimentResult:
    """Run a registered experiment; its wall time is recorded on the result."""
    from ..registry import call_with_options

    info = EXPERIMENTS.get(name)
    t0 = time.perf_counter()
    res = call_with_options("experiment", info.name, info.fn, {"quick": quick, "seed": seed, **options})
    from dataclasses import replace

    return replace(res, wall_time=time.perf_counter() - t0)
