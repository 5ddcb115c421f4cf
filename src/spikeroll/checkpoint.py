"""Atomic files: a run killed at any moment leaves its last checkpoint readable."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch

from spikeroll.errors import SpikerollError


def _atomic_write(path: Path, write) -> None:
    """Write to a temp file in the same folder, fsync, then rename over `path` (atomic on POSIX)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_json(path: Path, data: dict) -> None:
    _atomic_write(Path(path), lambda h: h.write((json.dumps(data, indent=2) + "\n").encode()))


def save_checkpoint(path: Path, state: dict) -> None:
    _atomic_write(Path(path), lambda h: torch.save(state, h))


def load_checkpoint(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same advice
        raise SpikerollError(f"checkpoint {path} cannot be read ({type(exc).__name__}); "
                             "delete it and start over with --overwrite") from None
