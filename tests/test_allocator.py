"""keep_freed_memory: glibc's heap keeps freed tensors (allocator.py).

Checked by its effect, not by a clock: minor page faults (getrusage) in fresh processes (the setting is
process-wide and cannot be undone).

- Growing blocks: 40 rounds that allocate, fill and free a 4 MiB tensor, each 64 KiB larger than any freed
  before. glibc's adaptive rule serves a block larger than every block freed so far by a fresh mmap, so
  with the defaults every round faults all its pages in (53,526-53,527 faults, 4 processes); with the
  heap kept only the growth faults (2,718-2,719).
- A chain of four 4 MiB tensors (x = x + 1, each result allocated before the previous one is freed, as in
  a forward pass): with the defaults a process falls into one of two steady states depending on where
  its blocks landed, no faults or 2,016-4,033 faults every round for as long as it runs (measured: 3 of 6
  processes, later 1 of 8, in the second); with the heap kept at most a few one-off growths of the heap.
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
for _ in range(5):
    chain()  # warm-up: the heap grows to its working size
f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(40):
    chain()
print(json.dumps(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0))
"""


_GROWING = r"""
import json, resource, sys, torch
if sys.argv[1] == "keep":
    from losslab.allocator import keep_freed_memory
    assert keep_freed_memory().applied
if sys.argv[1] == "library":  # the library's own work leaves glibc's settings alone
    import losslab
    net = losslab.build("mlp", in_dim=4, hidden=[8], out_dim=3, seed=0)
    X, y = torch.randn(64, 4), torch.randint(0, 3, (64,))
    losslab.surface(net, (X, y), loss="cross_entropy", resolution=5)
    losslab.lambda_max(net, (X, y), "cross_entropy")
f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for i in range(40):
    x = torch.ones(2 ** 20 + i * 2 ** 14)  # 4 MiB, each round 64 KiB larger than any block freed before
    del x
print(json.dumps(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0))
"""


def _faults(mode: str, probe: str = _PROBE) -> int:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run([sys.executable, "-c", probe, mode], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not GLIBC, reason="glibc malloc only")
def test_blocks_larger_than_any_freed_come_from_the_kept_heap():
    default, kept, lib = _faults("default", _GROWING), _faults("keep", _GROWING), _faults("library", _GROWING)
    pages = sum(2 ** 20 + i * 2 ** 14 for i in range(40)) * 4 / 4096  # every round's pages: 52,160
    assert default >= 0.9 * pages, (default, pages)
    assert lib >= 0.9 * pages, (lib, pages)  # surface / lambda_max did not change the process's heap settings
    assert kept <= 0.1 * pages, (kept, pages)


@pytest.mark.skipif(not GLIBC, reason="glibc malloc only")
def test_freed_tensors_stay_in_the_heap():
    """40 rounds after the warm-up: at most a few one-off heap growths (1,024-2,048 pages each were seen), in
    each of four fresh processes; a process in the defaults' bad state faults >= 2,016 x 40 = 80,640 pages."""
    faults = [_faults("keep") for _ in range(4)]
    assert all(f <= 10_000 for f in faults), faults


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


def test_the_losslab_command_keeps_freed_memory_at_start(monkeypatch):
    """cli.main() asks for the heap setting before it runs a command (the library itself never does)."""
    from losslab import allocator
    from losslab.cli import main

    calls = []
    monkeypatch.setattr(allocator, "keep_freed_memory_unless_disabled", lambda: calls.append(1))
    monkeypatch.setattr(sys, "argv", ["losslab", "--help"])
    with pytest.raises(SystemExit) as e:
        main()
    assert e.value.code == 0 and calls == [1]
