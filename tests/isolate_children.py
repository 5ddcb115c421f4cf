"""Functions the isolate tests run in child processes (module-level, so a spawned child can import
them by name)."""

import os
import signal
import sys
import time


def where(tag):
    import spikeroll.errors  # the package the child finds, with no PYTHONPATH

    return tag, os.getpid(), list(sys.path), spikeroll.errors.__file__


def raise_value_error():
    raise ValueError("bad input 7")


def die_by_signal():
    os.kill(os.getpid(), signal.SIGKILL)


def sleep(seconds):
    time.sleep(seconds)
