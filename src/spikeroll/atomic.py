"""The one atomic file writer: checkpoints, run JSON files and the frame cache all go through it, so
a process killed at any moment leaves either the old file or the new one, never a torn one."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> None:
    """Call write(handle) on a temp file in path's folder, fsync it, then rename it over path
    (atomic on POSIX: the rename happens whole or not at all). The temp file is removed if anything
    fails, and the error propagates."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())  # the data is on disk before the rename makes it visible
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_json(path: str | os.PathLike, data: dict) -> None:
    """Write `data` as indented JSON through `atomic_write`."""
    atomic_write(path, lambda h: h.write((json.dumps(data, indent=2) + "\n").encode()))
