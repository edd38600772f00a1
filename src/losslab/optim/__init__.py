"""Optimizers and learning-rate schedules.

Everything torch.optim has comes from torch.optim (not rewritten). Own code only for what it
lacks: ``random_search`` (the chapter's brute-force guessing baseline) and ``langevin``
(gradient descent plus Gaussian noise at temperature 1/beta).
"""
from __future__ import annotations

from .registry import OPTIMIZERS, SCHEDULES, make_optimizer, make_schedule, momentum_of
from .extra import Langevin, RandomSearch

__all__ = ["OPTIMIZERS", "SCHEDULES", "make_optimizer", "make_schedule", "momentum_of", "RandomSearch", "Langevin"]
