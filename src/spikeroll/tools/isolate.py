"""One function call in a fresh Python process: `spikeroll bench` measures each case, and
`spikeroll compare` trains each run, through run_isolated, so that each has its own peak memory
and none inherits another's allocator state, threads or warm caches.

The child is started by multiprocessing's spawn context (a new interpreter, never a fork of this
one), which hands it this process's sys.path: it imports the same spikeroll as the parent, checkout
or install, with no PYTHONPATH to patch. It calls fn(*args) and sends back through a pipe the
return value, or the exception it raised; its stdout and stderr are the parent's, so progress
bars and prints show as they happen. fn must be importable (a module-level function) and its
arguments and result picklable.
"""

from __future__ import annotations

import multiprocessing
import time
import traceback
from dataclasses import dataclass
from typing import Any


@dataclass
class Outcome:
    """What became of a call in a child process: its value, or how it failed."""

    value: Any = None  # fn's return value, when it returned
    error: str | None = None  # the exception fn raised, as a traceback's last line: "MemoryError: ..."
    traceback: str | None = None  # and its whole traceback
    exitcode: int | None = None  # the child's exit status; negative: killed by that signal
    timed_out: bool = False  # ran past the timeout, and was killed

    @property
    def ok(self) -> bool:
        """It returned a value, in time, and the child exited cleanly."""
        return not self.timed_out and self.error is None and self.exitcode == 0

    @property
    def failure(self) -> str:
        """One line on what went wrong: the exception, else the exit status."""
        return self.error or f"exit code {self.exitcode}"

    @property
    def out_of_memory(self) -> bool:
        """Killed by a signal (the kernel's OOM killer sends SIGKILL) or out of host or GPU memory."""
        text = (self.error or "").lower()
        return (self.exitcode or 0) < 0 or "memoryerror" in text or "out of memory" in text


def run_isolated(fn, *args, timeout: float | None = None) -> Outcome:
    """fn(*args) in a fresh process; the Outcome says what it returned or how it failed. A child
    still running after `timeout` seconds (from its start) is killed (Outcome.timed_out). fn is a
    module-level function (the child imports it by name, which also names the child process)."""
    ctx = multiprocessing.get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_child, args=(send, fn, args), name=f"spikeroll-{fn.__name__}")
    child.start()
    send.close()  # the child holds the only write end now: its exit reads as end-of-file here
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        if not receive.poll(timeout):
            return Outcome(timed_out=True)
        try:
            message = receive.recv()
        except EOFError:  # it died without a word: killed, or os._exit
            message = None
        child.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        if child.exitcode is None:  # answered, but hangs on its way out
            return Outcome(timed_out=True)
        if message is None:
            return Outcome(exitcode=child.exitcode)
        kind, *payload = message
        if kind == "value":
            return Outcome(value=payload[0], exitcode=child.exitcode)
        return Outcome(error=payload[0], traceback=payload[1], exitcode=child.exitcode)
    finally:  # a timeout, or an interrupt of the parent: the child goes too
        if child.is_alive():
            child.kill()
            child.join()
        receive.close()


def _child(send, fn, args) -> None:
    try:
        message = ("value", fn(*args))
    except BaseException as exc:  # noqa: BLE001 - every failure goes back to the parent, KeyboardInterrupt too
        message = ("error", _last_line(exc), traceback.format_exc())
    try:
        send.send(message)
    except Exception as exc:  # noqa: BLE001 - e.g. a result that cannot be pickled
        send.send(("error", _last_line(exc), traceback.format_exc()))
    send.close()


def _last_line(exc: BaseException) -> str:
    return traceback.format_exception_only(type(exc), exc)[-1].strip()
