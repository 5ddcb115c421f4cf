"""Atomic files: a run killed at any moment leaves its last checkpoint readable."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from spikeroll.atomic import atomic_write
from spikeroll.errors import SpikerollError


def save_json(path: Path, data: dict) -> None:
    atomic_write(path, lambda h: h.write((json.dumps(data, indent=2) + "\n").encode()))


def save_checkpoint(path: Path, state: dict) -> None:
    atomic_write(path, lambda h: torch.save(state, h))


def load_checkpoint(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same advice
        raise SpikerollError(f"checkpoint {path} cannot be read ({type(exc).__name__}); "
                             "delete it and start over with --overwrite") from None
