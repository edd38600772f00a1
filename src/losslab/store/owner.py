"""Who is running a study: host, pid and the process's start time, so a reader can tell a live
study from one whose process was killed (``kill -9``, a crashed node) and never said so.

The start time guards against pid reuse: a pid that now belongs to a process started at
another time is not the owner. On Linux it comes from ``/proc/PID/stat`` (field 22, clock ticks
after boot, plus the boot time from ``/proc/stat``); elsewhere from psutil when it is installed;
without either only the pid's existence is checked.
"""
from __future__ import annotations

import os
import socket


def _boot_time() -> float | None:
    try:
        with open("/proc/stat") as f:
            for line in f:
                if line.startswith("btime "):
                    return float(line.split()[1])
    except OSError:
        pass
    return None


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start ticks) of a Linux process, or None (no /proc, or no such process)."""
    try:
        with open(f"/proc/{int(pid)}/stat") as f:
            raw = f.read()
    except OSError:
        return None
    rest = raw[raw.rindex(")") + 2:].split()  # the command name (field 2) may hold spaces and ')'
    return rest[0], int(rest[19])  # fields 3 (state) and 22 (starttime)


def process_start(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch), or None when it cannot be told."""
    st = _proc_stat(pid)
    boot = _boot_time()
    if st is not None and boot is not None:
        return round(boot + st[1] / os.sysconf("SC_CLK_TCK"), 2)
    try:
        import psutil

        return round(psutil.Process(pid).create_time(), 2)
    except Exception:
        return None


def current_owner() -> dict:
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "started": process_start(pid)}


def owner_alive(owner: dict | None) -> bool | None:
    """True: the owner process still runs; False: it is gone (or a zombie, or its pid was reused);
    None: cannot tell (no owner recorded, or another host)."""
    if not isinstance(owner, dict) or "pid" not in owner:
        return None
    if owner.get("host") != socket.gethostname():
        return None
    pid = int(owner["pid"])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        pass
    except OSError:
        return None
    st = _proc_stat(pid)
    if st is not None and st[0] in ("Z", "X"):  # killed, not yet reaped by its parent
        return False
    want, have = owner.get("started"), process_start(pid)
    if want is not None and have is not None and abs(float(want) - have) > 1.0:
        return False  # the pid now belongs to another process
    return True
