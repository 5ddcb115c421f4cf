"""Accuracy of a trained network on a data split, in one pass or test-time augmented."""

from __future__ import annotations

import torch

from spikeroll.data.augment import shift_frames, shifts
from spikeroll.errors import SpikerollError


@torch.no_grad()
def accuracy(net, split, batch: int = 1000, tta_shift: int = 0) -> float | None:
    """Accuracy of the plain network on a data split (None when the split is absent).

    `net` is anything with `.logits(frames) -> (B, classes)` and `.device`. tta_shift > 0 is
    test-time augmentation: each recording is classified by its class probabilities averaged over
    every translation by up to tta_shift pixels ((2·s + 1)² forward passes per recording), instead
    of one pass on the recording as it is."""
    if tta_shift < 0:
        raise SpikerollError(f"tta_shift={tta_shift} must be >= 0 (0 = one pass per recording)")
    if split is None or len(split.labels) == 0:
        return None
    correct = 0
    for start in range(0, len(split.labels), batch):
        frames = split.frames[start : start + batch].to(net.device, torch.float32)
        if tta_shift == 0:
            pred = net.logits(frames).argmax(-1)
        else:
            pred = sum(torch.softmax(net.logits(shift_frames(frames, dy, dx)), -1)
                       for dy, dx in shifts(tta_shift)).argmax(-1)
        correct += int((pred.cpu() == split.labels[start : start + batch]).sum())
    return correct / len(split.labels)
