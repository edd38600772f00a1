"""Explicit randomness without side effects on the caller's random state."""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch


@contextlib.contextmanager
def seeded(seed: int | None) -> Iterator[None]:
    """Run the block with torch's global generators seeded by ``seed`` (None: unseeded) and restore
    every one of them afterwards: the CPU generator *and each CUDA device's*, since
    ``torch.manual_seed`` seeds them all (``fork_rng(devices=[])`` alone would leave the caller's
    CUDA streams reseeded)."""
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        if seed is not None:
            torch.manual_seed(int(seed))
        yield
