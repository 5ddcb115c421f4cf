"""The subprocess harness bench and compare share: a spawned child's value, error, death and timeout.
(Each child imports spikeroll, and so torch: a few seconds each, so few children.)"""

import os
import sys
import time

import spikeroll.errors
from spikeroll.tools.isolate import Outcome, run_isolated

import isolate_children as kids


def test_value_comes_back_from_a_child_that_imports_the_parents_spikeroll(monkeypatch):
    """The child's return value comes back; the child runs this checkout's spikeroll on this sys.path."""
    monkeypatch.delenv("PYTHONPATH", raising=False)
    out = run_isolated(kids.where, {"a": [1, 2]})
    tag, pid, path, package = out.value
    assert out.ok and out.exitcode == 0 and tag == {"a": [1, 2]} and pid != os.getpid()
    assert package == spikeroll.errors.__file__ and [p for p in sys.path if p] == [p for p in path if p]


def test_exception_comes_back_as_its_last_traceback_line():
    """An exception in the child reads as its traceback's last line, and the whole traceback."""
    out = run_isolated(kids.raise_value_error)
    assert not out.ok and out.error == "ValueError: bad input 7" and out.failure == out.error
    assert "raise ValueError" in out.traceback and not out.out_of_memory


def test_a_killed_child_reads_as_out_of_memory():
    """A child killed by SIGKILL (what the OOM killer sends) reads as out of memory."""
    out = run_isolated(kids.die_by_signal)  # SIGKILL, as the kernel's OOM killer sends
    assert not out.ok and out.exitcode == -9 and out.out_of_memory and out.failure == "exit code -9"


def test_memory_errors_host_or_gpu():
    """MemoryError and CUDA's out-of-memory error count as out of memory; other errors do not."""
    assert Outcome(error="MemoryError", exitcode=0).out_of_memory
    assert Outcome(error="torch.OutOfMemoryError: CUDA out of memory. Tried to allocate", exitcode=0).out_of_memory
    assert not Outcome(error="ValueError: memory layout", exitcode=0).out_of_memory


def test_timeout_kills_the_child():
    """A child past its timeout is killed and reads as timed out, long before it would end."""
    start = time.monotonic()
    out = run_isolated(kids.sleep, 120, timeout=2)
    assert out.timed_out and not out.ok and time.monotonic() - start < 60
