"""The one atomic file writer: checkpoints, run JSON files and the frame cache all go through it, so
a process killed at any moment leaves either the old file or the new one, never a torn one.

A written file gets the mode an ordinary `open(path, "w")` would give it (0o666 less the umask;
mkstemp alone makes 0o600), and the folder is fsynced after the rename, so the new name survives
a power cut too."""

from __future__ import annotations

import errno
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

# Errors of the file system rather than of the program: a full disk, a read-only or unwritable
# folder, a file-size limit. Callers turn them into one-line messages (spikeroll.training.trainer).
DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG, errno.EDQUOT})


def _read_umask() -> int:
    """This process's umask, read without changing it where Linux reports it (/proc/self/status);
    elsewhere set and restored once, at import time, before any thread of ours writes files."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


UMASK = _read_umask()
FILE_MODE = 0o666 & ~UMASK


def is_disk_error(exc: BaseException) -> bool:
    """Whether `exc` is a full disk, a read-only or unwritable folder or a file-size limit."""
    return isinstance(exc, OSError) and exc.errno in DISK_ERRNOS


def fsync_dir(folder: str | os.PathLike) -> None:
    """Make a rename or a new file in `folder` durable; file systems that cannot fsync a folder
    (EINVAL, EBADF, e.g. some network mounts) are left as they are."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.EBADF):
            raise
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> None:
    """Call write(handle) on a temp file in path's folder, fsync it, then rename it over path
    (atomic on POSIX: the rename happens whole or not at all) and fsync the folder. The file gets
    the umask's mode. The temp file is removed if anything fails, and the error propagates."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fchmod(handle.fileno(), FILE_MODE)  # mkstemp's 0o600 -> what open() would have made
            os.fsync(handle.fileno())  # the data is on disk before the rename makes it visible
        os.replace(tmp, path)
    except BaseException:
        try:
            Path(tmp).unlink(missing_ok=True)
        except OSError:  # e.g. the folder turned read-only: the original error is the one to report
            pass
        raise
    fsync_dir(path.parent)


def save_json(path: str | os.PathLike, data: dict) -> None:
    """Write `data` as indented JSON through `atomic_write`."""
    atomic_write(path, lambda h: h.write((json.dumps(data, indent=2) + "\n").encode()))
