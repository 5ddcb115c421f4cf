"""Generation g's training minibatch: a pure function of (seed, g), so that the Trainer, a resumed
run and a Ray worker holding the training split all draw the same samples with the same
augmentation, without any state passing between them."""

from __future__ import annotations

import torch

from spikeroll.config import TrainConfig
from spikeroll.data.augment import augment_frames
from spikeroll.noise import counter_seed


def batch_indices(seed: int, generation: int, n: int, batch_size: int) -> torch.Tensor:
    """Minibatch of generation g: a slice of a per-epoch permutation, a pure function of (seed, g)."""
    batch_size = min(batch_size, n)
    per_epoch = max(n // batch_size, 1)
    epoch, slot = divmod(generation, per_epoch)
    gen = torch.Generator().manual_seed(counter_seed(seed, epoch, -1, 0))
    return torch.randperm(n, generator=gen)[slot * batch_size : (slot + 1) * batch_size]


def minibatch(train, cfg: TrainConfig, generation: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Generation g's (augmented) training minibatch (frames, labels) from a split."""
    idx = batch_indices(cfg.seed, generation, len(train.labels), cfg.batch_size)
    # frames keep their storage dtype (uint8): the network converts them once it has laid them
    # out, a quarter of the bytes to move
    frames = augment_frames(train.frames[idx], cfg.seed, generation, cfg.augment_shift, cfg.augment_drop)
    return frames, train.labels[idx]
