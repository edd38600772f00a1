"""keep_freed_memory: glibc's heap stops shrinking after every forward (allocator.py).

Checked by its effect, not by a clock: minor page faults (getrusage) while a loop runs a chain of four
4 MiB tensors (x = x + 1, each result allocated before the previous one is freed, as in a forward pass),
in a fresh process each (the setting is process-wide and cannot be undone). With glibc's adaptive
thresholds the heap is trimmed and grown back, so each round faults 150-500 pages (1,024 pages per
tensor; measured over 5 fresh processes: 150, 302, 302, 504, 504); with the thresholds fixed none.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

from losslab.allocator import MAX_MMAP_BYTES, HeapSetting, keep_freed_memory, keep_freed_memory_unless_disabled

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

_PROBE = r"""
import json, resource, sys, torch
if sys.argv[1] == "keep":
    from losslab.allocator import keep_freed_memory
    assert keep_freed_memory().applied
def chain():
    x = torch.ones(2 ** 20)  # 4 MiB
    for _ in range(4):
        x = x + 1
chain(); chain()  # warm-up: the adaptive thresholds grow on the first frees
f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    chain()
print(json.dumps((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / 20))
"""


def _faults_per_round(mode: str) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not GLIBC, reason="glibc malloc only")
def test_freed_tensors_stay_in_the_heap():
    default, kept = _faults_per_round("default"), _faults_per_round("keep")
    assert default >= 50, default  # the heap shrank and grew back every round (150-504 measured)
    assert kept <= 10, kept  # the pages stayed (0 measured)


def test_bad_values_and_the_off_switch(monkeypatch):
    for bad in (0, -5, 1.5, True, "64M"):
        with pytest.raises(ValueError, match="positive number of bytes"):
            keep_freed_memory(trim_bytes=bad)
    with pytest.raises(ValueError, match="at most"):
        keep_freed_memory(mmap_bytes=MAX_MMAP_BYTES + 1)
    with pytest.raises(ValueError, match="below 2 GiB"):
        keep_freed_memory(trim_bytes=2 ** 31)
    monkeypatch.setenv("LOSSLAB_KEEP_FREED_MEMORY", "0")
    assert keep_freed_memory_unless_disabled() is None


def test_elsewhere_it_does_nothing_and_says_why(monkeypatch):
    from losslab import allocator

    monkeypatch.setattr(allocator.platform, "system", lambda: "Darwin")
    s = keep_freed_memory()
    assert s == HeapSetting(False, 64 * 2 ** 20, MAX_MMAP_BYTES, s.reason) and "Darwin" in s.reason
