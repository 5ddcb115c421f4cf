"""spikeroll.memory.keep_freed_memory: freed tensors are reused instead of faulted back in."""

import os
import subprocess
import sys

import pytest

CHILD = """
import resource, sys, torch
from spikeroll.memory import keep_freed_memory
tune, cycles = sys.argv[1] == "tune", int(sys.argv[2])
print(keep_freed_memory() if tune else False)
def cycle():  # what a population forward does at every step: fresh 16 MiB tensors, touched, freed
    held = [torch.ones(4 << 20) for _ in range(3)]
    del held
for _ in range(3):
    cycle()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(cycles):
    cycle()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")


def run_child(tune: bool, cycles: int, env=None):
    """Run CHILD in a fresh interpreter: (whether keep_freed_memory applied, page faults over `cycles` cycles)."""
    out = subprocess.run([sys.executable, "-c", CHILD, "tune" if tune else "plain", str(cycles)], capture_output=True,
                         text=True, check=True, env={**os.environ, **(env or {})}).stdout.split()
    return out[0] == "True", int(out[1])


@linux
def test_freed_tensors_are_reused_instead_of_faulted_back_in():
    """Tuned, 40 more allocate-and-free cycles add almost no page faults."""
    applied, short = run_child(True, 10)
    _, long = run_child(True, 50)
    assert applied
    # 40 more cycles of 48 MiB would be ~490,000 page faults (40 x 12,288 pages) if the memory went
    # back to the OS (glibc's defaults do that here in some processes and not in others). Tuned,
    # they add fewer than one cycle's worth: a one-off heap growth of a 16 MiB block (4,096 faults)
    # was seen on CI, so the bound is one cycle, not zero.
    one_cycle = 3 * (16 << 20) // os.sysconf("SC_PAGE_SIZE")
    assert long - short < one_cycle


@linux
def test_the_users_own_malloc_settings_are_left_alone():
    """A MALLOC_*_ variable the user set wins: keep_freed_memory changes nothing."""
    applied, _ = run_child(True, 1, {"MALLOC_TRIM_THRESHOLD_": "131072"})
    assert not applied
