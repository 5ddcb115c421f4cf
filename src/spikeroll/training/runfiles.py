"""Writing a run directory without ever losing a run: the rules every trainer (classification's
`Trainer`, control's `ControlTrainer`) follows.

- Nothing is changed before the whole new run is built and checked (`refuse_existing` only reads).
- `--overwrite` moves the old run's files aside (OUT/.replaced-TIME-PID/) and deletes them only once
  the new run has written its first checkpoint, putting them back if it fails before that.
- A metrics.jsonl without a checkpoint is not appended to; on resume a torn last line is dropped
  with a warning and the log is rewritten atomically; every metrics line is fsynced.
- A full disk, a read-only folder or a file-size limit while writing is a one-line error naming the
  intact checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

from spikeroll.atomic import atomic_write, fsync_dir, is_disk_error, save_json
from spikeroll.errors import SpikerollError
from spikeroll.training.rundir import CHECKPOINT, CONFIG, METRICS, REPORT, save_checkpoint

RUN_FILES = (CHECKPOINT, REPORT, METRICS, CONFIG)
REPLACED = ".replaced-"  # prefix of the folder an overwritten run waits in until the first checkpoint


class RunFiles:
    """The files of one run directory, written by the rules of the module docstring."""

    def __init__(self, out: str | Path):
        self.out = Path(out)
        self.saved_generation: int | None = None  # the checkpoint on disk that is intact
        self._replaced: Path | None = None  # where an overwritten run waits until the first checkpoint

    def refuse_existing(self, resume: bool, overwrite: bool) -> None:
        """Refuse to start over a run that --resume or --overwrite should name; changes nothing."""
        if overwrite or resume:
            return
        if (self.out / CHECKPOINT).exists() or (self.out / REPORT).exists():
            state = "a finished run" if (self.out / REPORT).exists() else "an unfinished run"
            raise SpikerollError(f"{self.out} already holds {state}; pass --resume to continue it, "
                                 "--overwrite to replace it, or choose another --out")
        metrics = self.out / METRICS
        if metrics.exists() and metrics.stat().st_size:
            kept = sorted(self.out.glob(f"{REPLACED}*"))  # a run --overwrite was replacing when this one stopped
            note = f"; the run it was replacing is kept in {kept[-1]}" if kept else ""
            raise SpikerollError(f"{self.out} holds {METRICS} but no {CHECKPOINT} (a run stopped before its first "
                                 f"checkpoint{note}); pass --overwrite to replace it, --resume to start it again from "
                                 "generation 0, or choose another --out")

    def kept_metrics(self, generation: int) -> list[str] | None:
        """The metric lines of generations before `generation` (a resumed run's log then has no
        duplicates), or None when there is no log. A torn last line (a kill during its write) is
        dropped with a warning on stderr; a damaged line before it is an error."""
        path = self.out / METRICS
        if not path.exists():
            return None
        lines = path.read_bytes().decode(errors="replace").split("\n")
        complete, tail = lines[:-1], lines[-1]  # `tail`: after the last newline, empty unless torn
        keep = []
        for number, line in enumerate(complete, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                record_generation = record["generation"]
                if not isinstance(record_generation, int):
                    raise TypeError
            except (ValueError, KeyError, TypeError, RecursionError):  # RecursionError: nested past the stack
                if number == len(complete) and not tail.strip():
                    tail = line  # the last line, torn as it was written
                    break
                raise SpikerollError(f"{path} line {number} is not a metrics record; fix or delete that line, or "
                                     "start over with --overwrite") from None
            if record_generation < generation:
                keep.append(line + "\n")
        if tail.strip():
            print(f"warning: {path}: skipped its torn last line (the run was stopped while writing it)",
                  file=sys.stderr)
        return keep

    def start(self, config: dict, overwrite: bool, kept: list[str] | None) -> None:
        """The first change to the folder, once the new run is checked: the old run moved aside
        (overwrite), stale temp files removed, the kept metrics rewritten (resume), config.json."""
        with self.disk(CONFIG):
            try:
                if overwrite:
                    self._move_old_run_aside()
                self.out.mkdir(parents=True, exist_ok=True)
                for name in RUN_FILES:  # temp files of writes that a kill interrupted (spikeroll.atomic)
                    for stale in self.out.glob(f".{name}.*.tmp"):
                        stale.unlink(missing_ok=True)
                if kept is not None:
                    with self.disk(METRICS):
                        atomic_write(self.out / METRICS, lambda h: h.write("".join(kept).encode()))
                save_json(self.out / CONFIG, config)
            except BaseException:
                self.put_back()
                raise

    def _move_old_run_aside(self) -> None:
        old = [name for name in RUN_FILES if (self.out / name).exists()]
        if not old:
            return
        aside = self.out / f"{REPLACED}{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
        aside.mkdir()
        self._replaced = aside  # from here on a failure puts back what was moved
        for name in old:
            os.replace(self.out / name, aside / name)
        fsync_dir(self.out)

    def put_back(self) -> None:
        """The new run failed before its first checkpoint: the overwritten run's files return."""
        aside, self._replaced = self._replaced, None
        if aside is None:
            return
        with contextlib.suppress(OSError):  # if even this fails, the old files stay in `aside`
            for name in RUN_FILES:
                if (aside / name).exists():
                    os.replace(aside / name, self.out / name)
                else:
                    (self.out / name).unlink(missing_ok=True)
            aside.rmdir()

    def _drop_replaced(self) -> None:
        aside, self._replaced = self._replaced, None
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)

    @contextlib.contextmanager
    def disk(self, name: str):
        """A full disk, read-only folder or file-size limit while writing `name`: one line saying
        which checkpoint is intact and how to go on."""
        try:
            yield
        except OSError as exc:
            if not is_disk_error(exc):
                raise
            if self.saved_generation is not None:
                intact = (f"its checkpoint of generation {self.saved_generation} is intact: free some space or make "
                          "the folder writable, then continue with --resume")
            else:
                back = " (the run it was replacing is put back)" if self._replaced is not None else ""
                intact = (f"no checkpoint of this run was written yet{back}: free some space or make the folder "
                          "writable, then start it again")
            raise SpikerollError(f"cannot write {self.out / name} ({os.strerror(exc.errno)}); {intact}") from None

    def checkpoint(self, state: dict, generation: int) -> None:
        """Write checkpoint.pt atomically; the run it replaced (overwrite) is then deleted."""
        with self.disk(CHECKPOINT):
            save_checkpoint(self.out / CHECKPOINT, state)
        self.saved_generation = generation
        self._drop_replaced()

    @contextlib.contextmanager
    def metrics_log(self):
        """metrics.jsonl opened for appending, unbuffered (`log` writes and fsyncs each line)."""
        with self.disk(METRICS), open(self.out / METRICS, "ab", buffering=0) as handle:
            yield handle

    def log(self, handle, record: dict) -> None:
        """Append one metrics line and put it on disk (flushed and fsynced)."""
        with self.disk(METRICS):
            data = memoryview((json.dumps(record) + "\n").encode())
            while data:  # an unbuffered file may take part of it, then fail on the rest
                data = data[handle.write(data):]
            os.fsync(handle.fileno())

    def report(self, report: dict) -> None:
        """Write report.json atomically."""
        with self.disk(REPORT):
            save_json(self.out / REPORT, report)
