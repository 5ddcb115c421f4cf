"""Where spikeroll keeps its caches (binned frames, compiled kernels), and a private fallback.

numba loads its cache files with pickle, so a cache folder that another user can write is a way to
run code as this user. The fallback in the shared temp folder is therefore created with mode 0700
and used only when it is a real folder owned by this user that nobody else can write; otherwise
there is no fallback (the kernels then compile in memory, in every process).
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """cache_dir, else $SPIKEROLL_CACHE, else ~/.cache/spikeroll."""
    return Path(cache_dir or os.environ.get("SPIKEROLL_CACHE") or Path.home() / ".cache" / "spikeroll").expanduser()


def private_temp_dir() -> Path | None:
    """spikeroll-<uid> in the system temp folder, made 0700; None when it exists and is not safe:
    a link, not a folder, owned by another user, or writable by group or others."""
    uid = os.getuid()
    folder = Path(tempfile.gettempdir()) / f"spikeroll-{uid}"
    try:
        folder.mkdir(mode=0o700)
    except FileExistsError:
        pass
    except OSError:
        return None
    try:
        info = os.lstat(folder)
    except OSError:
        return None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != uid or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return None
    return folder
