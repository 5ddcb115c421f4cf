"""Fitness of population members on a shared minibatch."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def member_fitness(logits: torch.Tensor, labels: torch.Tensor, temperature: float):
    """logits (N, B, C) -> fitness = −cross-entropy per member (N,), and accuracy per member (N,)."""
    n, b, c = logits.shape
    ce = F.cross_entropy(logits.reshape(n * b, c) / temperature, labels.repeat(n), reduction="none")
    acc = (logits.argmax(-1) == labels).float().mean(1)
    return -ce.view(n, b).mean(1), acc
