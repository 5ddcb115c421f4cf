"""Schedules over a run: the learning-rate factor and σ's annealing follow the same shapes."""

from __future__ import annotations

import math

from spikeroll.config import TrainConfig


def schedule_factor(kind: str, generation: int, total: int) -> float:
    """1 at the start, falling to 0 at the end (cosine/linear) or staying 1 (constant)."""
    progress = min(generation / max(total, 1), 1.0)
    if kind == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    if kind == "linear":
        return 1.0 - progress
    return 1.0


def sigma_at(cfg: TrainConfig, generation: int) -> float:
    """σ of generation g: constant, or annealed to sigma_final along the lr schedule's shape."""
    if cfg.sigma_final is None:
        return cfg.sigma
    f = schedule_factor(cfg.lr_schedule if cfg.lr_schedule != "constant" else "linear", generation, cfg.generations)
    return cfg.sigma_final + (cfg.sigma - cfg.sigma_final) * f
