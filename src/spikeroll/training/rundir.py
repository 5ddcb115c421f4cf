"""The run directory: its file names, its checkpoint, and reading a trained network back.

A run directory holds config.json, metrics.jsonl, checkpoint.pt and report.json. Every file but
metrics.jsonl is written atomically (spikeroll.atomic), so a run killed at any moment leaves its
last checkpoint readable."""

from __future__ import annotations

from pathlib import Path

import torch

from spikeroll.atomic import atomic_write
from spikeroll.config import TrainConfig
from spikeroll.errors import SpikerollError
from spikeroll.es.protocols import Network
from spikeroll.training.factories import make_network, resolve_device

CHECKPOINT = "checkpoint.pt"
REPORT = "report.json"
METRICS = "metrics.jsonl"
CONFIG = "config.json"


def save_checkpoint(path: Path, state: dict) -> None:
    """Write a checkpoint's state dict atomically."""
    atomic_write(path, lambda h: torch.save(state, h))


def load_checkpoint(path: Path) -> dict:
    """Read a checkpoint's state dict; an unreadable file is a one-line error."""
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same advice
        raise SpikerollError(f"checkpoint {path} cannot be read ({type(exc).__name__}); "
                             "delete it and start over with --overwrite") from None


def load_trained(run_dir: str | Path) -> tuple[TrainConfig, Network]:
    """The config and mean network saved in a run directory's checkpoint."""
    path = Path(run_dir) / CHECKPOINT
    if not path.exists():
        raise SpikerollError(f"{run_dir} holds no {CHECKPOINT}; pass the --out directory of a training run")
    state = load_checkpoint(path)
    cfg = TrainConfig.from_dict(state["config"])
    sizes = state["sizes"]
    net = make_network(cfg, sizes[0], sizes[-1], resolve_device(cfg.device))
    net.load_parameters(state["params"])
    return cfg, net
