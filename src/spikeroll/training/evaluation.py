"""Accuracy of a trained network on a data split, in one pass or test-time augmented."""

from __future__ import annotations

import torch

from spikeroll.data.augment import shift_frames, shifts
from spikeroll.errors import SpikerollError
from spikeroll.nets.counts import SpikeCounts


@torch.no_grad()
def accuracy_and_counts(net, split, prefix: str = "", batch: int = 1000) -> dict:
    """{prefix}accuracy of the plain network on a split, and, for networks that count spikes
    (spikeroll.nets.counts), its SynOps per inference and firing rates on that split, in one pass:
    {prefix}synops, {prefix}synops_hidden, {prefix}rate_layer{i}. {} when the split is absent;
    accuracy alone (as `accuracy`) for a network that counts nothing, or under autograd."""
    if split is None or len(split.labels) == 0:
        return {f"{prefix}accuracy": None}
    if not getattr(net, "counts_spikes", False):
        return {f"{prefix}accuracy": accuracy(net, split, batch)}
    correct, parts = 0, []
    for start in range(0, len(split.labels), batch):
        frames = split.frames[start : start + batch].to(net.device, torch.float32)
        found: list = []
        pred = net.logits(frames, counts=found).argmax(-1)
        correct += int((pred.cpu() == split.labels[start : start + batch]).sum())
        parts.extend(found)
    result = {f"{prefix}accuracy": correct / len(split.labels)}
    if parts:
        result.update(merge_samples(parts).summary(prefix))
    return result


def merge_samples(parts: list[SpikeCounts]) -> SpikeCounts:
    """The counts of consecutive minibatches of the same members as one (samples added up)."""
    first = parts[0]
    spikes = [sum(p.spikes[i] for p in parts) for i in range(len(first.spikes))]
    return SpikeCounts(sum(p.input_events for p in parts), spikes, first.sizes, first.time_bins,
                       sum(p.samples for p in parts))


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
