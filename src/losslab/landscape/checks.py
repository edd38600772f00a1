"""What the evaluator may use and what it accepts: devices, dtypes, memory budgets, counts, a finite plane.

Kept apart from the evaluator so that every caller (surface, interpolation, the CLI) checks its
inputs the same way, with the same one-line messages, before any work starts.
"""
from __future__ import annotations

import numpy as np
import torch


def is_oom(e: BaseException) -> bool:
    """Whether ``e`` is an out-of-memory error (CUDA, or a CPU allocation failure)."""
    if isinstance(e, torch.OutOfMemoryError):
        return True
    msg = str(e).lower()
    return isinstance(e, (RuntimeError, MemoryError)) and (
        "out of memory" in msg or "can't allocate memory" in msg or "cannot allocate memory" in msg
        or isinstance(e, MemoryError))


def default_memory_budget(device: torch.device) -> int:
    """Bytes the evaluation may use: half the free GPU memory, or a quarter of the available RAM (at most 4 GiB)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free * 0.5)
    try:
        with open("/proc/meminfo") as f:
            info = {l.split(":")[0]: int(l.split()[1]) * 1024 for l in f}
        return int(min(4 * 2 ** 30, info.get("MemAvailable", 2 ** 31) * 0.25))
    except OSError:  # pragma: no cover - non-Linux
        return 2 ** 30


def available_devices() -> list[str]:
    """The devices this torch can evaluate on: cpu, cuda:i for each visible GPU, mps if built and present."""
    devs = ["cpu"]
    if torch.cuda.is_available():
        devs += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devs.append("mps")
    return devs


def check_device(device) -> torch.device:
    """``device`` as a torch.device that exists here, else a one-line ValueError naming the available ones."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"device must be one of {', '.join(available_devices())} (or a torch.device), "
                         f"got {device!r}") from None
    avail = available_devices()
    if dev.type == "cuda":
        ok = torch.cuda.is_available() and (dev.index is None or dev.index < torch.cuda.device_count())
    else:
        ok = dev.type in {d.split(":")[0] for d in avail}
    if not ok:
        raise ValueError(f"device {str(device)!r} is not available in this torch build/machine; available: "
                         f"{', '.join(avail)}")
    return dev


_DTYPE_NAMES = {"float32": torch.float32, "float": torch.float32, "float64": torch.float64,
                "double": torch.float64, "float16": torch.float16, "half": torch.float16,
                "bfloat16": torch.bfloat16}


def check_dtype(dtype) -> torch.dtype | None:
    """None, a floating torch.dtype, or its name ("float32", "float64", ...) -> torch.dtype or None."""
    if dtype is None:
        return None
    if isinstance(dtype, str):
        key = dtype.strip().lower().removeprefix("torch.")
        if key not in _DTYPE_NAMES:
            raise ValueError(f"dtype must be a floating torch dtype or one of {', '.join(_DTYPE_NAMES)}, got {dtype!r}")
        return _DTYPE_NAMES[key]
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating type (torch.float32 or torch.float64, or their names), "
                         f"got {dtype!r}")
    return dtype


def check_count(value, name: str, *, allow_none: bool = True) -> int | None:
    """None (if allowed) or an int >= 1 (bools refused), else a one-line ValueError."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an int >= 1{' or None' if allow_none else ''}, got {value!r}")
    return int(value)


def check_plane(base: torch.Tensor, directions: torch.Tensor) -> None:
    """The base point and the directions must be finite (one pass over P entries each)."""
    nb = int((~torch.isfinite(base)).sum())
    if nb:
        raise ValueError(f"the base point (the model's parameters) has {nb} NaN/inf entries of {base.numel()}: "
                         f"the loss would be NaN everywhere; use a model with finite parameters (a diverged "
                         f"training run?)")
    for i, v in enumerate(directions):
        nv = int((~torch.isfinite(v)).sum())
        if nv:
            raise ValueError(f"direction {i + 1} has {nv} NaN/inf entries of {v.numel()}: the loss would be NaN "
                             f"everywhere; pass finite direction vectors")
