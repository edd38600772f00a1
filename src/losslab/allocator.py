"""Keep freed memory in the process heap (glibc malloc): CPU tensors of a few MB stop costing page faults.

With glibc's defaults, a freed block at the top of the heap is given back to the kernel (``sbrk``) as soon
as more than the trim threshold is free there; the threshold follows the largest block freed so far
(2x, at most 64 MiB). A forward pass that allocates several tensors of a few MB and then frees them
leaves more than that free, so the heap shrinks after every call and the next call takes fresh pages
from the kernel: one page fault per 4 KiB, zero-filled. Measured on the zoo's residual CNN (1257 digits,
one forward, 3.5 MB per activation, one thread, benchmarks/RESULTS.md 2026-12-08): 10.6-14 ms per
forward with the defaults against 3.7-4.7 ms once the trim threshold is raised; the same model in tiles
of 419 digits (smaller blocks) 3.9-4.8 ms either way. Whether a run pays the 3x depends on where small
long-lived blocks happen to sit in the heap, so the same loop runs at either speed from one run to the
next: most of what looked like host noise in the CPU benchmarks of convolutional nets.

:func:`keep_freed_memory` fixes the two thresholds with glibc's ``mallopt`` (the documented interface,
``man 3 mallopt``; what ``MALLOC_TRIM_THRESHOLD_`` / ``MALLOC_MMAP_THRESHOLD_`` set at process start).
It changes the whole process, so the library never calls it on its own: the ``losslab`` command does
(its process is losslab's; ``LOSSLAB_KEEP_FREED_MEMORY=0`` turns it off), and a user's script may call
it once. The cost is memory: up to ``trim_bytes`` of freed heap stay mapped in the process. Elsewhere
(macOS, Windows, musl) it does nothing and says why.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
from dataclasses import dataclass

# mallopt parameter numbers (glibc malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# glibc refuses an mmap threshold above HEAP_MAX_SIZE / 2 = 32 MiB on 64-bit systems
MAX_MMAP_BYTES = 32 * 2 ** 20
ENV_OFF = "LOSSLAB_KEEP_FREED_MEMORY"


@dataclass(frozen=True)
class HeapSetting:
    """What :func:`keep_freed_memory` did: ``applied`` and, if not, ``reason``."""

    applied: bool
    trim_bytes: int
    mmap_bytes: int
    reason: str = ""


def _glibc():
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    name = ctypes.util.find_library("c") or "libc.so.6"
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.mallopt.restype = ctypes.c_int
    except (OSError, AttributeError):
        return None
    return libc


def keep_freed_memory(trim_bytes: int = 64 * 2 ** 20, mmap_bytes: int = MAX_MMAP_BYTES) -> HeapSetting:
    """Keep up to ``trim_bytes`` of freed memory in the heap, and serve blocks up to ``mmap_bytes`` from it.

    The defaults are the largest values glibc's own adaptive rule reaches (mmap threshold 32 MiB, trim
    threshold twice that); fixing them stops the heap from shrinking after every forward. Process-wide and
    not undone (glibc cannot return to its adaptive rule once a threshold is set)."""
    for name, v in (("trim_bytes", trim_bytes), ("mmap_bytes", mmap_bytes)):
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise ValueError(f"{name} must be a positive number of bytes, got {v!r}")
    if mmap_bytes > MAX_MMAP_BYTES:
        raise ValueError(f"mmap_bytes must be at most {MAX_MMAP_BYTES} (glibc's limit on 64-bit systems), "
                         f"got {mmap_bytes}")
    if trim_bytes >= 2 ** 31:
        raise ValueError(f"trim_bytes must be below 2 GiB (mallopt takes an int), got {trim_bytes}")
    libc = _glibc()
    if libc is None:
        return HeapSetting(False, trim_bytes, mmap_bytes,
                           f"not glibc malloc ({platform.system()}, {platform.libc_ver()[0] or 'unknown libc'})")
    ok = libc.mallopt(_M_MMAP_THRESHOLD, mmap_bytes) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, trim_bytes) == 1
    return HeapSetting(ok, trim_bytes, mmap_bytes, "" if ok else "mallopt refused the values")


def keep_freed_memory_unless_disabled() -> HeapSetting | None:
    """The ``losslab`` command's start: :func:`keep_freed_memory` unless LOSSLAB_KEEP_FREED_MEMORY=0."""
    if os.environ.get(ENV_OFF, "1").strip().lower() in ("0", "false", "no", "off"):
        return None
    return keep_freed_memory()
